// GPU twins of the RDM statistics: stimulus bootstrap as FP32 GEMMs of resample counts with centred forms (built
// and multiplied in column blocks sized to a device-memory budget, partial sums added in a fixed order), permutation
// test by gathering a centred double copy of B through each permutation, split-half noise ceiling. Every launch
// keeps its grid within CUDA's limits (rows or units grid-strided over y). Semantics and random streams:
// include/rsa_gpu/stats.h; CPU twins: host/stats_ref.cpp. Block size, grids, block sums and the triangle's row
// sums are the kit's (common.cuh).
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "common.cuh"
#include "compare.cuh"
#include "cuda_check.cuh"
#include "gpu_context.cuh"
#include "device_buffer.cuh"
#include "rdm_scale.cuh"
#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"
#include "stats.cuh"

namespace rsa {
namespace {

// ---------------------------------------------------------------- CUDA kernels
// Row functor of the strict upper triangle of x (S x S) for row_sums_launch: acc[0], mode 0: sum of the finite
// values; mode 1: sum of (x - centre)^2 over them. acc[1]: count of non-finite values (NaN or +-Inf) (the CPU twins
// reject both: check_no_nan_upper and check_rdm_pair).
struct UpperRowSums : UpperRows {
    const float* x;
    int64_t S;
    int mode;
    double centre;
    __device__ void operator()(int64_t i, int64_t j, double (&acc)[2]) const {
        const float v = x[i * S + j];
        if (!isfinite(v)) {
            acc[1] += 1.0;
            return;
        }
        const double d = mode == 0 ? static_cast<double>(v) : static_cast<double>(v) - centre;
        acc[0] += mode == 0 ? d : d * d;
    }
};

__device__ __forceinline__ float sym_read(const float* __restrict__ x, int64_t S, int64_t i, int64_t j) {
    return i < j ? x[i * S + j] : x[j * S + i];
}

// Forms of the column block [j0, j0 + cw) of the S x S forms F_m: G is S x M cw, row-major (ld = M cw), form m
// in columns [m cw, (m + 1) cw), zero on the diagonal. Reference part: m = 0: A0, m = 1: A0^2. Grid
// (ceil(cw / block), min(S, 65,535)): rows grid-strided over y, so any S launches.
__global__ void ref_forms_kernel(const float* __restrict__ a, int64_t S, double ma, int64_t j0, int64_t cw, int64_t ld,
                                 float* __restrict__ g) {
    const int64_t jj = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (jj >= cw) return;
    const int64_t j = j0 + jj;
    for (int64_t i = blockIdx.y; i < S; i += gridDim.y) {
        const double a0 = i == j ? 0.0 : static_cast<double>(sym_read(a, S, i, j)) - ma;
        float* row = g + i * ld;
        row[jj] = static_cast<float>(a0);
        row[cw + jj] = static_cast<float>(a0 * a0);
    }
}

// Model l's part (forms m0 = 2 + 3 l .. m0 + 2): B0, B0^2, A0 B0. Same layout and grid as ref_forms_kernel.
__global__ void model_forms_kernel(const float* __restrict__ a, const float* __restrict__ b, int64_t S, double ma,
                                   double mb, int64_t j0, int64_t cw, int64_t ld, int64_t m0, float* __restrict__ g) {
    const int64_t jj = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (jj >= cw) return;
    const int64_t j = j0 + jj;
    for (int64_t i = blockIdx.y; i < S; i += gridDim.y) {
        double a0 = 0.0, b0 = 0.0;
        if (i != j) {
            a0 = static_cast<double>(sym_read(a, S, i, j)) - ma;
            b0 = static_cast<double>(sym_read(b, S, i, j)) - mb;
        }
        float* row = g + i * ld + m0 * cw;
        row[jj] = static_cast<float>(b0);
        row[cw + jj] = static_cast<float>(b0 * b0);
        row[2 * cw + jj] = static_cast<float>(a0 * b0);
    }
}

// w (rc x S, zeroed): counts of resamples r0 .. r0 + rc - 1 (absolute indices: the launcher's first + chunk start,
// row r of w is resample r0 + r); one thread per draw (grid-stride). Integer adds in
// FP32 are exact (counts <= S <= 2^24), so the order of the atomics does not matter.
__global__ void counts_kernel(uint64_t seed, int64_t S, int64_t r0, int64_t rc, float* __restrict__ w) {
    const int64_t total = rc * S;
    for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
         t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = t / S, k = t - r * S;
        atomicAdd(&w[r * S + bootstrap_draw(seed, S, r0 + r, k)], 1.0f);
    }
}

// Partial sums of column block [j0, j0 + cw), added to q (rc x (M + 2), zeroed before the first block; blocks in
// ascending order, one stream: a fixed order): q[r, m] += (sum_jj T[r, m cw + jj] w_r[j0 + jj]) / 2 for m < M
// from T = W G (rc x M cw, row-major); block m = M adds sum w_j^2 and the number of distinct stimuli (counts > 0)
// over the block's columns at M and M + 1 (integers: exact in double). With one block (cw = S) this is exactly
// w^T F_m w / 2. Grid (rc, M + 1).
__global__ void quad_forms_kernel(const float* __restrict__ t, const float* __restrict__ w, int64_t S, int M,
                                  int64_t j0, int64_t cw, double* __restrict__ q) {
    const int64_t r = blockIdx.x;
    const int m = static_cast<int>(blockIdx.y);
    const float* wr = w + r * S + j0;
    double s1 = 0.0, s2 = 0.0;
    if (m < M) {
        const float* tr = t + r * (static_cast<int64_t>(M) * cw) + static_cast<int64_t>(m) * cw;
        for (int64_t j = threadIdx.x; j < cw; j += blockDim.x) s1 += static_cast<double>(tr[j]) * wr[j];
    } else {
        for (int64_t j = threadIdx.x; j < cw; j += blockDim.x) {
            const double v = wr[j];
            s1 += v * v;
            s2 += v > 0.0 ? 1.0 : 0.0;
        }
    }
    s1 = block_sum(s1);
    s2 = block_sum(s2);
    if (threadIdx.x == 0) {
        double* qr = q + r * (M + 2);
        if (m < M) {
            qr[m] += 0.5 * s1;
        } else {
            qr[M] += s1;
            qr[M + 1] += s2;
        }
    }
}

// b0 (S x S, double): centred symmetric copy of b's upper triangle, zero diagonal. Grid grid_2d(S, S): columns
// over x, rows grid-strided over y.
__global__ void centred_symmetric_kernel(const float* __restrict__ b, int64_t S, double mb, double* __restrict__ b0) {
    const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (j >= S) return;
    for (int64_t i = blockIdx.y; i < S; i += gridDim.y)
        b0[i * S + j] = i == j ? 0.0 : static_cast<double>(sym_read(b, S, i, j)) - mb;
}

// perms (pc x S): permutations p0 .. p0 + pc - 1 (absolute indices: the launcher's first + chunk start), one thread
// each (grid-strided; sequential Fisher-Yates, as on the host).
__global__ void permutation_draw_kernel(uint64_t seed, int64_t S, int64_t p0, int64_t pc, int* __restrict__ perms) {
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < pc;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x)
        permutation_draw(seed, S, p0 + p, perms + p * S);
}

// sxy[p] = sum_{i<j} (A_ij - ma) * B0[perm_i, perm_j], one block per permutation (perms null: the identity).
// The permutation is staged in shared memory when it fits (use_shared), else read from global memory.
__global__ void permutation_cross_kernel(const float* __restrict__ a, const double* __restrict__ b0, int64_t S,
                                         double ma, const int* __restrict__ perms, bool use_shared,
                                         double* __restrict__ sxy) {
    extern __shared__ int sh_perm[];
    const int64_t p = blockIdx.x;
    const int* perm = perms ? perms + p * S : nullptr;
    if (perm && use_shared) {
        for (int64_t i = threadIdx.x; i < S; i += blockDim.x) sh_perm[i] = perm[i];
        __syncthreads();
        perm = sh_perm;
    }
    double s = 0.0;
    for (int64_t i = 0; i < S - 1; ++i) {
        const int64_t pi = perm ? perm[i] : i;
        const double* brow = b0 + pi * S;
        const float* arow = a + i * S;
        for (int64_t j = i + 1 + threadIdx.x; j < S; j += blockDim.x)
            s += (static_cast<double>(arow[j]) - ma) * brow[perm ? perm[j] : j];
    }
    s = block_sum(s);
    if (threadIdx.x == 0) sxy[p] = s;
}

__global__ void count_nonfinite_kernel(const float* __restrict__ x, int64_t n, unsigned long long* __restrict__ count) {
    unsigned long long c = 0;
    for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
         t += static_cast<int64_t>(gridDim.x) * blockDim.x)
        c += isfinite(x[t]) ? 0ull : 1ull;
    if (c) atomicAdd(count, c);
}

// out[g * N + n] = mean over the trials trials[offsets[g] .. offsets[g + 1]) of resp[t, n] (double sum in
// list order, the lists ascending like the CPU twin's loop). Grid (groups, min(ceil(N / kBlock), 65,535)): units
// grid-strided over y, so any N launches.
__global__ void group_mean_kernel(const float* __restrict__ resp, int64_t N, const int64_t* __restrict__ offsets,
                                  const int64_t* __restrict__ trials, float* __restrict__ out) {
    const int64_t g = blockIdx.x;
    const int64_t b = offsets[g], e = offsets[g + 1];
    for (int64_t n = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; n < N;
         n += static_cast<int64_t>(gridDim.y) * blockDim.x) {
        double s = 0.0;
        for (int64_t k = b; k < e; ++k) s += resp[trials[k] * N + n];
        out[g * N + n] = static_cast<float>(s / static_cast<double>(e - b));
    }
}

// ---------------------------------------------------------------- host helpers
struct UpperStats {
    double sum = 0.0;
    int64_t nan = 0;
};

UpperStats upper_stats(const float* d_x, int64_t S, int mode, double centre, DeviceBuffer<double>& parts,
                       cudaStream_t stream) {
    parts.resize(2 * static_cast<size_t>(S) + 2, "row partial sums");
    double* p = parts.get();
    // One block per row (row_sums_launch checks grid.x = S <= 2^31 - 1; the launchers bound S far below).
    row_sums_launch<2>(S, S, UpperRowSums{{}, d_x, S, mode, centre}, p, p + 2 * S, stream);
    double host[2];
    read_back(host, p + 2 * S, 2, stream);
    return UpperStats{host[0], static_cast<int64_t>(host[1])};
}

void check_square(int64_t S, const char* what) {
    if (S < 3) {
        std::ostringstream os;
        os << what << ": comparing RDMs needs at least 3 stimuli, got " << S;
        throw InputError(os.str());
    }
}

// Triangle mean; InputError naming `what` when the triangle holds NaN or an infinity.
double checked_mean(const float* d_x, int64_t S, const std::string& what, DeviceBuffer<double>& parts,
                    cudaStream_t stream) {
    const UpperStats st = upper_stats(d_x, S, 0, 0.0, parts, stream);
    if (st.nan > 0) {
        std::ostringstream os;
        os << what << ": " << st.nan
           << " NaN or infinite value(s) in the upper triangle (the bootstrap and the permutation test need RDMs "
              "without NaN or infinities)";
        throw InputError(os.str());
    }
    return st.sum / (0.5 * static_cast<double>(S) * static_cast<double>(S - 1));
}

}  // namespace

// ---------------------------------------------------------------- bootstrap
BootstrapPlan plan_bootstrap(int64_t S, int64_t models, int64_t resamples, uint64_t budget_bytes) {
    const int64_t M = 2 + 3 * models;
    const uint64_t f = sizeof(float), per_column = f * static_cast<uint64_t>(S) * static_cast<uint64_t>(M);
    // Bytes per resample of a chunk, for block width cw: its counts row, its T row, its q row.
    auto per_resample = [&](int64_t cw) {
        return f * static_cast<uint64_t>(S) + f * static_cast<uint64_t>(M * cw) +
               sizeof(double) * static_cast<uint64_t>(M + 2);
    };
    BootstrapPlan p;
    // Columns per block: every column when G fits in half the budget, else as many as half the budget holds.
    // At most INT_MAX / M (the GEMM's m = M cw is an int).
    const int64_t max_cols = std::min<int64_t>(S, 2147483647 / M);
    const bool whole = per_column <= budget_bytes / 2 / static_cast<uint64_t>(S);  // per_column x S <= budget / 2
    const uint64_t fit = std::max<uint64_t>(1, budget_bytes / 2 / per_column);
    p.block_columns = whole ? S : static_cast<int64_t>(std::min<uint64_t>(fit, static_cast<uint64_t>(S)));
    p.block_columns = std::max<int64_t>(1, std::min(p.block_columns, max_cols));
    p.blocks = RSA_CEIL_DIV(S, p.block_columns);
    // Resamples per chunk: T (chunk x M cw) at most 2^26 floats (256 MB), and chunk, T and q within the rest of the
    // budget; at least one, at most INT_MAX (the GEMM's n).
    const uint64_t g_bytes = per_column * static_cast<uint64_t>(p.block_columns);
    const uint64_t rest = budget_bytes > g_bytes ? budget_bytes - g_bytes : 0;
    int64_t chunk = std::min<int64_t>(resamples, (int64_t{1} << 26) / (M * p.block_columns));
    chunk = std::min<int64_t>(chunk, static_cast<int64_t>(std::min<uint64_t>(rest / per_resample(p.block_columns),
                                                                              2147483647ull)));
    p.chunk = std::max<int64_t>(1, chunk);
    p.chunks = RSA_CEIL_DIV(resamples, p.chunk);
    p.device_bytes = g_bytes + static_cast<uint64_t>(p.chunk) * per_resample(p.block_columns);
    p.budget_bytes = budget_bytes;
    return p;
}

BootstrapResult bootstrap_launch(cublasHandle_t cublas, const float* d_ref, const std::vector<const float*>& d_models,
                                 int64_t S, int resamples, uint64_t seed, int64_t first, cudaStream_t stream,
                                 uint64_t work_bytes) {
    check_square(S, "bootstrap");
    if (d_models.empty()) throw InputError("bootstrap: no model RDMs given");
    if (resamples < 1) throw InputError("bootstrap: the number of resamples must be at least 1");
    if (first < 0) throw InputError("bootstrap: the first resample index must be >= 0");
    // Counts are added in FP32, exact up to 2^24.
    if (S > (int64_t{1} << 24)) throw InputError("bootstrap: at most 16,777,216 stimuli on the GPU");
    const int64_t L = static_cast<int64_t>(d_models.size()), M = 2 + 3 * L, R = resamples;
    if (M + 1 > kMaxGridYZ)
        throw InputError("bootstrap: too many models (quad_forms_kernel grid.y = 3 L + 3 <= 65,535)");
    uint64_t budget = work_bytes;
    if (budget == 0) {
        size_t free_bytes = 0, total_bytes = 0;
        CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
        const uint64_t reserve = std::max<uint64_t>(uint64_t{256} << 20, total_bytes / 50);  // cuBLAS, others
        budget = std::min<uint64_t>(kBootstrapWorkCap, free_bytes > reserve ? free_bytes - reserve : 0);
    }
    const BootstrapPlan plan = plan_bootstrap(S, L, R, budget);
    const int64_t cb = plan.block_columns, chunk = plan.chunk;

    DeviceBuffer<double> parts;
    const double ma = checked_mean(d_ref, S, "reference RDM", parts, stream);
    std::vector<double> mb(static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l)
        mb[static_cast<size_t>(l)] =
            checked_mean(d_models[static_cast<size_t>(l)], S, "model " + std::to_string(l), parts, stream);

    DeviceBuffer<float> g(static_cast<size_t>(S * M * cb), "the bootstrap's centred forms");
    DeviceBuffer<float> w(static_cast<size_t>(chunk * S), "the bootstrap's resample counts");
    DeviceBuffer<float> t(static_cast<size_t>(chunk * M * cb), "the bootstrap's GEMM products");
    DeviceBuffer<double> q(static_cast<size_t>(chunk * (M + 2)), "the bootstrap's quadratic forms");
    // Centred forms of columns [j0, j0 + cw), S x M cw (FP32).
    auto build_forms = [&](int64_t j0, int64_t cw) {
        const int64_t ld = M * cw;
        const dim3 grid = grid_2d(cw, S);
        ref_forms_kernel<<<grid, kBlock, 0, stream>>>(d_ref, S, ma, j0, cw, ld, g.get());
        RSA_CHECK_LAUNCH();
        for (int64_t l = 0; l < L; ++l) {
            model_forms_kernel<<<grid, kBlock, 0, stream>>>(d_ref, d_models[static_cast<size_t>(l)], S, ma,
                                                                 mb[static_cast<size_t>(l)], j0, cw, ld, 2 + 3 * l,
                                                                 g.get());
            RSA_CHECK_LAUNCH();
        }
    };
    if (plan.blocks == 1) build_forms(0, S);  // built once, kept for every chunk

    std::vector<double> hq(static_cast<size_t>(R * (M + 2)));
    bind_cublas_stream(cublas, stream);
    const float one = 1.0f, zero = 0.0f;
    for (int64_t r0 = 0; r0 < R; r0 += chunk) {
        const int64_t rc = std::min(chunk, R - r0);
        CUDA_CHECK(cudaMemsetAsync(w.get(), 0, static_cast<size_t>(rc * S) * sizeof(float), stream));
        counts_kernel<<<grid_1d(rc * S), kBlock, 0, stream>>>(seed, S, first + r0, rc, w.get());
        RSA_CHECK_LAUNCH();
        CUDA_CHECK(cudaMemsetAsync(q.get(), 0, static_cast<size_t>(rc * (M + 2)) * sizeof(double), stream));
        // Column blocks in ascending order: each adds its partial sums to q (a fixed order, so deterministic).
        for (int64_t j0 = 0; j0 < S; j0 += cb) {
            const int64_t cw = std::min(cb, S - j0);
            if (plan.blocks > 1) build_forms(j0, cw);
            // Column-major view: T^T (M cw x rc) = G^T (M cw x S, ld M cw) * W^T (S x rc, ld S).
            CUBLAS_CHECK(cublasSgemm(cublas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(M * cw), static_cast<int>(rc),
                                     static_cast<int>(S), &one, g.get(), static_cast<int>(M * cw), w.get(),
                                     static_cast<int>(S), &zero, t.get(), static_cast<int>(M * cw)));
            quad_forms_kernel<<<dim3(static_cast<unsigned>(rc), static_cast<unsigned>(M + 1)), kBlock, 0, stream>>>(
                t.get(), w.get(), S, static_cast<int>(M), j0, cw, q.get());
            RSA_CHECK_LAUNCH();
        }
        // Waits for the chunk; G (one block) and the buffers are reused by the next.
        q.download(hq.data() + r0 * (M + 2), static_cast<size_t>(rc * (M + 2)), stream);
    }

    BootstrapResult res;
    res.samples.assign(static_cast<size_t>(L), std::vector<double>(static_cast<size_t>(R)));
    const double SS = static_cast<double>(S) * static_cast<double>(S);
    for (int64_t r = 0; r < R; ++r) {
        const double* qr = hq.data() + r * (M + 2);
        const double n = 0.5 * (SS - qr[M]);
        for (int64_t l = 0; l < L; ++l)
            res.samples[static_cast<size_t>(l)][static_cast<size_t>(r)] =
                bootstrap_r_from_sums(n, qr[M + 1], qr[0], qr[1], qr[2 + 3 * l], qr[3 + 3 * l], qr[4 + 3 * l]);
    }
    bootstrap_summarise(res);
    return res;
}

// ---------------------------------------------------------------- permutation test
PermutationResult permutation_launch(const float* d_ref, const float* d_model, int64_t S, int permutations,
                                     uint64_t seed, int64_t first, cudaStream_t stream) {
    check_square(S, "permutation test");
    if (permutations < 1) throw InputError("permutation test: the number of permutations must be at least 1");
    if (first < 0) throw InputError("permutation test: the first permutation index must be >= 0");
    // Labels are ints; the centred copy b0 (S x S doubles) is the real bound (OutOfMemoryError naming it).
    if (S > 2147483647) throw InputError("permutation test: at most 2,147,483,647 stimuli");
    DeviceBuffer<double> parts;
    const double ma = checked_mean(d_ref, S, "reference RDM", parts, stream);
    const double mb = checked_mean(d_model, S, "model RDM", parts, stream);
    const double sxx = upper_stats(d_ref, S, 1, ma, parts, stream).sum;
    const double syy = upper_stats(d_model, S, 1, mb, parts, stream).sum;

    DeviceBuffer<double> b0(static_cast<size_t>(S * S), "the permutation test's centred model RDM (double)");
    centred_symmetric_kernel<<<grid_2d(S, S), kBlock, 0, stream>>>(d_model, S, mb, b0.get());
    RSA_CHECK_LAUNCH();

    const int64_t P = permutations;
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(P, (int64_t{1} << 24) / S));  // 64 MB of labels
    const bool use_shared = static_cast<size_t>(S) * sizeof(int) <= 40 * 1024;  // + block_sum's 2 KB < 48 KB
    const size_t shmem = use_shared ? static_cast<size_t>(S) * sizeof(int) : 0;
    DeviceBuffer<int> perms(static_cast<size_t>(chunk * S), "the permutations");
    DeviceBuffer<double> sxy(static_cast<size_t>(P + 1), "the permuted cross products");  // [0]: identity, [1 + p]: p
    permutation_cross_kernel<<<1, kBlock, 0, stream>>>(d_ref, b0.get(), S, ma, nullptr, false, sxy.get());
    RSA_CHECK_LAUNCH();
    for (int64_t p0 = 0; p0 < P; p0 += chunk) {
        const int64_t pc = std::min(chunk, P - p0);  // <= 2^24: both grids stay far below grid.x's 2^31 - 1
        permutation_draw_kernel<<<grid_1d(pc), kBlock, 0, stream>>>(seed, S, first + p0, pc, perms.get());
        RSA_CHECK_LAUNCH();
        permutation_cross_kernel<<<static_cast<unsigned>(pc), kBlock, shmem, stream>>>(
            d_ref, b0.get(), S, ma, perms.get(), use_shared, sxy.get() + 1 + p0);
        RSA_CHECK_LAUNCH();
    }
    std::vector<double> h(sxy.size());
    sxy.download(h.data(), h.size(), stream);
    PermutationResult res;
    res.r_obs = pearson_from_centred(sxx, syy, h[0]);
    res.null.resize(static_cast<size_t>(P));
    for (int64_t p = 0; p < P; ++p) res.null[static_cast<size_t>(p)] = pearson_from_centred(sxx, syy, h[1 + p]);
    res.p_value = permutation_p_value(res.r_obs, res.null);
    return res;
}

// ---------------------------------------------------------------- noise ceiling
NoiseCeilingResult noise_ceiling_launch(cublasHandle_t cublas, const float* d_resp, int64_t T, int64_t N,
                                        const std::vector<int64_t>& bins, int splits, uint64_t seed,
                                        cudaStream_t stream) {
    check_noise_ceiling_input(T, N, bins, splits);
    {
        DeviceBuffer<unsigned long long> bad(1);
        CUDA_CHECK(cudaMemsetAsync(bad.get(), 0, sizeof(unsigned long long), stream));
        count_nonfinite_kernel<<<grid_1d(T * N), kBlock, 0, stream>>>(d_resp, T * N, bad.get());
        RSA_CHECK_LAUNCH();
        unsigned long long h = 0;
        bad.download(&h, 1, stream);
        if (h) {
            std::ostringstream os;
            os << "noise ceiling: " << h << " non-finite response value(s)";
            throw InputError(os.str());
        }
    }
    NoiseCeilingResult res;
    double total = 0.0;
    DeviceBuffer<int64_t> d_offsets, d_trials;
    DeviceBuffer<float> avg, rdm;
    DeviceBuffer<double> row_stats;
    DeviceBuffer<char> work;
    for (int s = 0; s < splits; ++s) {
        const SplitPlan plan = split_halves_plan(bins, s, seed);
        const int64_t rows = static_cast<int64_t>(plan.kept_ids.size());
        if (s == 0) {
            res.kept_ids = plan.kept_ids;
            res.bins_kept = rows;
            res.bins_dropped = plan.bins_dropped;
        }
        if (rows < 3) throw InputError("split half: at least 3 bins with 2 or more trials are needed");
        // Trial lists of the groups g = half * rows + row, ascending.
        std::vector<int64_t> offsets(static_cast<size_t>(2 * rows + 1), 0), trials;
        for (int64_t t = 0; t < T; ++t)
            if (plan.half[static_cast<size_t>(t)] >= 0)
                ++offsets[static_cast<size_t>(plan.half[static_cast<size_t>(t)] * rows +
                                              plan.bin_row[static_cast<size_t>(t)] + 1)];
        for (size_t g = 1; g < offsets.size(); ++g) offsets[g] += offsets[g - 1];
        trials.resize(static_cast<size_t>(offsets.back()));
        std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
        for (int64_t t = 0; t < T; ++t)
            if (plan.half[static_cast<size_t>(t)] >= 0)
                trials[static_cast<size_t>(fill[static_cast<size_t>(plan.half[static_cast<size_t>(t)] * rows +
                                                                     plan.bin_row[static_cast<size_t>(t)])]++)] = t;
        d_offsets.upload(offsets, stream);
        d_trials.upload(trials, stream);
        avg.resize(static_cast<size_t>(2 * rows * N), "the split halves' bin means");
        rdm.resize(static_cast<size_t>(2 * rows * rows), "the split halves' RDMs");
        row_stats.resize(static_cast<size_t>(2 * rows), "the half RDMs' row statistics");
        work.resize(pearson_workspace_bytes(rows), "the Pearson workspace");
        // Groups over x (2 rows <= 2 x T), units grid-strided over y (at most 65,535 blocks of kBlock high).
        if (2 * rows > kMaxGridX) throw InputError("noise ceiling: too many bins for one launch");
        const dim3 grid(static_cast<unsigned>(2 * rows),
                        static_cast<unsigned>(std::min<int64_t>(RSA_CEIL_DIV(N, int64_t{kBlock}), kMaxGridYZ)));
        group_mean_kernel<<<grid, kBlock, 0, stream>>>(d_resp, N, d_offsets.get(), d_trials.get(), avg.get());
        RSA_CHECK_LAUNCH();
        for (int64_t h = 0; h < 2; ++h) {
            // z-scored in place (the bin means are not needed afterwards)
            rdm_resident_launch(cublas, avg.get() + h * rows * N, rows, N, row_stats.get(), rdm.get() + h * rows * rows,
                                stream);
        }
        const double r = pearson_upper_launch(rdm.get(), rdm.get() + rows * rows, rows, work.get(), stream).r;
        res.r_half.push_back(r);
        total += r;
    }
    res.r_half_mean = total / splits;
    res.ceiling = spearman_brown(res.r_half_mean);
    return res;
}

}  // namespace rsa

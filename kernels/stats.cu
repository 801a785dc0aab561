// GPU twins of the RDM statistics: stimulus bootstrap as FP32 GEMMs of resample counts with centred forms,
// permutation test by gathering a centred double copy of B through each permutation, split-half noise ceiling.
// Semantics and random streams: include/rsa_gpu/stats.h; CPU twins: host/stats_ref.cpp.
#include <cub/block/block_reduce.cuh>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "compare.cuh"
#include "cuda_check.cuh"
#include "gpu_context.cuh"
#include "device_buffer.cuh"
#include "rdm.cuh"
#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"
#include "stats.cuh"

namespace rsa {
namespace {

constexpr int kStatsBlock = 256;

// ---------------------------------------------------------------- CUDA kernels
// Row partials of the strict upper triangle of x (S x S): mode 0: sum of the finite values; mode 1: sum of
// (x - centre)^2 over them. part_nan[i]: count of non-finite values (NaN or +-Inf) in row i (the CPU twins reject
// both: check_no_nan_upper and check_rdm_pair).
__global__ void upper_row_kernel(const float* __restrict__ x, int64_t S, int mode, double centre,
                                 double* __restrict__ part_sum, double* __restrict__ part_nan) {
    using BlockReduce = cub::BlockReduce<double, kStatsBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    const int64_t i = blockIdx.x;
    double s = 0.0, nan_count = 0.0;
    for (int64_t j = i + 1 + threadIdx.x; j < S; j += blockDim.x) {
        const float v = x[i * S + j];
        if (!isfinite(v)) {
            nan_count += 1.0;
            continue;
        }
        const double d = mode == 0 ? static_cast<double>(v) : static_cast<double>(v) - centre;
        s += mode == 0 ? d : d * d;
    }
    s = BlockReduce(temp).Sum(s);
    __syncthreads();
    nan_count = BlockReduce(temp).Sum(nan_count);
    if (threadIdx.x == 0) {
        part_sum[i] = s;
        part_nan[i] = nan_count;
    }
}

// totals[k] = sum over rows of parts[k * S + row], k < count; one block, fixed order (deterministic).
__global__ void reduce_parts_kernel(const double* __restrict__ parts, int64_t S, int count,
                                    double* __restrict__ totals) {
    using BlockReduce = cub::BlockReduce<double, kStatsBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    for (int k = 0; k < count; ++k) {
        double s = 0.0;
        for (int64_t r = threadIdx.x; r < S; r += blockDim.x) s += parts[k * S + r];
        s = BlockReduce(temp).Sum(s);
        if (threadIdx.x == 0) totals[k] = s;
        __syncthreads();
    }
}

__device__ __forceinline__ float sym_read(const float* __restrict__ x, int64_t S, int64_t i, int64_t j) {
    return i < j ? x[i * S + j] : x[j * S + i];
}

// Forms of the reference: G[i, 0 * S + j] = A0_ij, G[i, 1 * S + j] = A0_ij^2 (zero diagonal); G is S x MS.
__global__ void ref_forms_kernel(const float* __restrict__ a, int64_t S, double ma, int64_t MS, float* __restrict__ g) {
    const int64_t i = blockIdx.y, j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (j >= S) return;
    const double a0 = i == j ? 0.0 : static_cast<double>(sym_read(a, S, i, j)) - ma;
    g[i * MS + j] = static_cast<float>(a0);
    g[i * MS + S + j] = static_cast<float>(a0 * a0);
}

// Forms of model l at column block m0 = 2 + 3 l: B0, B0^2, A0 B0.
__global__ void model_forms_kernel(const float* __restrict__ a, const float* __restrict__ b, int64_t S, double ma,
                                   double mb, int64_t MS, int64_t m0, float* __restrict__ g) {
    const int64_t i = blockIdx.y, j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (j >= S) return;
    double a0 = 0.0, b0 = 0.0;
    if (i != j) {
        a0 = static_cast<double>(sym_read(a, S, i, j)) - ma;
        b0 = static_cast<double>(sym_read(b, S, i, j)) - mb;
    }
    float* row = g + i * MS + m0 * S;
    row[j] = static_cast<float>(b0);
    row[S + j] = static_cast<float>(b0 * b0);
    row[2 * S + j] = static_cast<float>(a0 * b0);
}

// w (rc x S, zeroed): counts of resamples r0 .. r0 + rc - 1; one thread per draw. Integer adds in FP32 are
// exact (counts <= S < 2^24), so the order of the atomics does not matter.
__global__ void counts_kernel(uint64_t seed, int64_t S, int64_t r0, int64_t rc, float* __restrict__ w) {
    const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= rc * S) return;
    const int64_t r = t / S, k = t - r * S;
    atomicAdd(&w[r * S + bootstrap_draw(seed, S, r0 + r, k)], 1.0f);
}

// q[r * (M + 2) + m] = (w_r^T F_m w_r) / 2 for m < M from T = W G (rc x MS); block m = M writes
// sum_j w_j^2 and the number of distinct stimuli at M and M + 1. Grid (rc, M + 1).
__global__ void quad_forms_kernel(const float* __restrict__ t, const float* __restrict__ w, int64_t S, int M,
                                  double* __restrict__ q) {
    using BlockReduce = cub::BlockReduce<double, kStatsBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    const int64_t r = blockIdx.x;
    const int m = static_cast<int>(blockIdx.y);
    const int64_t MS = static_cast<int64_t>(M) * S;
    const float* wr = w + r * S;
    double s1 = 0.0, s2 = 0.0;
    if (m < M) {
        const float* tr = t + r * MS + static_cast<int64_t>(m) * S;
        for (int64_t j = threadIdx.x; j < S; j += blockDim.x) s1 += static_cast<double>(tr[j]) * wr[j];
    } else {
        for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
            const double v = wr[j];
            s1 += v * v;
            s2 += v > 0.0 ? 1.0 : 0.0;
        }
    }
    s1 = BlockReduce(temp).Sum(s1);
    __syncthreads();
    s2 = BlockReduce(temp).Sum(s2);
    if (threadIdx.x == 0) {
        double* qr = q + r * (M + 2);
        if (m < M) {
            qr[m] = 0.5 * s1;
        } else {
            qr[M] = s1;
            qr[M + 1] = s2;
        }
    }
}

// b0 (S x S, double): centred symmetric copy of b's upper triangle, zero diagonal.
__global__ void centred_symmetric_kernel(const float* __restrict__ b, int64_t S, double mb, double* __restrict__ b0) {
    const int64_t i = blockIdx.y, j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (j >= S) return;
    b0[i * S + j] = i == j ? 0.0 : static_cast<double>(sym_read(b, S, i, j)) - mb;
}

// perms (pc x S): permutations p0 .. p0 + pc - 1, one thread each (sequential Fisher-Yates, as on the host).
__global__ void permutation_draw_kernel(uint64_t seed, int64_t S, int64_t p0, int64_t pc, int* __restrict__ perms) {
    const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (p >= pc) return;
    permutation_draw(seed, S, p0 + p, perms + p * S);
}

// sxy[p] = sum_{i<j} (A_ij - ma) * B0[perm_i, perm_j], one block per permutation (perms null: the identity).
// The permutation is staged in shared memory when it fits (use_shared), else read from global memory.
__global__ void permutation_cross_kernel(const float* __restrict__ a, const double* __restrict__ b0, int64_t S,
                                         double ma, const int* __restrict__ perms, bool use_shared,
                                         double* __restrict__ sxy) {
    using BlockReduce = cub::BlockReduce<double, kStatsBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
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
    s = BlockReduce(temp).Sum(s);
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
// list order, the lists ascending like the CPU twin's loop). Grid (groups, ceil(N / block)).
__global__ void group_mean_kernel(const float* __restrict__ resp, int64_t N, const int64_t* __restrict__ offsets,
                                  const int64_t* __restrict__ trials, float* __restrict__ out) {
    const int64_t g = blockIdx.x, n = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
    if (n >= N) return;
    const int64_t b = offsets[g], e = offsets[g + 1];
    double s = 0.0;
    for (int64_t k = b; k < e; ++k) s += resp[trials[k] * N + n];
    out[g * N + n] = static_cast<float>(s / static_cast<double>(e - b));
}

// ---------------------------------------------------------------- host helpers
struct UpperStats {
    double sum = 0.0;
    int64_t nan = 0;
};

UpperStats upper_stats(const float* d_x, int64_t S, int mode, double centre, DeviceBuffer<double>& parts,
                       cudaStream_t stream) {
    parts.resize(2 * static_cast<size_t>(S) + 2);
    double* p = parts.get();
    upper_row_kernel<<<static_cast<unsigned>(S), kStatsBlock, 0, stream>>>(d_x, S, mode, centre, p, p + S);
    RSA_CHECK_LAUNCH();
    reduce_parts_kernel<<<1, kStatsBlock, 0, stream>>>(p, S, 2, p + 2 * S);
    RSA_CHECK_LAUNCH();
    double host[2];
    CUDA_CHECK(cudaMemcpyAsync(host, p + 2 * S, sizeof(host), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
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

dim3 square_grid(int64_t S) {
    return dim3(static_cast<unsigned>(RSA_CEIL_DIV(S, kStatsBlock)), static_cast<unsigned>(S));
}

}  // namespace

// ---------------------------------------------------------------- bootstrap
BootstrapResult bootstrap_launch(cublasHandle_t cublas, const float* d_ref, const std::vector<const float*>& d_models,
                                 int64_t S, int resamples, uint64_t seed, cudaStream_t stream) {
    check_square(S, "bootstrap");
    if (d_models.empty()) throw InputError("bootstrap: no model RDMs given");
    if (resamples < 1) throw InputError("bootstrap: the number of resamples must be at least 1");
    if (S > 65535) throw InputError("bootstrap: at most 65,535 stimuli on the GPU");
    const int64_t L = static_cast<int64_t>(d_models.size()), M = 2 + 3 * L, MS = M * S, R = resamples;
    if (MS > 2147483647) throw InputError("bootstrap: too many models for one GEMM");
    if (M + 1 > 65535) throw InputError("bootstrap: too many models (quad_forms_kernel grid.y = 3 L + 3 <= 65,535)");
    DeviceBuffer<double> parts;
    const double ma = checked_mean(d_ref, S, "reference RDM", parts, stream);
    std::vector<double> mb(static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l)
        mb[static_cast<size_t>(l)] =
            checked_mean(d_models[static_cast<size_t>(l)], S, "model " + std::to_string(l), parts, stream);

    // Centred forms, S x MS (FP32).
    DeviceBuffer<float> g(static_cast<size_t>(S * MS));
    ref_forms_kernel<<<square_grid(S), kStatsBlock, 0, stream>>>(d_ref, S, ma, MS, g.get());
    RSA_CHECK_LAUNCH();
    for (int64_t l = 0; l < L; ++l) {
        model_forms_kernel<<<square_grid(S), kStatsBlock, 0, stream>>>(d_ref, d_models[static_cast<size_t>(l)], S, ma,
                                                                       mb[static_cast<size_t>(l)], MS, 2 + 3 * l,
                                                                       g.get());
        RSA_CHECK_LAUNCH();
    }

    // Resample chunks: T (rc x MS) at most 2^26 floats (256 MB).
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(R, (int64_t{1} << 26) / MS));
    DeviceBuffer<float> w(static_cast<size_t>(chunk * S)), t(static_cast<size_t>(chunk * MS));
    DeviceBuffer<double> q(static_cast<size_t>(R * (M + 2)));
    bind_cublas_stream(cublas, stream);
    const float one = 1.0f, zero = 0.0f;
    for (int64_t r0 = 0; r0 < R; r0 += chunk) {
        const int64_t rc = std::min(chunk, R - r0);
        CUDA_CHECK(cudaMemsetAsync(w.get(), 0, static_cast<size_t>(rc * S) * sizeof(float), stream));
        counts_kernel<<<static_cast<unsigned>(RSA_CEIL_DIV(rc * S, kStatsBlock)), kStatsBlock, 0, stream>>>(
            seed, S, r0, rc, w.get());
        RSA_CHECK_LAUNCH();
        // Column-major view: T^T (MS x rc) = G^T (MS x S, ld MS) * W^T (S x rc, ld S).
        CUBLAS_CHECK(cublasSgemm(cublas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(MS), static_cast<int>(rc),
                                 static_cast<int>(S), &one, g.get(), static_cast<int>(MS), w.get(),
                                 static_cast<int>(S), &zero, t.get(), static_cast<int>(MS)));
        quad_forms_kernel<<<dim3(static_cast<unsigned>(rc), static_cast<unsigned>(M + 1)), kStatsBlock, 0, stream>>>(
            t.get(), w.get(), S, static_cast<int>(M), q.get() + r0 * (M + 2));
        RSA_CHECK_LAUNCH();
    }
    std::vector<double> hq(q.size());
    q.download(hq.data(), hq.size(), stream);

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
                                     uint64_t seed, cudaStream_t stream) {
    check_square(S, "permutation test");
    if (permutations < 1) throw InputError("permutation test: the number of permutations must be at least 1");
    if (S > 65535) throw InputError("permutation test: at most 65,535 stimuli on the GPU");
    DeviceBuffer<double> parts;
    const double ma = checked_mean(d_ref, S, "reference RDM", parts, stream);
    const double mb = checked_mean(d_model, S, "model RDM", parts, stream);
    const double sxx = upper_stats(d_ref, S, 1, ma, parts, stream).sum;
    const double syy = upper_stats(d_model, S, 1, mb, parts, stream).sum;

    DeviceBuffer<double> b0(static_cast<size_t>(S * S));
    centred_symmetric_kernel<<<square_grid(S), kStatsBlock, 0, stream>>>(d_model, S, mb, b0.get());
    RSA_CHECK_LAUNCH();

    const int64_t P = permutations;
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(P, (int64_t{1} << 24) / S));  // 64 MB of labels
    const bool use_shared = static_cast<size_t>(S) * sizeof(int) <= 40 * 1024;  // + cub storage < 48 KB
    const size_t shmem = use_shared ? static_cast<size_t>(S) * sizeof(int) : 0;
    DeviceBuffer<int> perms(static_cast<size_t>(chunk * S));
    DeviceBuffer<double> sxy(static_cast<size_t>(P + 1));  // [0]: identity, [1 + p]: permutation p
    permutation_cross_kernel<<<1, kStatsBlock, 0, stream>>>(d_ref, b0.get(), S, ma, nullptr, false, sxy.get());
    RSA_CHECK_LAUNCH();
    for (int64_t p0 = 0; p0 < P; p0 += chunk) {
        const int64_t pc = std::min(chunk, P - p0);
        permutation_draw_kernel<<<static_cast<unsigned>(RSA_CEIL_DIV(pc, 128)), 128, 0, stream>>>(seed, S, p0, pc,
                                                                                                  perms.get());
        RSA_CHECK_LAUNCH();
        permutation_cross_kernel<<<static_cast<unsigned>(pc), kStatsBlock, shmem, stream>>>(
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
        const int64_t blocks = std::min<int64_t>(4096, std::max<int64_t>(1, RSA_CEIL_DIV(T * N, kStatsBlock)));
        count_nonfinite_kernel<<<static_cast<unsigned>(blocks), kStatsBlock, 0, stream>>>(d_resp, T * N, bad.get());
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
    DeviceBuffer<float> avg, z, rdm;
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
        avg.resize(static_cast<size_t>(2 * rows * N));
        z.resize(avg.size());
        rdm.resize(static_cast<size_t>(2 * rows * rows));
        work.resize(pearson_workspace_bytes(rows));
        group_mean_kernel<<<dim3(static_cast<unsigned>(2 * rows), static_cast<unsigned>(RSA_CEIL_DIV(N, 128))), 128, 0,
                            stream>>>(d_resp, N, d_offsets.get(), d_trials.get(), avg.get());
        RSA_CHECK_LAUNCH();
        for (int64_t h = 0; h < 2; ++h) {
            zscore_rows_launch(avg.get() + h * rows * N, rows, N, z.get() + h * rows * N, nullptr, stream);
            rdm_from_zscored_launch(cublas, z.get() + h * rows * N, rows, N, rdm.get() + h * rows * rows, stream);
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

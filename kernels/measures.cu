// GPU comparison measures (twins of host/measures_ref.cpp). Every measure first takes the used pairs' Pearson
// moments (upper_moments_launch, compare.cu) and is NaN when compare_degenerate says so (fewer than 2 used pairs,
// or either side constant up to float rounding), as the CPU twins; Pearson is then finished from those moments.
// For the others the strict upper triangle's non-NaN pairs are compacted (per-row counts, host prefix sum,
// per-row block-scan compaction, row-major order, -0 folded into +0).
//  - Spearman: per side, radix sort of (value, index) pairs; each sorted position finds its run of equal values by
//    two binary searches and scatters the run's average rank (double); then a two-pass double Pearson of ranks.
//  - Kendall tau-a (Knight): the pairs are packed into order-preserving 64-bit keys (a high, b low) and radix
//    sorted; tie counts from binary searches; discordant pairs = strict inversions of b, counted by a bottom-up
//    merge sort on the device (each element binary-searches the opposite run: O(n log^2 n)).
//  - Cosine: double sums.
//  - Linear CKA: column centring (double means), Gram matrices with cublasSgemm, per-row double sums (the
//    degeneracy test of its inputs is the caller's: GpuBackend::cka runs responses_degenerate_reason on the host).
// Double sums go through fixed-size per-block partials reduced by one block in a fixed order (deterministic);
// integer counts use 64-bit atomics (exact, order-free).
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "compare.cuh"
#include "cuda_check.cuh"
#include "gpu_context.cuh"
#include "device_buffer.cuh"
#include "measures.cuh"
#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"

namespace rsa {
namespace {

using ull = unsigned long long;
constexpr int kBlock = 256;
constexpr int64_t kMaxGrid = 4096;

unsigned grid_for(int64_t n) {
    return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(RSA_CEIL_DIV(n, kBlock), kMaxGrid)));
}

__device__ __forceinline__ float fold_zero(float x) { return x == 0.0f ? 0.0f : x; }

// First index in [lo, hi) whose value is not < x / is > x (v sorted ascending).
template <typename T>
__device__ __forceinline__ int64_t lower_bound_dev(const T* v, int64_t lo, int64_t hi, T x) {
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}
template <typename T>
__device__ __forceinline__ int64_t upper_bound_dev(const T* v, int64_t lo, int64_t hi, T x) {
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (!(x < v[mid])) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

// ---------------------------------------------------------------- compaction of the upper triangle
__global__ void measures_count_rows_kernel(const float* __restrict__ a, const float* __restrict__ b, int64_t S,
                                           int64_t* __restrict__ row_count) {
    using BlockReduce = cub::BlockReduce<int64_t, kBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    const int64_t i = blockIdx.x;
    int64_t n = 0;
    for (int64_t j = i + 1 + threadIdx.x; j < S; j += blockDim.x) n += !(isnan(a[i * S + j]) || isnan(b[i * S + j]));
    n = BlockReduce(temp).Sum(n);
    if (threadIdx.x == 0) row_count[i] = n;
}

__global__ void measures_compact_rows_kernel(const float* __restrict__ a, const float* __restrict__ b, int64_t S,
                                             const int64_t* __restrict__ row_offset, float* __restrict__ ca,
                                             float* __restrict__ cb) {
    using BlockScan = cub::BlockScan<int, kBlock>;
    __shared__ typename BlockScan::TempStorage temp;
    const int64_t i = blockIdx.x;
    int64_t out = row_offset[i];
    for (int64_t base = i + 1; base < S; base += kBlock) {  // uniform across the block
        const int64_t j = base + threadIdx.x;
        float x = 0.0f, y = 0.0f;
        int valid = 0;
        if (j < S) {
            x = a[i * S + j];
            y = b[i * S + j];
            valid = !(isnan(x) || isnan(y));
        }
        int pos = 0, total = 0;
        BlockScan(temp).ExclusiveSum(valid, pos, total);
        if (valid) {
            ca[out + pos] = fold_zero(x);
            cb[out + pos] = fold_zero(y);
        }
        out += total;
        __syncthreads();
    }
}

// ---------------------------------------------------------------- deterministic double sums
// partials[k * gridDim.x + block] = block's sum of acc[k] after f(i, acc) over a grid-stride loop.
template <int K, typename F>
__global__ void measures_grid_sums_kernel(int64_t n, F f, double* __restrict__ partials) {
    using BlockReduce = cub::BlockReduce<double, kBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    double acc[K];
#pragma unroll
    for (int k = 0; k < K; ++k) acc[k] = 0.0;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) f(i, acc);
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const double s = BlockReduce(temp).Sum(acc[k]);
        if (threadIdx.x == 0) partials[k * gridDim.x + blockIdx.x] = s;
        __syncthreads();
    }
}

// totals[k] = sum of parts[k * len + r] over r < len, one block, fixed order.
__global__ void measures_reduce_partials_kernel(const double* __restrict__ parts, int64_t len, int count,
                                                double* __restrict__ totals) {
    using BlockReduce = cub::BlockReduce<double, kBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    for (int k = 0; k < count; ++k) {
        double s = 0.0;
        for (int64_t r = threadIdx.x; r < len; r += blockDim.x) s += parts[k * len + r];
        s = BlockReduce(temp).Sum(s);
        if (threadIdx.x == 0) totals[k] = s;
        __syncthreads();
    }
}

template <int K, typename F>
void grid_sums(int64_t n, F f, double* host_totals, cudaStream_t stream) {
    const unsigned grid = grid_for(n);
    DeviceBuffer<double> parts(static_cast<size_t>(K) * grid), totals(K);
    measures_grid_sums_kernel<K, F><<<grid, kBlock, 0, stream>>>(n, f, parts.get());
    RSA_CHECK_LAUNCH();
    measures_reduce_partials_kernel<<<1, kBlock, 0, stream>>>(parts.get(), grid, K, totals.get());
    RSA_CHECK_LAUNCH();
    totals.download(host_totals, K, stream);
}

struct CosineSums {
    const float* a;
    const float* b;
    __device__ void operator()(int64_t i, double (&acc)[3]) const {
        const double x = a[i], y = b[i];
        acc[0] += x * y;
        acc[1] += x * x;
        acc[2] += y * y;
    }
};

struct PairSums {
    const double* x;
    const double* y;
    __device__ void operator()(int64_t i, double (&acc)[2]) const {
        acc[0] += x[i];
        acc[1] += y[i];
    }
};

struct CentredSums {
    const double* x;
    const double* y;
    double mx, my;
    __device__ void operator()(int64_t i, double (&acc)[3]) const {
        const double dx = x[i] - mx, dy = y[i] - my;
        acc[0] += dx * dx;
        acc[1] += dy * dy;
        acc[2] += dx * dy;
    }
};

// Two-pass Pearson of two device double arrays of length n >= 2.
double pearson_double_launch(const double* x, const double* y, int64_t n, cudaStream_t stream) {
    double s[2];
    grid_sums<2>(n, PairSums{x, y}, s, stream);
    const double mx = s[0] / static_cast<double>(n), my = s[1] / static_cast<double>(n);
    double c[3];
    grid_sums<3>(n, CentredSums{x, y, mx, my}, c, stream);
    return pearson_from_centred(c[0], c[1], c[2]);
}

// ---------------------------------------------------------------- Spearman: average ranks
__global__ void measures_iota_kernel(int64_t* __restrict__ idx, int64_t n) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) idx[i] = i;
}

// sorted: the values in ascending order, idx: their original positions. rank[idx[i]] = average 1-based rank of
// the run of values equal to sorted[i] (positions lo .. hi-1 hold ranks lo+1 .. hi).
__global__ void measures_rank_kernel(const float* __restrict__ sorted, const int64_t* __restrict__ idx, int64_t n,
                                     double* __restrict__ rank) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float v = sorted[i];
        const int64_t lo = lower_bound_dev(sorted, int64_t{0}, i, v);
        const int64_t hi = upper_bound_dev(sorted, i + 1, n, v);
        rank[idx[i]] = 0.5 * (static_cast<double>(lo) + static_cast<double>(hi) + 1.0);
    }
}

// Ranks of values[0 .. n) (destroyed: used as a sort buffer) into rank; the other buffers are scratch of size n.
void average_ranks_launch(float* values, float* values_alt, int64_t* idx, int64_t* idx_alt, int64_t n,
                          double* rank, cudaStream_t stream) {
    measures_iota_kernel<<<grid_for(n), kBlock, 0, stream>>>(idx, n);
    RSA_CHECK_LAUNCH();
    cub::DoubleBuffer<float> keys(values, values_alt);
    cub::DoubleBuffer<int64_t> vals(idx, idx_alt);
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, vals, n, 0, 32, stream));
    DeviceBuffer<char> temp(std::max<size_t>(bytes, 1));
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.get(), bytes, keys, vals, n, 0, 32, stream));
    measures_rank_kernel<<<grid_for(n), kBlock, 0, stream>>>(keys.Current(), vals.Current(), n, rank);
    RSA_CHECK_LAUNCH();
    CUDA_CHECK(cudaStreamSynchronize(stream));  // temp is freed on return
}

// ---------------------------------------------------------------- Kendall tau-a
// Order-preserving map of a non-NaN float to uint32 (-0 already folded into +0).
__device__ __forceinline__ uint32_t float_order_bits(float f) {
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__global__ void measures_pack_keys_kernel(const float* __restrict__ a, const float* __restrict__ b, int64_t n,
                                          ull* __restrict__ keys) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        keys[i] = (static_cast<ull>(float_order_bits(a[i])) << 32) | float_order_bits(b[i]);
}

__global__ void measures_low_bits_kernel(const ull* __restrict__ keys, int64_t n, uint32_t* __restrict__ low) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        low[i] = static_cast<uint32_t>(keys[i] & 0xFFFFFFFFull);
}

// Sum over i of (i - first index of i's run of equal values) = sum over runs of t (t - 1) / 2, for the sorted
// values v[i] & mask.  counter += that sum.
template <typename T>
__global__ void measures_tied_pairs_kernel(const T* __restrict__ v, int64_t n, T mask, ull* __restrict__ counter) {
    using BlockReduce = cub::BlockReduce<ull, kBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    ull t = 0;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        // v sorted by its full value, so v & mask (high bits only) is sorted too and runs of equal masked values
        // start at the first element >= (v[i] & mask).
        const int64_t lo = lower_bound_dev(v, int64_t{0}, i, static_cast<T>(v[i] & mask));
        t += static_cast<ull>(i - lo);
    }
    t = BlockReduce(temp).Sum(t);
    if (threadIdx.x == 0 && t) atomicAdd(counter, t);
}

// One bottom-up merge pass of width w: runs [L, L+w) and [L+w, L+2w) of src merged stably into dst. Each element
// finds its output position by a binary search in the other run; right-run elements add the number of left-run
// elements strictly greater than them to the inversion counter.
__global__ void measures_merge_pass_kernel(const uint32_t* __restrict__ src, uint32_t* __restrict__ dst, int64_t n,
                                           int64_t w, ull* __restrict__ inversions) {
    using BlockReduce = cub::BlockReduce<ull, kBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    ull inv = 0;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n; p += stride) {
        const int64_t L = (p / (2 * w)) * (2 * w);
        const int64_t mid = min(L + w, n), hi = min(L + 2 * w, n);
        const uint32_t v = src[p];
        int64_t dest;
        if (p < mid) {
            const int64_t less = lower_bound_dev(src, mid, hi, v) - mid;  // right elements < v go first
            dest = p + less;
        } else {
            const int64_t le = upper_bound_dev(src, L, mid, v) - L;  // left elements <= v go first
            dest = L + (p - mid) + le;
            inv += static_cast<ull>((mid - L) - le);
        }
        dst[dest] = v;
    }
    inv = BlockReduce(temp).Sum(inv);
    if (threadIdx.x == 0 && inv) atomicAdd(inversions, inv);
}

double kendall_launch(const float* ca, const float* cb, int64_t n, cudaStream_t stream) {
    // counters: 0 tied in a, 1 tied in a and b, 2 tied in b, 3 discordant
    DeviceBuffer<ull> counters(4);
    CUDA_CHECK(cudaMemsetAsync(counters.get(), 0, 4 * sizeof(ull), stream));
    DeviceBuffer<uint32_t> bs(static_cast<size_t>(n)), bs_alt(static_cast<size_t>(n));
    {
        DeviceBuffer<ull> keys(static_cast<size_t>(n)), keys_alt(static_cast<size_t>(n));
        measures_pack_keys_kernel<<<grid_for(n), kBlock, 0, stream>>>(ca, cb, n, keys.get());
        RSA_CHECK_LAUNCH();
        cub::DoubleBuffer<ull> db(keys.get(), keys_alt.get());
        size_t bytes = 0;
        CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, bytes, db, n, 0, 64, stream));
        DeviceBuffer<char> temp(std::max<size_t>(bytes, 1));
        CUDA_CHECK(cub::DeviceRadixSort::SortKeys(temp.get(), bytes, db, n, 0, 64, stream));
        measures_tied_pairs_kernel<ull><<<grid_for(n), kBlock, 0, stream>>>(db.Current(), n, 0xFFFFFFFF00000000ull,
                                                                          counters.get());
        RSA_CHECK_LAUNCH();
        measures_tied_pairs_kernel<ull><<<grid_for(n), kBlock, 0, stream>>>(db.Current(), n, ~0ull,
                                                                          counters.get() + 1);
        RSA_CHECK_LAUNCH();
        measures_low_bits_kernel<<<grid_for(n), kBlock, 0, stream>>>(db.Current(), n, bs.get());
        RSA_CHECK_LAUNCH();
        CUDA_CHECK(cudaStreamSynchronize(stream));  // keys and temp are freed here
    }
    uint32_t* src = bs.get();
    uint32_t* dst = bs_alt.get();
    for (int64_t w = 1; w < n; w *= 2) {
        measures_merge_pass_kernel<<<grid_for(n), kBlock, 0, stream>>>(src, dst, n, w, counters.get() + 3);
        RSA_CHECK_LAUNCH();
        std::swap(src, dst);
    }
    measures_tied_pairs_kernel<uint32_t><<<grid_for(n), kBlock, 0, stream>>>(src, n, 0xFFFFFFFFu, counters.get() + 2);
    RSA_CHECK_LAUNCH();
    ull c[4];
    counters.download(c, 4, stream);
    const int64_t n0 = n * (n - 1) / 2;
    const int64_t c_minus_d = n0 - static_cast<int64_t>(c[0]) - static_cast<int64_t>(c[2]) + static_cast<int64_t>(c[1]) -
                              2 * static_cast<int64_t>(c[3]);
    return static_cast<double>(c_minus_d) / static_cast<double>(n0);
}

// Compacts the non-NaN upper-triangle pairs into ca, cb (resized to their count); returns the count.
int64_t compact_upper(const float* d_a, const float* d_b, int64_t S, DeviceBuffer<float>& ca, DeviceBuffer<float>& cb,
                      cudaStream_t stream) {
    if (S < 2) return 0;
    DeviceBuffer<int64_t> counts(static_cast<size_t>(S));
    measures_count_rows_kernel<<<static_cast<unsigned>(S), kBlock, 0, stream>>>(d_a, d_b, S, counts.get());
    RSA_CHECK_LAUNCH();
    std::vector<int64_t> off(static_cast<size_t>(S));
    counts.download(off.data(), off.size(), stream);
    int64_t n = 0;
    for (auto& o : off) {
        const int64_t c = o;
        o = n;
        n += c;
    }
    if (n == 0) return 0;
    DeviceBuffer<int64_t> d_off;
    d_off.upload(off, stream);
    ca.resize(static_cast<size_t>(n));
    cb.resize(static_cast<size_t>(n));
    measures_compact_rows_kernel<<<static_cast<unsigned>(S), kBlock, 0, stream>>>(d_a, d_b, S, d_off.get(), ca.get(),
                                                                                  cb.get());
    RSA_CHECK_LAUNCH();
    CUDA_CHECK(cudaStreamSynchronize(stream));  // d_off is freed on return
    return n;
}

// ---------------------------------------------------------------- linear CKA
// xc[i, j] = x[i, j] - mean_i x[i, j] (mean in double, summed in row order as the CPU twin does).
__global__ void measures_centre_columns_kernel(const float* __restrict__ x, int64_t S, int64_t N,
                                               float* __restrict__ xc) {
    const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (j >= N) return;
    double s = 0.0;
    for (int64_t i = 0; i < S; ++i) s += x[i * N + j];
    const double mean = s / static_cast<double>(S);
    for (int64_t i = 0; i < S; ++i) xc[i * N + j] = static_cast<float>(x[i * N + j] - mean);
}

// Per row i of the S x S Gram matrices K, L: rows[q * S + i] for q = rK, rL, sum_{j!=i} KL, KK, LL, K_ii, L_ii.
__global__ void measures_cka_rows_kernel(const float* __restrict__ K, const float* __restrict__ L, int64_t S,
                                         double* __restrict__ rows) {
    using BlockReduce = cub::BlockReduce<double, kBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    const int64_t i = blockIdx.x;
    double acc[5] = {0.0, 0.0, 0.0, 0.0, 0.0};
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
        if (j == i) continue;
        const double k = K[i * S + j], l = L[i * S + j];
        acc[0] += k;
        acc[1] += l;
        acc[2] += k * l;
        acc[3] += k * k;
        acc[4] += l * l;
    }
#pragma unroll
    for (int q = 0; q < 5; ++q) {
        const double s = BlockReduce(temp).Sum(acc[q]);
        if (threadIdx.x == 0) rows[q * S + i] = s;
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        rows[5 * S + i] = K[i * S + i];
        rows[6 * S + i] = L[i * S + i];
    }
}

struct CkaRowSums {
    const double* rows;
    int64_t S;
    __device__ void operator()(int64_t i, double (&acc)[11]) const {
        const double rk = rows[i], rl = rows[S + i], dk = rows[5 * S + i], dl = rows[6 * S + i];
        acc[0] += rows[2 * S + i];
        acc[1] += rows[3 * S + i];
        acc[2] += rows[4 * S + i];
        acc[3] += dk * dl;
        acc[4] += dk * dk;
        acc[5] += dl * dl;
        acc[6] += rk;
        acc[7] += rl;
        acc[8] += rk * rl;
        acc[9] += rk * rk;
        acc[10] += rl * rl;
    }
};

// gram = Xc Xc^T (S x S) for the column-centred x (S x N row-major).
void centred_gram_launch(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N, float* gram,
                         cudaStream_t stream) {
    DeviceBuffer<float> xc(static_cast<size_t>(S * N));
    measures_centre_columns_kernel<<<static_cast<unsigned>(RSA_CEIL_DIV(N, kBlock)), kBlock, 0, stream>>>(d_x, S, N,
                                                                                                      xc.get());
    RSA_CHECK_LAUNCH();
    // Xc row-major S x N = column-major A (N x S, lda = N); gram = A^T A (symmetric, so either order).
    const float alpha = 1.0f, beta = 0.0f;
    bind_cublas_stream(cublas, stream);
    CUBLAS_CHECK(cublasSgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(S), static_cast<int>(S),
                             static_cast<int>(N), &alpha, xc.get(), static_cast<int>(N), xc.get(), static_cast<int>(N),
                             &beta, gram, static_cast<int>(S)));
    CUDA_CHECK(cudaStreamSynchronize(stream));  // xc is freed on return
}

}  // namespace

CompareResult compare_upper_launch(Measure m, const float* d_a, const float* d_b, int64_t S, cudaStream_t stream) {
    // Every measure: the used pairs' moments first, and NaN when either side is degenerate over them.
    CompareResult res;
    UpperMoments mom;
    {
        DeviceBuffer<char> work(pearson_workspace_bytes(std::max<int64_t>(S, 0)));
        mom = upper_moments_launch(d_a, d_b, S, work.get(), stream);
    }
    res.pairs = mom.pairs;
    res.skipped = mom.skipped;
    res.value = std::nan("");
    if (compare_degenerate(mom.pairs, mom.mean_a, mom.sxx, mom.mean_b, mom.syy)) return res;
    if (m == Measure::Pearson) {
        res.value = pearson_from_centred(mom.sxx, mom.syy, mom.sxy);
        return res;
    }
    DeviceBuffer<float> ca, cb;
    const int64_t n = compact_upper(d_a, d_b, S, ca, cb, stream);
    if (n != mom.pairs)
        throw RuntimeError("compare_upper_launch: " + std::to_string(n) + " pairs compacted, " +
                           std::to_string(mom.pairs) + " counted by the moments");
    switch (m) {
        case Measure::Spearman: {
            DeviceBuffer<double> ra(static_cast<size_t>(n)), rb(static_cast<size_t>(n));
            {
                DeviceBuffer<float> alt(static_cast<size_t>(n));
                DeviceBuffer<int64_t> idx(static_cast<size_t>(n)), idx_alt(static_cast<size_t>(n));
                average_ranks_launch(ca.get(), alt.get(), idx.get(), idx_alt.get(), n, ra.get(), stream);
                average_ranks_launch(cb.get(), alt.get(), idx.get(), idx_alt.get(), n, rb.get(), stream);
            }
            res.value = pearson_double_launch(ra.get(), rb.get(), n, stream);
            break;
        }
        case Measure::Kendall:
            res.value = kendall_launch(ca.get(), cb.get(), n, stream);
            break;
        case Measure::Cosine: {
            double s[3];
            grid_sums<3>(n, CosineSums{ca.get(), cb.get()}, s, stream);
            if (s[1] > 0.0 && s[2] > 0.0) res.value = s[0] / std::sqrt(s[1] * s[2]);
            break;
        }
        case Measure::Pearson:
            break;
    }
    return res;
}

double cka_linear_launch(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N1, const float* d_y,
                         int64_t N2, bool debiased, cudaStream_t stream) {
    check_cka_shapes(S, N1, S, N2, debiased);
    DeviceBuffer<float> K(static_cast<size_t>(S * S)), L(static_cast<size_t>(S * S));
    centred_gram_launch(cublas, d_x, S, N1, K.get(), stream);
    centred_gram_launch(cublas, d_y, S, N2, L.get(), stream);
    DeviceBuffer<double> rows(static_cast<size_t>(7 * S));
    measures_cka_rows_kernel<<<static_cast<unsigned>(S), kBlock, 0, stream>>>(K.get(), L.get(), S, rows.get());
    RSA_CHECK_LAUNCH();
    double t[11];
    grid_sums<11>(S, CkaRowSums{rows.get(), S}, t, stream);
    CkaSums s;
    s.kl_off = t[0];
    s.kk_off = t[1];
    s.ll_off = t[2];
    s.kl_diag = t[3];
    s.kk_diag = t[4];
    s.ll_diag = t[5];
    s.rk = t[6];
    s.rl = t[7];
    s.rkrl = t[8];
    s.rkrk = t[9];
    s.rlrl = t[10];
    return cka_from_sums(s, S, debiased);
}

}  // namespace rsa

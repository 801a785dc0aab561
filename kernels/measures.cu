// GPU comparison measures (twins of host/measures_ref.cpp). Every measure first takes the used pairs' Pearson
// moments (upper_moments_launch, compare.cu) and is NaN when compare_degenerate says so (fewer than 2 used pairs,
// or either side constant up to float rounding), as the CPU twins; Pearson is then finished from those moments.
// For the others the strict upper triangle's non-NaN pairs are compacted (per-row counts, a device prefix sum,
// per-row block-scan compaction, row-major order, -0 folded into +0).
//  - Spearman: per side, radix sort of (value, index) pairs; each sorted position finds its run of equal values by
//    two binary searches and scatters the run's average rank (double); then a two-pass double Pearson of ranks
//    (the means divided on the device).
//  - Kendall tau-a (Knight): the pairs are packed into order-preserving 64-bit keys (a high, b low) and radix
//    sorted; tie counts from binary searches; discordant pairs = strict inversions of b, counted by a bottom-up
//    merge sort on the device (each element binary-searches the opposite run: O(n log^2 n)).
//  - Cosine: double sums.
//  - Linear CKA: column centring (double means), Gram matrices with cublasSgemm, per-row double sums (the
//    degeneracy test of its inputs is the caller's: GpuBackend::cka runs responses_degenerate_reason on the host).
// Double sums are the kit's (common.cuh): per-row or per-block partials added by one block in a fixed order
// (deterministic); integer counts use 64-bit atomics (exact, order-free). Every buffer lives in the caller's
// workspace, carved by one layout per launcher (the same code gives the *_workspace_bytes queries).
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "common.cuh"
#include "compare.cuh"
#include "cuda_check.cuh"
#include "gpu_context.cuh"
#include "measures.cuh"
#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"

namespace rsa {
namespace {

using ull = unsigned long long;

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

// ---------------------------------------------------------------- workspace layouts
// Used pairs of an S x S strict upper triangle at most.
int64_t max_pairs(int64_t S) { return S < 2 ? 0 : S * (S - 1) / 2; }

size_t sort_pairs_temp_bytes(int64_t n) {
    cub::DoubleBuffer<float> keys(nullptr, nullptr);
    cub::DoubleBuffer<int64_t> vals(nullptr, nullptr);
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, vals, n, 0, 32, cudaStream_t{}));
    return bytes;
}
size_t sort_keys_temp_bytes(int64_t n) {
    cub::DoubleBuffer<ull> keys(nullptr, nullptr);
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, bytes, keys, n, 0, 64, cudaStream_t{}));
    return bytes;
}
size_t scan_temp_bytes(int64_t n) {
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, bytes, static_cast<const int64_t*>(nullptr),
                                             static_cast<int64_t*>(nullptr), n, cudaStream_t{}));
    return bytes;
}

// What the device hands back at the end of a comparison, in one copy: the measure's double sums, Kendall's four
// counters, and (counts[4]) the number of pairs the compaction found.
struct CompareResultSlots {
    double sums[3];
    ull counts[5];
};

// compare_upper_launch's workspace for measure m and S stimuli, sized for every pair of the triangle used (P).
// Pearson: the moments only. Others: the compaction (counts, offsets, scan storage, ca, cb: P floats each), then
// Spearman: ranks ra, rb (P doubles each), the sort's scratch (P floats, 2 x P int64) and storage;
// Kendall: keys (2 x P uint64) and the sort's storage (its 32-bit low halves reuse ca, cb);
// Spearman and cosine: the grid sums' partials, totals and means.
struct CompareLayout {
    void* moments = nullptr;
    int64_t* counts = nullptr;   // S + 1 (the last 0)
    int64_t* offsets = nullptr;  // S + 1 (the last: pairs compacted)
    void* scan_temp = nullptr;
    size_t scan_bytes = 0;
    float* ca = nullptr;
    float* cb = nullptr;
    double* ra = nullptr;
    double* rb = nullptr;
    float* alt = nullptr;
    int64_t* idx = nullptr;
    int64_t* idx_alt = nullptr;
    ull* keys = nullptr;
    ull* keys_alt = nullptr;
    void* sort_temp = nullptr;
    size_t sort_bytes = 0;
    double* parts = nullptr;  // 3 x kSumBlocks
    double* pair_totals = nullptr;  // 2
    double* means = nullptr;        // 2
    CompareResultSlots* result = nullptr;  // copied back at once; its fields on the device:
    double* result_sums = nullptr;         // the measure's double sums (3)
    ull* result_counts = nullptr;          // Kendall's counters (4), then the pairs compacted

    CompareLayout(Workspace& w, Measure m, int64_t S) {
        S = std::max<int64_t>(S, 0);
        moments = w.take<char>(pearson_workspace_bytes(S));
        if (m == Measure::Pearson) return;
        const size_t P = static_cast<size_t>(max_pairs(S)), rows = static_cast<size_t>(S) + 1;
        counts = w.take<int64_t>(rows);
        offsets = w.take<int64_t>(rows);
        scan_bytes = std::max<size_t>(scan_temp_bytes(static_cast<int64_t>(rows)), 1);
        scan_temp = w.take<char>(scan_bytes);
        ca = w.take<float>(P);
        cb = w.take<float>(P);
        if (m == Measure::Spearman) {
            ra = w.take<double>(P);
            rb = w.take<double>(P);
            alt = w.take<float>(P);
            idx = w.take<int64_t>(P);
            idx_alt = w.take<int64_t>(P);
            sort_bytes = std::max<size_t>(sort_pairs_temp_bytes(static_cast<int64_t>(P)), 1);
        } else if (m == Measure::Kendall) {
            keys = w.take<ull>(P);
            keys_alt = w.take<ull>(P);
            sort_bytes = std::max<size_t>(sort_keys_temp_bytes(static_cast<int64_t>(P)), 1);
        }
        if (sort_bytes) sort_temp = w.take<char>(sort_bytes);
        parts = w.take<double>(3 * static_cast<size_t>(kSumBlocks));
        pair_totals = w.take<double>(2);
        means = w.take<double>(2);
        result = w.take<CompareResultSlots>(1);
        if (result) {
            char* bytes = reinterpret_cast<char*>(result);
            result_sums = reinterpret_cast<double*>(bytes + offsetof(CompareResultSlots, sums));
            result_counts = reinterpret_cast<ull*>(bytes + offsetof(CompareResultSlots, counts));
        }
    }
};

// The sort's storage for n items must fit what the layout reserved for the most pairs (cub's needs grow with n).
void check_sort_bytes(size_t need, size_t reserved, const char* what) {
    if (need > reserved)
        throw RuntimeError(std::string("compare_upper_launch: ") + what + " needs " + std::to_string(need) +
                           " bytes of sort storage, the workspace holds " + std::to_string(reserved));
}

// ---------------------------------------------------------------- compaction of the upper triangle
struct UsedPairCount : UpperRows {
    const float* a;
    const float* b;
    int64_t S;
    __device__ void operator()(int64_t i, int64_t j, int64_t (&acc)[1]) const {
        acc[0] += !(isnan(a[i * S + j]) || isnan(b[i * S + j]));
    }
};

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

// Enqueues the compaction of the non-NaN upper-triangle pairs into l.ca, l.cb (row-major order): per-row counts,
// their exclusive prefix sum on the device (l.offsets[S] = the number compacted), per-row compaction.
void compact_upper(const float* d_a, const float* d_b, int64_t S, const CompareLayout& l, cudaStream_t stream) {
    row_partials_kernel<int64_t, 1, UsedPairCount>
        <<<static_cast<unsigned>(S), kBlock, 0, stream>>>(S, UsedPairCount{{}, d_a, d_b, S}, l.counts);
    RSA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemsetAsync(l.counts + S, 0, sizeof(int64_t), stream));
    size_t scan_bytes = l.scan_bytes;
    CUDA_CHECK(cub::DeviceScan::ExclusiveSum(l.scan_temp, scan_bytes, static_cast<const int64_t*>(l.counts), l.offsets,
                                             S + 1, stream));
    measures_compact_rows_kernel<<<static_cast<unsigned>(S), kBlock, 0, stream>>>(d_a, d_b, S, l.offsets, l.ca,
                                                                                  l.cb);
    RSA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- double sums (functors of grid_sums_launch)
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

// Centred around means[0], means[1] (device).
struct CentredSums {
    const double* x;
    const double* y;
    const double* means;
    __device__ void operator()(int64_t i, double (&acc)[3]) const {
        const double dx = x[i] - means[0], dy = y[i] - means[1];
        acc[0] += dx * dx;
        acc[1] += dy * dy;
        acc[2] += dx * dy;
    }
};

// Two-pass Pearson of two device double arrays of length n >= 2, enqueued: the centred sums (sxx, syy, sxy) into
// centred[0..3); the means, sum / n, are divided on the device.
void pearson_double_enqueue(const double* x, const double* y, int64_t n, const CompareLayout& l, double* centred,
                            cudaStream_t stream) {
    grid_sums_launch<2>(n, PairSums{x, y}, l.parts, l.pair_totals, stream);
    divide_kernel<double><<<1, 1, 0, stream>>>(l.pair_totals, 2, nullptr, static_cast<double>(n), l.means);
    RSA_CHECK_LAUNCH();
    grid_sums_launch<3>(n, CentredSums{x, y, l.means}, l.parts, centred, stream);
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

// Ranks of values[0 .. n) (destroyed: used as a sort buffer) into rank; l.alt, l.idx, l.idx_alt are scratch.
void average_ranks_enqueue(float* values, int64_t n, double* rank, const CompareLayout& l, cudaStream_t stream) {
    measures_iota_kernel<<<grid_1d(n), kBlock, 0, stream>>>(l.idx, n);
    RSA_CHECK_LAUNCH();
    cub::DoubleBuffer<float> keys(values, l.alt);
    cub::DoubleBuffer<int64_t> vals(l.idx, l.idx_alt);
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, vals, n, 0, 32, stream));
    check_sort_bytes(bytes, l.sort_bytes, "Spearman's rank sort");
    bytes = l.sort_bytes;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(l.sort_temp, bytes, keys, vals, n, 0, 32, stream));
    measures_rank_kernel<<<grid_1d(n), kBlock, 0, stream>>>(keys.Current(), vals.Current(), n, rank);
    RSA_CHECK_LAUNCH();
}

// Enqueued: the centred sums of the two rank vectors into l.result_sums.
void spearman_enqueue(int64_t n, const CompareLayout& l, cudaStream_t stream) {
    average_ranks_enqueue(l.ca, n, l.ra, l, stream);
    average_ranks_enqueue(l.cb, n, l.rb, l, stream);
    pearson_double_enqueue(l.ra, l.rb, n, l, l.result_sums, stream);
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
    ull t = 0;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        // v sorted by its full value, so v & mask (high bits only) is sorted too and runs of equal masked values
        // start at the first element >= (v[i] & mask).
        const int64_t lo = lower_bound_dev(v, int64_t{0}, i, static_cast<T>(v[i] & mask));
        t += static_cast<ull>(i - lo);
    }
    t = block_sum(t);
    if (threadIdx.x == 0 && t) atomicAdd(counter, t);
}

// One bottom-up merge pass of width w: runs [L, L+w) and [L+w, L+2w) of src merged stably into dst. Each element
// finds its output position by a binary search in the other run; right-run elements add the number of left-run
// elements strictly greater than them to the inversion counter.
__global__ void measures_merge_pass_kernel(const uint32_t* __restrict__ src, uint32_t* __restrict__ dst, int64_t n,
                                           int64_t w, ull* __restrict__ inversions) {
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
    inv = block_sum(inv);
    if (threadIdx.x == 0 && inv) atomicAdd(inversions, inv);
}

// Enqueued: counters 0 tied in a, 1 tied in a and b, 2 tied in b, 3 discordant, into l.result_counts. The low
// halves of the sorted keys (uint32) and their merge buffer reuse l.ca and l.cb, dead once the keys are packed.
void kendall_enqueue(int64_t n, const CompareLayout& l, cudaStream_t stream) {
    ull* counters = l.result_counts;
    CUDA_CHECK(cudaMemsetAsync(counters, 0, 4 * sizeof(ull), stream));
    measures_pack_keys_kernel<<<grid_1d(n), kBlock, 0, stream>>>(l.ca, l.cb, n, l.keys);
    RSA_CHECK_LAUNCH();
    cub::DoubleBuffer<ull> db(l.keys, l.keys_alt);
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, bytes, db, n, 0, 64, stream));
    check_sort_bytes(bytes, l.sort_bytes, "Kendall's key sort");
    bytes = l.sort_bytes;
    CUDA_CHECK(cub::DeviceRadixSort::SortKeys(l.sort_temp, bytes, db, n, 0, 64, stream));
    measures_tied_pairs_kernel<ull><<<grid_1d(n), kBlock, 0, stream>>>(db.Current(), n, 0xFFFFFFFF00000000ull,
                                                                       counters);
    RSA_CHECK_LAUNCH();
    measures_tied_pairs_kernel<ull><<<grid_1d(n), kBlock, 0, stream>>>(db.Current(), n, ~0ull, counters + 1);
    RSA_CHECK_LAUNCH();
    uint32_t* src = reinterpret_cast<uint32_t*>(l.ca);
    uint32_t* dst = reinterpret_cast<uint32_t*>(l.cb);
    measures_low_bits_kernel<<<grid_1d(n), kBlock, 0, stream>>>(db.Current(), n, src);
    RSA_CHECK_LAUNCH();
    for (int64_t w = 1; w < n; w *= 2) {
        measures_merge_pass_kernel<<<grid_1d(n), kBlock, 0, stream>>>(src, dst, n, w, counters + 3);
        RSA_CHECK_LAUNCH();
        std::swap(src, dst);
    }
    measures_tied_pairs_kernel<uint32_t><<<grid_1d(n), kBlock, 0, stream>>>(src, n, 0xFFFFFFFFu, counters + 2);
    RSA_CHECK_LAUNCH();
}

double kendall_from_counts(const ull (&c)[5], int64_t n) {
    const int64_t n0 = n * (n - 1) / 2;
    const int64_t c_minus_d = n0 - static_cast<int64_t>(c[0]) - static_cast<int64_t>(c[2]) + static_cast<int64_t>(c[1]) -
                              2 * static_cast<int64_t>(c[3]);
    return static_cast<double>(c_minus_d) / static_cast<double>(n0);
}

// ---------------------------------------------------------------- linear CKA
// xc[i, j] = x[i, j] - mean_i x[i, j] (mean in double, summed in row order as the CPU twin does); one thread per
// column j (grid-strided).
__global__ void measures_centre_columns_kernel(const float* __restrict__ x, int64_t S, int64_t N,
                                               float* __restrict__ xc) {
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < N;
         j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        double s = 0.0;
        for (int64_t i = 0; i < S; ++i) s += x[i * N + j];
        const double mean = s / static_cast<double>(S);
        for (int64_t i = 0; i < S; ++i) xc[i * N + j] = static_cast<float>(x[i * N + j] - mean);
    }
}

// Row i of the S x S Gram matrices K, L (row_partials_kernel, every column): acc = sum_{j!=i} K, L, KL, KK, LL; the
// thread that meets the diagonal copies K_ii, L_ii to diag[i], diag[S + i].
struct CkaRowSums : WholeRows {
    const float* K;
    const float* L;
    int64_t S;
    double* diag;
    __device__ void operator()(int64_t i, int64_t j, double (&acc)[5]) const {
        if (j == i) {
            diag[i] = K[i * S + i];
            diag[S + i] = L[i * S + i];
            return;
        }
        const double k = K[i * S + j], l = L[i * S + j];
        acc[0] += k;
        acc[1] += l;
        acc[2] += k * l;
        acc[3] += k * k;
        acc[4] += l * l;
    }
};

// Over the rows of `rows` (7 x S: rK, rL, sum_{j!=i} KL, KK, LL, K_ii, L_ii): the 11 sums of CkaSums.
struct CkaTotals {
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

// cka_linear_launch's workspace: the Gram matrices K, L (S x S floats each), one centred copy of the wider input
// (S x max(N1, N2) floats, reused), the per-row sums (7 x S doubles), the grid sums' partials and totals.
struct CkaLayout {
    float* K;
    float* L;
    float* xc;
    double* rows;
    double* parts;
    double* totals;
    CkaLayout(Workspace& w, int64_t S, int64_t N1, int64_t N2)
        : K(w.take<float>(static_cast<size_t>(S * S))),
          L(w.take<float>(static_cast<size_t>(S * S))),
          xc(w.take<float>(static_cast<size_t>(S * std::max(N1, N2)))),
          rows(w.take<double>(7 * static_cast<size_t>(S))),
          parts(w.take<double>(11 * static_cast<size_t>(kSumBlocks))),
          totals(w.take<double>(11)) {}
};

// gram = Xc Xc^T (S x S) for the column-centred x (S x N row-major), xc: S x N scratch. Enqueue only.
void centred_gram_enqueue(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N, float* xc, float* gram,
                          cudaStream_t stream) {
    measures_centre_columns_kernel<<<grid_1d(N), kBlock, 0, stream>>>(d_x, S, N, xc);
    RSA_CHECK_LAUNCH();
    // Xc row-major S x N = column-major A (N x S, lda = N); gram = A^T A (symmetric, so either order).
    const float alpha = 1.0f, beta = 0.0f;
    bind_cublas_stream(cublas, stream);
    CUBLAS_CHECK(cublasSgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(S), static_cast<int>(S),
                             static_cast<int>(N), &alpha, xc, static_cast<int>(N), xc, static_cast<int>(N), &beta,
                             gram, static_cast<int>(S)));
}

}  // namespace

// ---------------------------------------------------------------- launchers
size_t compare_workspace_bytes(Measure m, int64_t S) {
    Workspace w;  // counting only
    const CompareLayout layout(w, m, S);
    static_cast<void>(layout);
    return w.bytes();
}

CompareResult compare_upper_launch(Measure m, const float* d_a, const float* d_b, int64_t S, void* d_work,
                                   cudaStream_t stream) {
    Workspace w(d_work);
    const CompareLayout l(w, m, S);
    // Every measure: the used pairs' moments first (returns to the host: the pair count and the degeneracy test
    // decide whether and over how many pairs the measure runs), and NaN when either side is degenerate over them.
    const UpperMoments mom = upper_moments_launch(d_a, d_b, S, l.moments, stream);
    CompareResult res;
    res.pairs = mom.pairs;
    res.skipped = mom.skipped;
    res.value = std::nan("");
    if (compare_degenerate(mom.pairs, mom.mean_a, mom.sxx, mom.mean_b, mom.syy)) return res;
    if (m == Measure::Pearson) {
        res.value = pearson_from_centred(mom.sxx, mom.syy, mom.sxy);
        return res;
    }
    const int64_t n = mom.pairs;  // >= 2 (not degenerate); the compaction's own count is checked below
    compact_upper(d_a, d_b, S, l, stream);
    CUDA_CHECK(cudaMemcpyAsync(l.result_counts + 4, l.offsets + S, sizeof(int64_t), cudaMemcpyDeviceToDevice,
                               stream));
    switch (m) {
        case Measure::Spearman: spearman_enqueue(n, l, stream); break;
        case Measure::Kendall: kendall_enqueue(n, l, stream); break;
        case Measure::Cosine: grid_sums_launch<3>(n, CosineSums{l.ca, l.cb}, l.parts, l.result_sums, stream); break;
        case Measure::Pearson: break;
    }
    CompareResultSlots h;
    read_back(&h, l.result, 1, stream);  // the measure's one synchronisation
    if (static_cast<int64_t>(h.counts[4]) != n)
        throw RuntimeError("compare_upper_launch: " + std::to_string(static_cast<int64_t>(h.counts[4])) +
                           " pairs compacted, " + std::to_string(n) + " counted by the moments");
    switch (m) {
        case Measure::Spearman: res.value = pearson_from_centred(h.sums[0], h.sums[1], h.sums[2]); break;
        case Measure::Kendall: res.value = kendall_from_counts(h.counts, n); break;
        case Measure::Cosine:
            if (h.sums[1] > 0.0 && h.sums[2] > 0.0) res.value = h.sums[0] / std::sqrt(h.sums[1] * h.sums[2]);
            break;
        case Measure::Pearson: break;
    }
    return res;
}

size_t cka_workspace_bytes(int64_t S, int64_t N1, int64_t N2) {
    Workspace w;  // counting only
    const CkaLayout layout(w, std::max<int64_t>(S, 0), std::max<int64_t>(N1, 0), std::max<int64_t>(N2, 0));
    static_cast<void>(layout);
    return w.bytes();
}

CkaSums cka_sums_launch(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N1, const float* d_y, int64_t N2,
                        void* d_work, cudaStream_t stream) {
    check_cka_shapes(S, N1, S, N2, false);
    if (S > kMaxGridX) throw InputError("CKA: " + std::to_string(S) + " stimuli exceed CUDA's grid");
    Workspace w(d_work);
    const CkaLayout l(w, S, N1, N2);
    // Both Gram matrices through the one centred scratch: the second centring follows the first GEMM on the stream.
    centred_gram_enqueue(cublas, d_x, S, N1, l.xc, l.K, stream);
    centred_gram_enqueue(cublas, d_y, S, N2, l.xc, l.L, stream);
    row_partials_kernel<double, 5, CkaRowSums>
        <<<static_cast<unsigned>(S), kBlock, 0, stream>>>(S, CkaRowSums{{}, l.K, l.L, S, l.rows + 5 * S}, l.rows);
    RSA_CHECK_LAUNCH();
    grid_sums_launch<11>(S, CkaTotals{l.rows, S}, l.parts, l.totals, stream);
    double t[11];
    read_back(t, l.totals, 11, stream);  // the launcher's one synchronisation
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
    return s;
}

double cka_linear_launch(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N1, const float* d_y,
                         int64_t N2, bool debiased, void* d_work, cudaStream_t stream) {
    check_cka_shapes(S, N1, S, N2, debiased);
    return cka_from_sums(cka_sums_launch(cublas, d_x, S, N1, d_y, N2, d_work, stream), S, debiased);
}

}  // namespace rsa

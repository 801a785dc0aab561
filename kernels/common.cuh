// The kernels' kit: what every file of kernels/ launches with, defined once (header-only).
//  - kBlock: the one block size (every launch uses it; a power of two, which block_sum's tree needs).
//  - grid_1d (grid-stride loops over n items) and grid_2d (columns over x, rows grid-strided over y within the
//    65,535 limit): the one pair of grid helpers.
//  - block_sum: the one block reduction (float, double, integers), a fixed tree in shared memory: deterministic,
//    the same order on every run and every card.
//  - Partial sums, then a fixed-order total: row_sums_launch (one block per row, e.g. of an upper triangle) and
//    grid_sums_launch (a grid-stride loop, one partial per block) write K partials per block and one block adds
//    them in a fixed order (total_partials_kernel). Every double sum of compare.cu, measures.cu and stats.cu goes
//    through them, so their results are deterministic and independent of scheduling.
//  - Workspace: carves a caller-provided device allocation into aligned typed regions; the same layout code run
//    without a base gives the byte count (the launchers' *_workspace_bytes queries).
//  - read_back: the device-to-host copy plus stream wait where a launcher returns a value to the host (its one
//    synchronisation point).
// Device memory is DeviceBuffer (device_buffer.cuh: OutOfMemoryError on allocation failure, poison mode); status
// checks are cuda_check.cuh's macros, RSA_CHECK_LAUNCH() after every launch.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda_check.cuh"
#include "rsa_gpu/error.h"

namespace rsa {

// ---------------------------------------------------------------- launch geometry
constexpr int kBlock = 256;  // threads per block of every kernel
static_assert(kBlock > 0 && (kBlock & (kBlock - 1)) == 0, "block_sum's tree halves kBlock: it must be a power of two");
constexpr int64_t kMaxGridX = 2147483647;   // CUDA's limit on gridDim.x
constexpr int64_t kMaxGridYZ = 65535;       // CUDA's limit on gridDim.y and gridDim.z
constexpr int64_t kStrideBlocks = 4096;     // blocks of a grid-stride launch: 4096 x 256 threads fill any current card

// Blocks for a grid-stride loop over n items: ceil(n / kBlock), at least 1, at most max_blocks. (A kernel that does
// not stride may use it when n is known to need at most max_blocks blocks.)
inline unsigned grid_1d(int64_t n, int64_t max_blocks = kStrideBlocks) {
    const int64_t blocks = n > 0 ? RSA_CEIL_DIV(n, int64_t{kBlock}) : 1;
    return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, std::min(max_blocks, kMaxGridX))));
}

// Grid of a kernel that takes columns [0, width) over x and rows [0, rows) grid-strided over y (at most 65,535 blocks
// high). max_x == 0: one thread per column (InputError when that needs more than 2^31 - 1 blocks); max_x > 0: the
// kernel strides over x too, with at most max_x blocks.
inline dim3 grid_2d(int64_t width, int64_t rows, int64_t max_x = 0) {
    int64_t x = width > 0 ? RSA_CEIL_DIV(width, int64_t{kBlock}) : 1;
    if (max_x > 0) x = std::min(x, max_x);
    if (x > kMaxGridX)
        throw InputError("a launch over " + std::to_string(width) + " columns exceeds CUDA's grid (2^31 - 1 blocks)");
    return dim3(static_cast<unsigned>(x), static_cast<unsigned>(std::max<int64_t>(1, std::min(rows, kMaxGridYZ))));
}

// ---------------------------------------------------------------- block reduction
// Round-to-nearest additions without contraction (an explicit intrinsic for float and double, + for integers).
__device__ __forceinline__ float kit_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double kit_add(double a, double b) { return __dadd_rn(a, b); }
template <typename T>
__device__ __forceinline__ T kit_add(T a, T b) {
    return a + b;
}

// Sum of one value per thread over the block (blockDim.x == kBlock; every thread of the block calls it). A fixed
// tree: thread t adds t + kBlock / 2, then t + kBlock / 4, ... down to 1, so the order is the same on every run.
// The result is valid in every thread; the trailing barrier lets a kernel call it again at once.
template <typename T>
__device__ T block_sum(T value) {
    __shared__ T shared[kBlock];
    shared[threadIdx.x] = value;
    __syncthreads();
#pragma unroll
    for (int stride = kBlock / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) shared[threadIdx.x] = kit_add(shared[threadIdx.x], shared[threadIdx.x + stride]);
        __syncthreads();
    }
    const T total = shared[0];
    __syncthreads();
    return total;
}

// ---------------------------------------------------------------- partial sums, then a fixed-order total
// Row functors visit the columns [f.first(row), cols) of each row; these give the two ranges used.
struct UpperRows {  // the strict upper triangle: columns after the diagonal
    __device__ int64_t first(int64_t row) const { return row + 1; }
};
struct WholeRows {  // every column
    __device__ int64_t first(int64_t) const { return 0; }
};

// One block per row r < gridDim.x: thread t calls f(r, j, acc) for j = f.first(r) + t, + kBlock, ... < cols (acc
// starts at zero), then parts[k * gridDim.x + r] = block_sum(acc[k]) for k < K.
template <typename T, int K, typename F>
__global__ void row_partials_kernel(int64_t cols, F f, T* __restrict__ parts) {
    const int64_t r = blockIdx.x;
    T acc[K];
#pragma unroll
    for (int k = 0; k < K; ++k) acc[k] = T(0);
    for (int64_t j = f.first(r) + threadIdx.x; j < cols; j += blockDim.x) f(r, j, acc);
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const T s = block_sum(acc[k]);
        if (threadIdx.x == 0) parts[k * static_cast<int64_t>(gridDim.x) + r] = s;
    }
}

// Grid-stride loop over i < n calling f(i, acc); block b writes parts[k * gridDim.x + b] = block_sum(acc[k]).
template <typename T, int K, typename F>
__global__ void grid_partials_kernel(int64_t n, F f, T* __restrict__ parts) {
    T acc[K];
#pragma unroll
    for (int k = 0; k < K; ++k) acc[k] = T(0);
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) f(i, acc);
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const T s = block_sum(acc[k]);
        if (threadIdx.x == 0) parts[k * static_cast<int64_t>(gridDim.x) + blockIdx.x] = s;
    }
}

// totals[k] = sum of parts[k * len + r] over r < len, for k < count: one block; thread t adds r = t, t + kBlock, ...
// in order, then block_sum. A fixed order, so the totals are deterministic.
template <typename T>
__global__ void total_partials_kernel(const T* __restrict__ parts, int64_t len, int count, T* __restrict__ totals) {
    for (int k = 0; k < count; ++k) {
        T s = T(0);
        for (int64_t r = threadIdx.x; r < len; r += blockDim.x) s += parts[k * len + r];
        s = block_sum(s);
        if (threadIdx.x == 0) totals[k] = s;
    }
}

// out[k] = num[k] / (den ? *den : den_value) for k < count, one thread: means from device totals without a trip
// to the host (IEEE division, the same value the host would compute).
template <typename T>
__global__ void divide_kernel(const T* __restrict__ num, int count, const T* __restrict__ den, T den_value,
                              T* __restrict__ out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const T d = den ? *den : den_value;
    for (int k = 0; k < count; ++k) out[k] = num[k] / d;
}

// Row sums: parts (K x rows) from row_partials_kernel over `rows` rows of `cols` columns, totals (K) from them.
// rows <= 2^31 - 1 (one block each). Enqueue only.
template <int K, typename T, typename F>
void row_sums_launch(int64_t rows, int64_t cols, const F& f, T* parts, T* totals, cudaStream_t stream) {
    if (rows > kMaxGridX) throw InputError("row sums: " + std::to_string(rows) + " rows exceed CUDA's grid");
    if (rows <= 0) {
        CUDA_CHECK(cudaMemsetAsync(totals, 0, K * sizeof(T), stream));
        return;
    }
    row_partials_kernel<T, K, F><<<static_cast<unsigned>(rows), kBlock, 0, stream>>>(cols, f, parts);
    RSA_CHECK_LAUNCH();
    total_partials_kernel<T><<<1, kBlock, 0, stream>>>(parts, rows, K, totals);
    RSA_CHECK_LAUNCH();
}

// Grid sums over n items: grid_1d(n, kSumBlocks) blocks (the grid, hence the order, depends on n alone), parts
// (K x kSumBlocks at most), totals (K). Enqueue only.
constexpr int64_t kSumBlocks = kStrideBlocks;
template <int K, typename T, typename F>
void grid_sums_launch(int64_t n, const F& f, T* parts, T* totals, cudaStream_t stream) {
    const unsigned grid = grid_1d(n, kSumBlocks);
    grid_partials_kernel<T, K, F><<<grid, kBlock, 0, stream>>>(n, f, parts);
    RSA_CHECK_LAUNCH();
    total_partials_kernel<T><<<1, kBlock, 0, stream>>>(parts, grid, K, totals);
    RSA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- caller-provided workspace
// Carves typed regions, each aligned to kWorkspaceAlign bytes, out of one device allocation. With a null base it
// only counts: run the same layout code once without a base for the size (the *_workspace_bytes query) and once
// with the caller's pointer.
constexpr size_t kWorkspaceAlign = 256;
class Workspace {
public:
    explicit Workspace(void* base = nullptr) : base_(static_cast<char*>(base)) {}
    template <typename T>
    T* take(size_t count) {
        used_ = RSA_CEIL_DIV(used_, kWorkspaceAlign) * kWorkspaceAlign;
        T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
        used_ += count * sizeof(T);
        return p;
    }
    size_t bytes() const { return used_; }

private:
    char* base_;
    size_t used_ = 0;
};

// ---------------------------------------------------------------- returning to the host
// Copies count values from the device and waits for the stream: where a launcher hands a value back to the host
// (its synchronisation point).
template <typename T>
void read_back(T* host, const T* device, size_t count, cudaStream_t stream) {
    if (count) CUDA_CHECK(cudaMemcpyAsync(host, device, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace rsa

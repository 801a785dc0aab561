// RDM kernels: row z-score (one block per stimulus row, two passes accumulated in double with the kit's block_sum;
// in place when x == z), column z-score (one thread per column, grid-strided), the SYRK call and the mirror of its
// upper triangle.
#include <cmath>

#include "common.cuh"
#include "cuda_check.cuh"
#include "gpu_context.cuh"
#include "rdm.cuh"
#include "rsa_gpu/synthetic_v1.h"

namespace rsa {

// ---------------------------------------------------------------- CUDA kernels
// x and z may be the same buffer (in place): each element is read (passes 1-3) and written (pass 3) by one
// thread only, at the same index, and every read of the statistics passes precedes the block barriers before
// pass 3 (hence no __restrict__ on x and z).
__global__ void zscore_rows_kernel(const float* x, int64_t cols, float* z, int* __restrict__ constant) {
    const float* xr = x + blockIdx.x * cols;
    float* zr = z + blockIdx.x * cols;

    double sum = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += xr[j];
    const double mean = block_sum(sum) / static_cast<double>(cols);  // block_sum: the same value in every thread

    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        const double d = xr[j] - mean;
        ss += d * d;
    }
    const double var = block_sum(ss) / static_cast<double>(cols);
    const int is_constant = !(var > 0.0);
    const double inv_sd = is_constant ? 0.0 : 1.0 / sqrt(var);
    if (threadIdx.x == 0 && constant) constant[blockIdx.x] = is_constant;
    if (is_constant) {
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) zr[j] = __int_as_float(0x7fc00000);  // NaN
        return;
    }
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) zr[j] = static_cast<float>((xr[j] - mean) * inv_sd);
}

__global__ void zscore_columns_kernel(float* __restrict__ x, int64_t rows, int64_t cols) {
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < cols;
         j += static_cast<int64_t>(gridDim.x) * blockDim.x)
        zscore_column(x, rows, cols, j);  // the CPU twin's formula (rsa_gpu/synthetic_v1.h)
}

__global__ void fill_value_kernel(float* __restrict__ x, int64_t n, float value) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        x[i] = value;
}

// cuBLAS wrote the upper triangle in column-major (entry (r, c) with r <= c at c * S + r); the matrix is
// symmetric, so copying it to the lower triangle gives the full matrix in either order.
__global__ void mirror_upper_cm_kernel(float* __restrict__ m, int64_t S) {
    const int64_t total = S * S;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t c = idx / S, r = idx - c * S;
        if (r > c) m[c * S + r] = m[r * S + c];
    }
}

// ---------------------------------------------------------------- launchers
void zscore_rows_launch(const float* d_x, int64_t rows, int64_t cols, float* d_z, int* d_constant,
                        cudaStream_t stream) {
    if (rows == 0) return;
    if (rows > kMaxGridX) throw InputError("z-score: " + std::to_string(rows) + " rows exceed CUDA's grid");
    zscore_rows_kernel<<<static_cast<unsigned>(rows), kBlock, 0, stream>>>(d_x, cols, d_z, d_constant);
    RSA_CHECK_LAUNCH();
}

void zscore_columns_launch(float* d_x, int64_t rows, int64_t cols, cudaStream_t stream) {
    if (cols == 0) return;
    zscore_columns_kernel<<<grid_1d(cols), kBlock, 0, stream>>>(d_x, rows, cols);
    RSA_CHECK_LAUNCH();
}

void rdm_from_zscored_launch(cublasHandle_t cublas, const float* d_z, int64_t rows, int64_t cols, float* d_rdm,
                             cudaStream_t stream) {
    fill_value_launch(d_rdm, rows * rows, 1.0f, stream);
    // Z is rows x cols row-major = cols x rows column-major (A, lda = cols); C = alpha A^T A + beta C.
    const float alpha = -1.0f / static_cast<float>(cols), beta = 1.0f;
    bind_cublas_stream(cublas, stream);
    CUBLAS_CHECK(cublasSsyrk(cublas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T, static_cast<int>(rows),
                             static_cast<int>(cols), &alpha, d_z, static_cast<int>(cols), &beta, d_rdm,
                             static_cast<int>(rows)));
    mirror_upper_launch(d_rdm, rows, stream);
}

void fill_value_launch(float* d, int64_t n, float value, cudaStream_t stream) {
    if (n <= 0) return;
    fill_value_kernel<<<grid_1d(n), kBlock, 0, stream>>>(d, n, value);
    RSA_CHECK_LAUNCH();
}

void mirror_upper_launch(float* d_m, int64_t S, cudaStream_t stream) {
    if (S <= 1) return;
    mirror_upper_cm_kernel<<<grid_1d(S * S), kBlock, 0, stream>>>(d_m, S);
    RSA_CHECK_LAUNCH();
}

}  // namespace rsa

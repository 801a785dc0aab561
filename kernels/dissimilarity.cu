// The GPU dissimilarity operations (dissimilarity.cuh): the whitening GEMM or column scaling, and the crossnobis
// kernel's per-fold GEMMs (the RDM engine's gemm_tile_accumulate in FP32). CPU twins: host/dissimilarity_ref.cpp.
#include "common.cuh"
#include "cuda_check.cuh"
#include "dissimilarity.cuh"
#include "gpu_context.cuh"
#include "rdm_scale.cuh"

namespace rsa {

namespace {

// y[r, c] = x[r, c] * scale[c]: columns grid-strided in x, rows in y.
__global__ void scale_columns_kernel(const float* __restrict__ x, int64_t rows, int64_t cols,
                                     const float* __restrict__ scale, float* __restrict__ y) {
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
        for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < cols;
             c += static_cast<int64_t>(gridDim.x) * blockDim.x)
            y[r * cols + c] = x[r * cols + c] * scale[c];
}

}  // namespace

void whiten_launch(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N, const float* d_factor,
                   int64_t factor_rows, float* d_y, cudaStream_t stream) {
    if (S <= 0 || N <= 0) return;
    if (factor_rows == 1) {
        scale_columns_kernel<<<grid_2d(N, S, 64), kBlock, 0, stream>>>(d_x, S, N, d_factor, d_y);
        RSA_CHECK_LAUNCH();
        return;
    }
    // Row-major Y = X F is column-major Y^T = F^T X^T: the row-major buffers of F and X read column-major are F^T
    // and X^T (leading dimension N).
    bind_cublas_stream(cublas, stream);
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(cublas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(S),
                             static_cast<int>(N), &one, d_factor, static_cast<int>(N), d_x, static_cast<int>(N),
                             &zero, d_y, static_cast<int>(N)));
}

void cross_gram_launch(cublasHandle_t cublas, const float* d_train, const float* d_test, int64_t C, int64_t N,
                       int64_t folds, float* d_k, cudaStream_t stream) {
    for (int64_t f = 0; f < folds; ++f)
        gemm_tile_accumulate(cublas, d_train + f * C * N, C, d_test + f * C * N, C, N, N, 1.0f, f == 0 ? 0.0f : 1.0f,
                             d_k, Precision::FP32, stream);
}

}  // namespace rsa

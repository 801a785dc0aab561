// The GPU side of the dissimilarity operations (dissimilarity.h; CPU twins whiten_ref and cross_gram_ref in
// host/dissimilarity_ref.cpp): whitening the rows of X by a precision factor (one FP32 cuBLAS GEMM, or a column
// scaling kernel for a diagonal factor) and the crossnobis kernel K = sum_f A_f B_f^T (FP32 GEMMs accumulated fold
// after fold). Launchers enqueue on the caller's stream into caller-provided memory; every call is checked.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace rsa {

// d_y (S x N, row-major) = d_x d_factor: factor_rows N (an N x N row-major factor, cublasSgemm under the handle's
// pedantic math) or 1 (a diagonal: column n scaled by d_factor[n]).
void whiten_launch(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N, const float* d_factor,
                   int64_t factor_rows, float* d_y, cudaStream_t stream);
// d_k (C x C, row-major) = sum over f < folds of A_f B_f^T, A_f / B_f rows [f C, (f + 1) C) of d_train / d_test
// ((folds C) x N, row-major).
void cross_gram_launch(cublasHandle_t cublas, const float* d_train, const float* d_test, int64_t C, int64_t N,
                       int64_t folds, float* d_k, cudaStream_t stream);

}  // namespace rsa

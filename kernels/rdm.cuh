// RDM launchers: batched row z-score (double accumulation) and M = 1 - Z Z^T / N via cublasSsyrk, mirrored
// to a full symmetric matrix. CPU twins: host/rdm_ref.cpp.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace rsa {

// z = row z-score of x (rows x cols, row-major); a zero-variance row becomes NaN and d_constant[row] = 1
// (d_constant: rows ints, may be null). d_z may be d_x (in place).
void zscore_rows_launch(const float* d_x, int64_t rows, int64_t cols, float* d_z, int* d_constant,
                        cudaStream_t stream);

// Each column of x (rows x cols) z-scored in place over its rows (population SD, double accumulation).
void zscore_columns_launch(float* d_x, int64_t rows, int64_t cols, cudaStream_t stream);

// rdm (rows x rows) = 1 - z z^T / cols, full symmetric. Uses the handle's stream.
void rdm_from_zscored_launch(cublasHandle_t cublas, const float* d_z, int64_t rows, int64_t cols, float* d_rdm,
                             cudaStream_t stream);

// Every element of d (n floats) set to value.
void fill_value_launch(float* d, int64_t n, float value, cudaStream_t stream);
// The column-major upper triangle of an S x S matrix copied to its lower triangle (the full symmetric matrix).
void mirror_upper_launch(float* d_m, int64_t S, cudaStream_t stream);

}  // namespace rsa

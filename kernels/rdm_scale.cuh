// RDMs at scale on the GPU (plans and CPU twins: rdm_scale.h / host/rdm_chunked.cpp). Row statistics merged
// over neuron blocks in double (Chan), z-score with global statistics (optionally rounded to TF32), SYRK /
// GEMM accumulation with beta = 1 in FP32 or TF32, and the entry point rdm_scaled that runs the memory plan:
// one-shot, streamed from the host in neuron blocks (pinned double buffers on a copy stream, copy of block
// k+1 overlapping z-score + SYRK of block k; pinned memory capped at a quarter of the host's physical memory,
// pageable staging beyond it), or tiled to a memory-mapped .npy on disk. Every device allocation raises
// OutOfMemoryError (DeviceBuffer), on which rdm_scaled falls back to the next plan kind.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "gpu_context.cuh"
#include "rdm.cuh"
#include "rsa_gpu/error.h"
#include "rsa_gpu/rdm_scale.h"

namespace rsa {

// ---------------------------------------------------------------- launchers (all enqueue on `stream`)
// mean[0..S) = m2[0..S) = 0.
void row_stats_reset_launch(double* d_mean, double* d_m2, int64_t S, cudaStream_t stream);
// Merge a chunk of `rows` rows x `cols` columns (leading dimension ld) into the running statistics of those
// rows (d_mean / d_m2 point at the chunk's first row); n_before: columns merged into them so far.
void row_stats_chunk_launch(const float* d_x, int64_t rows, int64_t cols, int64_t ld, int64_t n_before,
                            double* d_mean, double* d_m2, cudaStream_t stream);
// m2 -> 1/SD in place (population, over N); a zero-variance row gets NaN and d_constant[row] = 1 (else 0;
// d_constant may be null).
void row_stats_finalize_launch(double* d_m2_to_inv_sd, int64_t S, int64_t N, int* d_constant, cudaStream_t stream);
// z[r, c] = (float)((x[r, c] - mean[r]) * inv_sd[r]), rounded to TF32 (nearest even) for Precision::TF32.
// x and z may be the same buffer (same leading dimension).
void zscore_with_stats_launch(const float* d_x, int64_t ldx, int64_t rows, int64_t cols, const double* d_mean,
                              const double* d_inv_sd, Precision precision, float* d_z, int64_t ldz,
                              cudaStream_t stream);

// C (column-major view, ldc) triangle `fill` += alpha * Z Z^T for Z = rows x cols row-major (ldz), beta = 1.
// FP32: cublasSsyrk under the handle's (pedantic) math. TF32: SyrkMathMode = cublasSsyrk with the math mode
// set to CUBLAS_TF32_TENSOR_OP_MATH for the call; GemmExStrips = cublasGemmEx(CUBLAS_COMPUTE_32F_FAST_TF32)
// over strips of `strip` rows of that triangle. The handle's math mode is restored afterwards.
void syrk_accumulate(cublasHandle_t cublas, const float* d_z, int64_t rows, int64_t cols, int64_t ldz, float alpha,
                     float* d_c, int64_t ldc, cublasFillMode_t fill, Precision precision, Tf32Variant variant,
                     int64_t strip, cudaStream_t stream);
// Row-major tile C (ti x tj, ld tj) += alpha * Zi Zj^T for Zi (ti x cols), Zj (tj x cols), row-major (ldz):
// cublasSgemm (FP32) or cublasGemmEx(CUBLAS_COMPUTE_32F_FAST_TF32) (TF32).
void gemm_tile_accumulate(cublasHandle_t cublas, const float* d_zi, int64_t ti, const float* d_zj, int64_t tj,
                          int64_t cols, int64_t ldz, float alpha, float* d_tile, Precision precision,
                          cudaStream_t stream);

// Device-resident RDM: rdm (S x S) = 1 - Z Z^T / N from z-scored rows (rounded to TF32 first for TF32).
void rdm_from_zscored_precision_launch(cublasHandle_t cublas, const float* d_z, int64_t S, int64_t N, float* d_rdm,
                                       Precision precision, Tf32Variant variant, int64_t strip, cudaStream_t stream);

// ---------------------------------------------------------------- entry points
// The RDM of host rows x (S x N, row-major; pinned memory is copied from directly, pageable memory through
// pinned staging buffers). Plans with plan_rdm against the device's free memory (cudaMemGetInfo) and
// options.max_gpu_bytes; when a one-shot (or streamed) attempt runs out of device memory it re-plans with the
// next kind (fell_back = true). RuntimeError when no plan fits, or when the plan is tiled and no
// output_path is given. Constant rows are NaN and listed; the caller decides Fail/Nan. min_kind skips cheaper
// kinds (GpuBackend::rdm passes PlanKind::Streamed after its own one-shot path ran out of device memory).
ScaledRdmResult rdm_scaled(GpuContext& ctx, const float* x, int64_t S, int64_t N, const ScaledRdmOptions& options,
                           PlanKind min_kind = PlanKind::OneShot);
// Runs one given plan (tests and the benchmark force plans this way). OutOfMemoryError on allocation failure.
ScaledRdmResult rdm_run_plan(GpuContext& ctx, const float* x, int64_t S, int64_t N, const MemoryPlan& plan,
                             const ScaledRdmOptions& options);

}  // namespace rsa

// The GPU engine of the RDM (the CPU engine is rdm_run_ref in rdm.h; plans come from the shared layer,
// rdm_engine.h). One run of a plan: the row statistics (mean, 1/SD from the row moments), then per output tile (the
// whole S x S matrix unless tiled) and neuron block: z-score the rows (optionally rounded to TF32), accumulate
// Z_i Z_j^T / N (SYRK on the diagonal, GEMM off it, beta 0 on the first block), finish with rdm_entry (1 - value;
// plan.rdm_kind Euclidean: rows copied instead of z-scored, finished with euclidean_entry) and mirror, or read the tile back and hand it to the sink. The input is device-resident (pointer offsets, z into
// a workspace), or host memory copied once (one block) or streamed in neuron blocks through pinned double buffers
// on a copy stream (copy of block k+1 overlapping the work on block k). Every allocation is a DeviceBuffer
// (OutOfMemoryError, on which compute_rdm re-plans). No file I/O and no printing here: tiles go to the sink.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "gpu_context.cuh"
#include "rsa_gpu/error.h"
#include "rsa_gpu/rdm_plan.h"

namespace rsa {

// ---------------------------------------------------------------- launchers (all enqueue on `stream`)
// Mean and centred sum of squares of each of `rows` rows (cols values, leading dimension ld), two passes in double
// (one block per row, the kit's block_sum).
void row_moments_launch(const float* d_x, int64_t rows, int64_t cols, int64_t ld, double* d_mean, double* d_m2,
                        cudaStream_t stream);
// z[r, c] = zscore_value(x[r, c], mean[r], inv_sd[r]), rounded to TF32 (nearest even) for Precision::TF32.
// x and z may be the same buffer (same leading dimension).
void zscore_with_stats_launch(const float* d_x, int64_t ldx, int64_t rows, int64_t cols, const double* d_mean,
                              const double* d_inv_sd, Precision precision, float* d_z, int64_t ldz,
                              cudaStream_t stream);
// C (column-major view, ldc) triangle `fill` = alpha Z Z^T + beta C for Z = rows x cols row-major (ldz).
// FP32: cublasSsyrk under the handle's (pedantic) math; TF32: cublasGemmEx(CUBLAS_COMPUTE_32F_FAST_TF32) over
// strips of kTf32Strip rows of that triangle (tensor cores). The handle's math mode is restored afterwards.
constexpr int64_t kTf32Strip = 1024;
void syrk_accumulate(cublasHandle_t cublas, const float* d_z, int64_t rows, int64_t cols, int64_t ldz, float alpha,
                     float beta, float* d_c, int64_t ldc, cublasFillMode_t fill, Precision precision,
                     cudaStream_t stream);
// Row-major tile C (ti x tj, ld tj) = alpha Zi Zj^T + beta C for Zi (ti x cols), Zj (tj x cols), row-major (ldz).
void gemm_tile_accumulate(cublasHandle_t cublas, const float* d_zi, int64_t ti, const float* d_zj, int64_t tj,
                          int64_t cols, int64_t ldz, float alpha, float beta, float* d_tile, Precision precision,
                          cudaStream_t stream);
// S x S accumulated upper triangle (column-major, as SYRK leaves it) -> the full symmetric RDM: rdm_entry on each
// upper entry (or, with d_norms, each row's squared norm / N: euclidean_entry), mirrored to the lower triangle.
void finish_upper_launch(float* d_m, int64_t S, cudaStream_t stream, const double* d_norms = nullptr);
// A row-major ti x tj tile at rows i0.., columns j0.. -> rdm_entry (or euclidean_entry with d_norms) on every entry
// (diagonal: on its upper triangle, the part the sink reads).
void finish_tile_launch(float* d_tile, int64_t ti, int64_t tj, bool diagonal, cudaStream_t stream,
                        const double* d_norms = nullptr, int64_t i0 = 0, int64_t j0 = 0);
// Rows and columns d_rows[0..count) of the S x S matrix set to NaN.
void nan_rows_cols_launch(float* d_m, int64_t S, const int64_t* d_rows, int64_t count, cudaStream_t stream);

// The engine's one-block FP32 path on device rows the caller lets it overwrite (z in place): moments, 1/SD, z-score,
// SYRK, finish into d_out (S x S). d_stats: 2 S doubles of workspace. Enqueues only (the split-half noise ceiling
// makes its half RDMs with it).
void rdm_resident_launch(cublasHandle_t cublas, float* d_x, int64_t S, int64_t N, double* d_stats, float* d_out,
                         cudaStream_t stream);

// ---------------------------------------------------------------- the engine
// Where the S x N row-major input is: on the device (device, not modified), else host memory (pinned memory is
// copied from directly; pageable memory through pinned staging buffers when streamed).
struct RdmInput {
    const float* device = nullptr;
    const float* host = nullptr;
};

// Runs `plan` with the row moments of the input. In-memory plans fill d_out (S x S, row-major = column-major: it
// is symmetric); a tiled plan hands each finished tile to `sink` (host memory, in order). With poison (tests)
// every buffer is NaN first. Returns after the last kernel (the stream is synchronised).
void rdm_run_gpu(GpuContext& ctx, const RdmInput& in, int64_t S, int64_t N, const MemoryPlan& plan,
                 Precision precision, const RowMoments& moments, float* d_out, RdmTileSink* sink, bool poison);

}  // namespace rsa

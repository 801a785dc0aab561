// GPU comparison measures with the semantics of the CPU twins in rsa_gpu/measures.h: Pearson, Spearman,
// Kendall tau-a and cosine over the strict upper triangle of two S x S device RDMs (NaN pairs skipped; int64
// indices throughout, S up to ~50,000 given device memory), and linear CKA with cuBLAS Gram matrices.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "rsa_gpu/measures.h"

namespace rsa {

// Launchers take caller-provided workspace (d_work, at least the *_workspace_bytes of the same arguments) and
// allocate nothing; each returns to the host where it reads its result back (its one synchronisation, besides
// upper_moments_launch's for the comparisons).

// Workspace of compare_upper_launch for measure m on S x S RDMs: the moments (pearson_workspace_bytes) for Pearson;
// for the others also buffers for every pair of the strict upper triangle used (S (S - 1) / 2; with the sort's
// storage, about 44 bytes a pair for Spearman, 24 for Kendall, 8 for cosine). Calls cub's size queries (a CUDA
// device must be present).
size_t compare_workspace_bytes(Measure m, int64_t S);
// d_a, d_b: S x S row-major on the device (not modified). As compare_upper_ref: the used pairs' moments first
// (upper_moments_launch: returns to the host once), value NaN for every measure when compare_degenerate says so;
// pairs and skipped are always set. Spearman, Kendall and cosine then enqueue their work and return to the host
// once more, reading the result back.
CompareResult compare_upper_launch(Measure m, const float* d_a, const float* d_b, int64_t S, void* d_work,
                                   cudaStream_t stream);

// Workspace of cka_linear_launch: two S x S Gram matrices, one S x max(N1, N2) centred copy, 7 S row sums and the
// partials of the totals (floats and doubles).
size_t cka_workspace_bytes(int64_t S, int64_t N1, int64_t N2);
// d_x: S x N1, d_y: S x N2 row-major on the device (not modified). Gram matrices with cublasSgemm on the
// handle's math mode (the context sets pedantic FP32), sums in double. Throws InputError as check_cka_shapes
// (before touching d_work). Device data only: the degeneracy test of the inputs (responses_degenerate_reason, NaN
// as cka_linear_ref gives) needs the host matrices and is the caller's (GpuBackend::cka). Binds `cublas` to
// `stream` (bind_cublas_stream). Returns to the host once, reading the sums back.
double cka_linear_launch(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N1, const float* d_y,
                         int64_t N2, bool debiased, void* d_work, cudaStream_t stream);
// The sums both forms are finished from (cka_from_sums, measures.h): one pass gives plain and debiased CKA.
CkaSums cka_sums_launch(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N1, const float* d_y, int64_t N2,
                        void* d_work, cudaStream_t stream);

// Conveniences for the backend, tests and benchmarks: allocate the workspace (DeviceBuffer: OutOfMemoryError naming
// it), call the launcher above, free it. Defined in gpu_backend.cu, which owns the GPU operations' allocations.
CompareResult compare_upper_launch(Measure m, const float* d_a, const float* d_b, int64_t S, cudaStream_t stream);
double cka_linear_launch(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N1, const float* d_y,
                         int64_t N2, bool debiased, cudaStream_t stream);

}  // namespace rsa

// GPU comparison measures with the semantics of the CPU twins in rsa_gpu/measures.h: Pearson, Spearman,
// Kendall tau-a and cosine over the strict upper triangle of two S x S device RDMs (NaN pairs skipped; int64
// indices throughout, S up to ~50,000 given device memory), and linear CKA with cuBLAS Gram matrices.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "rsa_gpu/measures.h"

namespace rsa {

// d_a, d_b: S x S row-major on the device. Allocates its temporaries (DeviceBuffer) and synchronises the stream.
// As compare_upper_ref: the used pairs' moments first (upper_moments_launch), value NaN for every measure when
// compare_degenerate says so; pairs and skipped are always set.
CompareResult compare_upper_launch(Measure m, const float* d_a, const float* d_b, int64_t S, cudaStream_t stream);

// d_x: S x N1, d_y: S x N2 row-major on the device (not modified). Gram matrices with cublasSgemm on the
// handle's math mode (the context sets pedantic FP32), sums in double. Throws InputError as check_cka_shapes.
// Device data only: the degeneracy test of the inputs (responses_degenerate_reason, NaN as cka_linear_ref gives)
// needs the host matrices and is the caller's (GpuBackend::cka).
double cka_linear_launch(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N1, const float* d_y,
                         int64_t N2, bool debiased, cudaStream_t stream);

}  // namespace rsa

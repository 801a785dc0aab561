// RDM comparison launcher: Pearson correlation over the strict upper triangle of two S x S RDMs on the device,
// two passes with double accumulation, NaN pairs skipped. CPU twin: pearson_upper_ref.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "rsa_gpu/compare.h"

namespace rsa {

// d_work: at least pearson_workspace_bytes(S) bytes of device memory. Synchronises the stream (reads 5 sums).
size_t pearson_workspace_bytes(int64_t S);
PearsonResult pearson_upper_launch(const float* d_a, const float* d_b, int64_t S, void* d_work, cudaStream_t stream);

}  // namespace rsa

// RDM comparison launchers: the Pearson two-pass moments of two S x S RDMs' strict upper triangles on the device
// (double accumulation, NaN pairs skipped; the device twin of upper_moments), which every comparison measure takes
// first for the degeneracy test (compare_degenerate, compare.h), and Pearson correlation from them. CPU twins:
// upper_moments, pearson_upper_ref.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "rsa_gpu/compare.h"

namespace rsa {

// d_work: at least pearson_workspace_bytes(S) bytes of device memory (the caller's; nothing is allocated). Both
// return to the host once: reading the sums back is their one synchronisation of the stream.
size_t pearson_workspace_bytes(int64_t S);
// pairs, skipped, the used pairs' means and centred sums (sxx, syy, sxy). S < 2: no pairs.
UpperMoments upper_moments_launch(const float* d_a, const float* d_b, int64_t S, void* d_work, cudaStream_t stream);
// r is NaN when compare_degenerate says so (fewer than 2 used pairs, or either side constant up to float
// rounding over them), as pearson_upper_ref.
PearsonResult pearson_upper_launch(const float* d_a, const float* d_b, int64_t S, void* d_work, cudaStream_t stream);

}  // namespace rsa

// Grating kernel launcher: B gratings (B x height x width, float32 0/1) in one launch. CPU twin: grating_ref.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "rsa_gpu/grating.h"

namespace rsa {

void grating_launch(const float* d_angles_deg, int64_t count, const GratingParams& params, float* d_out,
                    cudaStream_t stream);

}  // namespace rsa

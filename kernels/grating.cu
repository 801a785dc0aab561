// Grating kernel: one thread per pixel of B images (grid-strided), the tutorial's grating() in double precision
// (as numpy), binarised to 0/1. CPU twin: host/grating_ref.cpp.
#include "common.cuh"
#include "cuda_check.cuh"
#include "grating.cuh"

namespace rsa {

// ---------------------------------------------------------------- CUDA kernels
__global__ void grating_kernel(const float* __restrict__ angles_deg, int64_t count, int height, int width,
                               double sf, double res, float* __restrict__ out) {
    const int64_t pixels = static_cast<int64_t>(height) * width;
    const int64_t total = count * pixels;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = idx / pixels;
        const int p = static_cast<int>(idx - b * pixels);
        const int i = p / width, j = p - i * width;
        const double angle = static_cast<double>(angles_deg[b]) * (M_PI / 180.0);
        const double x = sf * j / res, y = sf * i / res;
        // Plain multiply and add (no FMA contraction), so every bit matches the host's numpy-like arithmetic.
        const double v = cos(__dadd_rn(__dmul_rn(x, cos(angle)), __dmul_rn(y, sin(angle))));
        out[idx] = v > 0.0 ? 1.0f : 0.0f;
    }
}

// ---------------------------------------------------------------- launcher
void grating_launch(const float* d_angles_deg, int64_t count, const GratingParams& params, float* d_out,
                    cudaStream_t stream) {
    const int64_t total = count * params.pixels();
    if (total == 0) return;
    grating_kernel<<<grid_1d(total), kBlock, 0, stream>>>(d_angles_deg, count, params.height(), params.width(),
                                                          params.sf, params.res, d_out);
    RSA_CHECK_LAUNCH();
}

}  // namespace rsa

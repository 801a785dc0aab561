// Grating stimuli exactly as the tutorial's grating() (spec section 1.2): full-field square-wave gratings,
// value = cos(x cos(a) + y sin(a)) with x = sf*j/res, y = sf*i/res (no 2*pi factor), binarised to 0/1,
// angle a in degrees from vertical (positive = tilted right). Image (ceil(480 res) x ceil(640 res)) float32.
// Sizes are computed in 64 bits and bounded: absurd --res values and outputs larger than the host memory
// budget are InputErrors with the sizes, before any work.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "rsa_gpu/matrix.h"

namespace rsa {

// The largest image side and pixel count a grating may have: 65,536 pixels a side (--res up to 102.4) and
// 2^28 pixels (1 GiB of float32) per image.
constexpr int64_t kMaxGratingSide = 1 << 16;
constexpr int64_t kMaxGratingPixels = int64_t{1} << 28;

struct GratingParams {
    double sf = 1.0 / 28.0;  // spatial frequency (the tutorial's default)
    double res = 0.1;        // resolution relative to a 640 x 480 canvas: 48 x 64 pixels
    // ceil(480 * res), as numpy.arange(0, 480 * res) counts; InputError (check_grating_params) when res is not a
    // finite positive number or the image would exceed the bounds above.
    int height() const;
    int width() const;       // ceil(640 * res), likewise
    int64_t pixels() const;  // height * width, in 64 bits
};

// InputError naming --sf / --res when sf or res is not finite and > 0, or the image exceeds kMaxGratingSide a
// side or kMaxGratingPixels in all (the message gives the size it would have).
void check_grating_params(const GratingParams& params);

// Bytes of `count` float32 gratings (count x height x width x 4), in 64 bits (saturating at UINT64_MAX).
uint64_t gratings_output_bytes(size_t count, const GratingParams& params);

// Before drawing `count` gratings: check_grating_params, then InputError with the sizes (count, image size,
// bytes) when the output exceeds the host memory budget (host_memory.h), saying what to do (fewer angles,
// a smaller --res, or several runs).
void check_gratings_output(size_t count, const GratingParams& params);

// CPU twin: B gratings, out is B x height x width (row-major). Computed in double, like numpy.
void grating_ref(const float* angles_deg, int64_t count, const GratingParams& params, float* out);

// Convenience: a B x (height*width) matrix (allocated through checked_matrix: OutOfMemoryError naming it).
Matrix gratings_ref(const std::vector<float>& angles_deg, const GratingParams& params);

}  // namespace rsa

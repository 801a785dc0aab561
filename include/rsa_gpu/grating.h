// Grating stimuli exactly as the tutorial's grating() (spec section 1.2): full-field square-wave gratings,
// value = cos(x cos(a) + y sin(a)) with x = sf*j/res, y = sf*i/res (no 2*pi factor), binarised to 0/1,
// angle a in degrees from vertical (positive = tilted right). Image (ceil(480 res) x ceil(640 res)) float32.
#pragma once
#include <cstdint>
#include <vector>

#include "rsa_gpu/matrix.h"

namespace rsa {

struct GratingParams {
    double sf = 1.0 / 28.0;  // spatial frequency (the tutorial's default)
    double res = 0.1;        // resolution relative to a 640 x 480 canvas: 48 x 64 pixels
    int height() const;      // ceil(480 * res), as numpy.arange(0, 480 * res) counts
    int width() const;       // ceil(640 * res)
    int pixels() const { return height() * width(); }
};

// CPU twin: B gratings, out is B x height x width (row-major). Computed in double, like numpy.
void grating_ref(const float* angles_deg, int64_t count, const GratingParams& params, float* out);

// Convenience: a B x (height*width) matrix.
Matrix gratings_ref(const std::vector<float>& angles_deg, const GratingParams& params);

}  // namespace rsa

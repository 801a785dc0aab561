// CPU twin of the grating kernel: the tutorial's grating() in double precision, binarised to 0/1 as float32.
#include <cmath>

#include "rsa_gpu/grating.h"
#include "rsa_gpu/error.h"

namespace rsa {

int GratingParams::height() const { return static_cast<int>(std::ceil(480.0 * res)); }
int GratingParams::width() const { return static_cast<int>(std::ceil(640.0 * res)); }

void grating_ref(const float* angles_deg, int64_t count, const GratingParams& params, float* out) {
    const int h = params.height(), w = params.width();
    for (int64_t b = 0; b < count; ++b) {
        const double angle = static_cast<double>(angles_deg[b]) * (M_PI / 180.0);  // numpy.deg2rad
        const double ca = std::cos(angle), sa = std::sin(angle);
        float* img = out + b * h * w;
        for (int i = 0; i < h; ++i) {
            const double y = params.sf * i / params.res;  // sf * arange(0, 480 res) / res
            for (int j = 0; j < w; ++j) {
                const double x = params.sf * j / params.res;
                const double v = std::cos(x * ca + y * sa);
                img[i * w + j] = v > 0.0 ? 1.0f : 0.0f;  // < 0 -> 0, > 0 -> 1, an exact 0 stays 0
            }
        }
    }
}

Matrix gratings_ref(const std::vector<float>& angles_deg, const GratingParams& params) {
    Matrix m(static_cast<int64_t>(angles_deg.size()), params.pixels());
    grating_ref(angles_deg.data(), m.rows, params, m.data.data());
    return m;
}

}  // namespace rsa

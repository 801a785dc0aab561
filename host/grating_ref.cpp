// CPU twin of the grating kernel: the tutorial's grating() in double precision, binarised to 0/1 as float32;
// and the size checks of grating outputs (64-bit sizes, bounds, the host memory budget).
#include <cmath>
#include <limits>
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/grating.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/rdm_plan.h"

namespace rsa {

namespace {

// ceil(canvas * res) in double; the caller bounds it.
double side(double canvas, double res) { return std::ceil(canvas * res); }

}  // namespace

void check_grating_params(const GratingParams& p) {
    if (!std::isfinite(p.sf) || !(p.sf > 0))
        throw InputError("--sf: the spatial frequency must be a finite number > 0, got " + std::to_string(p.sf));
    if (!std::isfinite(p.res) || !(p.res > 0))
        throw InputError("--res: the resolution must be a finite number > 0, got " + std::to_string(p.res));
    const double h = side(480.0, p.res), w = side(640.0, p.res);
    if (h > static_cast<double>(kMaxGratingSide) || w > static_cast<double>(kMaxGratingSide) ||
        h * w > static_cast<double>(kMaxGratingPixels)) {
        std::ostringstream os;
        os.precision(6);
        os << "--res " << p.res << " gives gratings of " << h << " x " << w << " pixels (" << h * w * 4.0 / 1e9
           << " GB each); at most " << kMaxGratingSide << " pixels a side and " << kMaxGratingPixels
           << " pixels per image are supported (--res 0.1 gives the tutorial's 48 x 64)";
        throw InputError(os.str());
    }
}

int GratingParams::height() const {
    check_grating_params(*this);
    return static_cast<int>(side(480.0, res));
}

int GratingParams::width() const {
    check_grating_params(*this);
    return static_cast<int>(side(640.0, res));
}

int64_t GratingParams::pixels() const { return static_cast<int64_t>(height()) * static_cast<int64_t>(width()); }

uint64_t gratings_output_bytes(size_t count, const GratingParams& params) {
    const uint64_t per_image = static_cast<uint64_t>(params.pixels()) * sizeof(float);
    if (per_image != 0 && count > std::numeric_limits<uint64_t>::max() / per_image)
        return std::numeric_limits<uint64_t>::max();
    return static_cast<uint64_t>(count) * per_image;
}

void check_gratings_output(size_t count, const GratingParams& params) {
    check_grating_params(params);
    const uint64_t bytes = gratings_output_bytes(count, params);
    const uint64_t budget = host_memory_budget();
    if (bytes <= budget) return;
    std::ostringstream os;
    os << count << " gratings of " << params.height() << " x " << params.width() << " float32 pixels need "
       << format_bytes(bytes) << ", more than the host memory budget of " << host_budget_text()
       << ": draw fewer angles per run (at most " << budget / (static_cast<uint64_t>(params.pixels()) * sizeof(float))
       << " at this size) or use a smaller --res";
    throw InputError(os.str());
}

void grating_ref(const float* angles_deg, int64_t count, const GratingParams& params, float* out) {
    const int h = params.height(), w = params.width();
    const int64_t hw = static_cast<int64_t>(h) * w;
    for (int64_t b = 0; b < count; ++b) {
        const double angle = static_cast<double>(angles_deg[b]) * (M_PI / 180.0);  // numpy.deg2rad
        const double ca = std::cos(angle), sa = std::sin(angle);
        float* img = out + b * hw;
        for (int i = 0; i < h; ++i) {
            const double y = params.sf * i / params.res;  // sf * arange(0, 480 res) / res
            for (int j = 0; j < w; ++j) {
                const double x = params.sf * j / params.res;
                const double v = std::cos(x * ca + y * sa);
                img[static_cast<int64_t>(i) * w + j] = v > 0.0 ? 1.0f : 0.0f;  // < 0 -> 0, > 0 -> 1, an exact 0 stays 0
            }
        }
    }
}

Matrix gratings_ref(const std::vector<float>& angles_deg, const GratingParams& params) {
    Matrix m = checked_matrix(static_cast<int64_t>(angles_deg.size()), params.pixels(),
                              std::to_string(angles_deg.size()) + " gratings");
    grating_ref(angles_deg.data(), m.rows, params, m.data.data());
    return m;
}

}  // namespace rsa

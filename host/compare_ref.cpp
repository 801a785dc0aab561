// CPU twin of the RDM comparison: Pearson correlation over the strict upper triangle, two passes in double,
// skipping pairs where either RDM is NaN (constant rows kept with --constant-rows nan).
#include <cmath>
#include <sstream>

#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"

namespace rsa {

double pearson_from_centred(double sxx, double syy, double sxy) {
    if (!(sxx > 0.0) || !(syy > 0.0)) return std::nan("");
    return sxy / std::sqrt(sxx * syy);
}

PearsonResult pearson_upper_ref(const float* a, const float* b, int64_t S) {
    PearsonResult res;
    double sa = 0.0, sb = 0.0;
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) {
            const float x = a[i * S + j], y = b[i * S + j];
            if (std::isnan(x) || std::isnan(y)) {
                ++res.skipped;
                continue;
            }
            sa += x;
            sb += y;
            ++res.pairs;
        }
    if (res.pairs < 2) {
        res.r = std::nan("");
        return res;
    }
    const double ma = sa / static_cast<double>(res.pairs), mb = sb / static_cast<double>(res.pairs);
    double sxx = 0.0, syy = 0.0, sxy = 0.0;
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) {
            const float x = a[i * S + j], y = b[i * S + j];
            if (std::isnan(x) || std::isnan(y)) continue;
            const double dx = x - ma, dy = y - mb;
            sxx += dx * dx;
            syy += dy * dy;
            sxy += dx * dy;
        }
    res.r = pearson_from_centred(sxx, syy, sxy);
    return res;
}

void check_rdm_pair(const Matrix& a, const Matrix& b, const char* name_a, const char* name_b) {
    auto square = [](const Matrix& m, const char* name) {
        if (m.rows != m.cols || m.rows == 0) {
            std::ostringstream os;
            os << name << ": an RDM must be a non-empty square matrix, got " << m.rows << " x " << m.cols;
            throw InputError(os.str());
        }
        if (m.rows < 3) {
            std::ostringstream os;
            os << name << ": comparing RDMs needs at least 3 stimuli, got " << m.rows;
            throw InputError(os.str());
        }
        for (int64_t i = 0; i < m.rows; ++i)
            for (int64_t j = 0; j < m.cols; ++j)
                if (std::isinf(m.at(i, j))) {
                    std::ostringstream os;
                    os << name << ": infinite value at row " << i << ", column " << j;
                    throw InputError(os.str());
                }
    };
    square(a, name_a);
    square(b, name_b);
    if (a.rows != b.rows) {
        std::ostringstream os;
        os << "RDM sizes differ: " << name_a << " is " << a.rows << " x " << a.cols << ", " << name_b << " is "
           << b.rows << " x " << b.cols;
        throw InputError(os.str());
    }
}

}  // namespace rsa

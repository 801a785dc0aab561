// CPU twin of the RDM comparison: Pearson correlation over the strict upper triangle, two passes in double,
// skipping pairs where either RDM is NaN (constant rows kept with --constant-rows nan); the degeneracy test of
// RDMs (compare.h) and the input checks of a comparison.
#include <cmath>
#include <limits>
#include <sstream>

#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"

namespace rsa {

double pearson_from_centred(double sxx, double syy, double sxy) {
    if (!(sxx > 0.0) || !(syy > 0.0)) return std::nan("");
    return sxy / std::sqrt(sxx * syy);
}

UpperMoments upper_moments(const float* a, const float* b, int64_t S) {
    UpperMoments m;
    double sa = 0.0, sb = 0.0;
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) {
            const float x = a[i * S + j], y = b[i * S + j];
            if (std::isnan(x) || std::isnan(y)) {
                ++m.skipped;
                continue;
            }
            sa += x;
            sb += y;
            ++m.pairs;
        }
    if (m.pairs == 0) return m;
    m.mean_a = sa / static_cast<double>(m.pairs);
    m.mean_b = sb / static_cast<double>(m.pairs);
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) {
            const float x = a[i * S + j], y = b[i * S + j];
            if (std::isnan(x) || std::isnan(y)) continue;
            const double dx = x - m.mean_a, dy = y - m.mean_b;
            m.sxx += dx * dx;
            m.syy += dy * dy;
            m.sxy += dx * dy;
        }
    return m;
}

UpperSpread rdm_upper_spread(const float* rdm, int64_t S) {
    UpperSpread s;
    double sum = 0.0;
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) {
            const float v = rdm[i * S + j];
            if (std::isnan(v)) {
                ++s.nan;
                continue;
            }
            if (s.values == 0 || v < s.min) s.min = v;
            if (s.values == 0 || v > s.max) s.max = v;
            sum += v;
            ++s.values;
        }
    if (s.values == 0) return s;
    s.mean = sum / static_cast<double>(s.values);
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) {
            const float v = rdm[i * S + j];
            if (std::isnan(v)) continue;
            const double d = v - s.mean;
            s.m2 += d * d;
        }
    return s;
}

std::string rdm_degenerate_reason(const float* rdm, int64_t S, double scale) {
    const UpperSpread s = rdm_upper_spread(rdm, S);
    if (s.values < 2 || !spread_degenerate(static_cast<double>(s.values), s.mean, s.m2, scale)) return "";
    std::ostringstream os;
    os.precision(6);
    os << "its " << s.values << " upper-triangle values";
    if (s.nan) os << " (" << s.nan << " NaN skipped)";
    if (s.min == s.max) {
        os << " are all equal (" << s.min << ")";
    } else {
        os << " are equal up to float rounding (mean " << s.mean << ", SD "
           << std::sqrt(s.m2 / static_cast<double>(s.values)) << ", range " << s.min << " .. " << s.max
           << "; the SD is at most " << kDegenerateRelSpread << " of "
           << (scale > std::fabs(s.mean) ? "the scale of correlation distances (1)" : "their mean magnitude") << ")";
    }
    os << ", so it has no dissimilarity structure and no comparison measure (pearson, spearman, kendall, cosine) "
          "is defined";
    return os.str();
}

PearsonResult pearson_upper_ref(const float* a, const float* b, int64_t S) {
    const UpperMoments m = upper_moments(a, b, S);
    PearsonResult res;
    res.pairs = m.pairs;
    res.skipped = m.skipped;
    res.r = compare_degenerate(m.pairs, m.mean_a, m.sxx, m.mean_b, m.syy) ? std::nan("")
                                                                          : pearson_from_centred(m.sxx, m.syy, m.sxy);
    return res;
}

void check_rdm_dims(int64_t a_rows, int64_t a_cols, int64_t b_rows, int64_t b_cols, const char* name_a,
                    const char* name_b) {
    auto square = [](int64_t rows, int64_t cols, const char* name) {
        if (rows != cols || rows == 0) {
            std::ostringstream os;
            os << name << ": an RDM must be a non-empty square matrix, got " << rows << " x " << cols;
            throw InputError(os.str());
        }
        if (rows < 3) {
            std::ostringstream os;
            os << name << ": comparing RDMs needs at least 3 stimuli, got " << rows;
            throw InputError(os.str());
        }
    };
    square(a_rows, a_cols, name_a);
    square(b_rows, b_cols, name_b);
    if (a_rows != b_rows) {
        std::ostringstream os;
        os << "RDM sizes differ: " << name_a << " is " << a_rows << " x " << a_cols << ", " << name_b << " is "
           << b_rows << " x " << b_cols;
        throw InputError(os.str());
    }
}

void check_rdm_shapes(const MatrixView& a, const MatrixView& b, const char* name_a, const char* name_b) {
    check_rdm_dims(a.rows, a.cols, b.rows, b.cols, name_a, name_b);
    for (const auto& [m, name] : {std::pair<const MatrixView*, const char*>{&a, name_a}, {&b, name_b}})
        for (int64_t i = 0; i < m->rows; ++i)
            for (int64_t j = 0; j < m->cols; ++j)
                if (std::isinf(m->at(i, j))) {
                    std::ostringstream os;
                    os << name << ": infinite value at row " << i << ", column " << j;
                    throw InputError(os.str());
                }
}

void check_rdm_pair(const MatrixView& a, const MatrixView& b, const char* name_a, const char* name_b) {
    check_rdm_shapes(a, b, name_a, name_b);
    for (const auto& [m, name] : {std::pair<const MatrixView*, const char*>{&a, name_a}, {&b, name_b}}) {
        const std::string why = rdm_degenerate_reason(m->ptr, m->rows);
        if (!why.empty()) throw InputError(std::string(name) + ": " + why);
    }
}

}  // namespace rsa

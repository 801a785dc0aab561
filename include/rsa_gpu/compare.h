// Comparison of two RDMs: Pearson correlation over the strict upper triangle (the tutorial's correlate_rdms),
// two passes with double accumulation, skipping pairs where either RDM is NaN. CPU twin here. Also the one
// degeneracy test every comparison measure (and the RDM and CKA inputs) goes through: values whose spread is
// zero or at float rounding level relative to their magnitude count as constant.
#pragma once
#include <cstdint>
#include <string>

#include "rsa_gpu/matrix.h"

#if defined(__CUDACC__)
#define RSA_DEGENERATE_HD __host__ __device__ inline
#else
#define RSA_DEGENERATE_HD inline
#endif

namespace rsa {

// ---------------------------------------------------------------- degenerate inputs
// float32 carries about 7 significant digits: values whose standard deviation is at most
// kDegenerateRelSpread (about 8 float ulps) of their magnitude, or at most kDegenerateAbsSpread, are equal up
// to rounding, and no correlation (nor cosine, nor CKA) computed from them means anything.
constexpr double kDegenerateRelSpread = 1e-6;
constexpr double kDegenerateAbsSpread = 1e-30;

// THE degeneracy test, shared by every measure and by both twins (host and device): n values with mean `mean`
// and centred sum of squares m2 (sum of (v - mean)^2, accumulated in double) are degenerate when n < 2, or
// their population SD is <= kDegenerateRelSpread * max(|mean|, scale) + kDegenerateAbsSpread. `scale` is the
// magnitude the values are computed at when that is known: 1 for correlation distances (1 - r, whose rounding
// error is relative to 1), 0 for arbitrary values (their own mean is then the scale).
RSA_DEGENERATE_HD bool spread_degenerate(double n, double mean, double m2, double scale = 0.0) {
    if (!(n >= 2.0)) return true;
    const double var = m2 / n;
    if (!(var > 0.0)) return true;  // zero (or NaN) variance
    const double am = mean < 0.0 ? -mean : mean;
    const double mag = am > scale ? am : scale;
    const double t = kDegenerateRelSpread * mag + kDegenerateAbsSpread;
    return var <= t * t;
}

// A comparison of two RDMs over their n used pairs (NaN pairs skipped) is degenerate, and its value NaN for
// every measure, when either side's values are (spread_degenerate with scale 0). The sums are those of the
// Pearson two-pass: means of the used pairs, then centred sums of squares.
RSA_DEGENERATE_HD bool compare_degenerate(int64_t pairs, double mean_a, double m2_a, double mean_b, double m2_b) {
    const double n = static_cast<double>(pairs);
    return spread_degenerate(n, mean_a, m2_a) || spread_degenerate(n, mean_b, m2_b);
}

// The used pairs of two S x S RDMs (strict upper triangle, pairs where either is NaN skipped) and their
// Pearson two-pass moments in double.
struct UpperMoments {
    int64_t pairs = 0, skipped = 0;
    double mean_a = 0.0, mean_b = 0.0;
    double sxx = 0.0, syy = 0.0, sxy = 0.0;  // centred sums
};
UpperMoments upper_moments(const float* a, const float* b, int64_t S);

// The non-NaN values of one S x S RDM's strict upper triangle: count, mean and centred sum of squares.
struct UpperSpread {
    int64_t values = 0, nan = 0;
    double mean = 0.0, m2 = 0.0;
    float min = 0.0f, max = 0.0f;
};
UpperSpread rdm_upper_spread(const float* rdm, int64_t S);

// Why an RDM cannot be compared ("" when it can): its non-NaN upper-triangle values are all equal, or equal up
// to float rounding (spread_degenerate with `scale`). Fewer than 2 non-NaN values is not reported here (that
// is NaN by the user's choice, --constant-rows nan: every measure then gives NaN).
std::string rdm_degenerate_reason(const float* rdm, int64_t S, double scale = 0.0);

// ---------------------------------------------------------------- Pearson
struct PearsonResult {
    double r = 0.0;
    int64_t pairs = 0;    // pairs used
    int64_t skipped = 0;  // pairs skipped because either value is NaN
};

// a, b: S x S row-major. Reads only the strict upper triangle (i < j). r is NaN when fewer than 2 pairs are
// used or either side is degenerate over them (compare_degenerate).
PearsonResult pearson_upper_ref(const float* a, const float* b, int64_t S);

// Shapes only: both square, of the same size, at least 3 stimuli (InputError naming them). What the backends'
// operations on RDMs check (their data may be on a device): a degenerate RDM then gives NaN for every measure.
void check_rdm_dims(int64_t a_rows, int64_t a_cols, int64_t b_rows, int64_t b_cols, const char* name_a,
                    const char* name_b);
// check_rdm_dims and no infinite value (InputError naming the row and column): the boundary check of RDMs read
// from files.
void check_rdm_shapes(const MatrixView& a, const MatrixView& b, const char* name_a, const char* name_b);

// check_rdm_shapes, then each RDM must not be degenerate (rdm_degenerate_reason): InputError naming the RDM
// and why. What a user-facing comparison runs first (the compare command, bootstrap and permutation tests).
void check_rdm_pair(const MatrixView& a, const MatrixView& b, const char* name_a, const char* name_b);

// Pearson from the five double sums over n pairs (shared by both twins): means first, then centred sums.
double pearson_from_centred(double sxx, double syy, double sxy);

}  // namespace rsa

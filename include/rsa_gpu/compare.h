// Comparison of two RDMs: Pearson correlation over the strict upper triangle (the tutorial's correlate_rdms),
// two passes with double accumulation, skipping pairs where either RDM is NaN. CPU twin here.
#pragma once
#include <cstdint>

#include "rsa_gpu/matrix.h"

namespace rsa {

struct PearsonResult {
    double r = 0.0;
    int64_t pairs = 0;    // pairs used
    int64_t skipped = 0;  // pairs skipped because either value is NaN
};

// a, b: S x S row-major. Reads only the strict upper triangle (i < j).
PearsonResult pearson_upper_ref(const float* a, const float* b, int64_t S);

// Checks that both are square and of the same size (InputError naming them otherwise).
void check_rdm_pair(const Matrix& a, const Matrix& b, const char* name_a, const char* name_b);

// Pearson from the five double sums over n pairs (shared by both twins): means first, then centred sums.
double pearson_from_centred(double sxx, double syy, double sxy);

}  // namespace rsa

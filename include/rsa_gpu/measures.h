// RDM comparison measures over the strict upper triangle of two S x S row-major float RDMs (pairs where either
// value is NaN are skipped): Pearson, Spearman (Pearson of average ranks, ties as scipy.stats.rankdata
// 'average'), Kendall tau-a ((concordant - discordant) / (n (n - 1) / 2), ties count as neither; Knight's
// O(n log n) algorithm) and cosine; plus linear CKA (biased, and debiased per Song et al. 2012 / Nguyen et al.)
// of two response matrices. Degenerate inputs (compare.h: values constant up to float rounding) give NaN for
// every measure, and the check_* functions turn them into InputErrors naming the data. CPU twins here; GPU
// versions in kernels/measures.cuh.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "rsa_gpu/compare.h"
#include "rsa_gpu/matrix.h"

namespace rsa {

enum class Measure { Pearson, Spearman, Kendall, Cosine };

// "pearson", "spearman", "kendall", "cosine" (InputError listing the valid names otherwise).
Measure parse_measure(const std::string& name);
const char* measure_name(Measure m);

struct CompareResult {
    double value = 0.0;   // NaN, for every measure, when the used pairs are degenerate (compare_degenerate:
                          // fewer than 2, or either side constant up to float rounding)
    int64_t pairs = 0;    // pairs used
    int64_t skipped = 0;  // pairs skipped because either value is NaN
};

// a, b: S x S row-major. Reads only the strict upper triangle (i < j). Every measure first takes the Pearson
// moments of the used pairs (upper_moments) and is NaN when compare_degenerate says so.
CompareResult compare_upper_ref(Measure m, const float* a, const float* b, int64_t S);

// Building blocks of the twins (exposed for tests).
// 1-based ranks with ties averaged (scipy.stats.rankdata(method='average')); no NaN allowed.
std::vector<double> rank_average(const std::vector<float>& v);
// Kendall tau-a of two equally long sequences (Knight's algorithm); NaN when n < 2.
double kendall_tau_a(const std::vector<float>& x, const std::vector<float>& y);

// Linear CKA of X (S x N1) and Y (S x N2), rows = stimuli: columns centred, Gram matrices in FP32 (cblas_ssyrk),
// HSIC sums in double. debiased: the unbiased HSIC estimator with zeroed diagonals (needs S >= 4).
// InputError for mismatched S (naming both shapes), empty matrices, S < 3 (S < 4 when debiased), as
// check_cka_shapes. NaN when either matrix is degenerate (responses_degenerate_reason), as every measure.
double cka_linear_ref(const MatrixView& x, const MatrixView& y, bool debiased);
void check_cka_shapes(int64_t s1, int64_t n1, int64_t s2, int64_t n2, bool debiased);

// Why a response matrix (rows = stimuli) gives no CKA ("" when it does): its stimuli are all the same response
// up to float rounding. Test: with column means m_j and the total centred sum of squares over all S x N values,
// spread_degenerate(S * N, RMS over j of m_j, that sum): the columns' spread across stimuli is zero or at most
// kDegenerateRelSpread of the responses' magnitude. Sums in double over the host matrix (both twins call it).
std::string responses_degenerate_reason(const MatrixView& x);

// check_cka_shapes, then neither matrix degenerate: InputError naming the matrix (name_x, name_y: file names or
// what they are) and why. What a user-facing CKA (the cka command) runs first.
void check_cka_inputs(const MatrixView& x, const MatrixView& y, bool debiased, const std::string& name_x,
                      const std::string& name_y);

// The 11 double sums both CKA twins reduce the Gram matrices K, L to (off: j != i; rK_i = sum_{j != i} K_ij).
struct CkaSums {
    double kl_off = 0, kk_off = 0, ll_off = 0;  // sum_{i != j} K L, K K, L L
    double kl_diag = 0, kk_diag = 0, ll_diag = 0;  // sum_i K_ii L_ii, K_ii^2, L_ii^2
    double rk = 0, rl = 0;                          // sum_i rK_i, sum_i rL_i
    double rkrl = 0, rkrk = 0, rlrl = 0;            // sum_i rK_i rL_i, rK_i^2, rL_i^2
};
double cka_from_sums(const CkaSums& s, int64_t S, bool debiased);

}  // namespace rsa

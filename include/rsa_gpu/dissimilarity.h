// Dissimilarities beyond the correlation distance, equal to rsatoolbox's calc_rdm (rsatoolbox/rdm/calc.py):
//   euclidean    squared euclidean distance / N (channels): the RDM engine's Gram path (RdmKind::Euclidean);
//   mahalanobis  (x_i - x_j) P (x_i - x_j)^T / N with a noise precision P (none: the identity, i.e. euclidean): the
//                rows whitened by P's Cholesky factor (Backend::whiten), then the euclidean engine;
//   crossnobis   leave-one-run-out cross-validated mahalanobis: per run f, train means (the other runs' trials) and
//                test means (run f's trials) of every condition, K = sum_f A_f P B_f^T (Backend::cross_gram), then
//                d_ij = (K_ii + K_jj - K_ij - K_ji) / (N folds): unbiased, as calc_rdm_crossnobis.
// The noise precision is a file (N x N, symmetric positive definite) or "diag": rsatoolbox's
// prec_from_residuals(residuals, method='diag') of the residuals around each group's mean (group: the condition, or
// the (run, condition) pair when runs are given). With --conditions, rows are averaged per condition first (the
// conditions sorted by value, as rsatoolbox's descriptor order). Here: the method names, the label files, the
// precision factor and its checks, and compute_dissimilarity_rdm (the stage the rdm command and the main job call);
// the two Backend operations' CPU twins (whiten_ref, cross_gram_ref).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "rsa_gpu/array.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/matrix.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/rdm_engine.h"

namespace rsa {

enum class Dissimilarity { Correlation, Euclidean, Mahalanobis, Crossnobis };
// "correlation", "euclidean", "mahalanobis", "crossnobis"; InputError naming `option` and the choices otherwise.
Dissimilarity parse_dissimilarity(const std::string& text, const std::string& option);
const char* dissimilarity_name(Dissimilarity d);

// Where the noise precision comes from: none (the identity), an .npy file (N x N), or "diag" from residuals.
struct NoiseSource {
    enum Kind { Identity, File, Diag, Given } kind = Identity;
    std::string path;  // File: the .npy; Given: what names the matrix in messages (e.g. "noise")
    NpyArray given;    // Given: the precision matrix itself (the Python API's array)
};
NoiseSource parse_noise(const std::string& text);  // "" -> Identity, "diag" -> Diag, else File

struct DissimilaritySpec {
    Dissimilarity method = Dissimilarity::Correlation;
    NoiseSource noise;
    std::vector<int64_t> conditions;  // per row (empty: every row its own condition)
    std::vector<int64_t> runs;        // per row (crossnobis)
    std::string conditions_what = "--conditions", runs_what = "--runs";  // names in messages (the files)
};

// A 1-D label file (.npy, integer, bool or integral float values; S x 1 and 1 x S accepted). InputError naming
// `what` for another shape or a non-integral value.
std::vector<int64_t> load_labels(const std::string& path, const std::string& what);

// The checks of a spec against an S x N input before any work (InputError naming the files): options that do not
// apply to the method, label lengths, crossnobis' runs (at least 2) and conditions (at least 3, each in every run),
// --noise diag without the groups it needs.
void check_dissimilarity_spec(const DissimilaritySpec& spec, int64_t S, int64_t N);

// The whitening factor of a noise precision P (N x N): its Cholesky factor L (P = L L^T, lower triangular, N x N
// float, computed in double by LAPACK's dpotrf). InputError naming `what`: another shape than N x N, non-finite
// values, not symmetric (relative 1e-5, the first pair named), not positive definite (the leading minor named).
Matrix precision_factor(const NpyArray& precision, int64_t N, const std::string& what);

// rsatoolbox's prec_from_residuals(residuals, method='diag'): residuals = each row less its group's mean (groups:
// one id per row), columns demeaned, var_j = sum r^2 / (rows - 1), precision 1 / var_j. InputError naming `what`
// when a channel has no residual variance.
std::vector<double> diag_precision_from_residuals(const Matrix& x, const std::vector<int64_t>& groups,
                                                  const std::string& what);

// The sorted distinct labels and, per row, its index among them.
struct Grouping {
    std::vector<int64_t> values;
    std::vector<int64_t> index;
};
Grouping group_labels(const std::vector<int64_t>& labels);

struct DissimilarityResult {
    RdmResult rdm;                          // C x C (or S x S without conditions), on the backend's device
    std::vector<int64_t> condition_values;  // the rows' conditions in RDM order (empty without conditions)
};

// The RDM of x (S x N) by `spec` on `backend`, after check_dissimilarity_spec. Correlation without conditions is
// compute_rdm unchanged; euclidean and mahalanobis go through compute_rdm's plans (tiles, streaming, the OOM
// fallback) with RdmKind::Euclidean after averaging by condition, centring the columns (distances do not change; the
// Gram entries get smaller, so float32 loses less) and whitening; crossnobis keeps its C x C result in memory.
// `what` names the data in messages.
DissimilarityResult compute_dissimilarity_rdm(Backend& backend, const Matrix& x, const DissimilaritySpec& spec,
                                              const RdmOptions& options, const std::string& what);

// ---- the CPU twins of Backend::whiten and Backend::cross_gram (OpenBLAS SGEMM)
Matrix whiten_ref(const MatrixView& x, const MatrixView& factor);
Matrix cross_gram_ref(const MatrixView& train, const MatrixView& test, int64_t folds);
// The shapes both backends check (RuntimeError: a caller's bug, the driver checks user input).
void check_whiten_shapes(int64_t S, int64_t N, int64_t factor_rows, int64_t factor_cols);
void check_cross_gram_shapes(int64_t train_rows, int64_t train_cols, int64_t test_rows, int64_t test_cols,
                             int64_t folds);

}  // namespace rsa

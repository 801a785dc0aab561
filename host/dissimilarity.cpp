// The dissimilarity stage (dissimilarity.h): method and noise parsing, label files, the checks of a spec, the noise
// precision (a file's Cholesky factor by LAPACK's dpotrf, or rsatoolbox's diagonal estimate from residuals), and
// compute_dissimilarity_rdm: euclidean and mahalanobis through the RDM engine (compute_rdm, RdmKind::Euclidean) after
// averaging by condition, centring and whitening; crossnobis from per-run condition means and Backend::cross_gram.
#include "rsa_gpu/dissimilarity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/interrupt.h"

// LAPACK's Cholesky factorisation (in OpenBLAS, which the CPU twins link already).
extern "C" void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);

namespace rsa {

namespace {

std::string label_text(int64_t v) { return std::to_string(v); }

// Row-wise means of x per group (groups.index per row, groups.values.size() groups), in double.
std::vector<double> group_sums(const Matrix& x, const std::vector<int64_t>& index, int64_t groups,
                               std::vector<int64_t>* counts) {
    const int64_t N = x.cols;
    std::vector<double> sums = checked_alloc<double>(static_cast<size_t>(groups * N), "group sums");
    counts->assign(static_cast<size_t>(groups), 0);
    for (int64_t r = 0; r < x.rows; ++r) {
        const int64_t g = index[static_cast<size_t>(r)];
        double* s = sums.data() + g * N;
        const float* xr = x.row(r);
        for (int64_t n = 0; n < N; ++n) s[n] += xr[n];
        ++(*counts)[static_cast<size_t>(g)];
    }
    return sums;
}

// Subtracts from rows [0, rows) of m (rows x N, double) their column means: the same vector off every row leaves
// every difference of rows, so every distance, as it is, and makes the Gram entries smaller (less float32 loss).
void centre_columns(double* m, int64_t rows, int64_t N) {
    for (int64_t n = 0; n < N; ++n) {
        double mean = 0.0;
        for (int64_t r = 0; r < rows; ++r) mean += m[r * N + n];
        mean /= static_cast<double>(rows);
        for (int64_t r = 0; r < rows; ++r) m[r * N + n] -= mean;
    }
}

Matrix to_float(const double* m, int64_t rows, int64_t N, const std::string& what) {
    Matrix out = checked_matrix(rows, N, what);
    for (int64_t i = 0; i < rows * N; ++i) out.data[static_cast<size_t>(i)] = static_cast<float>(m[i]);
    return out;
}

// The whitening factor of the spec's noise for N channels (an empty Matrix for the identity); residual groups for
// "diag" are `groups` (one id per row of x).
Matrix noise_factor(const DissimilaritySpec& spec, const Matrix& x, const std::vector<int64_t>& groups,
                    const std::string& what) {
    const int64_t N = x.cols;
    switch (spec.noise.kind) {
        case NoiseSource::Identity: return Matrix();
        case NoiseSource::File: return precision_factor(npy_load(spec.noise.path), N, spec.noise.path);
        case NoiseSource::Given: return precision_factor(spec.noise.given, N, spec.noise.path);
        case NoiseSource::Diag: {
            const std::vector<double> prec = diag_precision_from_residuals(x, groups, what);
            Matrix f(1, N);
            for (int64_t n = 0; n < N; ++n) f.data[static_cast<size_t>(n)] = static_cast<float>(std::sqrt(prec[n]));
            return f;
        }
    }
    return Matrix();
}

DissimilarityResult crossnobis(Backend& backend, const Matrix& x, const DissimilaritySpec& spec,
                               const std::string& what) {
    const int64_t N = x.cols;
    const Grouping cond = group_labels(spec.conditions), run = group_labels(spec.runs);
    const int64_t C = static_cast<int64_t>(cond.values.size()), F = static_cast<int64_t>(run.values.size());
    // Sums and counts per (run, condition) and per condition.
    std::vector<int64_t> cell(static_cast<size_t>(x.rows));
    for (int64_t r = 0; r < x.rows; ++r) cell[r] = run.index[r] * C + cond.index[r];
    std::vector<int64_t> cell_n;
    const std::vector<double> cell_sum = group_sums(x, cell, F * C, &cell_n);
    std::vector<double> total = checked_alloc<double>(static_cast<size_t>(C * N), "condition sums");
    std::vector<int64_t> total_n(static_cast<size_t>(C), 0);
    for (int64_t f = 0; f < F; ++f)
        for (int64_t c = 0; c < C; ++c) {
            total_n[c] += cell_n[f * C + c];
            for (int64_t n = 0; n < N; ++n) total[c * N + n] += cell_sum[(f * C + c) * N + n];
        }
    // Per fold f: test = run f's mean of each condition, train = the mean of the other runs' trials (rsatoolbox's
    // average_dataset_by of the training subset), each centred over the conditions.
    std::vector<double> train = checked_alloc<double>(static_cast<size_t>(F * C * N), "crossnobis train means");
    std::vector<double> test = checked_alloc<double>(static_cast<size_t>(F * C * N), "crossnobis test means");
    for (int64_t f = 0; f < F; ++f) {
        for (int64_t c = 0; c < C; ++c) {
            const int64_t k = f * C + c;
            const double n_test = static_cast<double>(cell_n[k]);
            const double n_train = static_cast<double>(total_n[c] - cell_n[k]);
            for (int64_t n = 0; n < N; ++n) {
                test[k * N + n] = cell_sum[k * N + n] / n_test;
                train[k * N + n] = (total[c * N + n] - cell_sum[k * N + n]) / n_train;
            }
        }
        centre_columns(train.data() + f * C * N, C, N);
        centre_columns(test.data() + f * C * N, C, N);
    }
    check_interrupt("the crossnobis means");
    Array a(to_float(train.data(), F * C, N, "crossnobis train means"));
    Array b(to_float(test.data(), F * C, N, "crossnobis test means"));
    const Matrix factor = noise_factor(spec, x, cell, what);
    if (!factor.data.empty()) {
        a = backend.whiten(a, factor);
        b = backend.whiten(b, factor);
    }
    const Matrix k = backend.cross_gram(a, b, F).to_matrix();
    // d_ij = (K_ii + K_jj - K_ij - K_ji) / N, averaged over the folds.
    Matrix d(C, C);
    const double scale = 1.0 / (static_cast<double>(N) * static_cast<double>(F));
    for (int64_t i = 0; i < C; ++i)
        for (int64_t j = 0; j < C; ++j)
            if (i != j)
                d.at(i, j) = static_cast<float>(
                    (static_cast<double>(k.at(i, i)) + k.at(j, j) - k.at(i, j) - k.at(j, i)) * scale);
    DissimilarityResult res;
    res.condition_values = cond.values;
    res.rdm.plan.stimuli = C;
    res.rdm.plan.neurons = N;
    res.rdm.plan.rdm_kind = RdmKind::Euclidean;
    res.rdm.rdm = Array(std::move(d));
    return res;
}

}  // namespace

Dissimilarity parse_dissimilarity(const std::string& text, const std::string& option) {
    if (text == "correlation") return Dissimilarity::Correlation;
    if (text == "euclidean") return Dissimilarity::Euclidean;
    if (text == "mahalanobis") return Dissimilarity::Mahalanobis;
    if (text == "crossnobis") return Dissimilarity::Crossnobis;
    throw InputError(option + ": unknown dissimilarity '" + text +
                     "': expected correlation, euclidean, mahalanobis or crossnobis");
}

const char* dissimilarity_name(Dissimilarity d) {
    switch (d) {
        case Dissimilarity::Correlation: return "correlation";
        case Dissimilarity::Euclidean: return "euclidean";
        case Dissimilarity::Mahalanobis: return "mahalanobis";
        case Dissimilarity::Crossnobis: return "crossnobis";
    }
    return "?";
}

NoiseSource parse_noise(const std::string& text) {
    NoiseSource n;
    if (text.empty()) return n;
    if (text == "diag") {
        n.kind = NoiseSource::Diag;
        return n;
    }
    n.kind = NoiseSource::File;
    n.path = text;
    return n;
}

std::vector<int64_t> load_labels(const std::string& path, const std::string& what) {
    const NpyArray a = npy_load(path);
    const auto& s = a.shape;
    const bool vector = s.size() == 1 || (s.size() == 2 && (s[0] == 1 || s[1] == 1));
    if (!vector || a.count() == 0) {
        std::ostringstream os;
        os << what << ": expected a 1-D array of labels (one per response row), got shape (";
        for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
        os << ")";
        throw InputError(os.str());
    }
    std::vector<int64_t> out(a.values.size());
    for (size_t i = 0; i < a.values.size(); ++i) {
        const double v = a.values[i];
        if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 9.0e15)
            throw InputError(what + ": label " + std::to_string(i) + " is " + std::to_string(v) +
                             ", expected an integer");
        out[i] = static_cast<int64_t>(v);
    }
    return out;
}

Grouping group_labels(const std::vector<int64_t>& labels) {
    Grouping g;
    g.values = labels;
    std::sort(g.values.begin(), g.values.end());
    g.values.erase(std::unique(g.values.begin(), g.values.end()), g.values.end());
    g.index.resize(labels.size());
    for (size_t i = 0; i < labels.size(); ++i)
        g.index[i] = std::lower_bound(g.values.begin(), g.values.end(), labels[i]) - g.values.begin();
    return g;
}

void check_dissimilarity_spec(const DissimilaritySpec& spec, int64_t S, int64_t N) {
    (void)N;
    const char* name = dissimilarity_name(spec.method);
    const bool noise = spec.noise.kind != NoiseSource::Identity;
    if (noise && spec.method != Dissimilarity::Mahalanobis && spec.method != Dissimilarity::Crossnobis)
        throw InputError(std::string("--noise applies to mahalanobis and crossnobis, not ") + name);
    if (!spec.runs.empty() && spec.method != Dissimilarity::Crossnobis)
        throw InputError(std::string("--runs applies to crossnobis only, not ") + name);
    if (!spec.conditions.empty() && spec.method == Dissimilarity::Correlation)
        throw InputError("--conditions applies to euclidean, mahalanobis and crossnobis, not correlation");
    if (spec.method == Dissimilarity::Crossnobis && (spec.runs.empty() || spec.conditions.empty()))
        throw InputError("crossnobis needs --runs (each row's run) and --conditions (each row's condition)");
    if (spec.noise.kind == NoiseSource::Diag && spec.conditions.empty())
        throw InputError("--noise diag estimates the noise from the residuals around each condition's mean: give "
                         "--conditions (each row's condition)");
    auto check_length = [S](const std::vector<int64_t>& labels, const std::string& what) {
        if (!labels.empty() && static_cast<int64_t>(labels.size()) != S)
            throw InputError(what + ": " + std::to_string(labels.size()) + " labels, but the responses have " +
                             std::to_string(S) + " rows (one label per row)");
    };
    check_length(spec.conditions, spec.conditions_what);
    check_length(spec.runs, spec.runs_what);
    if (spec.conditions.empty()) return;
    const Grouping cond = group_labels(spec.conditions);
    if (cond.values.size() < 3)
        throw InputError(spec.conditions_what + ": " + std::to_string(cond.values.size()) +
                         " condition(s); an RDM needs at least 3 conditions");
    if (spec.method != Dissimilarity::Crossnobis) return;
    const Grouping run = group_labels(spec.runs);
    if (run.values.size() < 2)
        throw InputError(spec.runs_what + ": every row is in run " + label_text(run.values[0]) +
                         "; crossnobis cross-validates across runs and needs at least 2");
    const size_t C = cond.values.size();
    std::vector<char> seen(run.values.size() * C, 0);
    for (size_t r = 0; r < spec.runs.size(); ++r) seen[static_cast<size_t>(run.index[r]) * C + cond.index[r]] = 1;
    for (size_t f = 0; f < run.values.size(); ++f)
        for (size_t c = 0; c < C; ++c)
            if (!seen[f * C + c])
                throw InputError(spec.conditions_what + ": condition " + label_text(cond.values[c]) +
                                 " has no rows in run " + label_text(run.values[f]) + " (" + spec.runs_what +
                                 "); crossnobis needs every condition in every run");
}

Matrix precision_factor(const NpyArray& p, int64_t N, const std::string& what) {
    if (p.shape.size() != 2 || p.shape[0] != N || p.shape[1] != N) {
        std::ostringstream os;
        os << what << ": the noise precision must be N x N = " << N << " x " << N
           << " (one row and column per response column), got shape (";
        for (size_t i = 0; i < p.shape.size(); ++i) os << (i ? ", " : "") << p.shape[i];
        os << ")";
        throw InputError(os.str());
    }
    double largest = 0.0;
    for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
            const double v = p.values[static_cast<size_t>(i * N + j)];
            if (!std::isfinite(v))
                throw InputError(what + ": non-finite value " + std::to_string(v) + " at row " + std::to_string(i) +
                                 ", column " + std::to_string(j));
            largest = std::max(largest, std::fabs(v));
        }
    for (int64_t i = 0; i < N; ++i)
        for (int64_t j = i + 1; j < N; ++j) {
            const double a = p.values[static_cast<size_t>(i * N + j)], b = p.values[static_cast<size_t>(j * N + i)];
            if (std::fabs(a - b) > 1e-5 * largest)
                throw InputError(what + ": the noise precision is not symmetric: (" + std::to_string(i) + ", " +
                                 std::to_string(j) + ") is " + std::to_string(a) + ", (" + std::to_string(j) + ", " +
                                 std::to_string(i) + ") is " + std::to_string(b));
        }
    if (N > std::numeric_limits<int>::max()) throw InputError(what + ": too many channels for LAPACK");
    std::vector<double> a = checked_alloc<double>(static_cast<size_t>(N * N), "the noise precision's factor");
    std::copy(p.values.begin(), p.values.end(), a.begin());
    // Column-major 'U' on the row-major buffer: P = U^T U, and U^T (lower) is the row-major lower triangle.
    const int n = static_cast<int>(N);
    int info = 0;
    dpotrf_("U", &n, a.data(), &n, &info);
    if (info > 0)
        throw InputError(what + ": the noise precision is not positive definite (its leading " +
                         std::to_string(info) + " x " + std::to_string(info) +
                         " minor is not); a precision matrix is the inverse of a covariance");
    if (info < 0) throw RuntimeError("dpotrf: argument " + std::to_string(-info) + " is invalid");
    Matrix f(N, N);
    for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j <= i; ++j) f.at(i, j) = static_cast<float>(a[static_cast<size_t>(i * N + j)]);
    return f;
}

std::vector<double> diag_precision_from_residuals(const Matrix& x, const std::vector<int64_t>& groups,
                                                  const std::string& what) {
    const int64_t S = x.rows, N = x.cols;
    const Grouping g = group_labels(groups);
    const int64_t G = static_cast<int64_t>(g.values.size());
    std::vector<int64_t> counts;
    std::vector<double> means = group_sums(x, g.index, G, &counts);
    for (int64_t k = 0; k < G; ++k)
        for (int64_t n = 0; n < N; ++n) means[k * N + n] /= static_cast<double>(counts[k]);
    // rsatoolbox: the residuals' columns demeaned, var = sum r^2 / (rows - 1), precision = 1 / var.
    std::vector<double> mean_r(static_cast<size_t>(N), 0.0), var(static_cast<size_t>(N), 0.0);
    for (int64_t r = 0; r < S; ++r) {
        const double* m = means.data() + g.index[r] * N;
        for (int64_t n = 0; n < N; ++n) mean_r[n] += x.at(r, n) - m[n];
    }
    for (int64_t n = 0; n < N; ++n) mean_r[n] /= static_cast<double>(S);
    for (int64_t r = 0; r < S; ++r) {
        const double* m = means.data() + g.index[r] * N;
        for (int64_t n = 0; n < N; ++n) {
            const double d = x.at(r, n) - m[n] - mean_r[n];
            var[n] += d * d;
        }
    }
    std::vector<double> prec(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) {
        var[n] /= static_cast<double>(S - 1);
        if (!(var[n] > 0.0))
            throw InputError(what + ": column " + std::to_string(n) +
                             " has no residual variance around the condition means, so --noise diag has no precision "
                             "for it (every condition needs repeated rows that differ)");
        prec[n] = 1.0 / var[n];
    }
    return prec;
}

DissimilarityResult compute_dissimilarity_rdm(Backend& backend, const Matrix& x, const DissimilaritySpec& spec,
                                              const RdmOptions& options, const std::string& what) {
    const int64_t S = x.rows, N = x.cols;
    check_dissimilarity_spec(spec, S, N);
    DissimilarityResult res;
    if (spec.method == Dissimilarity::Correlation) {
        res.rdm = compute_rdm(backend, x, options, what);
        return res;
    }
    check_rdm_input(x, what);  // shape and finite values, before the means and the noise estimate
    if (spec.method == Dissimilarity::Crossnobis) return crossnobis(backend, x, spec, what);

    // Euclidean and mahalanobis: rows (or condition means), centred, whitened, then the engine's euclidean RDM.
    Array y;
    if (spec.conditions.empty()) {
        std::vector<double> col_mean(static_cast<size_t>(N), 0.0);
        for (int64_t r = 0; r < S; ++r)
            for (int64_t n = 0; n < N; ++n) col_mean[n] += x.at(r, n);
        for (double& v : col_mean) v /= static_cast<double>(S);
        Matrix c = checked_matrix(S, N, "the centred responses");
        for (int64_t r = 0; r < S; ++r)
            for (int64_t n = 0; n < N; ++n) c.at(r, n) = static_cast<float>(x.at(r, n) - col_mean[n]);
        y = Array(std::move(c));
    } else {
        const Grouping cond = group_labels(spec.conditions);
        const int64_t rows = static_cast<int64_t>(cond.values.size());
        std::vector<int64_t> counts;
        std::vector<double> m = group_sums(x, cond.index, rows, &counts);
        for (int64_t c = 0; c < rows; ++c)
            for (int64_t n = 0; n < N; ++n) m[c * N + n] /= static_cast<double>(counts[c]);
        centre_columns(m.data(), rows, N);
        y = Array(to_float(m.data(), rows, N, "the condition means"));
        res.condition_values = cond.values;
    }
    if (spec.method == Dissimilarity::Mahalanobis) {
        const Matrix factor = noise_factor(spec, x, spec.conditions, what);
        if (!factor.data.empty()) y = backend.whiten(y, factor);
    }
    RdmOptions o = options;
    o.kind = RdmKind::Euclidean;
    res.rdm = compute_rdm(backend, y, o, what);
    return res;
}

}  // namespace rsa

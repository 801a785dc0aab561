// CPU twins of the RDM statistics: stimulus bootstrap (quadratic forms in double via OpenBLAS dgemm over
// resample chunks), permutation test (only the cross term changes under relabelling), split-half noise ceiling
// (Spearman-Brown). The helpers shared with the GPU launchers (percentiles, the finishing formulas, the split
// plan, input checks) live here too, and the main job's default counts (default_stat_counts: the cost model and
// budgets of stats.h).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>

#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/stats.h"

namespace rsa {

// ---------------------------------------------------------------- shared helpers
double percentile_linear(std::vector<double> x, double q) {
    x.erase(std::remove_if(x.begin(), x.end(), [](double v) { return std::isnan(v); }), x.end());
    if (x.empty()) return std::numeric_limits<double>::quiet_NaN();
    std::sort(x.begin(), x.end());
    const double h = (static_cast<double>(x.size()) - 1.0) * (q / 100.0);
    const double fl = std::floor(h);
    const size_t lo = static_cast<size_t>(std::max(0.0, fl));
    const size_t hi = std::min(lo + 1, x.size() - 1);
    // numpy's _lerp: a + (b - a) * t, and b - (b - a) * (1 - t) when t >= 0.5
    const double t = h - fl, a = x[lo], b = x[hi], d = b - a;
    return t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
}

double bootstrap_r_from_sums(double n, double distinct, double sa, double saa, double sb, double sbb, double sab) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    if (!(n >= 2.0) || !(distinct >= 3.0)) return nan;
    const double sxx = saa - sa * sa / n, syy = sbb - sb * sb / n;
    if (!(sxx > 1e-12 * saa) || !(syy > 1e-12 * sbb)) return nan;
    return pearson_from_centred(sxx, syy, sab - sa * sb / n);
}

double permutation_p_value(double r_obs, const std::vector<double>& null) {
    int64_t ge = 0;
    for (double v : null) ge += (v >= r_obs);
    return (1.0 + static_cast<double>(ge)) / (1.0 + static_cast<double>(null.size()));
}

void round_for_exact_sums(double* f, int64_t n, double weight_sum) {
    double max_abs = 0.0;
    for (int64_t i = 0; i < n; ++i) max_abs = std::max(max_abs, std::fabs(f[i]));
    if (!(max_abs > 0.0) || !std::isfinite(max_abs)) return;
    int e = 0;
    std::frexp(std::max(weight_sum, 1.0) * max_abs, &e);  // weight_sum * max|f| < 2^e
    const double q = std::ldexp(1.0, e + 1 - 52);          // one bit of headroom: < 2^(e + 1) = 2^52 q / 2
    for (int64_t i = 0; i < n; ++i) f[i] = std::nearbyint(f[i] / q) * q;
}

void check_no_nan_upper(const MatrixView& m, const std::string& what) {
    for (int64_t i = 0; i < m.rows; ++i)
        for (int64_t j = i + 1; j < m.cols; ++j)
            if (std::isnan(m.at(i, j))) {
                std::ostringstream os;
                os << what << ": NaN at row " << i << ", column " << j
                   << " (the bootstrap and the permutation test need RDMs without NaN)";
                throw InputError(os.str());
            }
}

void bootstrap_summarise(BootstrapResult& res) {
    const size_t L = res.samples.size();
    res.lo.assign(L, 0.0);
    res.hi.assign(L, 0.0);
    res.nan_samples.assign(L, 0);
    for (size_t l = 0; l < L; ++l) {
        for (double v : res.samples[l]) res.nan_samples[l] += std::isnan(v);
        res.lo[l] = percentile_linear(res.samples[l], 2.5);
        res.hi[l] = percentile_linear(res.samples[l], 97.5);
    }
}

double spearman_brown(double r) { return 2.0 * r / (1.0 + r); }

// ---------------------------------------------------------------- default counts of the main job
double bootstrap_cost_per_resample(int64_t S, int64_t models) {
    const double s = static_cast<double>(S), L = static_cast<double>(std::max<int64_t>(models, 1));
    return s * s * (2.0 + 3.0 * L);
}

double permutation_cost_per_permutation(int64_t S, int64_t models) {
    const double s = static_cast<double>(S), L = static_cast<double>(std::max<int64_t>(models, 1));
    return L * s * (s - 1.0) / 2.0;
}

namespace {

std::string sci(double v) {
    char b[32];
    std::snprintf(b, sizeof(b), "%.2g", v);
    return b;
}

// The count of one statistic under `budget` (see default_stat_counts) and its note.
int scaled_count(int full, double per_unit, double budget, const char* stage, const char* what, const char* option,
                 int64_t S, int64_t models, bool gpu, std::string* note) {
    note->clear();
    const double fit = per_unit > 0.0 ? std::floor(budget / per_unit) : static_cast<double>(full);
    if (fit >= full) return full;
    const std::string size = std::to_string(S) + " stimuli and " + std::to_string(std::max<int64_t>(models, 1)) +
                             " model RDM(s) on the " + (gpu ? "GPU" : "CPU");
    const std::string ask = "ask for a number explicitly with " + std::string(option) + " N";
    if (fit < kMinDefaultStatCount) {
        *note = std::string("statistics: ") + stage + " is skipped by default for " + size + " (" +
                std::to_string(kMinDefaultStatCount) + " " + what + " would cost ~" + sci(kMinDefaultStatCount * per_unit) +
                " multiply-adds, over the default budget of " + sci(budget) + "); " + ask;
        return 0;
    }
    const int count = static_cast<int>(fit) / 100 * 100;
    *note = std::string("statistics: ") + std::to_string(count) + " " + what + " instead of " + std::to_string(full) +
            " by default for " + size + " (" + std::to_string(full) + " would cost ~" + sci(full * per_unit) +
            " multiply-adds, over the default budget of " + sci(budget) + "); " + ask;
    return count;
}

}  // namespace

StatCounts default_stat_counts(int64_t S, int64_t models, bool gpu) {
    StatCounts c;
    const double per_resample = bootstrap_cost_per_resample(S, models);
    const double per_permutation = permutation_cost_per_permutation(S, models);
    c.bootstrap = scaled_count(kDefaultBootstrapResamples, per_resample, gpu ? kBootstrapBudgetGpu : kBootstrapBudgetCpu,
                               "the bootstrap", "bootstrap resamples", "--bootstrap", S, models, gpu,
                               &c.bootstrap_note);
    c.permutations = scaled_count(kDefaultPermutations, per_permutation,
                                  gpu ? kPermutationBudgetGpu : kPermutationBudgetCpu, "the permutation test",
                                  "permutations", "--permutations", S, models, gpu, &c.permutation_note);
    c.bootstrap_cost = c.bootstrap * per_resample;
    c.permutation_cost = c.permutations * per_permutation;
    return c;
}

void check_noise_ceiling_input(int64_t trials, int64_t units, const std::vector<int64_t>& bins, int splits) {
    std::ostringstream os;
    if (static_cast<int64_t>(bins.size()) != trials)
        os << "noise ceiling: " << bins.size() << " bin ids for " << trials << " trials (rows of the responses)";
    else if (units < 1)
        os << "noise ceiling: the responses have no units (columns)";
    else if (splits < 1)
        os << "noise ceiling: the number of splits must be at least 1, got " << splits;
    else
        return;
    throw InputError(os.str());
}

SplitPlan split_halves_plan(const std::vector<int64_t>& bins, int split, uint64_t seed) {
    const int64_t T = static_cast<int64_t>(bins.size());
    std::map<int64_t, std::vector<int64_t>> by_bin;  // trials ascending within a bin
    for (int64_t t = 0; t < T; ++t) by_bin[bins[static_cast<size_t>(t)]].push_back(t);
    SplitPlan plan;
    plan.half.assign(bins.size(), -1);
    plan.bin_row.assign(bins.size(), -1);
    for (const auto& [id, trials] : by_bin) {
        const int64_t n = static_cast<int64_t>(trials.size());
        if (n < 2) {
            ++plan.bins_dropped;
            continue;
        }
        const int64_t row = static_cast<int64_t>(plan.kept_ids.size());
        plan.kept_ids.push_back(id);
        std::vector<int64_t> cur = trials;
        for (int64_t i = n - 1; i >= 1; --i) {
            const double u = philox_uniform01(
                seed, kStatsStreamSplit,
                static_cast<uint64_t>(static_cast<int64_t>(split) * T + trials[static_cast<size_t>(i)]));
            std::swap(cur[static_cast<size_t>(i)], cur[static_cast<size_t>(fisher_yates_partner(u, i))]);
        }
        for (int64_t k = 0; k < n; ++k) {
            const size_t t = static_cast<size_t>(cur[static_cast<size_t>(k)]);
            plan.half[t] = k < n / 2 ? 0 : 1;
            plan.bin_row[t] = row;
        }
    }
    return plan;
}

// ---------------------------------------------------------------- bootstrap
namespace {

double upper_mean(const MatrixView& m) {
    double s = 0.0;
    for (int64_t i = 0; i < m.rows; ++i)
        for (int64_t j = i + 1; j < m.cols; ++j) s += m.at(i, j);
    return s / (0.5 * static_cast<double>(m.rows) * static_cast<double>(m.rows - 1));
}

// Symmetric read of the strict upper triangle.
inline float sym(const MatrixView& m, int64_t i, int64_t j) { return i < j ? m.at(i, j) : m.at(j, i); }

void check_pairs(const MatrixView& ref, const std::vector<MatrixView>& models) {
    if (models.empty()) throw InputError("bootstrap: no model RDMs given");
    for (size_t l = 0; l < models.size(); ++l) {
        const std::string name = "model " + std::to_string(l);
        check_rdm_pair(ref, models[l], "reference RDM", name.c_str());
        check_no_nan_upper(models[l], name);
    }
    check_no_nan_upper(ref, "reference RDM");
}

using CountsFn = std::function<void(int64_t r0, int64_t rc, double* w)>;

// samples[l][r] from the quadratic forms q_m = w^T F_m w / 2, m = [A0, A0^2, then per model B0, B0^2, A0 B0].
// max_weight: the largest row sum of the counts (S for bootstrap draws): the forms are rounded for exact sums with it,
// so a resample's quadratic forms do not depend on its row in the dgemm (round_for_exact_sums).
std::vector<std::vector<double>> bootstrap_core(const MatrixView& ref, const std::vector<MatrixView>& models, int64_t R,
                                                double max_weight, const CountsFn& counts,
                                                const StatsProgress& progress) {
    const int64_t S = ref.rows, L = static_cast<int64_t>(models.size()), M = 2 + 3 * L;
    const double ma = upper_mean(ref);
    std::vector<double> mb(static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l) mb[static_cast<size_t>(l)] = upper_mean(models[static_cast<size_t>(l)]);
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(R, (int64_t{1} << 22) / S));
    std::vector<double> q(static_cast<size_t>(R * M)), w2(static_cast<size_t>(R)), distinct(w2.size());
    std::vector<double> F(static_cast<size_t>(S * S)), W(static_cast<size_t>(chunk * S)), T(W.size());
    for (int64_t m = 0; m < M; ++m) {
        for (int64_t i = 0; i < S; ++i)
            for (int64_t j = 0; j < S; ++j) {
                double f = 0.0;
                if (i != j) {
                    const double a0 = static_cast<double>(sym(ref, i, j)) - ma;
                    if (m == 0) f = a0;
                    else if (m == 1) f = a0 * a0;
                    else {
                        const int64_t l = (m - 2) / 3, kind = (m - 2) % 3;
                        const double b0 =
                            static_cast<double>(sym(models[static_cast<size_t>(l)], i, j)) - mb[static_cast<size_t>(l)];
                        f = kind == 0 ? b0 : kind == 1 ? b0 * b0 : a0 * b0;
                    }
                }
                F[static_cast<size_t>(i * S + j)] = f;
            }
        round_for_exact_sums(F.data(), S * S, max_weight);
        for (int64_t r0 = 0; r0 < R; r0 += chunk) {
            const int64_t rc = std::min(chunk, R - r0);
            check_interrupt("the bootstrap");
            counts(r0, rc, W.data());
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rc), static_cast<int>(S),
                        static_cast<int>(S), 1.0, W.data(), static_cast<int>(S), F.data(), static_cast<int>(S), 0.0,
                        T.data(), static_cast<int>(S));
            for (int64_t r = 0; r < rc; ++r) {
                const double* wr = W.data() + r * S;
                const double* tr = T.data() + r * S;
                double s = 0.0, s2 = 0.0, d = 0.0;
                for (int64_t j = 0; j < S; ++j) {
                    s += tr[j] * wr[j];
                    s2 += wr[j] * wr[j];
                    d += wr[j] > 0.0;
                }
                q[static_cast<size_t>((r0 + r) * M + m)] = 0.5 * s;
                if (progress) progress(m * R + r0 + r + 1, M * R);
                if (m == 0) {
                    w2[static_cast<size_t>(r0 + r)] = s2;
                    distinct[static_cast<size_t>(r0 + r)] = d;
                }
            }
        }
    }
    std::vector<std::vector<double>> samples(static_cast<size_t>(L), std::vector<double>(static_cast<size_t>(R)));
    const double SS = static_cast<double>(S) * static_cast<double>(S);
    for (int64_t r = 0; r < R; ++r) {
        const double* qr = q.data() + r * M;
        const double n = 0.5 * (SS - w2[static_cast<size_t>(r)]);
        for (int64_t l = 0; l < L; ++l)
            samples[static_cast<size_t>(l)][static_cast<size_t>(r)] =
                bootstrap_r_from_sums(n, distinct[static_cast<size_t>(r)], qr[0], qr[1], qr[2 + 3 * l], qr[3 + 3 * l], qr[4 + 3 * l]);
    }
    return samples;
}

}  // namespace

BootstrapResult bootstrap_ref(const MatrixView& ref, const std::vector<MatrixView>& models, int resamples, uint64_t seed,
                              int64_t first, const StatsProgress& progress) {
    check_pairs(ref, models);
    if (resamples < 1) throw InputError("bootstrap: the number of resamples must be at least 1");
    if (first < 0) throw InputError("bootstrap: the first resample index must be >= 0");
    const int64_t S = ref.rows;
    BootstrapResult res;
    res.samples = bootstrap_core(ref, models, resamples, static_cast<double>(S), [&](int64_t r0, int64_t rc, double* w) {
        std::fill(w, w + rc * S, 0.0);
        for (int64_t r = 0; r < rc; ++r)
            for (int64_t k = 0; k < S; ++k) w[r * S + bootstrap_draw(seed, S, first + r0 + r, k)] += 1.0;
    }, progress);
    bootstrap_summarise(res);
    return res;
}

std::vector<std::vector<double>> bootstrap_from_counts_ref(const MatrixView& ref, const std::vector<MatrixView>& models,
                                                           const std::vector<double>& counts, int64_t resamples) {
    check_pairs(ref, models);
    const int64_t S = ref.rows;
    if (resamples < 1 || static_cast<int64_t>(counts.size()) != resamples * S)
        throw InputError("bootstrap: counts must hold resamples x S values");
    double max_weight = 0.0;
    for (int64_t r = 0; r < resamples; ++r)
        max_weight = std::max(max_weight, std::accumulate(counts.begin() + r * S, counts.begin() + (r + 1) * S, 0.0));
    return bootstrap_core(ref, models, resamples, max_weight, [&](int64_t r0, int64_t rc, double* w) {
        std::copy(counts.begin() + r0 * S, counts.begin() + (r0 + rc) * S, w);
    }, {});
}

double bootstrap_r_bruteforce(const MatrixView& ref, const MatrixView& model, const std::vector<int64_t>& idx) {
    const size_t n = idx.size();
    double sa = 0.0, sb = 0.0, cnt = 0.0;
    for (size_t p = 0; p < n; ++p)
        for (size_t q = p + 1; q < n; ++q)
            if (idx[p] != idx[q]) {
                sa += sym(ref, idx[p], idx[q]);
                sb += sym(model, idx[p], idx[q]);
                cnt += 1.0;
            }
    std::vector<int64_t> distinct(idx);
    std::sort(distinct.begin(), distinct.end());
    if (cnt < 2.0 || std::unique(distinct.begin(), distinct.end()) - distinct.begin() < 3)
        return std::numeric_limits<double>::quiet_NaN();
    const double ma = sa / cnt, mb = sb / cnt;
    double sxx = 0.0, syy = 0.0, sxy = 0.0;
    for (size_t p = 0; p < n; ++p)
        for (size_t q = p + 1; q < n; ++q)
            if (idx[p] != idx[q]) {
                const double x = sym(ref, idx[p], idx[q]) - ma, y = sym(model, idx[p], idx[q]) - mb;
                sxx += x * x;
                syy += y * y;
                sxy += x * y;
            }
    return pearson_from_centred(sxx, syy, sxy);
}

// ---------------------------------------------------------------- permutation test
namespace {

struct PermInputs {
    int64_t S = 0;
    double ma = 0.0, sxx = 0.0, syy = 0.0;
    std::vector<double> b0;  // S x S, symmetric, centred, zero diagonal
};

PermInputs perm_inputs(const MatrixView& ref, const MatrixView& model) {
    check_rdm_pair(ref, model, "reference RDM", "model RDM");
    check_no_nan_upper(ref, "reference RDM");
    check_no_nan_upper(model, "model RDM");
    PermInputs in;
    const int64_t S = ref.rows;
    in.S = S;
    in.ma = upper_mean(ref);
    const double mb = upper_mean(model);
    in.b0.assign(static_cast<size_t>(S * S), 0.0);
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) {
            const double a = static_cast<double>(ref.at(i, j)) - in.ma, b = static_cast<double>(model.at(i, j)) - mb;
            in.sxx += a * a;
            in.syy += b * b;
            in.b0[static_cast<size_t>(i * S + j)] = b;
            in.b0[static_cast<size_t>(j * S + i)] = b;
        }
    return in;
}

// perm == nullptr: the identity.
double perm_r(const MatrixView& ref, const PermInputs& in, const int* perm) {
    const int64_t S = in.S;
    double sxy = 0.0;
    for (int64_t i = 0; i < S; ++i) {
        const int64_t pi = perm ? perm[i] : i;
        const double* brow = in.b0.data() + pi * S;
        const float* arow = ref.row(i);
        for (int64_t j = i + 1; j < S; ++j)
            sxy += (static_cast<double>(arow[j]) - in.ma) * brow[perm ? perm[j] : j];
    }
    return pearson_from_centred(in.sxx, in.syy, sxy);
}

}  // namespace

PermutationResult permutation_ref(const MatrixView& ref, const MatrixView& model, int permutations, uint64_t seed,
                                  int64_t first, const StatsProgress& progress) {
    if (permutations < 1) throw InputError("permutation test: the number of permutations must be at least 1");
    if (first < 0) throw InputError("permutation test: the first permutation index must be >= 0");
    const PermInputs in = perm_inputs(ref, model);
    PermutationResult res;
    res.r_obs = perm_r(ref, in, nullptr);
    res.null.resize(static_cast<size_t>(permutations));
    std::vector<int> perm(static_cast<size_t>(in.S));
    for (int p = 0; p < permutations; ++p) {
        check_interrupt("the permutation test");
        permutation_draw(seed, in.S, first + p, perm.data());
        res.null[static_cast<size_t>(p)] = perm_r(ref, in, perm.data());
        if (progress) progress(p + 1, permutations);
    }
    res.p_value = permutation_p_value(res.r_obs, res.null);
    return res;
}

double permutation_r_ref(const MatrixView& ref, const MatrixView& model, const std::vector<int>& perm) {
    const PermInputs in = perm_inputs(ref, model);
    if (static_cast<int64_t>(perm.size()) != in.S) throw InputError("permutation: wrong permutation length");
    std::vector<char> seen(perm.size(), 0);
    for (int v : perm) {
        if (v < 0 || v >= in.S || seen[static_cast<size_t>(v)]) throw InputError("permutation: not a permutation");
        seen[static_cast<size_t>(v)] = 1;
    }
    return perm_r(ref, in, perm.data());
}

// ---------------------------------------------------------------- noise ceiling
double split_half_r_ref(const MatrixView& resp, const std::vector<int64_t>& bin_row, const std::vector<int>& half,
                        int64_t rows) {
    const int64_t T = resp.rows, N = resp.cols;
    if (static_cast<int64_t>(bin_row.size()) != T || static_cast<int64_t>(half.size()) != T)
        throw InputError("split half: bin_row and half need one entry per trial");
    if (rows < 3) throw InputError("split half: at least 3 bins with 2 or more trials are needed");
    std::vector<double> sum(static_cast<size_t>(2 * rows * N), 0.0);
    std::vector<int64_t> count(static_cast<size_t>(2 * rows), 0);
    for (int64_t t = 0; t < T; ++t) {
        const int h = half[static_cast<size_t>(t)];
        const int64_t row = bin_row[static_cast<size_t>(t)];
        if (h < 0 || row < 0) continue;
        if (h > 1 || row >= rows) throw InputError("split half: half must be 0 or 1 and rows in range");
        const int64_t g = h * rows + row;
        ++count[static_cast<size_t>(g)];
        double* s = sum.data() + g * N;
        const float* x = resp.row(t);
        for (int64_t n = 0; n < N; ++n) s[n] += x[n];
    }
    std::vector<float> avg(sum.size()), rdm(static_cast<size_t>(2 * rows * rows));
    for (int64_t g = 0; g < 2 * rows; ++g) {
        const int64_t c = count[static_cast<size_t>(g)];
        if (c == 0) {
            std::ostringstream os;
            os << "split half: bin row " << g % rows << " has no trial in half " << g / rows;
            throw InputError(os.str());
        }
        for (int64_t n = 0; n < N; ++n)
            avg[static_cast<size_t>(g * N + n)] =
                static_cast<float>(sum[static_cast<size_t>(g * N + n)] / static_cast<double>(c));
    }
    for (int h = 0; h < 2; ++h) {
        rdm_ref(avg.data() + h * rows * N, rows, N, rdm.data() + h * rows * rows);
    }
    return pearson_upper_ref(rdm.data(), rdm.data() + rows * rows, rows).r;
}

NoiseCeilingResult noise_ceiling_ref(const MatrixView& resp, const std::vector<int64_t>& bins, int splits, uint64_t seed) {
    check_noise_ceiling_input(resp.rows, resp.cols, bins, splits);
    for (int64_t i = 0; i < resp.size(); ++i)
        if (!std::isfinite(resp.ptr[i])) {
            std::ostringstream os;
            os << "noise ceiling: non-finite response at trial " << i / resp.cols << ", unit " << i % resp.cols;
            throw InputError(os.str());
        }
    NoiseCeilingResult res;
    double total = 0.0;
    for (int s = 0; s < splits; ++s) {
        const SplitPlan plan = split_halves_plan(bins, s, seed);
        if (s == 0) {
            res.kept_ids = plan.kept_ids;
            res.bins_kept = static_cast<int64_t>(plan.kept_ids.size());
            res.bins_dropped = plan.bins_dropped;
        }
        const double r = split_half_r_ref(resp, plan.bin_row, plan.half, res.bins_kept);
        res.r_half.push_back(r);
        total += r;
    }
    res.r_half_mean = total / splits;
    res.ceiling = spearman_brown(res.r_half_mean);
    return res;
}

}  // namespace rsa

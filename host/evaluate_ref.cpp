// CPU twin of `rsa_gpu evaluate` (evaluate.h): rsatoolbox's eval_fixed, eval_bootstrap_pattern, eval_bootstrap_rdm
// and eval_bootstrap for fixed models in float64, its Result's means, standard errors, intervals and tests of every
// test_type (t-test: extract_variances with _correct_1d, t_test_0, t_test_nc, t_tests; bootstrap: the sample counts
// of zero_tests, nc_tests and bootstrap_pair_tests; ranksum: scipy's wilcoxon as ranksum_value_test and
// ranksum_pair_test call it), get_ci's interval of that test type (bootstrap: np.quantile percentiles of the framed
// samples; else t), the multiple-comparison corrections and a permutation test of stimulus labels. The
// resamples run in the batches of the memory plan (evaluate_plan.h). Comparisons and noise ceilings: host/rdm_compare_methods.cpp. Two stages:
// evaluate_samples (the raw samples of a range of resamples and permutations: a rank's share, distributed_stats.h)
// and evaluate_summary (point estimates and inference from the whole run's samples).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <numeric>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/stats.h"

namespace rsa {

EvalInference parse_eval_inference(const std::string& name) {
    if (name == "fixed") return EvalInference::Fixed;
    if (name == "pattern") return EvalInference::Pattern;
    if (name == "rdm") return EvalInference::Rdm;
    if (name == "both") return EvalInference::Both;
    throw InputError("unknown inference '" + name + "' (valid: fixed, pattern, rdm, both)");
}

const char* eval_inference_name(EvalInference i) {
    switch (i) {
        case EvalInference::Fixed: return "fixed";
        case EvalInference::Pattern: return "pattern";
        case EvalInference::Rdm: return "rdm";
        case EvalInference::Both: return "both";
    }
    return "unknown";
}

EvalTest parse_eval_test(const std::string& name) {
    if (name == "t-test") return EvalTest::TTest;
    if (name == "bootstrap") return EvalTest::Bootstrap;
    if (name == "ranksum") return EvalTest::Ranksum;
    throw InputError("unknown test '" + name + "' (valid: t-test, bootstrap, ranksum)");
}

const char* eval_test_name(EvalTest t) {
    switch (t) {
        case EvalTest::TTest: return "t-test";
        case EvalTest::Bootstrap: return "bootstrap";
        case EvalTest::Ranksum: return "ranksum";
    }
    return "unknown";
}

EvalInterval eval_interval(EvalTest t) {
    // Result.get_ci: `if test_type == 'bootstrap'` percentiles, `else` the t interval
    return t == EvalTest::Bootstrap ? EvalInterval::Percentile : EvalInterval::T;
}

const char* eval_interval_name(EvalInterval i) { return i == EvalInterval::Percentile ? "percentile" : "t"; }

void check_eval_test(EvalTest test, EvalInference inference, const std::string& t, const std::string& i) {
    if (test == EvalTest::Bootstrap && inference == EvalInference::Fixed)
        throw InputError("evaluate: " + t + " bootstrap counts over bootstrap samples, and " + i +
                         " 'fixed' has none (use " + i + " pattern, rdm or both, or " + t + " t-test or ranksum)");
    if (test == EvalTest::Ranksum && inference != EvalInference::Fixed)
        throw InputError("evaluate: " + t + " ranksum is rsatoolbox's Wilcoxon test over the data RDMs' evaluations "
                         "of " + i + " 'fixed'; rsatoolbox rejects it on bootstrap samples ('provided evaluations "
                         "array has wrong dimensionality'): use " + i + " fixed, or " + t + " t-test or bootstrap");
}

Correction parse_correction(const std::string& name) {
    if (name == "fdr") return Correction::Fdr;
    if (name == "bonferroni") return Correction::Bonferroni;
    if (name == "none") return Correction::None;
    throw InputError("unknown correction '" + name + "' (valid: fdr, bonferroni, none)");
}

const char* correction_name(Correction c) {
    switch (c) {
        case Correction::Fdr: return "fdr";
        case Correction::Bonferroni: return "bonferroni";
        case Correction::None: return "none";
    }
    return "unknown";
}

// ------------------------------------------------------------------ Student's t distribution
namespace {

// Continued fraction of the incomplete beta function (modified Lentz).
double beta_cf(double a, double b, double x) {
    const double tiny = 1e-300;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    if (std::fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 10000; ++m) {
        const double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + aa * d;
        if (std::fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (std::fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + aa * d;
        if (std::fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (std::fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        const double del = d * c;
        h *= del;
        if (std::fabs(del - 1.0) < 1e-16) break;
    }
    return h;
}

// Regularised incomplete beta I_x(a, b).
double beta_inc(double a, double b, double x) {
    if (x <= 0.0) return 0.0;
    if (x >= 1.0) return 1.0;
    const double ln_front =
        std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
    const double front = std::exp(ln_front);
    if (x < (a + 1.0) / (a + b + 2.0)) return front * beta_cf(a, b, x) / a;
    return 1.0 - front * beta_cf(b, a, 1.0 - x) / b;
}

}  // namespace

double student_t_cdf(double t, double dof) {
    if (std::isnan(t) || !(dof > 0.0)) return std::nan("");
    if (std::isinf(t)) return t > 0 ? 1.0 : 0.0;
    const double x = dof / (dof + t * t);
    const double tail = 0.5 * beta_inc(0.5 * dof, 0.5, x);
    return t > 0.0 ? 1.0 - tail : tail;
}

double student_t_ppf(double p, double dof) {
    if (!(p > 0.0 && p < 1.0) || !(dof > 0.0)) return std::nan("");
    double lo = -1.0, hi = 1.0;
    while (student_t_cdf(lo, dof) > p) lo *= 2.0;
    while (student_t_cdf(hi, dof) < p) hi *= 2.0;
    for (int i = 0; i < 200 && hi - lo > 1e-15 * std::max(1.0, std::fabs(lo)); ++i) {
        const double mid = 0.5 * (lo + hi);
        (student_t_cdf(mid, dof) < p ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
}

// ------------------------------------------------------------------ Wilcoxon signed-rank (scipy.stats.wilcoxon)
double wilcoxon_signed_rank_p(const std::vector<double>& d) {
    const double nan = std::nan("");
    const int64_t n = static_cast<int64_t>(d.size());
    if (n == 0) return nan;
    std::vector<double> a;  // |d| of the nonzero differences (scipy's 'wilcox': zeros dropped)
    std::vector<char> positive;
    int64_t zeros = 0;
    for (double x : d) {
        if (std::isnan(x)) return nan;  // nan_policy 'propagate'
        if (x == 0.0) {
            ++zeros;
            continue;
        }
        a.push_back(std::fabs(x));
        positive.push_back(x > 0.0);
    }
    const int64_t c = static_cast<int64_t>(a.size());
    // average ranks of |d| (ordinal rank + (tie count - 1) / 2) and the tie groups
    std::vector<int64_t> order(static_cast<size_t>(c));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&a](int64_t i, int64_t j) { return a[i] < a[j]; });
    std::vector<double> rank(static_cast<size_t>(c));
    double tie_sum = 0.0;
    bool ties = false;
    for (int64_t i = 0; i < c;) {
        int64_t j = i;
        while (j + 1 < c && a[order[j + 1]] == a[order[i]]) ++j;
        const double t = static_cast<double>(j - i + 1);
        for (int64_t k = i; k <= j; ++k) rank[order[k]] = static_cast<double>(i + 1) + (t - 1.0) / 2.0;
        if (j > i) ties = true;
        tie_sum += t * t * t - t;
        i = j + 1;
    }
    double r_plus = 0.0;
    for (int64_t k = 0; k < c; ++k)
        if (positive[k]) r_plus += rank[k];
    // scipy's method 'auto': normal approximation above 50 values; exact without ties or zeros; the exact sign-flip
    // permutation test up to 13 values (2^13 < its 9,999 resamples); else the normal approximation
    if (n <= 50 && !ties && zeros == 0) {
        // the exact null distribution of r_plus (scipy's _get_wilcoxon_distr), its cdf and sf as WilcoxonDistribution
        std::vector<double> pmf(1, 1.0);
        for (int64_t k = 1; k <= c; ++k) {
            std::vector<double> next(static_cast<size_t>(k * (k + 1) / 2 + 1), 0.0);
            const size_t m = pmf.size(), off = next.size() - m;
            for (size_t i = 0; i < m; ++i) next[i] = pmf[i] * 0.5;
            for (size_t i = 0; i < m; ++i) next[off + i] += pmf[i] * 0.5;
            pmf.swap(next);
        }
        const int64_t size = static_cast<int64_t>(pmf.size());
        const double mean = static_cast<double>(c) * static_cast<double>(c + 1) / 4.0;
        auto sum = [&](int64_t lo, int64_t hi) {
            double s = 0.0;
            for (int64_t i = std::max<int64_t>(lo, 0); i < std::min(hi, size); ++i) s += pmf[i];
            return s;
        };
        auto cdf = [&](int64_t k) { return static_cast<double>(k) <= mean ? sum(0, k + 1) : 1.0 - sum(k + 1, size); };
        auto sf = [&](int64_t k) { return static_cast<double>(k) <= mean ? sum(k, size) : 1.0 - sum(0, k); };
        const double p = 2.0 * std::min(sf(static_cast<int64_t>(std::floor(r_plus))),
                                        cdf(static_cast<int64_t>(std::ceil(r_plus))));
        return std::min(1.0, std::max(0.0, p));
    }
    if (n <= 13) {
        // every sign of the nonzero differences (zeros flip to themselves: the same proportions): the number of
        // sign patterns with r_plus <= and >= the observed one, over doubled ranks (integers)
        std::vector<int64_t> twice(static_cast<size_t>(c));
        int64_t total = 0;
        for (int64_t k = 0; k < c; ++k) total += twice[k] = static_cast<int64_t>(std::llround(2.0 * rank[k]));
        std::vector<double> ways(static_cast<size_t>(total + 1), 0.0);
        ways[0] = 1.0;
        int64_t reach = 0;
        for (int64_t k = 0; k < c; ++k) {
            for (int64_t s2 = reach; s2 >= 0; --s2) ways[s2 + twice[k]] += ways[s2];
            reach += twice[k];
        }
        const int64_t observed = std::llround(2.0 * r_plus);
        double le = 0.0, ge = 0.0;
        for (int64_t s2 = 0; s2 <= total; ++s2) {
            if (s2 <= observed) le += ways[s2];
            if (s2 >= observed) ge += ways[s2];
        }
        const double all = std::ldexp(1.0, static_cast<int>(c));
        return std::min(1.0, std::max(0.0, std::min(le / all, ge / all) * 2.0));
    }
    const double cn = static_cast<double>(c);
    const double mn = cn * (cn + 1.0) * 0.25;
    const double se = std::sqrt((cn * (cn + 1.0) * (2.0 * cn + 1.0) - tie_sum / 2.0) / 24.0);
    const double z = (r_plus - mn) / se;  // NaN when no difference is left (se = 0), as scipy
    return std::erfc(std::fabs(z) / std::sqrt(2.0));  // 2 * ndtr(-|z|)
}

std::vector<double> correct_p_values(const std::vector<double>& p, Correction c) {
    std::vector<double> out = p;
    std::vector<size_t> idx;
    for (size_t i = 0; i < p.size(); ++i)
        if (!std::isnan(p[i])) idx.push_back(i);
    const double m = static_cast<double>(idx.size());
    if (c == Correction::None || idx.empty()) return out;
    if (c == Correction::Bonferroni) {
        for (size_t i : idx) out[i] = std::min(1.0, p[i] * m);
        return out;
    }
    // Benjamini-Hochberg: adjusted p_(k) = min over j >= k of m p_(j) / j, at most 1.
    std::sort(idx.begin(), idx.end(), [&p](size_t a, size_t b) { return p[a] < p[b]; });
    double running = 1.0;
    for (size_t k = idx.size(); k-- > 0;) {
        running = std::min(running, p[idx[k]] * m / static_cast<double>(k + 1));
        out[idx[k]] = running;
    }
    return out;
}

// ------------------------------------------------------------------ inference (rsatoolbox's Result)
double numpy_quantile_linear(std::vector<double> v, double q) {
    const double nan = std::nan("");
    if (v.empty()) return nan;
    for (double x : v)
        if (std::isnan(x)) return nan;  // numpy: a NaN sorts last and makes the slice's quantile NaN
    std::sort(v.begin(), v.end());
    const int64_t n = static_cast<int64_t>(v.size());
    // _get_indexes and _get_gamma of method 'linear': virtual index (n - 1) q; past the last index both neighbours
    // are the last value (and gamma is taken against index -1, as numpy), below 0 both are the first
    const double virt = static_cast<double>(n - 1) * q;
    double prev = std::floor(virt);
    int64_t ip = static_cast<int64_t>(prev), in = ip + 1;
    if (virt >= static_cast<double>(n - 1)) {
        ip = in = n - 1;
        prev = -1.0;
    } else if (virt < 0.0) {
        ip = in = 0;
        prev = 0.0;
    }
    const double g = virt - prev, a = v[ip], b = v[in];
    // _lerp: a + (b - a) g, replaced by b - (b - a)(1 - g) where g >= 0.5 (an infinity on either side gives numpy's
    // -inf, +inf or NaN)
    const double diff = b - a;
    return g >= 0.5 ? b - diff * (1.0 - g) : a + diff * g;
}

namespace {

// Result.get_ci(ci, 'bootstrap') for model m: the (1 - ci) / 2 and 1 - (1 - ci) / 2 quantiles of the model's column
// of the samples (N x M, every row, NaN rows included) with a -inf and a +inf row in front, as rsatoolbox frames them.
void percentile_interval(const EvaluateResult& res, int64_t m, double ci, double* low, double* high) {
    const int64_t M = res.n_model, N = static_cast<int64_t>(res.samples.size()) / M;
    std::vector<double> framed = {-std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
    for (int64_t r = 0; r < N; ++r) framed.push_back(res.samples[r * M + m]);
    const double prop_cut = (1.0 - ci) / 2.0;
    *low = numpy_quantile_linear(framed, prop_cut);
    *high = numpy_quantile_linear(std::move(framed), 1.0 - prop_cut);
}

}  // namespace

void evaluate_inference(EvaluateResult& res, double ci) {
    const int64_t M = res.n_model, K = res.n_rdm;
    const double nan = std::nan("");
    res.mean.assign(M, nan);
    std::vector<double> cov;  // (V x V) covariance, V = M or M + 2
    int64_t V = M;
    bool nc_included = false;
    double n_correct = 0.0;   // _correct_1d's n
    res.has_variance = true;
    auto covariance = [](const std::vector<std::vector<double>>& rows, double ddof) {
        const size_t v = rows.size(), n = rows.empty() ? 0 : rows[0].size();
        std::vector<double> mu(v, 0.0), c(v * v, 0.0);
        for (size_t a = 0; a < v; ++a) mu[a] = std::accumulate(rows[a].begin(), rows[a].end(), 0.0) / n;
        for (size_t a = 0; a < v; ++a)
            for (size_t b = a; b < v; ++b) {
                double s = 0.0;
                for (size_t i = 0; i < n; ++i) s += (rows[a][i] - mu[a]) * (rows[b][i] - mu[b]);
                c[a * v + b] = c[b * v + a] = s / (static_cast<double>(n) - ddof);
            }
        return c;
    };
    if (res.inference == EvalInference::Fixed) {
        std::vector<std::vector<double>> rows(static_cast<size_t>(M));
        for (int64_t m = 0; m < M; ++m) {
            double s = 0.0;
            int64_t c = 0;
            for (int64_t k = 0; k < K; ++k) {
                const double x = res.per_rdm[m * K + k];
                rows[m].push_back(x);
                if (!std::isnan(x)) {
                    s += x;
                    ++c;
                }
            }
            res.mean[m] = c ? s / c : nan;
        }
        res.ceiling = res.point_ceiling;
        if (K > 1) {
            cov = covariance(rows, 0.0);
            for (double& x : cov) x /= static_cast<double>(K);
            n_correct = static_cast<double>(K);
            res.dof = static_cast<int>(K - 1);
        } else {
            res.has_variance = false;
            res.dof = 0;
        }
    } else {
        const int64_t N = static_cast<int64_t>(res.samples.size()) / M;
        std::vector<int64_t> ok;
        double lo = 0.0, hi = 0.0;
        int64_t nlo = 0, nhi = 0;
        for (int64_t r = 0; r < N; ++r) {
            if (std::isfinite(res.samples[r * M])) ok.push_back(r);
            if (!std::isnan(res.sample_lower[r])) lo += res.sample_lower[r], ++nlo;
            if (!std::isnan(res.sample_upper[r])) hi += res.sample_upper[r], ++nhi;
        }
        res.valid_samples = static_cast<int64_t>(ok.size());
        res.ceiling.lower = nlo ? lo / nlo : nan;
        res.ceiling.upper = nhi ? hi / nhi : nan;
        for (int64_t m = 0; m < M; ++m) {
            double s = 0.0;
            for (int64_t r : ok) s += res.samples[r * M + m];
            res.mean[m] = ok.empty() ? nan : s / static_cast<double>(ok.size());
        }
        if (res.inference == EvalInference::Rdm) {
            // eval_bootstrap_rdm: np.cov(evaluations.T) over every sample, models only
            std::vector<std::vector<double>> rows(static_cast<size_t>(M));
            for (int64_t m = 0; m < M; ++m)
                for (int64_t r = 0; r < N; ++r) rows[m].push_back(res.samples[r * M + m]);
            cov = covariance(rows, 1.0);
            n_correct = static_cast<double>(K);
            res.dof = static_cast<int>(K - 1);
        } else {
            std::vector<std::vector<double>> rows(static_cast<size_t>(M + 2));
            for (int64_t r : ok) {
                for (int64_t m = 0; m < M; ++m) rows[m].push_back(res.samples[r * M + m]);
                rows[M].push_back(res.sample_lower[r]);
                rows[M + 1].push_back(res.sample_upper[r]);
            }
            V = M + 2;
            nc_included = true;
            if (ok.size() < 2) {
                cov.assign(static_cast<size_t>(V * V), nan);
            } else {
                cov = covariance(rows, 1.0);
            }
            const int64_t n = res.inference == EvalInference::Pattern ? res.n_pattern
                                                                      : std::min(res.n_rdm, res.n_pattern);
            n_correct = static_cast<double>(n);
            res.dof = static_cast<int>(n - 1);
        }
    }
    res.se.assign(M, nan);
    res.ci_low.assign(M, nan);
    res.ci_high.assign(M, nan);
    res.p_zero.assign(M, nan);
    res.p_noise.assign(M, nan);
    res.pairwise.assign(static_cast<size_t>(M * M), nan);
    for (int64_t m = 0; m < M; ++m) res.pairwise[m * M + m] = 1.0;
    const bool t_test = res.test == EvalTest::TTest;
    res.interval = eval_interval(res.test);
    if (res.interval == EvalInterval::Percentile) {  // (inference fixed has no samples: the bootstrap test refuses it)
        for (int64_t m = 0; m < M; ++m) percentile_interval(res, m, ci, &res.ci_low[m], &res.ci_high[m]);
    }
    if (res.has_variance) {
        const double f = n_correct / (n_correct - 1.0), eps = DBL_EPSILON, dof = res.dof;
        const double tq = student_t_ppf((1.0 - ci) / 2.0, dof);
        for (int64_t m = 0; m < M; ++m) {
            const double var = cov[m * V + m] * f;
            const double nc_var =
                nc_included ? (cov[m * V + m] - 2.0 * cov[m * V + M] + cov[M * V + M]) * f : var;
            res.se[m] = std::sqrt(std::max(var, 0.0));
            if (res.interval == EvalInterval::T) {
                res.ci_low[m] = res.mean[m] + res.se[m] * tq;
                res.ci_high[m] = res.mean[m] - res.se[m] * tq;
            }
            if (!t_test) continue;
            res.p_zero[m] = 1.0 - student_t_cdf(res.mean[m] / std::sqrt(std::max(var, eps)), dof);
            const double t_nc = (res.mean[m] - res.ceiling.lower) / std::sqrt(std::max(nc_var, eps));
            res.p_noise[m] = 2.0 * (1.0 - student_t_cdf(std::fabs(t_nc), dof));
        }
        for (int64_t i = 0; i < M && t_test; ++i)
            for (int64_t j = i + 1; j < M; ++j) {
                const double dv = (cov[i * V + i] + cov[j * V + j] - 2.0 * cov[i * V + j]) * f;
                const double t = (res.mean[i] - res.mean[j]) / std::sqrt(std::max(dv, eps));
                res.pairwise[i * M + j] = res.pairwise[j * M + i] = 2.0 * (1.0 - student_t_cdf(std::fabs(t), dof));
            }
    }
    if (res.test == EvalTest::Bootstrap) {
        if (res.inference == EvalInference::Fixed)
            throw InputError("evaluate: the bootstrap test needs bootstrap samples (inference pattern, rdm or both)");
        // zero_tests, nc_tests (each sample's lower bound) and bootstrap_pair_tests over all N rows: a NaN row
        // counts in N and in no comparison, as in rsatoolbox's arrays
        const int64_t N = static_cast<int64_t>(res.samples.size()) / M;
        const double n = static_cast<double>(N);
        for (int64_t m = 0; m < M; ++m) {
            int64_t below = 0, above_nc = 0;
            for (int64_t r = 0; r < N; ++r) {
                const double e = res.samples[r * M + m];
                if (e <= 0.0) ++below;
                if (res.sample_lower[r] - e <= 0.0) ++above_nc;
            }
            res.p_zero[m] = (static_cast<double>(below) + 1.0) / n;
            res.p_noise[m] = (static_cast<double>(above_nc) + 1.0) / n;
        }
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = i + 1; j < M; ++j) {
                int64_t less = 0, equal = 0;
                for (int64_t r = 0; r < N; ++r) {
                    const double a = res.samples[r * M + i], b = res.samples[r * M + j];
                    if (a < b) ++less;
                    if (a == b) ++equal;
                }
                const double q = static_cast<double>(less) / (n - static_cast<double>(equal));
                // np.minimum(q, 1 - q) * 2 (NaN when every sample ties), then (N - 1) / N * p + 1 / N
                const double p = std::isnan(q) ? q : std::min(q, 1.0 - q) * 2.0;
                res.pairwise[i * M + j] = res.pairwise[j * M + i] = (n - 1.0) / n * p + 1.0 / n;
            }
    }
    if (res.test == EvalTest::Ranksum) {
        if (res.inference != EvalInference::Fixed)
            throw InputError("evaluate: the ranksum test takes the per-data-RDM evaluations of inference fixed");
        // ranksum_value_test (against 0 and against the lower noise bound) and ranksum_pair_test: wilcoxon over the
        // K data RDMs' evaluations
        std::vector<double> d(static_cast<size_t>(K));
        for (int64_t m = 0; m < M; ++m) {
            for (int64_t k = 0; k < K; ++k) d[k] = res.per_rdm[m * K + k] - 0.0;
            res.p_zero[m] = wilcoxon_signed_rank_p(d);
            for (int64_t k = 0; k < K; ++k) d[k] = res.per_rdm[m * K + k] - res.ceiling.lower;
            res.p_noise[m] = wilcoxon_signed_rank_p(d);
        }
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = i + 1; j < M; ++j) {
                for (int64_t k = 0; k < K; ++k) d[k] = res.per_rdm[i * K + k] - res.per_rdm[j * K + k];
                res.pairwise[i * M + j] = res.pairwise[j * M + i] = wilcoxon_signed_rank_p(d);
            }
    }
    res.p_zero_corrected = correct_p_values(res.p_zero, res.correction);
    res.p_noise_corrected = correct_p_values(res.p_noise, res.correction);
    std::vector<double> upper;
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = i + 1; j < M; ++j) upper.push_back(res.pairwise[i * M + j]);
    const std::vector<double> upper_c = correct_p_values(upper, res.correction);
    res.pairwise_corrected = res.pairwise;
    size_t u = 0;
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = i + 1; j < M; ++j, ++u) res.pairwise_corrected[i * M + j] = res.pairwise_corrected[j * M + i] =
                                                     upper_c[u];
}

// ------------------------------------------------------------------ the evaluation
namespace {

void check_inputs(const std::vector<double>& data, int64_t K, const std::vector<double>& models, int64_t M, int64_t S,
                  const EvaluateOptions& o) {
    if (S < 3) throw InputError("evaluate: RDMs need at least 3 patterns (got " + std::to_string(S) + ")");
    const int64_t P = S * (S - 1) / 2;
    if (K < 1) throw InputError("evaluate: no data RDM");
    if (M < 1) throw InputError("evaluate: no model RDM");
    if (static_cast<int64_t>(data.size()) != K * P || static_cast<int64_t>(models.size()) != M * P)
        throw InputError("evaluate: data and model RDMs must have " + std::to_string(S) + " patterns (" +
                         std::to_string(P) + " dissimilarities each)");
    for (int64_t i = 0; i < K * P; ++i)
        if (!std::isfinite(data[i]))
            throw InputError("evaluate: data RDM " + std::to_string(i / P) + " has a non-finite entry");
    for (int64_t i = 0; i < M * P; ++i)
        if (!std::isfinite(models[i]))
            throw InputError("evaluate: model RDM " + std::to_string(i / P) + " has a non-finite entry");
    if (o.inference != EvalInference::Fixed && o.bootstrap < 2)
        throw InputError("evaluate: --bootstrap must be at least 2 for inference '" +
                         std::string(eval_inference_name(o.inference)) + "'");
    if ((o.inference == EvalInference::Rdm || o.inference == EvalInference::Both) && K < 2)
        throw InputError("evaluate: inference '" + std::string(eval_inference_name(o.inference)) +
                         "' resamples data RDMs and needs at least 2 (got 1; use --inference fixed or pattern)");
    check_eval_test(o.test, o.inference, "--test", "--inference");
    if (o.permutations < 0) throw InputError("evaluate: --permutations must be >= 0");
    if (!(o.ci > 0.0 && o.ci < 1.0)) throw InputError("evaluate: the interval must be in (0, 1)");
}

// mean over data rows of compare(model, row), models taken from `models` (M x E) in chunks.
void evaluate_models(EvalMethod method, const std::vector<double>& models, int64_t M, const RdmStructure& s,
                     const CovCentring& cc, const std::vector<double>& data_prepared, int64_t rows, double* out) {
    const int64_t E = s.entries(), L = prepared_length(method, s);
    const int64_t chunk = 64;
    for (int64_t m0 = 0; m0 < M; m0 += chunk) {
        const int64_t mc = std::min(chunk, M - m0);
        const std::vector<double> mp = prepare_vectors(method, models.data() + m0 * E, mc, s, cc);
        for (int64_t m = 0; m < mc; ++m) {
            double sum = 0.0;
            for (int64_t k = 0; k < rows; ++k) sum += compare_prepared(method, &mp[m * L], &data_prepared[k * L], L);
            out[m0 + m] = sum / static_cast<double>(rows);
        }
    }
}

}  // namespace

namespace {

// The weighted sums of `resamples` resamples' pattern counts for a batch of `mb` models (weighted_moments_ref or a
// backend's evaluate_moments).
using MomentsFn = std::function<WeightedMoments(const std::vector<double>& models, int64_t mb,
                                                const std::vector<double>& counts, int64_t resamples, bool centre)>;

void check_range(SampleRange r, int64_t total, const char* what) {
    if (r.first < 0 || r.count < 0 || r.first > total - r.count)
        throw InputError("evaluate: " + std::string(what) + " range [" + std::to_string(r.first) + ", " +
                         std::to_string(r.first + r.count) + ") is not within the run's 0.." + std::to_string(total));
}

// The evaluation's full-data preparation (both stages use it): the full structure, its centring and the prepared
// data rows.
struct FullData {
    RdmStructure s;
    CovCentring cc;
    std::vector<double> prepared;
};
FullData full_data(EvalMethod method, const std::vector<double>& data, int64_t K, int64_t S) {
    FullData f;
    f.s = full_structure(S);
    f.cc = make_cov_centring(f.s);
    f.prepared = prepare_vectors(method, data.data(), K, f.s, f.cc);
    return f;
}

// The models of one batch [m0, m0 + mc) of the plan: the whole set when one batch holds every model, else a copy.
class ModelBatch {
public:
    ModelBatch(const std::vector<double>& models, int64_t M, int64_t P, int64_t m0, int64_t mc) : all_(models) {
        if (mc < M) part_.assign(models.begin() + m0 * P, models.begin() + (m0 + mc) * P);
        whole_ = mc == M;
    }
    const std::vector<double>& values() const { return whole_ ? all_ : part_; }

private:
    const std::vector<double>& all_;
    std::vector<double> part_;
    bool whole_ = true;
};

EvaluateSamples samples_impl(const std::vector<double>& data, int64_t K, const std::vector<double>& models, int64_t M,
                             int64_t S, const EvaluateOptions& o, SampleRange boot, SampleRange perms,
                             const EvaluateProgress& progress, const MomentsFn& moments,
                             const EvaluateMemory& memory) {
    check_inputs(data, K, models, M, S, o);
    check_range(boot, evaluate_bootstrap_count(o), "bootstrap resample");
    check_range(perms, o.permutations, "permutation");
    const int64_t P = S * (S - 1) / 2;
    EvaluateSamples out;
    // the batches of resamples and models, against the memory there is (evaluate_plan.h)
    out.plan = plan_evaluate(S, K, M, boot.count, perms.count, o.method, o.weighted_sums, memory);
    if (o.on_plan) o.on_plan(out.plan);
    const int64_t MB = out.plan.model_batch;
    const FullData fd = full_data(o.method, data, K, S);
    const RdmStructure& full = fd.s;
    const CovCentring& full_cc = fd.cc;

    const int64_t total = boot.count + perms.count;
    int64_t done = 0;
    if (boot.count > 0) {
        // resample b0 + r of the run is row r of the range's samples
        const int64_t N = boot.count, b0 = boot.first;
        const double nan = std::nan("");
        out.evaluations.assign(static_cast<size_t>(N * M), nan);
        out.lower.assign(N, nan);
        out.upper.assign(N, nan);
        const bool by_pattern = o.inference != EvalInference::Rdm, by_rdm = o.inference != EvalInference::Pattern;
        std::vector<int64_t> drawn(static_cast<size_t>(S)), rows(static_cast<size_t>(K)), source;
        std::vector<double> sample_data, sample_models;
        if (out.plan.weighted) {
            // weighted sums: per batch of the plan's resamples, their pattern counts (an RDM bootstrap: the full
            // RDMs, one all-ones count vector), then per batch of models the moments of every resample in one call
            // (dtrmm on the CPU, DGEMMs on a GPU) and each resample's evaluations; the noise ceiling with the first
            // model batch (it reads the data's sums only)
            const int64_t RB = out.plan.resample_batch;
            const bool centre = o.method == EvalMethod::Corr;
            std::vector<double> counts;
            std::vector<char> valid;
            for (int64_t r0 = 0; r0 < N; r0 += RB) {
                check_interrupt("the evaluation bootstrap");
                const int64_t rc = std::min(RB, N - r0);
                if (by_pattern) {
                    counts.assign(static_cast<size_t>(rc * S), 0.0);
                    valid.assign(static_cast<size_t>(rc), 0);
                    for (int64_t r = 0; r < rc; ++r) {
                        int64_t distinct = 0;
                        for (int64_t k = 0; k < S; ++k) {
                            double& c = counts[r * S + bootstrap_draw(o.seed, S, b0 + r0 + r, k)];
                            if (c == 0.0) ++distinct;
                            c += 1.0;
                        }
                        valid[r] = distinct >= 3;
                    }
                } else {
                    counts.assign(static_cast<size_t>(S), 1.0);
                }
                for (int64_t m0 = 0; m0 < M; m0 += MB) {
                    const int64_t mc = std::min(MB, M - m0);
                    const ModelBatch batch(models, M, P, m0, mc);
                    const WeightedMoments w = moments(batch.values(), mc, counts, by_pattern ? rc : 1, centre);
                    for (int64_t r = 0; r < rc; ++r) {
                        if (by_pattern && !valid[r]) continue;
                        for (int64_t k = 0; k < K; ++k)
                            rows[k] = by_rdm ? rdm_bootstrap_draw(o.seed, K, b0 + r0 + r, k) : k;
                        NoiseCeiling nc;
                        finish_weighted(o.method, w, by_pattern ? r : 0, rows, &out.evaluations[(r0 + r) * M + m0],
                                        m0 == 0 ? &nc : nullptr);
                        if (m0 > 0) continue;
                        out.lower[r0 + r] = nc.lower;
                        out.upper[r0 + r] = nc.upper;
                    }
                }
                done += rc;
                if (progress) progress(done, total);
            }
        }
        for (int64_t r = 0; r < N && !out.plan.weighted; ++r) {
            check_interrupt("the evaluation bootstrap");
            for (int64_t k = 0; k < K; ++k) rows[k] = by_rdm ? rdm_bootstrap_draw(o.seed, K, b0 + r, k) : k;
            RdmStructure s;
            if (by_pattern) {
                for (int64_t k = 0; k < S; ++k) drawn[k] = bootstrap_draw(o.seed, S, b0 + r, k);
                std::sort(drawn.begin(), drawn.end());
                std::vector<int64_t> u = drawn;
                u.erase(std::unique(u.begin(), u.end()), u.end());
                if (u.size() < 3) {
                    if (progress) progress(++done, total);
                    continue;
                }
                s = resample_structure(drawn, S, &source);
            } else {
                s = full;
                source.resize(static_cast<size_t>(P));
                std::iota(source.begin(), source.end(), 0);
            }
            const int64_t E = s.entries();
            sample_data.resize(static_cast<size_t>(K * E));
            for (int64_t k = 0; k < K; ++k)
                for (int64_t e = 0; e < E; ++e) sample_data[k * E + e] = data[rows[k] * P + source[e]];
            const CovCentring cc = by_pattern ? make_cov_centring(s) : full_cc;
            const std::vector<double> dp = prepare_vectors(o.method, sample_data.data(), K, s, cc);
            for (int64_t m0 = 0; m0 < M; m0 += MB) {  // the resample's expanded models, a batch at a time
                const int64_t mc = std::min(MB, M - m0);
                sample_models.resize(static_cast<size_t>(mc * E));
                for (int64_t m = 0; m < mc; ++m)
                    for (int64_t e = 0; e < E; ++e) sample_models[m * E + e] = models[(m0 + m) * P + source[e]];
                evaluate_models(o.method, sample_models, mc, s, cc, dp, K, &out.evaluations[r * M + m0]);
            }
            const NoiseCeiling nc = noise_ceiling_prepared(o.method, sample_data, K, rows, s, cc, dp);
            out.lower[r] = nc.lower;
            out.upper[r] = nc.upper;
            if (progress) progress(++done, total);
        }
    }
    if (perms.count > 0) {
        // permutation test of stimulus labels: model RDM read as B[perm i, perm j], statistic = mean over data RDMs
        out.permutation_null.assign(static_cast<size_t>(perms.count * M), 0.0);
        std::vector<int> perm(static_cast<size_t>(S));
        std::vector<double> permuted;
        for (int64_t p = 0; p < perms.count; ++p) {
            check_interrupt("the permutation test");
            permutation_draw(o.seed, S, perms.first + p, perm.data());
            for (int64_t m0 = 0; m0 < M; m0 += MB) {  // the permuted models, a batch at a time
                const int64_t mc = std::min(MB, M - m0);
                permuted.resize(static_cast<size_t>(mc * P));
                for (int64_t m = 0; m < mc; ++m) {
                    int64_t e = 0;
                    for (int64_t i = 0; i < S; ++i)
                        for (int64_t j = i + 1; j < S; ++j, ++e) {
                            const int64_t a = std::min(perm[i], perm[j]), b = std::max(perm[i], perm[j]);
                            permuted[m * P + e] = models[(m0 + m) * P + a * S - a * (a + 1) / 2 + (b - a - 1)];
                        }
                }
                evaluate_models(o.method, permuted, mc, full, full_cc, fd.prepared, K,
                                &out.permutation_null[p * M + m0]);
            }
            if (progress) progress(++done, total);
        }
    }
    return out;
}

MomentsFn ref_moments(const std::vector<double>& data, int64_t K, int64_t S) {
    return [&data, K, S](const std::vector<double>& models, int64_t mb, const std::vector<double>& counts, int64_t R,
                         bool centre) { return weighted_moments_ref(data, K, models, mb, S, counts, R, centre); };
}

MomentsFn backend_moments(Backend& backend, const std::vector<double>& data, int64_t K, int64_t S) {
    return [&backend, &data, K, S](const std::vector<double>& models, int64_t mb, const std::vector<double>& counts,
                                   int64_t R, bool centre) {
        return backend.evaluate_moments(data, K, models, mb, S, counts, R, centre);
    };
}

SampleRange whole(int64_t total) { return SampleRange{0, total}; }

}  // namespace

int64_t evaluate_bootstrap_count(const EvaluateOptions& o) {
    return o.inference == EvalInference::Fixed ? 0 : o.bootstrap;
}

EvaluateSamples evaluate_samples(Backend& backend, const std::vector<double>& data, int64_t K,
                                 const std::vector<double>& models, int64_t M, int64_t S, const EvaluateOptions& o,
                                 SampleRange resamples, SampleRange permutations, const EvaluateProgress& progress) {
    return samples_impl(data, K, models, M, S, o, resamples, permutations, progress,
                        backend_moments(backend, data, K, S), evaluate_memory(backend, o.max_memory_bytes));
}

EvaluateResult evaluate_summary(const std::vector<double>& data, int64_t K, const std::vector<double>& models,
                                int64_t M, int64_t S, const EvaluateOptions& o, EvaluateSamples samples) {
    check_inputs(data, K, models, M, S, o);
    const int64_t N = evaluate_bootstrap_count(o);
    if (static_cast<int64_t>(samples.evaluations.size()) != N * M || static_cast<int64_t>(samples.lower.size()) != N ||
        static_cast<int64_t>(samples.upper.size()) != N ||
        static_cast<int64_t>(samples.permutation_null.size()) != static_cast<int64_t>(o.permutations) * M)
        throw RuntimeError("evaluate: the gathered samples do not cover the run (" +
                           std::to_string(samples.lower.size()) + " of " + std::to_string(N) + " resamples, " +
                           std::to_string(samples.permutation_null.size() / static_cast<size_t>(M)) + " of " +
                           std::to_string(o.permutations) + " permutations)");
    const int64_t P = S * (S - 1) / 2;
    EvaluateResult res;
    res.method = o.method;
    res.inference = o.inference;
    res.test = o.test;
    res.correction = o.correction;
    res.n_model = M;
    res.n_rdm = K;
    res.n_pattern = S;

    // the full data: eval_fixed's evaluations and noise ceiling
    const FullData fd = full_data(o.method, data, K, S);
    const int64_t L = prepared_length(o.method, fd.s);
    res.per_rdm.assign(static_cast<size_t>(M * K), 0.0);
    res.point.assign(M, 0.0);
    for (int64_t m0 = 0; m0 < M; m0 += 64) {
        const int64_t mc = std::min<int64_t>(64, M - m0);
        const std::vector<double> mp = prepare_vectors(o.method, models.data() + m0 * P, mc, fd.s, fd.cc);
        for (int64_t m = 0; m < mc; ++m) {
            double sum = 0.0;
            for (int64_t k = 0; k < K; ++k) {
                const double v = compare_prepared(o.method, &mp[m * L], &fd.prepared[k * L], L);
                res.per_rdm[(m0 + m) * K + k] = v;
                sum += v;
            }
            res.point[m0 + m] = sum / static_cast<double>(K);
        }
    }
    std::vector<int64_t> groups(static_cast<size_t>(K));
    std::iota(groups.begin(), groups.end(), 0);
    res.point_ceiling = noise_ceiling_prepared(o.method, data, K, groups, fd.s, fd.cc, fd.prepared);

    res.plan = std::move(samples.plan);
    res.samples = std::move(samples.evaluations);
    res.sample_lower = std::move(samples.lower);
    res.sample_upper = std::move(samples.upper);
    if (o.permutations > 0) {
        // one-sided, +1 corrected: (1 + #{null >= point}) / (1 + permutations)
        res.p_perm.assign(M, 0.0);
        for (int64_t m = 0; m < M; ++m) {
            int64_t count = 0;
            for (int64_t p = 0; p < o.permutations; ++p)
                if (samples.permutation_null[p * M + m] >= res.point[m]) ++count;
            res.p_perm[m] = (1.0 + static_cast<double>(count)) / (1.0 + static_cast<double>(o.permutations));
        }
    }
    evaluate_inference(res, o.ci);
    return res;
}

EvaluateResult evaluate_ref(const std::vector<double>& data, int64_t K, const std::vector<double>& models, int64_t M,
                            int64_t S, const EvaluateOptions& o, const EvaluateProgress& progress) {
    EvaluateSamples s = samples_impl(data, K, models, M, S, o, whole(evaluate_bootstrap_count(o)),
                                     whole(o.permutations), progress, ref_moments(data, K, S),
                                     host_evaluate_memory(o.max_memory_bytes));
    return evaluate_summary(data, K, models, M, S, o, std::move(s));
}

EvaluateResult evaluate_rdms(Backend& backend, const std::vector<double>& data, int64_t K,
                             const std::vector<double>& models, int64_t M, int64_t S, const EvaluateOptions& o,
                             const EvaluateProgress& progress) {
    EvaluateSamples s = evaluate_samples(backend, data, K, models, M, S, o, whole(evaluate_bootstrap_count(o)),
                                         whole(o.permutations), progress);
    return evaluate_summary(data, K, models, M, S, o, std::move(s));
}

nlohmann::json evaluate_json(const EvaluateResult& r, const std::vector<std::string>& names, const EvaluateOptions& o) {
    nlohmann::json models = nlohmann::json::array();
    for (int64_t m = 0; m < r.n_model; ++m) {
        nlohmann::json e = {{"name", names[m]},
                            {"evaluation", r.mean[m]},
                            {"se", r.se[m]},
                            {"ci_low", r.ci_low[m]},
                            {"ci_high", r.ci_high[m]},
                            {"p_zero", r.p_zero_corrected[m]},
                            {"p_noise", r.p_noise_corrected[m]},
                            {"p_zero_uncorrected", r.p_zero[m]},
                            {"p_noise_uncorrected", r.p_noise[m]},
                            {"point", r.point[m]}};
        if (!r.p_perm.empty()) e["p_perm"] = r.p_perm[m];
        models.push_back(e);
    }
    auto matrix = [&](const std::vector<double>& v) {
        nlohmann::json a = nlohmann::json::array();
        for (int64_t i = 0; i < r.n_model; ++i) {
            nlohmann::json row = nlohmann::json::array();
            for (int64_t j = 0; j < r.n_model; ++j) row.push_back(v[i * r.n_model + j]);
            a.push_back(row);
        }
        return a;
    };
    return {{"method", eval_method_name(r.method)},
            {"inference", eval_inference_name(r.inference)},
            {"test", eval_test_name(r.test)},
            {"correction", correction_name(r.correction)},
            {"n_rdm", r.n_rdm},
            {"n_pattern", r.n_pattern},
            {"n_model", r.n_model},
            {"dof", r.dof},
            {"bootstrap", r.inference == EvalInference::Fixed ? 0 : o.bootstrap},
            {"valid_samples", r.valid_samples},
            {"permutations", o.permutations},
            {"seed", o.seed},
            {"ci", o.ci},
            {"ci_type", eval_interval_name(r.interval)},
            {"models", models},
            {"noise_ceiling",
             {{"lower", r.ceiling.lower},
              {"upper", r.ceiling.upper},
              {"point_lower", r.point_ceiling.lower},
              {"point_upper", r.point_ceiling.upper}}},
            {"pairwise", matrix(r.pairwise_corrected)},
            {"pairwise_uncorrected", matrix(r.pairwise)},
            {"plan", evaluate_plan_json(r.plan)}};
}

}  // namespace rsa

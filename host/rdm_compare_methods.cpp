// rsatoolbox's RDM comparison methods (rdm/compare.py: corr, cosine, spearman, rho-a, tau-a, corr_cov, cosine_cov
// without sigma_k), its pool_rdm and boot_noise_ceiling (util/inference_util.py, inference/noise_ceiling.py) in
// float64, on RDM vectors with their NaN entries already removed (a pattern resample's same-pattern pairs) and the
// position structure the covariance-weighted methods need. The CPU twin behind evaluate_ref (evaluate.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <utility>

#include "rsa_gpu/error.h"
#include "rsa_gpu/evaluate.h"

namespace rsa {

EvalMethod parse_eval_method(const std::string& name) {
    if (name == "corr") return EvalMethod::Corr;
    if (name == "cosine") return EvalMethod::Cosine;
    if (name == "spearman") return EvalMethod::Spearman;
    if (name == "rho-a") return EvalMethod::RhoA;
    if (name == "tau-a") return EvalMethod::TauA;
    if (name == "corr_cov") return EvalMethod::CorrCov;
    if (name == "cosine_cov") return EvalMethod::CosineCov;
    throw InputError("unknown comparison method '" + name +
                     "' (valid: corr, cosine, spearman, rho-a, tau-a, corr_cov, cosine_cov)");
}

const char* eval_method_name(EvalMethod m) {
    switch (m) {
        case EvalMethod::Corr: return "corr";
        case EvalMethod::Cosine: return "cosine";
        case EvalMethod::Spearman: return "spearman";
        case EvalMethod::RhoA: return "rho-a";
        case EvalMethod::TauA: return "tau-a";
        case EvalMethod::CorrCov: return "corr_cov";
        case EvalMethod::CosineCov: return "cosine_cov";
    }
    return "unknown";
}

RdmStructure full_structure(int64_t conditions) {
    RdmStructure s;
    s.conditions = conditions;
    s.all_pairs = true;
    const int64_t P = conditions * (conditions - 1) / 2;
    s.pair_i.reserve(static_cast<size_t>(P));
    s.pair_j.reserve(static_cast<size_t>(P));
    for (int64_t i = 0; i < conditions; ++i)
        for (int64_t j = i + 1; j < conditions; ++j) {
            s.pair_i.push_back(static_cast<int32_t>(i));
            s.pair_j.push_back(static_cast<int32_t>(j));
        }
    return s;
}

static int64_t upper_index(int64_t a, int64_t b, int64_t S) { return a * S - a * (a + 1) / 2 + (b - a - 1); }

RdmStructure resample_structure(const std::vector<int64_t>& drawn, int64_t full_conditions,
                                std::vector<int64_t>* source) {
    RdmStructure s;
    const int64_t n = static_cast<int64_t>(drawn.size());
    s.conditions = n;
    s.all_pairs = true;
    if (source) source->clear();
    for (int64_t p = 0; p < n; ++p)
        for (int64_t q = p + 1; q < n; ++q) {
            const int64_t a = std::min(drawn[p], drawn[q]), b = std::max(drawn[p], drawn[q]);
            if (a == b) {
                s.all_pairs = false;
                continue;
            }
            s.pair_i.push_back(static_cast<int32_t>(p));
            s.pair_j.push_back(static_cast<int32_t>(q));
            if (source) source->push_back(upper_index(a, b, full_conditions));
        }
    return s;
}

std::vector<double> rank_average_double(const double* v, int64_t n) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [v](int64_t a, int64_t b) { return v[a] < v[b]; });
    std::vector<double> ranks(static_cast<size_t>(n));
    int64_t start = 0;
    for (int64_t i = 1; i <= n; ++i)
        if (i == n || v[order[i]] != v[order[start]]) {
            const double r = 0.5 * (static_cast<double>(start) + static_cast<double>(i) + 1.0);
            for (int64_t k = start; k < i; ++k) ranks[static_cast<size_t>(order[k])] = r;
            start = i;
        }
    return ranks;
}

namespace {

// Pairs of equal neighbours of a sorted sequence (by `eq`): sum over runs of c (c - 1) / 2.
template <typename T, typename Eq>
int64_t tied_pairs_sorted(const std::vector<T>& v, Eq eq) {
    int64_t total = 0, run = 1;
    for (size_t i = 1; i <= v.size(); ++i) {
        if (i < v.size() && eq(v[i], v[i - 1])) {
            ++run;
        } else {
            total += run * (run - 1) / 2;
            run = 1;
        }
    }
    return total;
}

// Sorts v ascending and returns the number of strict inversions (pairs i < j with v[i] > v[j]).
int64_t sort_count_inversions(std::vector<double>& v) {
    std::vector<double> tmp(v.size());
    int64_t inv = 0;
    const size_t n = v.size();
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            const size_t mid = std::min(lo + width, n), hi = std::min(lo + 2 * width, n);
            size_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) {
                if (v[b] < v[a]) {
                    inv += static_cast<int64_t>(mid - a);
                    tmp[k++] = v[b++];
                } else {
                    tmp[k++] = v[a++];
                }
            }
            while (a < mid) tmp[k++] = v[a++];
            while (b < hi) tmp[k++] = v[b++];
        }
        v.swap(tmp);
    }
    return inv;
}

double dot(const double* a, const double* b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

void centre(double* v, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; ++i) m += v[i];
    m /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) v[i] -= m;
}

// In-place Cholesky factor (lower) of an n x n SPD matrix.
void cholesky(std::vector<double>& a, int64_t n) {
    for (int64_t j = 0; j < n; ++j) {
        double d = a[j * n + j];
        for (int64_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
        if (!(d > 0.0)) throw RuntimeError("cov-weighted comparison: the centring system is not positive definite");
        d = std::sqrt(d);
        a[j * n + j] = d;
        for (int64_t i = j + 1; i < n; ++i) {
            double s = a[i * n + j];
            for (int64_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / d;
        }
    }
}

void cholesky_solve(const std::vector<double>& l, int64_t n, std::vector<double>& x) {
    for (int64_t i = 0; i < n; ++i) {
        double s = x[i];
        for (int64_t k = 0; k < i; ++k) s -= l[i * n + k] * x[k];
        x[i] = s / l[i * n + i];
    }
    for (int64_t i = n - 1; i >= 0; --i) {
        double s = x[i];
        for (int64_t k = i + 1; k < n; ++k) s -= l[k * n + i] * x[k];
        x[i] = s / l[i * n + i];
    }
}

}  // namespace

double kendall_tau_a_double(const double* x, const double* y, int64_t n) {
    if (n < 2) return std::nan("");
    std::vector<std::pair<double, double>> p(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = {x[i], y[i]};
    std::sort(p.begin(), p.end());
    std::vector<double> xs(p.size()), ys(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
        xs[i] = p[i].first;
        ys[i] = p[i].second;
    }
    auto eq = [](double a, double b) { return a == b; };
    const int64_t tx = tied_pairs_sorted(xs, eq);
    const int64_t txy = tied_pairs_sorted(p, [](const std::pair<double, double>& a, const std::pair<double, double>& b) {
        return a.first == b.first && a.second == b.second;
    });
    const int64_t discordant = sort_count_inversions(ys);
    const int64_t ty = tied_pairs_sorted(ys, eq);
    const int64_t tot = n * (n - 1) / 2;
    const double tau = static_cast<double>(tot - tx - ty + txy - 2 * discordant) / static_cast<double>(tot);
    return std::min(1.0, std::max(-1.0, tau));
}

// ------------------------------------------------------------------ prepared vectors
CovCentring make_cov_centring(const RdmStructure& s) {
    CovCentring c;
    c.conditions = s.conditions;
    if (s.all_pairs) return c;
    const int64_t C = s.conditions;
    c.factor.assign(static_cast<size_t>(C * C), 0.0);
    for (int64_t k = 0; k < C; ++k) c.factor[k * C + k] = 1.0;  // the appended diagonal entries (weight 1)
    for (int64_t e = 0; e < s.entries(); ++e) {
        const int64_t i = s.pair_i[e], j = s.pair_j[e];
        c.factor[i * C + i] += 0.5;
        c.factor[j * C + j] += 0.5;
        c.factor[i * C + j] += 0.5;
        c.factor[j * C + i] += 0.5;
    }
    cholesky(c.factor, C);
    return c;
}

// rsatoolbox's _cov_weighting (sigma_k None): w = -v / 2 with C zero diagonal entries appended, double-centred
// (closed form when every pair is kept, the weighted least-squares projection otherwise), pairs times sqrt(2).
void cov_weighting(const double* v, const RdmStructure& s, const CovCentring& cc, double* out) {
    const int64_t E = s.entries(), C = s.conditions;
    for (int64_t e = 0; e < E; ++e) out[e] = -0.5 * v[e];
    std::vector<double> rowsum(static_cast<size_t>(C), 0.0);
    for (int64_t e = 0; e < E; ++e) {
        rowsum[s.pair_i[e]] += out[e];
        rowsum[s.pair_j[e]] += out[e];
    }
    if (s.all_pairs) {
        double total = 0.0;
        for (int64_t e = 0; e < E; ++e) total += out[e];
        const double mm = 2.0 * total / static_cast<double>(C * C);
        std::vector<double> m(static_cast<size_t>(C));
        for (int64_t c = 0; c < C; ++c) m[c] = rowsum[c] / static_cast<double>(C);
        for (int64_t e = 0; e < E; ++e) out[e] = out[e] - m[s.pair_i[e]] - m[s.pair_j[e]] + mm;
        for (int64_t c = 0; c < C; ++c) out[E + c] = -2.0 * m[c] + mm;
    } else {
        std::vector<double> z = rowsum;  // w @ sumI (diagonal entries are zero)
        cholesky_solve(cc.factor, C, z);
        for (int64_t e = 0; e < E; ++e) out[e] -= 0.5 * (z[s.pair_i[e]] + z[s.pair_j[e]]);
        for (int64_t c = 0; c < C; ++c) out[E + c] = -z[c];
    }
    const double r2 = std::sqrt(2.0);
    for (int64_t e = 0; e < E; ++e) out[e] *= r2;
}

int64_t prepared_length(EvalMethod method, const RdmStructure& s) {
    return (method == EvalMethod::CorrCov || method == EvalMethod::CosineCov) ? s.entries() + s.conditions
                                                                               : s.entries();
}

std::vector<double> prepare_vectors(EvalMethod method, const double* v, int64_t n, const RdmStructure& s,
                                    const CovCentring& cc) {
    const int64_t E = s.entries(), L = prepared_length(method, s);
    std::vector<double> out(static_cast<size_t>(n * L));
    std::vector<double> tmp(static_cast<size_t>(E));
    for (int64_t r = 0; r < n; ++r) {
        const double* x = v + r * E;
        double* o = out.data() + r * L;
        switch (method) {
            case EvalMethod::Cosine:
            case EvalMethod::TauA:
                std::copy(x, x + E, o);
                break;
            case EvalMethod::Corr:
                std::copy(x, x + E, o);
                centre(o, E);
                break;
            case EvalMethod::Spearman:
            case EvalMethod::RhoA: {
                const std::vector<double> rk = rank_average_double(x, E);
                std::copy(rk.begin(), rk.end(), o);
                centre(o, E);
                break;
            }
            case EvalMethod::CorrCov:
                std::copy(x, x + E, tmp.begin());
                centre(tmp.data(), E);
                cov_weighting(tmp.data(), s, cc, o);
                break;
            case EvalMethod::CosineCov:
                cov_weighting(x, s, cc, o);
                break;
        }
    }
    return out;
}

double compare_prepared(EvalMethod method, const double* a, const double* b, int64_t L) {
    if (method == EvalMethod::TauA) return kendall_tau_a_double(a, b, L);
    if (method == EvalMethod::RhoA) {
        const double n = static_cast<double>(L);
        return dot(a, b, L) / (n * n * n - n) * 12.0;
    }
    const double na = std::sqrt(dot(a, a, L)), nb = std::sqrt(dot(b, b, L));
    if (!(na > 0.0) || !(nb > 0.0)) return 0.0;  // rsatoolbox's _cosine: 0 for a zero-length vector
    return dot(a, b, L) / na / nb;
}

std::vector<double> compare_rdm_vectors(EvalMethod method, const std::vector<double>& v1, int64_t n1,
                                        const std::vector<double>& v2, int64_t n2, const RdmStructure& structure) {
    const CovCentring cc = make_cov_centring(structure);
    const std::vector<double> p1 = prepare_vectors(method, v1.data(), n1, structure, cc);
    const std::vector<double> p2 = prepare_vectors(method, v2.data(), n2, structure, cc);
    const int64_t L = prepared_length(method, structure);
    std::vector<double> out(static_cast<size_t>(n1 * n2));
    for (int64_t a = 0; a < n1; ++a)
        for (int64_t b = 0; b < n2; ++b) out[a * n2 + b] = compare_prepared(method, &p1[a * L], &p2[b * L], L);
    return out;
}

std::vector<double> pool_rdm_vectors(EvalMethod method, const std::vector<double>& v, int64_t n, int64_t len) {
    std::vector<double> pooled(static_cast<size_t>(len), 0.0);
    std::vector<double> row(static_cast<size_t>(len));
    for (int64_t r = 0; r < n; ++r) {
        const double* x = v.data() + r * len;
        switch (method) {
            case EvalMethod::Cosine:
            case EvalMethod::CosineCov: {
                const double rms = std::sqrt(dot(x, x, len) / static_cast<double>(len));
                for (int64_t e = 0; e < len; ++e) row[e] = x[e] / rms;
                break;
            }
            case EvalMethod::Corr:
            case EvalMethod::CorrCov: {
                std::copy(x, x + len, row.begin());
                centre(row.data(), len);
                const double sd = std::sqrt(dot(row.data(), row.data(), len) / static_cast<double>(len));
                for (int64_t e = 0; e < len; ++e) row[e] /= sd;
                break;
            }
            case EvalMethod::Spearman:
            case EvalMethod::RhoA:
            case EvalMethod::TauA:
                row = rank_average_double(x, len);
                break;
        }
        for (int64_t e = 0; e < len; ++e) pooled[e] += row[e];
    }
    for (int64_t e = 0; e < len; ++e) pooled[e] /= static_cast<double>(n);
    if (method == EvalMethod::Corr || method == EvalMethod::CorrCov) {
        double mn = std::numeric_limits<double>::infinity();
        for (double x : pooled) mn = std::min(mn, x);
        for (double& x : pooled) x -= mn;
    }
    return pooled;
}

NoiseCeiling noise_ceiling_prepared(EvalMethod method, const std::vector<double>& v, int64_t n,
                                    const std::vector<int64_t>& group, const RdmStructure& s, const CovCentring& cc,
                                    const std::vector<double>& prepared) {
    const int64_t E = s.entries(), L = prepared_length(method, s);
    // compare(pool, row k) for every row k of a group, averaged
    auto mean_vs_rows = [&](const std::vector<double>& pooled, const std::vector<int64_t>& rows) {
        const std::vector<double> pp = prepare_vectors(method, pooled.data(), 1, s, cc);
        double sum = 0.0;
        for (int64_t k : rows) sum += compare_prepared(method, pp.data(), &prepared[k * L], L);
        return sum / static_cast<double>(rows.size());
    };
    const std::set<int64_t> groups(group.begin(), group.end());
    const std::vector<double> all = pool_rdm_vectors(method, v, n, E);
    NoiseCeiling nc;
    if (groups.size() <= 1) {
        std::vector<int64_t> rows(static_cast<size_t>(n));
        std::iota(rows.begin(), rows.end(), 0);
        nc.lower = nc.upper = mean_vs_rows(all, rows);
        return nc;
    }
    double lo = 0.0, hi = 0.0;
    for (int64_t g : groups) {
        std::vector<int64_t> test;
        std::vector<double> train;
        int64_t n_train = 0;
        for (int64_t k = 0; k < n; ++k) {
            if (group[k] == g) {
                test.push_back(k);
            } else {
                train.insert(train.end(), v.begin() + k * E, v.begin() + (k + 1) * E);
                ++n_train;
            }
        }
        lo += mean_vs_rows(pool_rdm_vectors(method, train, n_train, E), test);
        hi += mean_vs_rows(all, test);
    }
    nc.lower = lo / static_cast<double>(groups.size());
    nc.upper = hi / static_cast<double>(groups.size());
    return nc;
}

NoiseCeiling boot_noise_ceiling_ref(EvalMethod method, const std::vector<double>& v, int64_t n,
                                    const std::vector<int64_t>& group, const RdmStructure& structure) {
    const CovCentring cc = make_cov_centring(structure);
    const std::vector<double> prepared = prepare_vectors(method, v.data(), n, structure, cc);
    return noise_ceiling_prepared(method, v, n, group, structure, cc, prepared);
}

}  // namespace rsa

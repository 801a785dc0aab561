// CPU twins of the RDM comparison measures (Pearson, Spearman, Kendall tau-a, cosine) over the strict upper
// triangle, and of linear CKA (biased / debiased). Sums in double; degenerate inputs give NaN for every
// measure (compare.h's one test), and check_cka_inputs names them; see rsa_gpu/measures.h.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <utility>

#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/measures.h"

namespace rsa {

Measure parse_measure(const std::string& name) {
    if (name == "pearson") return Measure::Pearson;
    if (name == "spearman") return Measure::Spearman;
    if (name == "kendall") return Measure::Kendall;
    if (name == "cosine") return Measure::Cosine;
    throw InputError("unknown comparison measure '" + name + "' (valid: pearson, spearman, kendall, cosine)");
}

const char* measure_name(Measure m) {
    switch (m) {
        case Measure::Pearson: return "pearson";
        case Measure::Spearman: return "spearman";
        case Measure::Kendall: return "kendall";
        case Measure::Cosine: return "cosine";
    }
    return "unknown";
}

namespace {

// The non-NaN pairs of the strict upper triangle in row-major order (-0 folded into +0, as on the device).
// `used`: the number of such pairs (from upper_moments), so both copies are allocated once, checked.
void upper_pairs(const float* a, const float* b, int64_t S, int64_t used, std::vector<float>* xa,
                 std::vector<float>* xb) {
    const std::string what = "a copy of the " + std::to_string(used) + " upper-triangle pairs of an RDM";
    *xa = checked_alloc<float>(static_cast<size_t>(used), what);
    *xb = checked_alloc<float>(static_cast<size_t>(used), what);
    size_t k = 0;
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) {
            const float x = a[i * S + j], y = b[i * S + j];
            if (std::isnan(x) || std::isnan(y)) continue;
            (*xa)[k] = x == 0.0f ? 0.0f : x;
            (*xb)[k] = y == 0.0f ? 0.0f : y;
            ++k;
        }
}

// Two-pass Pearson of two double sequences.
double pearson_double(const std::vector<double>& x, const std::vector<double>& y) {
    const size_t n = x.size();
    if (n < 2) return std::nan("");
    double sx = 0.0, sy = 0.0;
    for (size_t i = 0; i < n; ++i) {
        sx += x[i];
        sy += y[i];
    }
    const double mx = sx / static_cast<double>(n), my = sy / static_cast<double>(n);
    double sxx = 0.0, syy = 0.0, sxy = 0.0;
    for (size_t i = 0; i < n; ++i) {
        const double dx = x[i] - mx, dy = y[i] - my;
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    return pearson_from_centred(sxx, syy, sxy);
}

// Sum over runs of equal values (v sorted) of t (t - 1) / 2.
template <typename T>
int64_t tied_pairs(const std::vector<T>& v) {
    int64_t total = 0;
    size_t start = 0;
    for (size_t i = 1; i <= v.size(); ++i)
        if (i == v.size() || !(v[i] == v[start])) {
            const int64_t t = static_cast<int64_t>(i - start);
            total += t * (t - 1) / 2;
            start = i;
        }
    return total;
}

// Stable bottom-up merge sort of v; returns the number of pairs i < j with v[i] > v[j] (strict).
int64_t sort_count_inversions(std::vector<float>& v) {
    const int64_t n = static_cast<int64_t>(v.size());
    std::vector<float> tmp = checked_alloc<float>(v.size(), "Kendall's tau merge buffer");
    int64_t inv = 0;
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            const int64_t mid = std::min(lo + w, n), hi = std::min(lo + 2 * w, n);
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                if (v[j] < v[i]) {  // right element strictly smaller: jumps every remaining left element
                    inv += mid - i;
                    tmp[k++] = v[j++];
                } else {
                    tmp[k++] = v[i++];
                }
            }
            while (i < mid) tmp[k++] = v[i++];
            while (j < hi) tmp[k++] = v[j++];
        }
        v.swap(tmp);
    }
    return inv;
}

}  // namespace

std::vector<double> rank_average(const std::vector<float>& v) {
    const size_t n = v.size();
    // Sort (value, index) pairs: contiguous keys sort fast; the order inside a run of ties does not matter,
    // since every member of a run gets the run's average rank.
    std::vector<std::pair<float, int64_t>> sorted =
        checked_alloc<std::pair<float, int64_t>>(n, "the ranks of " + std::to_string(n) + " RDM values");
    for (size_t i = 0; i < n; ++i) sorted[i] = {v[i] == 0.0f ? 0.0f : v[i], static_cast<int64_t>(i)};
    std::sort(sorted.begin(), sorted.end());
    std::vector<double> ranks = checked_alloc<double>(n, "the ranks of " + std::to_string(n) + " RDM values");
    size_t start = 0;
    for (size_t i = 1; i <= n; ++i)
        if (i == n || !(sorted[i].first == sorted[start].first)) {
            // positions start .. i-1 hold ranks start+1 .. i: their average
            const double r = 0.5 * (static_cast<double>(start) + static_cast<double>(i) + 1.0);
            for (size_t k = start; k < i; ++k) ranks[static_cast<size_t>(sorted[k].second)] = r;
            start = i;
        }
    return ranks;
}

double kendall_tau_a(const std::vector<float>& x, const std::vector<float>& y) {
    const int64_t n = static_cast<int64_t>(x.size());
    if (n < 2) return std::nan("");
    // Knight: sort by (x, y); discordant pairs = strict inversions of y in that order.
    const std::string what = "Kendall's tau of " + std::to_string(n) + " pairs";
    std::vector<std::pair<float, float>> p = checked_alloc<std::pair<float, float>>(x.size(), what);
    for (size_t i = 0; i < x.size(); ++i) p[i] = {x[i] == 0.0f ? 0.0f : x[i], y[i] == 0.0f ? 0.0f : y[i]};
    std::sort(p.begin(), p.end());
    std::vector<float> xs = checked_alloc<float>(p.size(), what), ys = checked_alloc<float>(p.size(), what);
    for (size_t i = 0; i < p.size(); ++i) {
        xs[i] = p[i].first;
        ys[i] = p[i].second;
    }
    const int64_t tx = tied_pairs(xs), txy = tied_pairs(p);
    const int64_t discordant = sort_count_inversions(ys);  // ys now sorted
    const int64_t ty = tied_pairs(ys);
    const int64_t n0 = n * (n - 1) / 2;
    // concordant = n0 - (tx + ty - txy) - discordant
    const int64_t c_minus_d = n0 - tx - ty + txy - 2 * discordant;
    return static_cast<double>(c_minus_d) / static_cast<double>(n0);
}

CompareResult compare_upper_ref(Measure m, const float* a, const float* b, int64_t S) {
    // Every measure: the used pairs' moments first, and NaN when either side is degenerate over them.
    const UpperMoments mom = upper_moments(a, b, S);
    CompareResult res;
    res.pairs = mom.pairs;
    res.skipped = mom.skipped;
    if (compare_degenerate(mom.pairs, mom.mean_a, mom.sxx, mom.mean_b, mom.syy)) {
        res.value = std::nan("");
        return res;
    }
    if (m == Measure::Pearson) {
        res.value = pearson_from_centred(mom.sxx, mom.syy, mom.sxy);
        return res;
    }
    if (m == Measure::Cosine) {  // one more pass over the triangles, no copies
        double sab = 0.0, saa = 0.0, sbb = 0.0;
        for (int64_t i = 0; i < S; ++i)
            for (int64_t j = i + 1; j < S; ++j) {
                const float x = a[i * S + j], y = b[i * S + j];
                if (std::isnan(x) || std::isnan(y)) continue;
                sab += static_cast<double>(x) * y;
                saa += static_cast<double>(x) * x;
                sbb += static_cast<double>(y) * y;
            }
        res.value = (!(saa > 0.0) || !(sbb > 0.0)) ? std::nan("") : sab / std::sqrt(saa * sbb);
        return res;
    }
    std::vector<float> xa, xb;
    upper_pairs(a, b, S, mom.pairs, &xa, &xb);
    switch (m) {
        case Measure::Spearman:
            res.value = pearson_double(rank_average(xa), rank_average(xb));
            break;
        case Measure::Kendall:
            res.value = kendall_tau_a(xa, xb);
            break;
        case Measure::Cosine:
        case Measure::Pearson:
            break;
    }
    return res;
}

// ---------------------------------------------------------------- linear CKA

void check_cka_shapes(int64_t s1, int64_t n1, int64_t s2, int64_t n2, bool debiased) {
    std::ostringstream shapes;
    shapes << "X is " << s1 << " x " << n1 << ", Y is " << s2 << " x " << n2;
    if (s1 != s2) throw InputError("CKA needs the same stimuli (rows) in both response matrices: " + shapes.str());
    if (s1 <= 0 || n1 <= 0 || n2 <= 0) throw InputError("CKA of an empty response matrix: " + shapes.str());
    if (s1 < 3) throw InputError("CKA needs at least 3 stimuli (rows), like every RDM comparison: " + shapes.str());
    if (debiased && s1 < 4) throw InputError("debiased CKA needs at least 4 stimuli: " + shapes.str());
}

double cka_from_sums(const CkaSums& s, int64_t S, bool debiased) {
    if (!debiased) {
        const double kk = s.kk_off + s.kk_diag, ll = s.ll_off + s.ll_diag;
        if (!(kk > 0.0) || !(ll > 0.0)) return std::nan("");
        return (s.kl_off + s.kl_diag) / std::sqrt(kk * ll);
    }
    const double n = static_cast<double>(S);
    auto hsic = [&](double tr, double r1, double r2, double r12) {
        return (tr + r1 * r2 / ((n - 1.0) * (n - 2.0)) - 2.0 / (n - 2.0) * r12) / (n * (n - 3.0));
    };
    const double kl = hsic(s.kl_off, s.rk, s.rl, s.rkrl);
    const double kk = hsic(s.kk_off, s.rk, s.rk, s.rkrk);
    const double ll = hsic(s.ll_off, s.rl, s.rl, s.rlrl);
    if (!(kk > 0.0) || !(ll > 0.0)) return std::nan("");
    return kl / std::sqrt(kk * ll);
}

namespace {

// Column means of X in double.
std::vector<double> column_means(const MatrixView& x) {
    const int64_t S = x.rows, N = x.cols;
    std::vector<double> mean = checked_alloc<double>(static_cast<size_t>(N), "CKA column means");
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < N; ++j) mean[j] += x.at(i, j);
    for (auto& m : mean) m /= static_cast<double>(S);
    return mean;
}

// K = Xc Xc^T (S x S, full symmetric) with Xc the column-centred X (means in double).
std::vector<float> centred_gram(const MatrixView& x) {
    const int64_t S = x.rows, N = x.cols;
    const std::vector<double> mean = column_means(x);
    const std::string shape = std::to_string(S) + " x " + std::to_string(N);
    std::vector<float> xc = checked_alloc<float>(static_cast<size_t>(S * N), "the column-centred " + shape +
                                                                                 " responses for CKA");
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < N; ++j) xc[i * N + j] = static_cast<float>(x.at(i, j) - mean[j]);
    std::vector<float> k = checked_alloc<float>(static_cast<size_t>(S * S),
                                                "the " + std::to_string(S) + " x " + std::to_string(S) +
                                                    " Gram matrix for CKA");
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(S), static_cast<int>(N), 1.0f, xc.data(),
                static_cast<int>(N), 0.0f, k.data(), static_cast<int>(S));
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) k[j * S + i] = k[i * S + j];
    return k;
}

}  // namespace

std::string responses_degenerate_reason(const MatrixView& x) {
    const int64_t S = x.rows, N = x.cols;
    if (S <= 0 || N <= 0) return "";
    const std::vector<double> mean = column_means(x);
    double m2 = 0.0, mean_sq = 0.0;
    for (int64_t j = 0; j < N; ++j) mean_sq += mean[j] * mean[j];
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < N; ++j) {
            const double d = x.at(i, j) - mean[j];
            m2 += d * d;
        }
    const double n = static_cast<double>(S) * static_cast<double>(N);
    const double rms_mean = std::sqrt(mean_sq / static_cast<double>(N));
    if (!spread_degenerate(n, rms_mean, m2)) return "";
    std::ostringstream os;
    os.precision(6);
    if (!(m2 > 0.0))
        os << "all its " << S << " stimuli (rows) have exactly the same response";
    else
        os << "its " << S << " stimuli (rows) have the same response up to float rounding (SD across stimuli "
           << std::sqrt(m2 / n) << ", at most " << kDegenerateRelSpread << " of the responses' magnitude "
           << rms_mean << ")";
    os << ", so its centred Gram matrix is zero (or rounding noise) and CKA is undefined";
    return os.str();
}

void check_cka_inputs(const MatrixView& x, const MatrixView& y, bool debiased, const std::string& name_x,
                      const std::string& name_y) {
    check_cka_shapes(x.rows, x.cols, y.rows, y.cols, debiased);
    for (const auto& [m, name] : {std::pair<const MatrixView*, const std::string*>{&x, &name_x}, {&y, &name_y}}) {
        const std::string why = responses_degenerate_reason(*m);
        if (!why.empty()) throw InputError(*name + ": " + why);
    }
}

double cka_linear_ref(const MatrixView& x, const MatrixView& y, bool debiased) {
    check_cka_shapes(x.rows, x.cols, y.rows, y.cols, debiased);
    if (!responses_degenerate_reason(x).empty() || !responses_degenerate_reason(y).empty()) return std::nan("");
    const int64_t S = x.rows;
    const std::vector<float> K = centred_gram(x), L = centred_gram(y);
    CkaSums s;
    for (int64_t i = 0; i < S; ++i) {
        double rk = 0.0, rl = 0.0;
        for (int64_t j = 0; j < S; ++j) {
            const double k = K[i * S + j], l = L[i * S + j];
            if (j == i) {
                s.kl_diag += k * l;
                s.kk_diag += k * k;
                s.ll_diag += l * l;
                continue;
            }
            rk += k;
            rl += l;
            s.kl_off += k * l;
            s.kk_off += k * k;
            s.ll_off += l * l;
        }
        s.rk += rk;
        s.rl += rl;
        s.rkrl += rk * rl;
        s.rkrk += rk * rk;
        s.rlrl += rl * rl;
    }
    return cka_from_sums(s, S, debiased);
}

}  // namespace rsa

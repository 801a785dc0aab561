// The corr / cosine bootstrap of `rsa_gpu evaluate` by weighted sums (evaluate.h, WeightedMoments): a pattern
// resample's expanded RDM vector is the full vector with pair weights u_ab = w_a w_b, so its comparisons and noise
// ceiling follow from a few weighted sums per resample, computed here as quadratic forms of the counts (OpenBLAS
// dgemm of the counts with the S x S product matrices; the CPU twin of the GPU's batched evaluation, which forms the
// same sums as DGEMMs of the pair weights with the RDM vectors).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/stats.h"

namespace rsa {

WeightedMoments weighted_moments_zeros(int64_t K, int64_t M, int64_t R) {
    WeightedMoments w;
    w.resamples = R;
    w.K = K;
    w.M = M;
    w.n.assign(R, 0.0);
    w.sx.assign(R * K, 0.0);
    w.G.assign(R * K * K, 0.0);
    w.sy.assign(R * M, 0.0);
    w.syy.assign(R * M, 0.0);
    w.C.assign(R * K * M, 0.0);
    return w;
}

void weighted_moments_inputs(const std::vector<double>& data, const std::vector<double>& models, int64_t P,
                             bool centre, std::vector<double>& X, std::vector<double>& Y) {
    X = data;
    Y = models;
    if (!centre) return;
    for (std::vector<double>* v : {&X, &Y}) {
        const int64_t rows = static_cast<int64_t>(v->size()) / P;
        for (int64_t k = 0; k < rows; ++k) {
            double m = 0.0;
            for (int64_t p = 0; p < P; ++p) m += (*v)[k * P + p];
            m /= static_cast<double>(P);
            for (int64_t p = 0; p < P; ++p) (*v)[k * P + p] -= m;
        }
    }
}

WeightedMoments weighted_moments_ref(const std::vector<double>& data, int64_t K, const std::vector<double>& models,
                                     int64_t M, int64_t S, const std::vector<double>& counts, int64_t R,
                                     bool centre) {
    // Every sum is a quadratic form in the counts: sum_{a<b} w_a w_b f_ab = w^T U w (U the strict upper triangle of
    // the products' S x S matrix F). Per product: a dtrmm of the counts (a chunk of resamples x S) with U, then a row
    // dot with the counts: compute-bound (each F entry serves every resample of the chunk).
    const int64_t P = S * (S - 1) / 2;
    WeightedMoments w = weighted_moments_zeros(K, M, R);
    std::vector<double> X, Y;
    weighted_moments_inputs(data, models, P, centre, X, Y);
    // n = sum_{a<b} w_a w_b = ((sum w)^2 - sum w^2) / 2
    for (int64_t r = 0; r < R; ++r) {
        double s1 = 0.0, s2 = 0.0;
        for (int64_t a = 0; a < S; ++a) {
            const double c = counts[r * S + a];
            s1 += c;
            s2 += c * c;
        }
        w.n[r] = 0.5 * (s1 * s1 - s2);
    }
    // the products: (first vector, second vector or -1, output slot); vectors 0..K-1 data, K..K+M-1 models
    struct Product {
        int64_t a, b;
        double* out;
        int64_t stride;  // between resamples
    };
    std::vector<Product> products;
    for (int64_t k = 0; k < K; ++k) products.push_back({k, -1, &w.sx[k], K});
    for (int64_t m = 0; m < M; ++m) products.push_back({K + m, -1, &w.sy[m], M});
    for (int64_t m = 0; m < M; ++m) products.push_back({K + m, K + m, &w.syy[m], M});
    for (int64_t k = 0; k < K; ++k)
        for (int64_t t = k; t < K; ++t) products.push_back({k, t, &w.G[k * K + t], K * K});
    for (int64_t k = 0; k < K; ++k)
        for (int64_t m = 0; m < M; ++m) products.push_back({k, K + m, &w.C[k * M + m], K * M});
    auto vec = [&](int64_t i) { return i < K ? &X[i * P] : &Y[(i - K) * P]; };
    const int64_t Q = static_cast<int64_t>(products.size());
    const int64_t Qc = std::max<int64_t>(1, std::min<int64_t>(Q, kEvalTwinProductBytes / (S * S * 8)));
    const int64_t Rc = std::min<int64_t>(R, kEvalTwinResampleRows);
    // the products are rounded for exact sums (stats.h: round_for_exact_sums) with the largest count total: a
    // resample's sums then do not depend on its row in the dtrmm (a rank's range gives the whole run's numbers)
    double max_weight = 0.0;
    for (int64_t r = 0; r < R; ++r)
        max_weight = std::max(max_weight, std::accumulate(counts.begin() + r * S, counts.begin() + (r + 1) * S, 0.0));
    std::vector<double> U(static_cast<size_t>(Qc * S * S), 0.0), H(static_cast<size_t>(Rc * S));
    for (int64_t q0 = 0; q0 < Q; q0 += Qc) {
        check_interrupt("the evaluation bootstrap");
        const int64_t qc = std::min(Qc, Q - q0);
        for (int64_t q = 0; q < qc; ++q) {  // the strict upper triangle of F_q (the rest stays 0)
            const Product& pr = products[q0 + q];
            const double* fa = vec(pr.a);
            const double* fb = pr.b >= 0 ? vec(pr.b) : nullptr;
            double* u = &U[q * S * S];
            for (int64_t a = 0, p = 0; a < S; ++a)
                for (int64_t b = a + 1; b < S; ++b, ++p) u[a * S + b] = fb ? fa[p] * fb[p] : fa[p];
            round_for_exact_sums(u, S * S, max_weight);
        }
        for (int64_t r0 = 0; r0 < R; r0 += Rc) {
            const int64_t rc = std::min(Rc, R - r0);
            for (int64_t q = 0; q < qc; ++q) {
                // H = W U_q (triangular: half the multiply-adds of a full product), then w^T U_q w per resample
                std::copy(&counts[r0 * S], &counts[(r0 + rc) * S], H.begin());
                cblas_dtrmm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, static_cast<int>(rc),
                            static_cast<int>(S), 1.0, &U[q * S * S], static_cast<int>(S), H.data(),
                            static_cast<int>(S));
                const Product& pr = products[q0 + q];
                for (int64_t r = 0; r < rc; ++r) {
                    const double* c = &counts[(r0 + r) * S];
                    const double* h = &H[r * S];
                    double s = 0.0;
                    for (int64_t a = 0; a < S; ++a) s += c[a] * h[a];
                    pr.out[(r0 + r) * pr.stride] = s;
                }
            }
        }
    }
    // G is symmetric: mirror the computed upper half
    for (int64_t r = 0; r < R; ++r)
        for (int64_t k = 0; k < K; ++k)
            for (int64_t t = 0; t < k; ++t) w.G[r * K * K + k * K + t] = w.G[r * K * K + t * K + k];
    return w;
}

void finish_weighted(EvalMethod method, const WeightedMoments& w, int64_t r, const std::vector<int64_t>& rows,
                     double* evaluations, NoiseCeiling* ceiling) {
    const int64_t K = w.K, M = w.M;
    const bool corr = method == EvalMethod::Corr;
    const double n = w.n[r];
    const double* sx = &w.sx[r * K];
    const double* G = &w.G[r * K * K];
    const double* sy = &w.sy[r * M];
    const double* syy = &w.syy[r * M];
    const double* C = &w.C[r * K * M];
    auto gram = [&](int64_t k, int64_t t) { return corr ? G[k * K + t] - sx[k] * sx[t] / n : G[k * K + t]; };
    auto ratio = [](double num, double a, double b) {  // rsatoolbox's _cosine: 0 for a zero-length vector
        return (a > 0.0 && b > 0.0) ? num / std::sqrt(a) / std::sqrt(b) : 0.0;
    };
    for (int64_t m = 0; m < M; ++m) {
        const double yy = corr ? syy[m] - sy[m] * sy[m] / n : syy[m];
        double sum = 0.0;
        for (int64_t k : rows) {
            const double xy = corr ? C[k * M + m] - sx[k] * sy[m] / n : C[k * M + m];
            sum += ratio(xy, gram(k, k), yy);
        }
        evaluations[m] = sum / static_cast<double>(rows.size());
    }
    if (!ceiling) return;
    auto Rm = [&](int64_t k, int64_t t) { return ratio(gram(k, t), gram(k, k), gram(t, t)); };
    // compare(pool of `train` rows, row t) = sum_i R_it / sqrt(sum_ij R_ij); `den` = sum_ij R_ij over train
    auto pooled_den = [&](const std::vector<int64_t>& train) {
        double den = 0.0;
        for (int64_t i : train)
            for (int64_t j : train) den += Rm(i, j);
        return den;
    };
    auto pooled_vs = [&](const std::vector<int64_t>& train, double den, int64_t t) {
        double num = 0.0;
        for (int64_t i : train) num += Rm(i, t);
        return den > 0.0 ? num / std::sqrt(den) : 0.0;
    };
    const std::set<int64_t> groups(rows.begin(), rows.end());
    const double den_all = pooled_den(rows);
    if (groups.size() <= 1) {
        double s = 0.0;
        for (int64_t t : rows) s += pooled_vs(rows, den_all, t);
        ceiling->lower = ceiling->upper = s / static_cast<double>(rows.size());
        return;
    }
    double lo = 0.0, hi = 0.0;
    for (int64_t g : groups) {
        std::vector<int64_t> train, test;
        for (int64_t k : rows) (k == g ? test : train).push_back(k);
        const double den_train = pooled_den(train);
        double l = 0.0, h = 0.0;
        for (int64_t t : test) {
            l += pooled_vs(train, den_train, t);
            h += pooled_vs(rows, den_all, t);
        }
        lo += l / static_cast<double>(test.size());
        hi += h / static_cast<double>(test.size());
    }
    ceiling->lower = lo / static_cast<double>(groups.size());
    ceiling->upper = hi / static_cast<double>(groups.size());
}

}  // namespace rsa

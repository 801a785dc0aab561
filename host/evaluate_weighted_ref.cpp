// The corr / cosine bootstrap of `rsa_gpu evaluate` by weighted sums (evaluate.h, WeightedMoments): a pattern
// resample's expanded RDM vector is the full vector with pair weights u_ab = w_a w_b, so its comparisons and noise
// ceiling follow from a few weighted sums per resample, computed here as OpenBLAS dgemm over resample chunks and
// pair blocks (the CPU twin of the GPU's batched evaluation).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/interrupt.h"

namespace rsa {

WeightedMoments weighted_moments_ref(const std::vector<double>& data, int64_t K, const std::vector<double>& models,
                                     int64_t M, int64_t S, const std::vector<double>& counts, int64_t R,
                                     bool centre) {
    const int64_t P = S * (S - 1) / 2;
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
    // centred copies (corr) and the squared models
    std::vector<double> X = data, Y = models, Y2(static_cast<size_t>(M * P));
    if (centre) {
        for (int64_t k = 0; k < K; ++k) {
            double m = 0.0;
            for (int64_t p = 0; p < P; ++p) m += X[k * P + p];
            m /= static_cast<double>(P);
            for (int64_t p = 0; p < P; ++p) X[k * P + p] -= m;
        }
        for (int64_t k = 0; k < M; ++k) {
            double m = 0.0;
            for (int64_t p = 0; p < P; ++p) m += Y[k * P + p];
            m /= static_cast<double>(P);
            for (int64_t p = 0; p < P; ++p) Y[k * P + p] -= m;
        }
    }
    for (int64_t i = 0; i < M * P; ++i) Y2[i] = Y[i] * Y[i];
    std::vector<int32_t> pa(static_cast<size_t>(P)), pb(static_cast<size_t>(P));
    for (int64_t a = 0, p = 0; a < S; ++a)
        for (int64_t b = a + 1; b < S; ++b, ++p) {
            pa[p] = static_cast<int32_t>(a);
            pb[p] = static_cast<int32_t>(b);
        }
    const int64_t Rc = 64, Pb = 8192;
    std::vector<double> W(static_cast<size_t>(Rc * Pb)), Wk(static_cast<size_t>(Rc * Pb));
    for (int64_t r0 = 0; r0 < R; r0 += Rc) {
        check_interrupt("the evaluation bootstrap");
        const int rc = static_cast<int>(std::min(Rc, R - r0));
        for (int64_t p0 = 0; p0 < P; p0 += Pb) {
            const int pbn = static_cast<int>(std::min(Pb, P - p0));
            for (int r = 0; r < rc; ++r) {
                const double* c = &counts[(r0 + r) * S];
                double* wr = &W[static_cast<size_t>(r) * pbn];
                double s = 0.0;
                for (int p = 0; p < pbn; ++p) {
                    wr[p] = c[pa[p0 + p]] * c[pb[p0 + p]];
                    s += wr[p];
                }
                w.n[r0 + r] += s;
            }
            auto gemm = [&](const double* A, const double* B, int cols, double* out, int ldc) {
                // out (rc x cols, ldc) += A (rc x pbn) * B^T, B: cols x pbn with leading dimension P
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rc, cols, pbn, 1.0, A, pbn, B, static_cast<int>(P),
                            1.0, out, ldc);
            };
            gemm(W.data(), X.data() + p0, static_cast<int>(K), &w.sx[r0 * K], static_cast<int>(K));
            gemm(W.data(), Y.data() + p0, static_cast<int>(M), &w.sy[r0 * M], static_cast<int>(M));
            gemm(W.data(), Y2.data() + p0, static_cast<int>(M), &w.syy[r0 * M], static_cast<int>(M));
            for (int64_t k = 0; k < K; ++k) {
                const double* xk = &X[k * P + p0];
                for (int r = 0; r < rc; ++r)
                    for (int p = 0; p < pbn; ++p)
                        Wk[static_cast<size_t>(r) * pbn + p] = W[static_cast<size_t>(r) * pbn + p] * xk[p];
                gemm(Wk.data(), X.data() + p0, static_cast<int>(K), &w.G[r0 * K * K + k * K], static_cast<int>(K * K));
                gemm(Wk.data(), Y.data() + p0, static_cast<int>(M), &w.C[r0 * K * M + k * M], static_cast<int>(K * M));
            }
        }
    }
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

// Comparison measures' CPU twins (Pearson, Spearman, Kendall tau-a, cosine; linear CKA) against scipy/numpy
// golden values (tools/make_measures_golden.py), tie handling, NaN-pair skipping, Knight vs brute force, CKA
// invariances and input errors, and degenerate inputs (constant, or constant up to float rounding): NaN for every
// measure and a named InputError from the checks.
#include "backend_calls.h"
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/measures.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using namespace rsa;

namespace {

// A 2-D .npy under tests/data/measures as a Matrix, NaN kept (npy_to_matrix rejects NaN).
Matrix load(const std::string& name) {
    const NpyArray arr = npy_load(rsa_test::data_path("measures/" + name));
    EXPECT_EQ(arr.shape.size(), 2u) << name;
    Matrix m(arr.shape[0], arr.shape[1]);
    for (int64_t i = 0; i < m.size(); ++i) m.data[static_cast<size_t>(i)] = static_cast<float>(arr.values[i]);
    return m;
}

nlohmann::json golden() {
    std::ifstream in(rsa_test::data_path("measures/measures.json"));
    return nlohmann::json::parse(in);
}

void expect_rel(double got, double want, double rel, const std::string& what) {
    EXPECT_NEAR(got, want, rel * std::max(1.0, std::abs(want))) << what;
}

// Brute-force tau-a over the upper triangle, NaN pairs skipped.
double tau_a_brute(const float* a, const float* b, int64_t S) {
    std::vector<float> x, y;
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j)
            if (!std::isnan(a[i * S + j]) && !std::isnan(b[i * S + j])) {
                x.push_back(a[i * S + j]);
                y.push_back(b[i * S + j]);
            }
    const int64_t n = static_cast<int64_t>(x.size());
    int64_t s = 0;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = i + 1; j < n; ++j) {
            const int sx = (x[i] > x[j]) - (x[i] < x[j]), sy = (y[i] > y[j]) - (y[i] < y[j]);
            s += sx * sy;
        }
    return static_cast<double>(s) / (static_cast<double>(n) * (n - 1) / 2.0);
}

Matrix random_matrix(int64_t r, int64_t c, std::mt19937_64& gen) {
    std::normal_distribution<float> d;
    Matrix m(r, c);
    for (auto& v : m.data) v = d(gen);
    return m;
}

Matrix matmul(const Matrix& a, const Matrix& b) {
    Matrix c(a.rows, b.cols);
    for (int64_t i = 0; i < a.rows; ++i)
        for (int64_t j = 0; j < b.cols; ++j) {
            double s = 0.0;
            for (int64_t k = 0; k < a.cols; ++k) s += static_cast<double>(a.at(i, k)) * b.at(k, j);
            c.at(i, j) = static_cast<float>(s);
        }
    return c;
}

// A random orthogonal N x N matrix (Gram-Schmidt in double on a Gaussian matrix).
Matrix random_orthogonal(int64_t N, std::mt19937_64& gen) {
    std::normal_distribution<double> d;
    std::vector<std::vector<double>> q(static_cast<size_t>(N), std::vector<double>(static_cast<size_t>(N)));
    for (int64_t k = 0; k < N; ++k) {
        auto& v = q[k];
        for (auto& x : v) x = d(gen);
        for (int pass = 0; pass < 2; ++pass)
            for (int64_t p = 0; p < k; ++p) {
                double dot = 0.0;
                for (int64_t i = 0; i < N; ++i) dot += v[i] * q[p][i];
                for (int64_t i = 0; i < N; ++i) v[i] -= dot * q[p][i];
            }
        double nrm = 0.0;
        for (double x : v) nrm += x * x;
        nrm = std::sqrt(nrm);
        for (auto& x : v) x /= nrm;
    }
    Matrix m(N, N);
    for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) m.at(i, j) = static_cast<float>(q[i][j]);
    return m;
}

}  // namespace

TEST(Measures, ParseAndName) {
    for (Measure m : {Measure::Pearson, Measure::Spearman, Measure::Kendall, Measure::Cosine})
        EXPECT_EQ(parse_measure(measure_name(m)), m);
    try {
        parse_measure("tau");
        FAIL();
    } catch (const InputError& e) {
        const std::string msg = e.what();
        for (const char* n : {"tau", "pearson", "spearman", "kendall", "cosine"})
            EXPECT_NE(msg.find(n), std::string::npos) << msg;
    }
}

TEST(Measures, GoldenScipyValues) {
    const nlohmann::json g = golden();
    for (const char* which : {"clean", "nan"}) {
        const bool nan = std::string(which) == "nan";
        const Matrix a = load(nan ? "rdm_a_nan.npy" : "rdm_a.npy"), b = load(nan ? "rdm_b_nan.npy" : "rdm_b.npy");
        const auto& want = g[which];
        const std::pair<Measure, const char*> cases[] = {{Measure::Pearson, "pearson"},
                                                         {Measure::Spearman, "spearman"},
                                                         {Measure::Kendall, "kendall_tau_a"},
                                                         {Measure::Cosine, "cosine"}};
        for (const auto& [m, key] : cases) {
            const CompareResult r = compare_upper_ref(m, a.data.data(), b.data.data(), a.rows);
            expect_rel(r.value, want[key].get<double>(), 1e-9, std::string(which) + " " + key);
            EXPECT_EQ(r.pairs, want["pairs"].get<int64_t>()) << which << " " << key;
            EXPECT_EQ(r.skipped, want["skipped"].get<int64_t>()) << which << " " << key;
        }
    }
}

TEST(Measures, GoldenCka) {
    const nlohmann::json g = golden();
    const Matrix x = load("resp_x.npy"), y = load("resp_y.npy");
    // FP32 Gram matrices against numpy's float64: relative 1e-6.
    expect_rel(cka_linear_ref(x, y, false), g["cka_linear"].get<double>(), 1e-6, "biased");
    expect_rel(cka_linear_ref(x, y, true), g["cka_linear_debiased"].get<double>(), 1e-6, "debiased");
    EXPECT_NEAR(cka_linear_ref(y, x, true), cka_linear_ref(x, y, true), 1e-12);
}

TEST(Measures, RankAverageMatchesRankdata) {
    // scipy.stats.rankdata([10, 20, 20, 5, 20, 7, 7], 'average') = [4, 6, 6, 1, 6, 2.5, 2.5]
    const std::vector<double> want = {4, 6, 6, 1, 6, 2.5, 2.5};
    EXPECT_EQ(rank_average({10, 20, 20, 5, 20, 7, 7}), want);
    EXPECT_EQ(rank_average({3, 3, 3}), (std::vector<double>{2, 2, 2}));
    EXPECT_EQ(rank_average({-0.0f, 0.0f, 1.0f}), (std::vector<double>{1.5, 1.5, 3}));
}

TEST(Measures, TiesHandCases) {
    // Upper triangle of a 4 x 4 RDM: 6 pairs.
    auto rdm = [](const std::vector<float>& u) {
        Matrix m(4, 4, 9.0f);
        int k = 0;
        for (int i = 0; i < 4; ++i)
            for (int j = i + 1; j < 4; ++j) m.at(i, j) = u[k++];
        return m;
    };
    const Matrix a = rdm({1, 1, 2, 2, 3, 3}), b = rdm({1, 2, 1, 2, 3, 3});
    // Pairs (i<j) of the 6 values: 15; tied in a: 3, tied in b: 1 + 1 + 1 = 3 ({1,1},{2,2},{3,3}), both: 1 (3,3).
    // Concordant/discordant counted by hand: tau-a = (C - D) / 15.
    std::vector<float> x = {1, 1, 2, 2, 3, 3}, y = {1, 2, 1, 2, 3, 3};
    int c = 0, d = 0;
    for (int i = 0; i < 6; ++i)
        for (int j = i + 1; j < 6; ++j) {
            const float p = (x[i] - x[j]) * (y[i] - y[j]);
            c += p > 0;
            d += p < 0;
        }
    EXPECT_NEAR(compare_upper_ref(Measure::Kendall, a.data.data(), b.data.data(), 4).value, (c - d) / 15.0, 1e-15);
    EXPECT_EQ(c, 9);
    EXPECT_EQ(d, 1);
    // Spearman with ties = Pearson of the average ranks.
    const CompareResult s = compare_upper_ref(Measure::Spearman, a.data.data(), b.data.data(), 4);
    // ranks a: 1.5 1.5 3.5 3.5 5.5 5.5; ranks b: 1.5 3.5 1.5 3.5 5.5 5.5 (hand-computed:
    // centred a = [-2,-2,0,0,2,2], b = [-2,0,-2,0,2,2], sxy = 4+0+0+0+4+4=12, sxx = 16, syy = 16 -> 0.75).
    EXPECT_NEAR(s.value, 0.75, 1e-15);
    // Constant side: NaN for every measure alike (Kendall used to say 0, cosine a value), on either side.
    const Matrix k = rdm({2, 2, 2, 2, 2, 2});
    for (Measure m : {Measure::Pearson, Measure::Spearman, Measure::Kendall, Measure::Cosine}) {
        EXPECT_TRUE(std::isnan(compare_upper_ref(m, k.data.data(), b.data.data(), 4).value)) << measure_name(m);
        EXPECT_TRUE(std::isnan(compare_upper_ref(m, b.data.data(), k.data.data(), 4).value)) << measure_name(m);
        EXPECT_EQ(compare_upper_ref(m, k.data.data(), b.data.data(), 4).pairs, 6) << measure_name(m);
    }
    EXPECT_NEAR(compare_upper_ref(Measure::Cosine, a.data.data(), a.data.data(), 4).value, 1.0, 1e-15);
}

TEST(Measures, NanPairsSkippedAndCounted) {
    Matrix a(6, 6, 1.0f), b(6, 6, 1.0f);
    std::mt19937_64 gen(7);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (auto& v : a.data) v = u(gen);
    for (auto& v : b.data) v = u(gen);
    a.at(0, 1) = NAN;
    b.at(0, 1) = NAN;  // same pair: skipped once
    a.at(2, 5) = NAN;
    b.at(3, 4) = NAN;
    a.at(4, 2) = NAN;  // lower triangle: ignored
    b.at(3, 3) = NAN;  // diagonal: ignored
    for (Measure m : {Measure::Pearson, Measure::Spearman, Measure::Kendall, Measure::Cosine}) {
        const CompareResult r = compare_upper_ref(m, a.data.data(), b.data.data(), 6);
        EXPECT_EQ(r.pairs, 12) << measure_name(m);
        EXPECT_EQ(r.skipped, 3) << measure_name(m);
        EXPECT_FALSE(std::isnan(r.value)) << measure_name(m);
    }
    EXPECT_NEAR(compare_upper_ref(Measure::Kendall, a.data.data(), b.data.data(), 6).value,
                tau_a_brute(a.data.data(), b.data.data(), 6), 1e-15);
    // All pairs NaN: NaN value, zero pairs.
    Matrix n(3, 3, NAN);
    for (Measure m : {Measure::Pearson, Measure::Spearman, Measure::Kendall, Measure::Cosine}) {
        const CompareResult r = compare_upper_ref(m, n.data.data(), b.data.data(), 3);
        EXPECT_TRUE(std::isnan(r.value)) << measure_name(m);
        EXPECT_EQ(r.pairs, 0);
        EXPECT_EQ(r.skipped, 3);
    }
}

TEST(Measures, KendallKnightMatchesBruteForce) {
    uint64_t seed = 0;
    for (int64_t S : {3, 4, 17, 60, 151}) {
        // Few distinct values: many ties in a, in b and jointly.
        std::vector<float> a = rsa_test::random_integers(static_cast<size_t>(S * S), 0, 5, &seed);
        std::vector<float> b = rsa_test::random_integers(static_cast<size_t>(S * S), -2, 3);
        for (size_t i = 0; i < a.size(); ++i) b[i] += a[i] > 3 ? 2.0f : 0.0f;  // some correlation
        if (S > 10) {
            a[1 * S + 7] = NAN;
            b[2 * S + 9] = NAN;
            a[3 * S + 4] = -0.0f;
            b[3 * S + 4] = 0.0f;
        }
        // A side that is constant over the used pairs has no rank correlation: NaN for every measure (compare.h),
        // where the brute-force count says 0. Small S draws that now and then.
        bool a_const = true, b_const = true;
        float a0 = NAN, b0 = NAN;
        for (int64_t i = 0; i < S; ++i)
            for (int64_t j = i + 1; j < S; ++j) {
                const float va = a[i * S + j], vb = b[i * S + j];
                if (std::isnan(va) || std::isnan(vb)) continue;
                if (std::isnan(a0)) a0 = va, b0 = vb;
                a_const = a_const && va == a0;
                b_const = b_const && vb == b0;
            }
        const double got = compare_upper_ref(Measure::Kendall, a.data(), b.data(), S).value;
        if (a_const || b_const)
            EXPECT_TRUE(std::isnan(got)) << "S " << S << " seed " << seed << ": a constant side gives NaN";
        else
            EXPECT_NEAR(got, tau_a_brute(a.data(), b.data(), S), 1e-14) << "S " << S << " seed " << seed;
    }
    // Continuous values (no ties) and identical / reversed sequences.
    std::vector<float> x(5000);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) - 2500.0f;  // distinct values
    std::shuffle(x.begin(), x.end(), std::mt19937_64(seed));
    std::vector<float> y = x, z = x;
    for (auto& v : z) v = -v;
    EXPECT_NEAR(kendall_tau_a(x, y), 1.0, 1e-15);
    EXPECT_NEAR(kendall_tau_a(x, z), -1.0, 1e-15);
    EXPECT_TRUE(std::isnan(kendall_tau_a({1.0f}, {2.0f})));
}

TEST(Measures, CkaSelfRotationScaling) {
    std::mt19937_64 gen(12345);
    const Matrix x = random_matrix(40, 12, gen), z = random_matrix(40, 9, gen);
    for (bool deb : {false, true}) {
        EXPECT_NEAR(cka_linear_ref(x, x, deb), 1.0, 1e-6) << deb;
        // Y = 3.7 * X Q with Q orthogonal: CKA(X, Y) = 1, and CKA(Z, X) = CKA(Z, Y).
        Matrix y = matmul(x, random_orthogonal(12, gen));
        for (auto& v : y.data) v *= 3.7f;
        EXPECT_NEAR(cka_linear_ref(x, y, deb), 1.0, 1e-5) << deb;
        EXPECT_NEAR(cka_linear_ref(z, y, deb), cka_linear_ref(z, x, deb), 1e-5) << deb;
        // Column offsets do not matter (columns are centred).
        Matrix xo = x;
        for (int64_t i = 0; i < xo.rows; ++i)
            for (int64_t j = 0; j < xo.cols; ++j) xo.at(i, j) += 0.5f * static_cast<float>(j);
        EXPECT_NEAR(cka_linear_ref(z, xo, deb), cka_linear_ref(z, x, deb), 1e-5) << deb;
        const double v = cka_linear_ref(x, z, deb);
        EXPECT_LT(std::abs(v), 1.0) << deb;
    }
}

TEST(Measures, CkaBadInputs) {
    try {
        cka_linear_ref(Matrix(10, 3), Matrix(11, 4), false);
        FAIL();
    } catch (const InputError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("10 x 3"), std::string::npos) << m;
        EXPECT_NE(m.find("11 x 4"), std::string::npos) << m;
    }
    EXPECT_THROW(cka_linear_ref(Matrix(3, 5), Matrix(3, 5), true), InputError);
    EXPECT_THROW(cka_linear_ref(Matrix(1, 5), Matrix(1, 5), false), InputError);
    EXPECT_THROW(cka_linear_ref(Matrix(5, 0), Matrix(5, 2), false), InputError);
    std::mt19937_64 gen(3);
    EXPECT_NO_THROW(cka_linear_ref(random_matrix(4, 2, gen), random_matrix(4, 3, gen), true));
}

namespace {

// An S x S RDM of values around 0.5 that differ by a few float ulps only (SD ~1.5e-7): constant up to rounding.
Matrix rounding_noise_rdm(int64_t S, std::mt19937_64& gen) {
    std::uniform_int_distribution<int> k(-4, 4);
    Matrix m(S, S);
    for (auto& v : m.data) v = 0.5f + static_cast<float>(k(gen)) * 0x1p-24f;
    return m;
}

}  // namespace

TEST(Measures, DegenerateSideIsNaNForEveryMeasure) {
    const int64_t S = 30;
    std::mt19937_64 gen(5);
    std::uniform_real_distribution<float> u(0.0f, 2.0f);
    Matrix b(S, S), c(S, S, 0.75f);
    for (auto& v : b.data) v = u(gen);
    const Matrix r = rounding_noise_rdm(S, gen);
    Matrix tiny = b;  // a legitimate RDM at a tiny scale is not degenerate
    for (auto& v : tiny.data) v *= 1e-20f;
    for (Measure m : {Measure::Pearson, Measure::Spearman, Measure::Kendall, Measure::Cosine}) {
        for (const Matrix* d : {static_cast<const Matrix*>(&c), &r}) {
            const CompareResult res = compare_upper_ref(m, d->data.data(), b.data.data(), S);
            EXPECT_TRUE(std::isnan(res.value)) << measure_name(m) << " " << res.value;
            EXPECT_EQ(res.pairs, S * (S - 1) / 2);
        }
        EXPECT_NEAR(compare_upper_ref(m, tiny.data.data(), b.data.data(), S).value, 1.0, 1e-6) << measure_name(m);
        // One pair (S = 2): no spread on either side, NaN for every measure (cosine included).
        const float one_a[] = {0, 1, 1, 0}, one_b[] = {0, 3, 3, 0};
        EXPECT_TRUE(std::isnan(compare_upper_ref(m, one_a, one_b, 2).value)) << measure_name(m);
    }
    // The backend gives the same kind of answer: NaN, no error (callers name the RDM with check_rdm_pair).
    auto cpu = make_cpu_backend();
    for (Measure m : {Measure::Pearson, Measure::Spearman, Measure::Kendall, Measure::Cosine})
        EXPECT_TRUE(std::isnan(rsa_test::compare_one(*cpu, c, b, m).value)) << measure_name(m);
    EXPECT_TRUE(std::isnan(rsa_test::pearson_of(*cpu, r, b)));
    EXPECT_TRUE(std::isnan(pearson_upper_ref(b.data.data(), r.data.data(), S).r));
}

TEST(Measures, CkaNeedsThreeStimuli) {
    std::mt19937_64 gen(9);
    try {
        cka_linear_ref(random_matrix(2, 5, gen), random_matrix(2, 4, gen), false);
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("at least 3 stimuli"), std::string::npos) << e.what();
    }
    auto cpu = make_cpu_backend();
    EXPECT_THROW(rsa_test::cka_one(*cpu, random_matrix(2, 5, gen), random_matrix(2, 4, gen), false), InputError);
    EXPECT_NO_THROW(cka_linear_ref(random_matrix(3, 5, gen), random_matrix(3, 4, gen), false));
}

TEST(Measures, CkaOfDegenerateResponses) {
    std::mt19937_64 gen(11);
    const int64_t S = 12, N = 40;
    const Matrix y = random_matrix(S, 7, gen), base = random_matrix(1, N, gen);
    Matrix same(S, N), rounding(S, N), offset(S, N);
    std::uniform_int_distribution<int> k(-2, 2);
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < N; ++j) {
            const float v = 100.0f + base.at(0, j);
            same.at(i, j) = v;
            rounding.at(i, j) = v + static_cast<float>(k(gen)) * 0x1p-17f;  // a few ulps of ~100
            offset.at(i, j) = v + static_cast<float>(i);                   // a real difference between stimuli
        }
    for (bool deb : {false, true}) {
        EXPECT_TRUE(std::isnan(cka_linear_ref(same, y, deb))) << deb;
        EXPECT_TRUE(std::isnan(cka_linear_ref(y, rounding, deb))) << deb;
        EXPECT_TRUE(std::isfinite(cka_linear_ref(offset, y, deb))) << deb;
        auto cpu = make_cpu_backend();
        EXPECT_TRUE(std::isnan(rsa_test::cka_one(*cpu, rounding, y, deb))) << deb;
    }
    EXPECT_TRUE(responses_degenerate_reason(y).empty());
    EXPECT_TRUE(responses_degenerate_reason(offset).empty());
    try {
        check_cka_inputs(y, same, false, "y.npy", "same.npy");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("same.npy"), std::string::npos) << m;
        EXPECT_NE(m.find("exactly the same response"), std::string::npos) << m;
    }
    try {
        check_cka_inputs(rounding, y, false, "r.npy", "y.npy");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("r.npy"), std::string::npos) << m;
        EXPECT_NE(m.find("float rounding"), std::string::npos) << m;
    }
    EXPECT_NO_THROW(check_cka_inputs(offset, y, true, "o", "y"));
}

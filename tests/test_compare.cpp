// Pearson comparison CPU twin against the tutorial's correlate_rdms (numpy golden value), input checks, and the one
// degeneracy test (spread_degenerate) behind every measure: constant and rounding-noise RDMs are named errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using namespace rsa;

TEST(Compare, PearsonMatchesCorrelateRdms) {
    const Matrix a = npy_to_matrix(npy_load(rsa_test::data_path("golden/rdm.npy")), "rdm");
    const Matrix b = npy_to_matrix(npy_load(rsa_test::data_path("golden/rdm2.npy")), "rdm2");
    std::ifstream in(rsa_test::data_path("golden/pearson.json"));
    const double want = nlohmann::json::parse(in)["pearson_rdm_rdm2"].get<double>();
    const PearsonResult r = pearson_upper_ref(a.data.data(), b.data.data(), a.rows);
    EXPECT_NEAR(r.r, want, 1e-6);
    EXPECT_EQ(r.pairs, a.rows * (a.rows - 1) / 2);
    EXPECT_EQ(r.skipped, 0);
}

TEST(Compare, IgnoresDiagonalAndLowerTriangle) {
    Matrix a(4, 4), b(4, 4);
    const float upper_a[] = {1, 2, 3, 4, 5, 7}, upper_b[] = {2, 4, 6, 8, 10, 14};
    int k = 0;
    for (int i = 0; i < 4; ++i)
        for (int j = i + 1; j < 4; ++j) {
            a.at(i, j) = upper_a[k];
            b.at(i, j) = upper_b[k++];
            a.at(j, i) = 100.0f * (i + 1);  // garbage below the diagonal
            b.at(j, i) = -7.0f * j;
        }
    a.at(2, 2) = 50.0f;
    EXPECT_NEAR(pearson_upper_ref(a.data.data(), b.data.data(), 4).r, 1.0, 1e-12);
}

TEST(Compare, ShapeMismatchNamesBoth) {
    auto cpu = make_cpu_backend();
    try {
        check_rdm_pair(Matrix(4, 4), Matrix(5, 5), "a.npy", "b.npy");
        FAIL();
    } catch (const InputError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("a.npy"), std::string::npos);
        EXPECT_NE(m.find("b.npy"), std::string::npos);
    }
    EXPECT_THROW(check_rdm_pair(Matrix(4, 3), Matrix(4, 3), "a", "b"), InputError);
    EXPECT_THROW(check_rdm_pair(Matrix(2, 2), Matrix(2, 2), "a", "b"), InputError);
}

TEST(Compare, SpreadDegenerateThresholds) {
    EXPECT_TRUE(spread_degenerate(1, 5.0, 0.0));                        // one value
    EXPECT_TRUE(spread_degenerate(10, 5.0, 0.0));                       // all equal
    EXPECT_TRUE(spread_degenerate(10, 5.0, std::nan("")));
    EXPECT_TRUE(spread_degenerate(100, 1000.0, 100 * 1e-4 * 1e-4));     // SD 1e-4 = 1e-7 of the mean
    EXPECT_FALSE(spread_degenerate(100, 1000.0, 100 * 1e-2 * 1e-2));    // SD 1e-2 = 1e-5 of the mean
    EXPECT_FALSE(spread_degenerate(100, 0.0, 100 * 1e-12 * 1e-12));     // tiny but centred values: a real spread
    EXPECT_TRUE(spread_degenerate(100, 0.0, 100 * 1e-31 * 1e-31));      // below the absolute floor
    // At the scale of correlation distances (1), an SD of 1e-7 around 0 is rounding noise; 1e-4 is not.
    EXPECT_TRUE(spread_degenerate(100, 1e-8, 100 * 1e-7 * 1e-7, 1.0));
    EXPECT_FALSE(spread_degenerate(100, 1e-8, 100 * 1e-7 * 1e-7));
    EXPECT_FALSE(spread_degenerate(100, 1e-3, 100 * 1e-4 * 1e-4, 1.0));
    EXPECT_TRUE(compare_degenerate(10, 1.0, 0.0, 1.0, 5.0));
    EXPECT_TRUE(compare_degenerate(10, 1.0, 5.0, 1.0, 0.0));
    EXPECT_FALSE(compare_degenerate(10, 1.0, 5.0, 1.0, 5.0));
}

TEST(Compare, DegenerateRdmIsANamedError) {
    const int64_t S = 20;
    std::mt19937_64 gen(3);
    std::uniform_real_distribution<float> u(0.0f, 2.0f);
    Matrix ok(S, S), constant(S, S, 0.0f), noise(S, S);
    for (auto& v : ok.data) v = u(gen);
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < S; ++j) constant.at(i, j) = i == j ? 0.0f : 1.0f;  // diagonal ignored
    std::uniform_int_distribution<int> k(-3, 3);
    for (auto& v : noise.data) v = 1.0f + static_cast<float>(k(gen)) * 0x1p-23f;  // a few ulps around 1
    EXPECT_NO_THROW(check_rdm_pair(ok, ok, "a.npy", "b.npy"));
    try {
        check_rdm_pair(ok, constant, "a.npy", "const.npy");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("const.npy"), std::string::npos) << m;
        EXPECT_NE(m.find("all equal (1)"), std::string::npos) << m;
        EXPECT_EQ(m.find("a.npy"), std::string::npos) << m;
    }
    try {
        check_rdm_pair(noise, ok, "noise.npy", "b.npy");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("noise.npy"), std::string::npos) << m;
        EXPECT_NE(m.find("up to float rounding"), std::string::npos) << m;
    }
    // Shapes only: the backends' check lets a degenerate RDM through (every measure then gives NaN).
    EXPECT_NO_THROW(check_rdm_shapes(ok, constant, "a", "b"));
    // NaN by the user's choice (--constant-rows nan) is not an error: all NaN, or a varying rest.
    Matrix all_nan(S, S, std::nanf(""));
    EXPECT_NO_THROW(check_rdm_pair(ok, all_nan, "a", "n"));
    Matrix some_nan = ok;
    for (int64_t j = 0; j < S; ++j) some_nan.at(4, j) = some_nan.at(j, 4) = std::nanf("");
    EXPECT_NO_THROW(check_rdm_pair(ok, some_nan, "a", "n"));
    // ... but a constant rest is.
    Matrix nan_and_constant = constant;
    for (int64_t j = 0; j < S; ++j) nan_and_constant.at(4, j) = nan_and_constant.at(j, 4) = std::nanf("");
    EXPECT_THROW(check_rdm_pair(ok, nan_and_constant, "a", "n"), InputError);
    EXPECT_TRUE(rdm_degenerate_reason(ok.data.data(), S).empty());
    EXPECT_FALSE(rdm_degenerate_reason(noise.data.data(), S).empty());
}

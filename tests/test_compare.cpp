// Pearson comparison CPU twin against the tutorial's correlate_rdms (numpy golden value) and input checks.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

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

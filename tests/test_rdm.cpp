// Z-score and RDM CPU twins against scipy.stats.zscore and the tutorial's RDM (golden files), plus the
// constant-row policy and the input checks.
#include <gtest/gtest.h>

#include <cmath>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using namespace rsa;

static Matrix golden_matrix(const std::string& name) { return npy_to_matrix(npy_load(rsa_test::data_path(name)), name); }

TEST(Rdm, ZscoreMatchesScipy) {
    const Matrix x = golden_matrix("golden/resp.npy"), want = golden_matrix("golden/zscore.npy");
    std::vector<float> z(x.data.size(), std::nanf(""));
    std::vector<int64_t> constant;
    zscore_rows_ref(x.data.data(), x.rows, x.cols, z.data(), &constant);
    EXPECT_TRUE(constant.empty());
    EXPECT_LT(rsa_test::rel_l2(z, want.data), 1e-6);
}

TEST(Rdm, RdmMatchesTutorial) {
    const Matrix x = golden_matrix("golden/resp.npy"), want = golden_matrix("golden/rdm.npy");
    auto cpu = make_cpu_backend();
    const Matrix m = cpu->rdm(x, RdmOptions{}, "resp");
    ASSERT_EQ(m.rows, x.rows);
    EXPECT_LT(rsa_test::rel_l2(m.data, want.data), 1e-6);
    for (int64_t i = 0; i < m.rows; ++i) {
        EXPECT_NEAR(m.at(i, i), 0.0f, 1e-5f);
        for (int64_t j = 0; j < m.rows; ++j) EXPECT_EQ(m.at(i, j), m.at(j, i));
    }
}

TEST(Rdm, ConstantRowFailsAndNamesTheRow) {
    Matrix x = golden_matrix("golden/resp.npy");
    for (int64_t j = 0; j < x.cols; ++j) x.at(4, j) = 2.5f;
    auto cpu = make_cpu_backend();
    try {
        cpu->rdm(x, RdmOptions{}, "my data");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("my data"), std::string::npos) << msg;
        EXPECT_NE(msg.find("row 4"), std::string::npos) << msg;
        EXPECT_NE(msg.find("--constant-rows nan"), std::string::npos) << msg;
    }
}

TEST(Rdm, ConstantRowAsNanIsSkippedInComparison) {
    Matrix x = golden_matrix("golden/resp.npy");
    for (int64_t j = 0; j < x.cols; ++j) x.at(4, j) = 0.0f;
    auto cpu = make_cpu_backend();
    RdmOptions opt;
    opt.constant_rows = ConstantRows::Nan;
    const Matrix m = cpu->rdm(x, opt, "x");
    EXPECT_TRUE(std::isnan(m.at(4, 7)));
    EXPECT_TRUE(std::isnan(m.at(7, 4)));
    EXPECT_FALSE(std::isnan(m.at(3, 7)));
    const Matrix ref = cpu->rdm(golden_matrix("golden/resp.npy"), RdmOptions{}, "ref");
    const PearsonResult r = cpu->compare_pearson(m, ref);
    const int64_t S = x.rows;
    EXPECT_EQ(r.skipped, S - 1);  // every pair involving row 4
    EXPECT_EQ(r.pairs, S * (S - 1) / 2 - (S - 1));
    EXPECT_TRUE(std::isfinite(r.r));
}

TEST(Rdm, BadInputs) {
    auto cpu = make_cpu_backend();
    Matrix two(2, 5, 1.0f);
    two.at(0, 1) = 3.0f;
    EXPECT_THROW(cpu->rdm(two, RdmOptions{}, "x"), InputError);   // S < 3
    EXPECT_THROW(cpu->rdm(Matrix(0, 5), RdmOptions{}, "x"), InputError);  // empty
    Matrix inf = golden_matrix("golden/resp.npy");
    inf.at(2, 3) = INFINITY;
    try {
        cpu->rdm(inf, RdmOptions{}, "x");
        FAIL();
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("row 2, column 3"), std::string::npos) << e.what();
    }
}

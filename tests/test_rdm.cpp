// Z-score and RDM CPU twins against scipy.stats.zscore and the tutorial's RDM (golden files), plus the
// constant-row policy (rows constant exactly or up to float rounding, under every memory plan), RDMs that are
// rounding noise (rows equal up to an offset and a scale), and the input checks.
#include "backend_calls.h"
#include <gtest/gtest.h>

#include <cmath>
#include <random>

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
    const Matrix m = rsa_test::rdm_of(*cpu, x, RdmOptions{}, "resp");
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
        rsa_test::rdm_of(*cpu, x, RdmOptions{}, "my data");
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
    const Matrix m = rsa_test::rdm_of(*cpu, x, opt, "x");
    EXPECT_TRUE(std::isnan(m.at(4, 7)));
    EXPECT_TRUE(std::isnan(m.at(7, 4)));
    EXPECT_FALSE(std::isnan(m.at(3, 7)));
    const Matrix ref = rsa_test::rdm_of(*cpu, golden_matrix("golden/resp.npy"), RdmOptions{}, "ref");
    const CompareResult r = rsa_test::compare_one(*cpu, m, ref, Measure::Pearson);
    const int64_t S = x.rows;
    EXPECT_EQ(r.skipped, S - 1);  // every pair involving row 4
    EXPECT_EQ(r.pairs, S * (S - 1) / 2 - (S - 1));
    EXPECT_TRUE(std::isfinite(r.value));
}

TEST(Rdm, BadInputs) {
    auto cpu = make_cpu_backend();
    Matrix two(2, 5, 1.0f);
    two.at(0, 1) = 3.0f;
    EXPECT_THROW(rsa_test::rdm_of(*cpu, two, RdmOptions{}, "x"), InputError);   // S < 3
    EXPECT_THROW(rsa_test::rdm_of(*cpu, Matrix(0, 5), RdmOptions{}, "x"), InputError);  // empty
    Matrix inf = golden_matrix("golden/resp.npy");
    inf.at(2, 3) = INFINITY;
    try {
        rsa_test::rdm_of(*cpu, inf, RdmOptions{}, "x");
        FAIL();
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("row 2, column 3"), std::string::npos) << e.what();
    }
}

namespace {

// A 2-D float32 .npy as a Matrix with NaN kept (npy_to_matrix rejects NaN).
Matrix load_with_nan(const std::string& path) {
    const NpyArray a = npy_load(path);
    Matrix m(a.shape.at(0), a.shape.at(1));
    for (size_t i = 0; i < m.data.size(); ++i) m.data[i] = static_cast<float>(a.values[i]);
    return m;
}

// S x N responses: random rows, except row `flat` = 1000 + a few float ulps (constant up to rounding).
Matrix with_rounding_row(int64_t S, int64_t N, int64_t flat, uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::normal_distribution<float> d;
    std::uniform_int_distribution<int> k(-2, 2);
    Matrix x(S, N);
    for (auto& v : x.data) v = d(gen);
    for (int64_t j = 0; j < N; ++j) x.at(flat, j) = 1000.0f + static_cast<float>(k(gen)) * 0x1p-13f;  // ulp(1000)
    return x;
}

}  // namespace

TEST(Rdm, DegenerateRowsList) {
    Matrix x = with_rounding_row(6, 50, 2, 1);
    for (int64_t j = 0; j < 50; ++j) x.at(4, j) = -3.0f;  // exactly constant
    EXPECT_EQ(degenerate_rows(x), (std::vector<int64_t>{2, 4}));
    Matrix one(5, 1, 0.0f);  // a single unit: no correlation for any row
    for (int64_t i = 0; i < 5; ++i) one.at(i, 0) = static_cast<float>(i);
    EXPECT_EQ(degenerate_rows(one).size(), 5u);
    // A large offset with a real spread (SD 1e-2 on 1000: 1e-5 relative) is a valid row.
    Matrix off = with_rounding_row(4, 50, 1, 2);
    for (int64_t j = 0; j < 50; ++j) off.at(1, j) = 1000.0f + (j % 2 ? 0.01f : -0.01f);
    EXPECT_TRUE(degenerate_rows(off).empty());
}

TEST(Rdm, RowConstantUpToRoundingUnderEveryPlan) {
    const int64_t S = 40, N = 300, flat = 7;
    const Matrix x = with_rounding_row(S, N, flat, 3);
    auto cpu = make_cpu_backend();
    // Fail: named like an exactly constant row, whatever the plan.
    for (uint64_t cap : {uint64_t{0}, uint64_t{28000}, uint64_t{5000}}) {
        RdmOptions opt;
        opt.max_gpu_bytes = cap;
        opt.output_path = rsa_test::scratch_dir("rdm_rounding_fail") + "/r.npy";
        try {
            rsa_test::rdm_of(*cpu, x, opt, "jittered data");
            FAIL() << "expected InputError, cap " << cap;
        } catch (const InputError& e) {
            const std::string m = e.what();
            EXPECT_NE(m.find("jittered data"), std::string::npos) << m;
            EXPECT_NE(m.find("row 7"), std::string::npos) << m;
            EXPECT_NE(m.find("rounding"), std::string::npos) << m;
        }
    }
    // Nan: the row and column are NaN in the one-shot, streamed (28 KB cap) and tiled (5 KB cap, on disk) results.
    const std::string dir = rsa_test::scratch_dir("rdm_rounding_nan");
    for (uint64_t cap : {uint64_t{0}, uint64_t{28000}, uint64_t{5000}}) {
        RdmOptions opt;
        opt.constant_rows = ConstantRows::Nan;
        opt.max_gpu_bytes = cap;
        opt.output_path = dir + "/tiled_" + std::to_string(cap) + ".npy";
        std::string plan;
        opt.on_plan = [&plan](const std::string& p) { plan += p; };
        Matrix m = rsa_test::rdm_of(*cpu, x, opt, "x");
        if (cap == 5000) {
            EXPECT_NE(plan.find("tiled"), std::string::npos) << plan;
            ASSERT_EQ(m.rows, 0);
            m = load_with_nan(opt.output_path);
        } else if (cap == 28000) {
            EXPECT_NE(plan.find("streamed"), std::string::npos) << plan;
        }
        ASSERT_EQ(m.rows, S) << cap;
        for (int64_t j = 0; j < S; ++j) {
            EXPECT_TRUE(std::isnan(m.at(flat, j))) << cap << " " << j;
            EXPECT_TRUE(std::isnan(m.at(j, flat))) << cap << " " << j;
        }
        EXPECT_FALSE(std::isnan(m.at(3, 9))) << cap;
    }
}

TEST(Rdm, RowsEqualUpToOffsetAndScaleGiveNoRdm) {
    // Every row = a_s * base + c_s: every correlation is 1, the RDM is float rounding noise (~1e-7).
    const int64_t S = 60, N = 2000;
    std::mt19937_64 gen(4);
    std::normal_distribution<float> d;
    std::uniform_real_distribution<float> a(0.5f, 3.0f), c(-100.0f, 100.0f);
    std::vector<float> base(static_cast<size_t>(N));
    for (auto& v : base) v = d(gen);
    Matrix x(S, N);
    for (int64_t s = 0; s < S; ++s) {
        const float as = a(gen), cs = c(gen);
        for (int64_t j = 0; j < N; ++j) x.at(s, j) = as * base[static_cast<size_t>(j)] + cs;
    }
    auto cpu = make_cpu_backend();
    try {
        rsa_test::rdm_of(*cpu, x, RdmOptions{}, "V1 responses");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("V1 responses"), std::string::npos) << m;
        EXPECT_NE(m.find("constant"), std::string::npos) << m;
        EXPECT_NE(m.find("--constant-rows nan"), std::string::npos) << m;
    }
    RdmOptions opt;
    opt.constant_rows = ConstantRows::Nan;
    const Matrix m = rsa_test::rdm_of(*cpu, x, opt, "x");
    ASSERT_EQ(m.rows, S);
    for (float v : m.data) ASSERT_TRUE(std::isnan(v));
    // One row with its own pattern makes it a real RDM again.
    for (int64_t j = 0; j < N; ++j) x.at(5, j) = d(gen);
    EXPECT_NO_THROW(rsa_test::rdm_of(*cpu, x, RdmOptions{}, "x"));
}

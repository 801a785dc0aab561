// Trial-level V1 data: loading sresp (neurons x trials) / istim (radians) from npz and npy pairs, kind detection
// by keys, binning to 1 degree (to the nearest whole degree, 360 wrapping to 0), the per-trial orientation
// mapping, and bad inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/v1_data.h"
#include "test_util.h"

using namespace rsa;

namespace {

// 5 neurons x 8 trials, value = 10 * neuron + trial; trials at 0, 45, ..., 315 degrees (radians stored).
void write_small(const std::string& dir) {
    std::vector<float> sresp(40), istim(8);
    for (int n = 0; n < 5; ++n)
        for (int t = 0; t < 8; ++t) sresp[n * 8 + t] = static_cast<float>(10 * n + t);
    for (int t = 0; t < 8; ++t) istim[t] = static_cast<float>(t * 45.0 * M_PI / 180.0);
    npz_save(dir + "/trials.npz", {{"sresp", {{5, 8}, sresp}}, {"istim", {{8}, istim}}});
    npy_save(dir + "/istim.npy", istim);
    Matrix m(5, 8);
    m.data = sresp;
    npy_save(dir + "/sresp.npy", m);
}

}  // namespace

TEST(V1Trials, LoadsAndTransposes) {
    const std::string d = rsa_test::scratch_dir("trials_load");
    write_small(d);
    EXPECT_EQ(v1_npz_kind(d + "/trials.npz"), V1FileKind::Trials);
    for (const V1Trials& t : {load_v1_trials_npz(d + "/trials.npz"), load_v1_trials_npy(d + "/sresp.npy", d + "/istim.npy")}) {
        ASSERT_EQ(t.resp.rows, 8);
        ASSERT_EQ(t.resp.cols, 5);
        EXPECT_EQ(t.resp.at(3, 2), 23.0f);
        EXPECT_NEAR(t.orientation[2], 90.0f, 1e-4);
        EXPECT_EQ(t.bin[2], 90);
    }
}

TEST(V1Trials, PerTrialAnglesWrapToPlusMinus90) {
    const std::string d = rsa_test::scratch_dir("trials_wrap");
    write_small(d);
    const V1Data v = v1_per_trial(load_v1_trials_npz(d + "/trials.npz"));
    ASSERT_EQ(v.orientation.size(), 8u);
    // 0 -> -90, 45 -> -45, 90 -> 0, 135 -> 45, 180 -> -90, 225 -> -45 ...
    const float want[] = {-90, -45, 0, 45, -90, -45, 0, 45};
    for (int i = 0; i < 8; ++i) EXPECT_NEAR(v.orientation[i], want[i], 1e-3) << i;
}

TEST(V1Trials, BinningAveragesTrialsPerDegree) {
    V1Trials t;
    t.resp = Matrix(6, 2);
    const float vals[6][2] = {{1, 0}, {3, 2}, {5, 1}, {2, 7}, {9, 4}, {4, 4}};
    for (int k = 0; k < 6; ++k)
        for (int n = 0; n < 2; ++n) t.resp.at(k, n) = vals[k][n];
    t.orientation = {10, 10.2f, 50, 50, 170, 300};
    t.bin = {10, 10, 50, 50, 170, 300};
    t.source = "test";
    const V1Data v = bin_v1_trials(t);
    ASSERT_EQ(v.resp.rows, 3);  // bins 10, 50, 170 (<= 180), shifted by -90
    EXPECT_EQ(v.orientation, (std::vector<float>{-80, -40, 80}));
    // Bin means before the z-score: neuron 0: 2, 3.5, 9, 4 -> z over the 4 bins; check the ordering survives.
    EXPECT_LT(v.resp.at(0, 0), v.resp.at(1, 0));
    EXPECT_LT(v.resp.at(1, 0), v.resp.at(2, 0));
}

TEST(V1Trials, BadInputs) {
    const std::string d = rsa_test::scratch_dir("trials_bad");
    write_small(d);
    npz_save(d + "/other.npz", {{"x", {{2}, {1.0f, 2.0f}}}});
    try {
        v1_npz_kind(d + "/other.npz");
        FAIL();
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("sresp"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("keys present: x"), std::string::npos) << e.what();
    }
    npy_save(d + "/istim7.npy", std::vector<float>(7, 0.5f));
    EXPECT_THROW(load_v1_trials_npy(d + "/sresp.npy", d + "/istim7.npy"), InputError);
    npy_save(d + "/degrees.npy", std::vector<float>{0, 45, 90, 135, 180, 225, 270, 315});
    try {
        load_v1_trials_npy(d + "/sresp.npy", d + "/degrees.npy");
        FAIL();
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("radians"), std::string::npos) << e.what();
    }
}

TEST(V1Trials, OrientationsRoundToTheNearestDegree) {
    // Just below a whole degree lands in that degree's bin (truncation would put 10.7 in bin 10 and 89.9999 in
    // bin 89), just above stays, 179.6 reaches bin 180 (kept by the tutorial's <= 180), 359.7 wraps to bin 0.
    const std::string d = rsa_test::scratch_dir("trials_round");
    const double deg[] = {10.4, 10.7, 89.9999, 90.2, 179.6, 359.7, 45.0, 45.3, 200.0};
    const int want_bin[] = {10, 11, 90, 90, 180, 0, 45, 45, 200};
    const int T = 9, N = 3;
    std::vector<float> istim(T), sresp(N * T);
    for (int t = 0; t < T; ++t) istim[t] = static_cast<float>(deg[t] * M_PI / 180.0);
    for (int n = 0; n < N; ++n)
        for (int t = 0; t < T; ++t) sresp[n * T + t] = static_cast<float>((n + 1) * (t + 1) + (t * t) % 7);
    Matrix m(N, T);
    m.data = sresp;
    npy_save(d + "/sresp.npy", m);
    npy_save(d + "/istim.npy", istim);
    const V1Trials trials = load_v1_trials_npy(d + "/sresp.npy", d + "/istim.npy");
    for (int t = 0; t < T; ++t) {
        EXPECT_EQ(trials.bin[t], want_bin[t]) << deg[t];
        EXPECT_NEAR(trials.orientation[t], deg[t], 1e-3) << deg[t];
    }
    // The binned table: bins 0, 10, 11, 45, 90, 180 (200 is dropped), stimuli shifted by -90.
    const V1Data v = bin_v1_trials(trials);
    EXPECT_EQ(v.orientation, (std::vector<float>{-90, -80, -79, -45, 0, 90}));
    ASSERT_EQ(v.resp.rows, 6);
    // Bin 90 averages trials 2 (89.9999) and 3 (90.2); bin 11 holds trial 1 alone. Before the z-score over the
    // 7 bins, neuron 0's values are: bin 0: t5, 10: t0, 11: t1, 45: (t6 + t7) / 2, 90: (t2 + t3) / 2, 180: t4,
    // 200: t8. Compare the z-scored values with a direct computation.
    auto val = [&](int n, int t) { return static_cast<double>(sresp[n * T + t]); };
    for (int n = 0; n < N; ++n) {
        const double bins[7] = {val(n, 5), val(n, 0), val(n, 1), (val(n, 6) + val(n, 7)) / 2,
                                (val(n, 2) + val(n, 3)) / 2, val(n, 4), val(n, 8)};
        double mean = 0, ss = 0;
        for (double b : bins) mean += b / 7;
        for (double b : bins) ss += (b - mean) * (b - mean);
        const double sd = std::sqrt(ss / 7);
        for (int r = 0; r < 6; ++r) EXPECT_NEAR(v.resp.at(r, n), (bins[r] - mean) / sd, 1e-5) << n << " " << r;
    }
}

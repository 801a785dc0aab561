// The embedded synthetic V1 recording: dimensions, determinism, per-neuron z-scoring, and orientation
// structure (180-degree period, nearby orientations more similar than orthogonal ones).
#include "backend_calls.h"
#include <gtest/gtest.h>

#include <cmath>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/synthetic_v1.h"
#include "rsa_gpu/v1_data.h"

using namespace rsa;

static SyntheticV1Params small() {
    SyntheticV1Params p;
    p.neurons = 2000;
    return p;
}

TEST(SyntheticV1, PlanBinsEveryTrialOnce) {
    const SyntheticV1Plan plan = synthetic_v1_plan(SyntheticV1Params{});
    EXPECT_EQ(plan.neurons.size(), 23589u);
    EXPECT_EQ(plan.bin_trials.size(), 4598u);
    ASSERT_EQ(plan.stimuli.size(), 360u);
    EXPECT_EQ(plan.stimuli[0], 0.0f);
    EXPECT_EQ(plan.stimuli[359], 359.0f);
    for (int b = 0; b < 360; ++b) EXPECT_GE(plan.bin_start[b + 1] - plan.bin_start[b], 11);
}

TEST(SyntheticV1, DeterministicAndSeeded) {
    const SyntheticV1 a = synthetic_v1_ref(small()), b = synthetic_v1_ref(small());
    EXPECT_EQ(a.resp.data, b.resp.data);
    SyntheticV1Params other = small();
    other.seed += 1;
    EXPECT_NE(synthetic_v1_ref(other).resp.data, a.resp.data);
}

TEST(SyntheticV1, NeuronsZscoredOverStimuli) {
    const SyntheticV1 s = synthetic_v1_ref(small());
    ASSERT_EQ(s.resp.rows, 360);
    for (int64_t n = 0; n < s.resp.cols; n += 97) {
        double sum = 0, ss = 0;
        for (int64_t b = 0; b < 360; ++b) sum += s.resp.at(b, n);
        for (int64_t b = 0; b < 360; ++b) ss += std::pow(s.resp.at(b, n) - sum / 360, 2);
        EXPECT_NEAR(sum / 360, 0.0, 1e-5);
        EXPECT_NEAR(std::sqrt(ss / 360), 1.0, 1e-4);
    }
}

TEST(SyntheticV1, OrientationStructure) {
    const SyntheticV1 s = synthetic_v1_ref(small());
    const V1Data v1 = v1_from_synthetic(s, small());
    ASSERT_EQ(v1.resp.rows, 181);  // 0..180 degrees, shifted to -90..90
    EXPECT_EQ(v1.orientation.front(), -90.0f);
    EXPECT_EQ(v1.orientation.back(), 90.0f);
    auto cpu = make_cpu_backend();
    const Matrix m = rsa_test::rdm_of(*cpu, v1.resp, RdmOptions{}, "v1");
    // Row of -45 degrees (index 45): neighbours (+-5 deg) far more similar than the orthogonal +45 (index 135).
    EXPECT_LT(m.at(45, 50), 0.7f);
    EXPECT_GT(m.at(45, 135), 1.0f);
    // 180-degree period: -90 and +90 are similar populations.
    EXPECT_LT(m.at(0, 180), 0.7f);
}

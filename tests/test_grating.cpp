// Grating CPU twin against the tutorial's numpy grating() (golden files from tools/make_golden.py):
// pixel-exact at the tutorial's angles, including -90 and +90 (identical images).
#include <gtest/gtest.h>

#include "rsa_gpu/grating.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using namespace rsa;

TEST(Grating, DefaultSizeIs48x64) {
    GratingParams p;
    EXPECT_EQ(p.height(), 48);
    EXPECT_EQ(p.width(), 64);
}

static void check_against_golden(const GratingParams& p, const std::string& file) {
    const std::vector<float> angles = npy_to_vector(npy_load(rsa_test::data_path("golden/grating_angles.npy")), "angles");
    const NpyArray golden = npy_load(rsa_test::data_path(file));
    ASSERT_EQ(golden.shape.size(), 3u);
    ASSERT_EQ(golden.shape[0], static_cast<int64_t>(angles.size()));
    ASSERT_EQ(golden.shape[1], p.height());
    ASSERT_EQ(golden.shape[2], p.width());
    std::vector<float> out(angles.size() * p.pixels(), -1.0f);  // poisoned
    grating_ref(angles.data(), static_cast<int64_t>(angles.size()), p, out.data());
    for (size_t i = 0; i < out.size(); ++i)
        ASSERT_EQ(out[i], static_cast<float>(golden.values[i])) << file << " differs at flat index " << i;
}

TEST(Grating, PixelExactAtTutorialAngles) { check_against_golden(GratingParams{}, "golden/gratings.npy"); }

TEST(Grating, PixelExactAtOtherSizeAndFrequency) {
    GratingParams p;
    p.sf = 1.0 / 20.0;
    p.res = 0.025;
    EXPECT_EQ(p.height(), 12);
    EXPECT_EQ(p.width(), 16);
    check_against_golden(p, "golden/gratings_res025_sf20.npy");
}

TEST(Grating, PlusAndMinus90AreIdentical) {
    const Matrix m = gratings_ref({-90.0f, 90.0f, 0.0f}, GratingParams{});
    for (int64_t j = 0; j < m.cols; ++j) ASSERT_EQ(m.at(0, j), m.at(1, j));
    // 0 degrees: vertical stripes, every row equal.
    for (int i = 1; i < 48; ++i)
        for (int j = 0; j < 64; ++j) ASSERT_EQ(m.at(2, i * 64 + j), m.at(2, j));
}

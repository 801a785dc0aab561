// Grating CPU twin against the tutorial's numpy grating() (golden files from tools/make_golden.py):
// pixel-exact at the tutorial's angles, including -90 and +90 (identical images); sizes in 64 bits, absurd
// --res / --sf values and outputs over the host memory budget as InputErrors before any work.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/grating.h"
#include "rsa_gpu/host_memory.h"
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

namespace {

// Sets RSA_GPU_HOST_MEM_BYTES for one scope.
struct HostBudget {
    explicit HostBudget(const char* v) { setenv(kHostMemEnv, v, 1); }
    ~HostBudget() { unsetenv(kHostMemEnv); }
};

std::string input_error(const std::function<void()>& f) {
    try {
        f();
    } catch (const InputError& e) {
        return e.what();
    }
    return "(no InputError)";
}

}  // namespace

TEST(Grating, SizesIn64BitsAndBounded) {
    GratingParams p;
    p.res = 10.0;  // 4800 x 6400
    EXPECT_EQ(p.pixels(), int64_t{4800} * 6400);
    EXPECT_EQ(gratings_output_bytes(1000, p), uint64_t{1000} * 4800 * 6400 * 4);
    GratingParams huge;
    huge.res = 1e10;  // used to overflow int: "negative dimension in shape (2, -2147483648, ...)"
    std::string m = input_error([&] { (void)huge.height(); });
    EXPECT_NE(m.find("--res"), std::string::npos) << m;
    EXPECT_NE(m.find("4.8e+12"), std::string::npos) << m;  // the size it would have
    EXPECT_NE(input_error([&] { (void)huge.pixels(); }).find("--res"), std::string::npos);
    GratingParams big;
    big.res = 40.0;  // 19200 x 25600 = 4.9e8 pixels per image: over 2^28
    EXPECT_NE(input_error([&] { check_grating_params(big); }).find("--res"), std::string::npos);
    for (double bad : {0.0, -1.0, std::nan(""), static_cast<double>(INFINITY)}) {
        GratingParams q;
        q.res = bad;
        EXPECT_NE(input_error([&] { check_grating_params(q); }).find("--res"), std::string::npos) << bad;
        q = GratingParams{};
        q.sf = bad;
        EXPECT_NE(input_error([&] { check_grating_params(q); }).find("--sf"), std::string::npos) << bad;
    }
    EXPECT_NO_THROW(check_grating_params(GratingParams{}));
}

TEST(Grating, OutputOverTheHostBudgetIsRefusedBeforeDrawing) {
    HostBudget budget("4G");
    // 2 million angles of 48 x 64: 24.6 GB.
    const std::string m = input_error([] { check_gratings_output(2000000, GratingParams{}); });
    EXPECT_NE(m.find("2000000 gratings of 48 x 64"), std::string::npos) << m;
    EXPECT_NE(m.find("24.58 GB"), std::string::npos) << m;
    EXPECT_NE(m.find("4.29 GB"), std::string::npos) << m;  // the budget
    EXPECT_NE(m.find("at most 349525"), std::string::npos) << m;
    EXPECT_NO_THROW(check_gratings_output(1000, GratingParams{}));
    // Through the backend: the InputError comes before the 24.6 GB allocation.
    auto cpu = make_cpu_backend();
    const std::vector<float> angles(2000000, 10.0f);
    EXPECT_NE(input_error([&] { cpu->gratings(angles, GratingParams{}); }).find("24.58 GB"), std::string::npos);
    // The twin's own allocation is checked too: OutOfMemoryError naming it.
    try {
        gratings_ref(angles, GratingParams{});
        FAIL() << "expected OutOfMemoryError";
    } catch (const OutOfMemoryError& e) {
        EXPECT_NE(std::string(e.what()).find("2000000 gratings"), std::string::npos) << e.what();
    }
}

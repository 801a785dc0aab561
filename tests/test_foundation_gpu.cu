// GPU kernels of the foundation against their CPU twins, on fresh random inputs with poisoned outputs:
// gratings (pixel-exact), row and column z-score, the SYRK RDM (FP32 relative L2 < 1e-5; exact on integer
// inputs), the Pearson comparison, and the synthetic V1 generator.
#include <gtest/gtest.h>

#include <cmath>

#include "compare.cuh"
#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "grating.cuh"
#include "rdm.cuh"
#include "rsa_gpu/backend.h"
#include "synthetic_v1.cuh"
#include "test_util.h"

using namespace rsa;

namespace {

GpuContext& ctx() { return gpu_context(0); }

std::vector<float> download(const DeviceBuffer<float>& d) {
    std::vector<float> h(d.size());
    d.download(h.data(), h.size(), ctx().stream);
    return h;
}

}  // namespace

TEST(GratingGpu, PixelExactVsCpuTwin) {
    std::vector<float> angles = rsa_test::random_uniform(200, -90.0f, 90.0f);
    for (float a : {-90.0f, -45.0f, 0.0f, 45.0f, 90.0f}) angles.push_back(a);
    for (GratingParams p : {GratingParams{}, GratingParams{1.0 / 20.0, 0.025}}) {
        DeviceBuffer<float> d_angles, d_out(angles.size() * p.pixels());
        d_angles.upload(angles, ctx().stream);
        d_out.poison(ctx().stream);
        grating_launch(d_angles.get(), static_cast<int64_t>(angles.size()), p, d_out.get(), ctx().stream);
        const std::vector<float> gpu = download(d_out);
        std::vector<float> cpu(gpu.size());
        grating_ref(angles.data(), static_cast<int64_t>(angles.size()), p, cpu.data());
        int64_t differing = 0;
        for (size_t i = 0; i < gpu.size(); ++i) differing += gpu[i] != cpu[i];
        EXPECT_EQ(differing, 0);
    }
}

TEST(RdmGpu, ZscoreRowsVsCpuTwin) {
    for (auto [S, N] : {std::pair<int64_t, int64_t>{181, 23589}, {37, 5}, {3, 1000}}) {
        std::vector<float> x = rsa_test::random_uniform(static_cast<size_t>(S * N), -3.0f, 5.0f);
        for (int64_t j = 0; j < N; ++j) x[static_cast<size_t>(N + j)] = 1.5f;  // row 1 constant
        DeviceBuffer<float> d_x, d_z(x.size());
        DeviceBuffer<int> d_const(static_cast<size_t>(S));
        d_x.upload(x, ctx().stream);
        d_z.poison(ctx().stream);
        d_const.poison(ctx().stream);
        zscore_rows_launch(d_x.get(), S, N, d_z.get(), d_const.get(), ctx().stream);
        const std::vector<float> gpu = download(d_z);
        std::vector<float> cpu(x.size());
        std::vector<int64_t> constant;
        zscore_rows_ref(x.data(), S, N, cpu.data(), &constant);
        EXPECT_LT(rsa_test::rel_l2(gpu, cpu), 1e-5) << S << " x " << N;
        std::vector<int> flags(static_cast<size_t>(S));
        d_const.download(flags.data(), flags.size(), ctx().stream);
        EXPECT_EQ(constant, std::vector<int64_t>{1});
        for (int64_t s = 0; s < S; ++s) EXPECT_EQ(flags[static_cast<size_t>(s)], s == 1 ? 1 : 0);
    }
}

TEST(RdmGpu, ZscoreColumnsVsCpuTwin) {
    const int64_t R = 360, C = 1001;
    std::vector<float> x = rsa_test::random_uniform(static_cast<size_t>(R * C), -2.0f, 2.0f);
    DeviceBuffer<float> d_x;
    d_x.upload(x, ctx().stream);
    zscore_columns_launch(d_x.get(), R, C, ctx().stream);
    zscore_columns_ref(x.data(), R, C);
    EXPECT_LT(rsa_test::rel_l2(download(d_x), x), 1e-5);
}

TEST(RdmGpu, SyrkRdmVsCpuTwin) {
    for (auto [S, N] : {std::pair<int64_t, int64_t>{181, 23589}, {500, 3072}, {3, 7}}) {
        const std::vector<float> z = rsa_test::random_uniform(static_cast<size_t>(S * N), -2.0f, 2.0f);
        DeviceBuffer<float> d_z, d_m(static_cast<size_t>(S * S));
        d_z.upload(z, ctx().stream);
        d_m.poison(ctx().stream);
        rdm_from_zscored_launch(ctx().cublas, d_z.get(), S, N, d_m.get(), ctx().stream);
        std::vector<float> cpu(static_cast<size_t>(S * S));
        rdm_from_zscored_ref(z.data(), S, N, cpu.data());
        EXPECT_LT(rsa_test::rel_l2(download(d_m), cpu), 1e-5) << S << " x " << N;
    }
}

TEST(RdmGpu, SyrkExactOnIntegers) {
    // Integer inputs, N a power of two: every product, sum and the scaling are exact in FP32.
    const int64_t S = 64, N = 256;
    const std::vector<float> z = rsa_test::random_integers(static_cast<size_t>(S * N), -4, 4);
    DeviceBuffer<float> d_z, d_m(static_cast<size_t>(S * S));
    d_z.upload(z, ctx().stream);
    d_m.poison(ctx().stream);
    rdm_from_zscored_launch(ctx().cublas, d_z.get(), S, N, d_m.get(), ctx().stream);
    std::vector<float> cpu(static_cast<size_t>(S * S));
    rdm_from_zscored_ref(z.data(), S, N, cpu.data());
    EXPECT_EQ(download(d_m), cpu);
}

TEST(CompareGpu, PearsonVsCpuTwin) {
    for (int64_t S : {3, 181, 2000}) {
        std::vector<float> a = rsa_test::random_uniform(static_cast<size_t>(S * S), 0.0f, 2.0f);
        std::vector<float> b = rsa_test::random_uniform(static_cast<size_t>(S * S), 0.0f, 2.0f);
        for (int64_t i = 0; i < S * S; ++i) b[i] = 0.5f * b[i] + 0.5f * a[i];
        if (S > 10) a[5 * S + 9] = std::nanf("");  // one NaN pair in the upper triangle
        DeviceBuffer<float> d_a, d_b;
        DeviceBuffer<char> work(pearson_workspace_bytes(S));
        work.poison(ctx().stream);
        d_a.upload(a, ctx().stream);
        d_b.upload(b, ctx().stream);
        const PearsonResult gpu = pearson_upper_launch(d_a.get(), d_b.get(), S, work.get(), ctx().stream);
        const PearsonResult cpu = pearson_upper_ref(a.data(), b.data(), S);
        EXPECT_NEAR(gpu.r, cpu.r, 1e-10 * std::max(1.0, std::abs(cpu.r))) << S;
        EXPECT_EQ(gpu.pairs, cpu.pairs);
        EXPECT_EQ(gpu.skipped, cpu.skipped);
    }
}

TEST(SyntheticV1Gpu, SameStreamAsCpuTwin) {
    SyntheticV1Params p;
    p.neurons = 3000;
    const SyntheticV1Plan plan = synthetic_v1_plan(p);
    DeviceBuffer<float> d_out(static_cast<size_t>(p.bins * p.neurons));
    d_out.poison(ctx().stream);
    synthetic_v1_launch(plan, d_out.get(), ctx().stream);
    const SyntheticV1 cpu = synthetic_v1_ref(p);
    EXPECT_LT(rsa_test::rel_l2(download(d_out), cpu.resp.data), 1e-5);
}

TEST(BackendGpu, WholeMainJobPathVsCpu) {
    auto gpu = make_gpu_backend(0);
    auto cpu = make_cpu_backend();
    SyntheticV1Params p;
    p.neurons = 5000;
    const Matrix v1g = gpu->synthetic_v1(p).resp, v1c = cpu->synthetic_v1(p).resp;
    EXPECT_LT(rsa_test::rel_l2(v1g.data, v1c.data), 1e-5);
    const Matrix rg = gpu->rdm(v1c, RdmOptions{}, "v1"), rc = cpu->rdm(v1c, RdmOptions{}, "v1");
    EXPECT_LT(rsa_test::rel_l2(rg.data, rc.data), 1e-5);
    std::vector<float> angles;
    for (int a = -90; a <= 90; ++a) angles.push_back(static_cast<float>(a));
    const Matrix pg = gpu->rdm(gpu->gratings(angles, {}), RdmOptions{}, "px");
    const Matrix pc = cpu->rdm(cpu->gratings(angles, {}), RdmOptions{}, "px");
    EXPECT_NEAR(gpu->compare_pearson(rg, pg).r, cpu->compare_pearson(rc, pc).r, 1e-5);
}

TEST(SyntheticV1Gpu, TrialLevelSameStreamAsCpuTwin) {
    SyntheticV1Params p;
    p.neurons = 700;
    const SyntheticV1Plan plan = synthetic_v1_plan(p);
    DeviceBuffer<float> d_out(static_cast<size_t>(p.trials * p.neurons));
    d_out.poison(ctx().stream);
    synthetic_v1_trials_launch(plan, d_out.get(), ctx().stream);
    const SyntheticV1Trials cpu = synthetic_v1_trials_ref(p);
    EXPECT_LT(rsa_test::rel_l2(download(d_out), cpu.resp.data), 1e-5);
}

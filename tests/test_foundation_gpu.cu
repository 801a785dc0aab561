// GPU kernels of the foundation against their CPU twins, on fresh random inputs with poisoned outputs:
// gratings (pixel-exact), row moments and the z-score (bit-identical, also in place) and column z-score, the
// engines' accumulation and finish (FP32 relative L2 < 1e-5; exact on integer inputs), the Pearson comparison (NaN
// on degenerate sides, as the twin), and the synthetic V1 generator; the backend's row moments and main-job path, and its RDM on degenerate rows (constant up
// to rounding: NaN rows and columns or an InputError; rows the same pattern up to an offset and a scale: a constant
// RDM, all NaN or an InputError) as the CPU backend; the context's cuDNN handle created only on first use.
#include "backend_calls.h"
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <utility>

#include "compare.cuh"
#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "grating.cuh"
#include "rdm_scale.cuh"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
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

TEST(RdmGpu, RowMomentsAndZscoreVsCpuEngine) {
    for (auto [S, N] : {std::pair<int64_t, int64_t>{181, 23589}, {37, 5}, {3, 1000}}) {
        std::vector<float> x = rsa_test::random_uniform(static_cast<size_t>(S * N), -3.0f, 5.0f);
        for (int64_t j = 0; j < N; ++j) x[static_cast<size_t>(N + j)] = 1.5f;  // row 1 constant
        DeviceBuffer<float> d_x, d_z(x.size());
        DeviceBuffer<double> d_mean(static_cast<size_t>(S)), d_m2(static_cast<size_t>(S));
        d_x.upload(x, ctx().stream);
        d_z.poison(ctx().stream);
        d_mean.poison(ctx().stream);
        d_m2.poison(ctx().stream);
        row_moments_launch(d_x.get(), S, N, N, d_mean.get(), d_m2.get(), ctx().stream);
        const RowMoments cpu = row_moments_ref(x.data(), S, N);
        std::vector<double> mean(static_cast<size_t>(S)), m2(static_cast<size_t>(S));
        d_mean.download(mean.data(), mean.size(), ctx().stream);
        d_m2.download(m2.data(), m2.size(), ctx().stream);
        for (int64_t s = 0; s < S; ++s) {
            EXPECT_NEAR(mean[s], cpu.mean[s], 1e-12 * std::max(1.0, std::abs(cpu.mean[s]))) << s;
            EXPECT_NEAR(m2[s], cpu.m2[s], 1e-10 * std::max(1.0, cpu.m2[s])) << s;
        }
        EXPECT_EQ(m2[1], 0.0);  // the constant row: exactly zero, as on the CPU
        // z with the CPU's statistics on both sides: the same expression, so the same floats (NaN row included).
        std::vector<double> inv(static_cast<size_t>(S));
        for (int64_t s = 0; s < S; ++s) inv[s] = inv_sd_from_m2(cpu.m2[s], static_cast<double>(N));
        DeviceBuffer<double> d_cmean, d_inv;
        d_cmean.upload(cpu.mean, ctx().stream);
        d_inv.upload(inv, ctx().stream);
        zscore_with_stats_launch(d_x.get(), N, S, N, d_cmean.get(), d_inv.get(), Precision::FP32, d_z.get(), N,
                                 ctx().stream);
        const std::vector<float> gpu = download(d_z);
        std::vector<float> z(x.size());
        zscore_block_ref(x.data(), N, S, N, cpu.mean.data(), inv.data(), Precision::FP32, z.data(), N);
        ASSERT_EQ(gpu.size(), z.size());
        EXPECT_EQ(std::memcmp(gpu.data(), z.data(), z.size() * sizeof(float)), 0) << S << " x " << N;
        // In place (the one-block path from a host copy and the noise ceiling): the same bits.
        zscore_with_stats_launch(d_x.get(), N, S, N, d_cmean.get(), d_inv.get(), Precision::FP32, d_x.get(), N,
                                 ctx().stream);
        const std::vector<float> in_place = download(d_x);
        EXPECT_EQ(std::memcmp(in_place.data(), z.data(), z.size() * sizeof(float)), 0) << S << " x " << N;
    }
}

TEST(BackendGpu, RowMomentsVsCpu) {
    auto gpu = make_gpu_backend(0);
    auto cpu = make_cpu_backend();
    const int64_t S = 57, N = 1013;
    Matrix x(S, N);
    x.data = rsa_test::random_uniform(static_cast<size_t>(S * N), -2.0f, 3.0f);
    for (int64_t j = 0; j < N; ++j) x.at(4, j) = -0.25f;  // row 4 constant
    const Array xa(x);
    const RowMoments g = gpu->row_moments(xa, true), c = cpu->row_moments(xa, true);
    ASSERT_EQ(g.mean.size(), c.mean.size());
    for (int64_t s = 0; s < S; ++s) {
        EXPECT_NEAR(g.mean[s], c.mean[s], 1e-12 * std::max(1.0, std::abs(c.mean[s])));
        EXPECT_NEAR(g.m2[s], c.m2[s], 1e-10 * std::max(1.0, c.m2[s]));
    }
    EXPECT_EQ(g.m2[4], 0.0);
    EXPECT_NE(xa.device_copy(0), nullptr);  // uploaded once, kept with the Array for the run
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

// The engines on inputs that are their own z-scores (moments: mean 0, m2 = N, so z = x): the accumulation and the
// finish alone, one block.
std::vector<float> engine_on_z(const std::vector<float>& z, int64_t S, int64_t N, bool gpu) {
    RowMoments m;
    m.mean.assign(static_cast<size_t>(S), 0.0);
    m.m2.assign(static_cast<size_t>(S), static_cast<double>(N));
    MemoryPlan p;
    p.stimuli = S;
    p.neurons = N;
    p.neuron_block = N;
    p.row_tile = S;
    std::vector<float> out(static_cast<size_t>(S * S));
    if (!gpu) {
        rdm_run_ref(z.data(), S, N, p, Precision::FP32, m, out.data(), nullptr);
        return out;
    }
    DeviceBuffer<float> d_m(out.size());
    d_m.poison(ctx().stream);
    RdmInput in;
    in.host = z.data();
    rdm_run_gpu(ctx(), in, S, N, p, Precision::FP32, m, d_m.get(), nullptr, true);
    return download(d_m);
}

TEST(RdmGpu, SyrkRdmVsCpuEngine) {
    for (auto [S, N] : {std::pair<int64_t, int64_t>{181, 23589}, {500, 3072}, {3, 7}}) {
        const std::vector<float> z = rsa_test::random_uniform(static_cast<size_t>(S * N), -2.0f, 2.0f);
        EXPECT_LT(rsa_test::rel_l2(engine_on_z(z, S, N, true), engine_on_z(z, S, N, false)), 1e-5) << S << " x " << N;
    }
}

TEST(RdmGpu, SyrkExactOnIntegers) {
    // Integer inputs, N a power of two: every product, sum, the scaling and 1 - v are exact in FP32.
    const int64_t S = 64, N = 256;
    const std::vector<float> z = rsa_test::random_integers(static_cast<size_t>(S * N), -4, 4);
    EXPECT_EQ(engine_on_z(z, S, N, true), engine_on_z(z, S, N, false));
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

// Degenerate sides: NaN on both twins (compare_degenerate), with the same pair counts.
TEST(CompareGpu, PearsonDegenerateIsNanAsCpuTwin) {
    const int64_t S = 37;
    const size_t n = static_cast<size_t>(S * S);
    const std::vector<float> r = rsa_test::random_uniform(n, 0.0f, 2.0f);
    std::vector<float> constant(n, 1.25f), near(n, 1.25f), one = r;
    for (size_t i = 0; i < n; i += 2) near[i] = std::nextafter(1.25f, 2.0f);  // equal up to rounding
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j)
            if (!(i == 0 && j == 1)) one[static_cast<size_t>(i * S + j)] = std::nanf("");  // one used pair
    DeviceBuffer<char> work(pearson_workspace_bytes(S));
    DeviceBuffer<float> d_r;
    d_r.upload(r, ctx().stream);
    for (const auto& [name, side] : {std::pair<const char*, const std::vector<float>*>{"constant", &constant},
                                     {"constant up to rounding", &near}, {"one used pair", &one}}) {
        DeviceBuffer<float> d_s;
        d_s.upload(*side, ctx().stream);
        const PearsonResult gpu = pearson_upper_launch(d_r.get(), d_s.get(), S, work.get(), ctx().stream);
        const PearsonResult cpu = pearson_upper_ref(r.data(), side->data(), S);
        EXPECT_TRUE(std::isnan(gpu.r)) << name << ": gpu " << gpu.r;
        EXPECT_TRUE(std::isnan(cpu.r)) << name << ": cpu " << cpu.r;
        EXPECT_EQ(gpu.pairs, cpu.pairs) << name;
        EXPECT_EQ(gpu.skipped, cpu.skipped) << name;
    }
}

// GpuBackend::rdm on degenerate rows, as the CPU backend (host/cpu_backend.cpp): the same checks in the same order.
TEST(BackendGpu, RdmDegenerateRowsAsCpu) {
    auto gpu = make_gpu_backend(0);
    auto cpu = make_cpu_backend();
    const int64_t S = 40, N = 300;
    Matrix x(S, N);
    x.data = rsa_test::random_uniform(x.data.size(), -1.0f, 1.0f);
    for (int64_t j = 0; j < N; ++j) {
        x.at(11, j) = 3.5f;                                             // exactly constant
        x.at(5, j) = (j % 2) ? std::nextafter(2.5f, 3.0f) : 2.5f;       // constant up to rounding
    }
    RdmOptions keep;
    keep.constant_rows = ConstantRows::Nan;
    const Matrix g = rsa_test::rdm_of(*gpu, x, keep, "x"), c = rsa_test::rdm_of(*cpu, x, keep, "x");
    ASSERT_EQ(g.rows, S);
    EXPECT_LT(rsa_test::rel_l2(g.data, c.data), 1e-5);  // +inf where NaN on one side only
    for (int64_t i = 0; i < S; ++i)
        for (int64_t r : {5, 11}) {
            EXPECT_TRUE(std::isnan(g.at(r, i)) && std::isnan(g.at(i, r))) << r << ", " << i;
        }
    EXPECT_FALSE(std::isnan(g.at(0, 1)));
    EXPECT_THROW(rsa_test::rdm_of(*gpu, x, RdmOptions{}, "x"), InputError);
    EXPECT_THROW(rsa_test::rdm_of(*cpu, x, RdmOptions{}, "x"), InputError);

    // Every row the same pattern up to an offset and a scale: every correlation 1, the RDM constant (rounding
    // noise): all NaN with ConstantRows::Nan, an InputError with Fail, on both backends.
    Matrix y(S, N);
    const std::vector<float> p = rsa_test::random_uniform(static_cast<size_t>(N), -1.0f, 1.0f);
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < N; ++j) y.at(i, j) = (1.0f + 0.25f * static_cast<float>(i % 4)) * p[j] + 0.5f * i;
    const Matrix gy = rsa_test::rdm_of(*gpu, y, keep, "y"), cy = rsa_test::rdm_of(*cpu, y, keep, "y");
    int64_t gpu_nan = 0, cpu_nan = 0;
    for (float v : gy.data) gpu_nan += std::isnan(v);
    for (float v : cy.data) cpu_nan += std::isnan(v);
    EXPECT_EQ(cpu_nan, S * S);
    EXPECT_EQ(gpu_nan, S * S);
    EXPECT_THROW(rsa_test::rdm_of(*gpu, y, RdmOptions{}, "y"), InputError);
    EXPECT_THROW(rsa_test::rdm_of(*cpu, y, RdmOptions{}, "y"), InputError);
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
    const Matrix rg = rsa_test::rdm_of(*gpu, v1c, RdmOptions{}, "v1"), rc = rsa_test::rdm_of(*cpu, v1c, RdmOptions{}, "v1");
    EXPECT_LT(rsa_test::rel_l2(rg.data, rc.data), 1e-5);
    std::vector<float> angles;
    for (int a = -90; a <= 90; ++a) angles.push_back(static_cast<float>(a));
    const Matrix pg = rsa_test::rdm_of(*gpu, gpu->gratings(angles, {}), RdmOptions{}, "px");
    const Matrix pc = rsa_test::rdm_of(*cpu, cpu->gratings(angles, {}), RdmOptions{}, "px");
    EXPECT_NEAR(rsa_test::pearson_of(*gpu, rg, pg), rsa_test::pearson_of(*cpu, rc, pc), 1e-5);
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

// The context holds no cuDNN handle until the CNN asks for one: the RDM, comparison and statistics paths need
// cuBLAS alone (a cuDNN that does not load cannot fail them). This binary never builds a CnnGpu.
TEST(GpuContextLifetime, CudnnOnlyOnFirstUse) {
    auto gpu = make_gpu_backend(0);
    Matrix x(20, 64);
    x.data = rsa_test::random_uniform(x.data.size(), -1.0f, 1.0f);
    const Matrix m = rsa_test::rdm_of(*gpu, x, RdmOptions{}, "x");
    EXPECT_TRUE(std::isfinite(rsa_test::pearson_of(*gpu, m, m)));
    EXPECT_TRUE(std::isfinite(gpu->bootstrap(m, {m}, 10, 1, 0).lo[0]));
    EXPECT_FALSE(ctx().has_cudnn());
    const cudnnHandle_t h = gpu_cudnn(ctx());
    EXPECT_NE(h, nullptr);
    EXPECT_TRUE(ctx().has_cudnn());
    EXPECT_EQ(gpu_cudnn(ctx()), h);  // created once
}

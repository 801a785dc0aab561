// RDM statistics on the GPU against their CPU twins (host/stats_ref.cpp), fresh random inputs at S = 50 and
// S = 600: bootstrap (each resampled r within 1e-5 relative; FP32 GEMM vs double), permutation test (null
// samples within 1e-9, identical p), split-half noise ceiling; NaN / infinite input errors; and the full-size
// interval (10,000 resamples at S = 4,598) for correctness only: its speed target (performance.md) is measured
// by bench/bench_stats_gpu.cu, never asserted here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/stats.h"
#include "stats.cuh"
#include "test_util.h"

using namespace rsa;

namespace {

GpuContext& ctx() { return gpu_context(0); }

// Symmetric S x S, zero diagonal; mix * base + (1 - mix) * fresh uniform when base is given.
Matrix random_rdm(int64_t S, const Matrix* base = nullptr, float mix = 0.0f) {
    const std::vector<float> u = rsa_test::random_uniform(static_cast<size_t>(S * S), 0.0f, 2.0f);
    Matrix m(S, S);
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) {
            float v = u[static_cast<size_t>(i * S + j)];
            if (base) v = mix * base->at(i, j) + (1.0f - mix) * v;
            m.at(i, j) = m.at(j, i) = v;
        }
    return m;
}

}  // namespace

TEST(StatsGpu, BootstrapVsCpuTwin) {
    for (auto [S, R] : {std::pair<int64_t, int>{50, 2000}, {600, 600}}) {
        const Matrix a = random_rdm(S);
        const std::vector<Matrix> models = {random_rdm(S, &a, 0.8f), random_rdm(S, &a, 0.5f)};
        DeviceBuffer<float> d_a, d_b0, d_b1;
        d_a.upload(a.data, ctx().stream);
        d_b0.upload(models[0].data, ctx().stream);
        d_b1.upload(models[1].data, ctx().stream);
        const uint64_t seed = 1234 + static_cast<uint64_t>(S);
        const BootstrapResult gpu =
            bootstrap_launch(ctx().cublas, d_a.get(), {d_b0.get(), d_b1.get()}, S, R, seed, ctx().stream);
        const BootstrapResult cpu = bootstrap_ref(a, models, R, seed);
        ASSERT_EQ(gpu.samples.size(), 2u);
        for (size_t l = 0; l < 2; ++l) {
            ASSERT_EQ(gpu.samples[l].size(), static_cast<size_t>(R));
            int64_t bad = 0;
            double worst = 0.0;
            for (int r = 0; r < R; ++r) {
                const double g = gpu.samples[l][static_cast<size_t>(r)], c = cpu.samples[l][static_cast<size_t>(r)];
                const double rel = std::abs(g - c) / std::abs(c);
                worst = std::max(worst, rel);
                bad += !(rel <= 1e-5);
            }
            EXPECT_EQ(bad, 0) << "S " << S << " model " << l << " worst relative " << worst;
            EXPECT_NEAR(gpu.lo[l], cpu.lo[l], 1e-5 * std::abs(cpu.lo[l]));
            EXPECT_NEAR(gpu.hi[l], cpu.hi[l], 1e-5 * std::abs(cpu.hi[l]));
            EXPECT_EQ(gpu.nan_samples[l], 0);
        }
    }
}

TEST(StatsGpu, PermutationVsCpuTwin) {
    for (auto [S, P] : {std::pair<int64_t, int>{50, 3000}, {600, 400}}) {
        const Matrix a = random_rdm(S), b = random_rdm(S, &a, 0.05f);  // weak relation: p away from its floor
        DeviceBuffer<float> d_a, d_b;
        d_a.upload(a.data, ctx().stream);
        d_b.upload(b.data, ctx().stream);
        const uint64_t seed = 77 + static_cast<uint64_t>(S);
        const PermutationResult gpu = permutation_launch(d_a.get(), d_b.get(), S, P, seed, ctx().stream);
        const PermutationResult cpu = permutation_ref(a, b, P, seed);
        EXPECT_NEAR(gpu.r_obs, cpu.r_obs, 1e-12);
        ASSERT_EQ(gpu.null.size(), cpu.null.size());
        int64_t bad = 0;
        for (size_t p = 0; p < cpu.null.size(); ++p) bad += !(std::abs(gpu.null[p] - cpu.null[p]) <= 1e-9);
        EXPECT_EQ(bad, 0) << "S " << S;
        EXPECT_EQ(gpu.p_value, cpu.p_value) << "S " << S;
        EXPECT_GE(gpu.p_value, 1.0 / (P + 1));
        EXPECT_LE(gpu.p_value, 1.0);
    }
}

TEST(StatsGpu, NoiseCeilingVsCpuTwin) {
    for (auto [bins_n, T, N] : {std::tuple<int64_t, int64_t, int64_t>{50, 260, 120}, {600, 1500, 300}}) {
        const std::vector<float> noise = rsa_test::random_uniform(static_cast<size_t>(T * N), -1.0f, 1.0f);
        const std::vector<float> signal = rsa_test::random_uniform(static_cast<size_t>(bins_n * N), -1.0f, 1.0f);
        const std::vector<float> pick = rsa_test::random_uniform(static_cast<size_t>(T), 0.0f, 1.0f);
        Matrix resp(T, N);
        std::vector<int64_t> bins(static_cast<size_t>(T));
        for (int64_t t = 0; t < T; ++t) {
            // every bin at least once, the rest at random (some bins end up with one trial: dropped)
            const int64_t b = t < bins_n ? t : std::min<int64_t>(bins_n - 1, static_cast<int64_t>(pick[t] * bins_n));
            bins[static_cast<size_t>(t)] = 3 * b + 11;
            for (int64_t n = 0; n < N; ++n)
                resp.at(t, n) = noise[static_cast<size_t>(t * N + n)] + signal[static_cast<size_t>(b * N + n)];
        }
        DeviceBuffer<float> d_resp;
        d_resp.upload(resp.data, ctx().stream);
        const NoiseCeilingResult gpu = noise_ceiling_launch(ctx().cublas, d_resp.get(), T, N, bins, 2, 5, ctx().stream);
        const NoiseCeilingResult cpu = noise_ceiling_ref(resp, bins, 2, 5);
        EXPECT_EQ(gpu.bins_dropped, cpu.bins_dropped);
        EXPECT_EQ(gpu.kept_ids, cpu.kept_ids);
        ASSERT_EQ(gpu.r_half.size(), 2u);
        for (size_t s = 0; s < 2; ++s) EXPECT_NEAR(gpu.r_half[s], cpu.r_half[s], 1e-5) << bins_n << " split " << s;
        EXPECT_NEAR(gpu.ceiling, cpu.ceiling, 1e-5) << bins_n;
        std::printf("bins %lld: kept %lld, dropped %lld, ceiling GPU %.7f CPU %.7f\n", static_cast<long long>(bins_n),
                    static_cast<long long>(gpu.bins_kept), static_cast<long long>(gpu.bins_dropped), gpu.ceiling,
                    cpu.ceiling);
    }
}

TEST(StatsGpu, NaNInputsAreInputErrors) {
    const int64_t S = 20;
    Matrix a = random_rdm(S), b = random_rdm(S);
    b.at(3, 9) = std::nanf("");
    DeviceBuffer<float> d_a, d_b;
    d_a.upload(a.data, ctx().stream);
    d_b.upload(b.data, ctx().stream);
    EXPECT_THROW(bootstrap_launch(ctx().cublas, d_a.get(), {d_b.get()}, S, 10, 1, ctx().stream), InputError);
    EXPECT_THROW(permutation_launch(d_a.get(), d_b.get(), S, 10, 1, ctx().stream), InputError);
    std::vector<int64_t> bins(static_cast<size_t>(S));
    for (int64_t t = 0; t < S; ++t) bins[static_cast<size_t>(t)] = t / 2;
    EXPECT_THROW(noise_ceiling_launch(ctx().cublas, d_b.get(), S, S, bins, 1, 0, ctx().stream), InputError);
    // An infinity in an upper triangle is an InputError too, as check_rdm_pair makes it on the CPU.
    Matrix c = random_rdm(S);
    c.at(2, 17) = std::numeric_limits<float>::infinity();
    EXPECT_THROW(bootstrap_ref(a, {c}, 10, 1), InputError);
    DeviceBuffer<float> d_c;
    d_c.upload(c.data, ctx().stream);
    EXPECT_THROW(bootstrap_launch(ctx().cublas, d_a.get(), {d_c.get()}, S, 10, 1, ctx().stream), InputError);
    EXPECT_THROW(permutation_launch(d_c.get(), d_a.get(), S, 10, 1, ctx().stream), InputError);
}

// The interval at full size (S = 4,598, 10,000 resamples) contains the observed r; its speed is measured by
// bench/bench_stats_gpu.cu, not here.
TEST(StatsGpu, BootstrapFullSizeInterval) {
    const int64_t S = 4598;
    const Matrix a = random_rdm(S), b = random_rdm(S, &a, 0.5f);
    DeviceBuffer<float> d_a, d_b;
    d_a.upload(a.data, ctx().stream);
    d_b.upload(b.data, ctx().stream);
    const BootstrapResult res = bootstrap_launch(ctx().cublas, d_a.get(), {d_b.get()}, S, 10000, 3, ctx().stream);
    const double r_obs = pearson_upper_ref(a.data.data(), b.data.data(), S).r;
    EXPECT_LE(res.lo[0], r_obs);
    EXPECT_GE(res.hi[0], r_obs);
}

// RDM statistics on the GPU against their CPU twins (host/stats_ref.cpp), fresh random inputs at S = 50 and
// S = 600: bootstrap (each resampled r within 1e-5 relative; FP32 GEMM vs double), also column-blocked under a
// forced small budget (deterministic), and its plan at S = 50,000; permutation test (null samples within 1e-9,
// identical p), split-half noise ceiling (also with more than 65,535 x 128 units); NaN / infinite input errors;
// and the full-size interval (10,000 resamples at S = 4,598) for correctness only: its speed target
// (performance.md) is measured by bench/bench_stats_gpu.cu, never asserted here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <tuple>
#include <vector>

#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/stats.h"
#include "stats.cuh"
#include "test_util.h"

using namespace rsa;
using rsa_test::random_rdm;

namespace {

GpuContext& ctx() { return gpu_context(0); }


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
            bootstrap_launch(ctx().cublas, d_a.get(), {d_b0.get(), d_b1.get()}, S, R, seed, 0, ctx().stream);
        const BootstrapResult cpu = bootstrap_ref(a, views_of(models), R, seed);
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

// A small work budget forces the column-blocked bootstrap (uneven last block, several resample chunks): the same
// function as the CPU twin, close to the one-block GPU result, and bit-identical when run twice.
TEST(StatsGpu, BootstrapBlockedVsCpuTwin) {
    const int64_t S = 300;
    const int R = 700;
    const Matrix a = random_rdm(S);
    const std::vector<Matrix> models = {random_rdm(S, &a, 0.8f), random_rdm(S, &a, 0.5f), random_rdm(S, &a, 0.2f)};
    const uint64_t budget = 1000000;
    const BootstrapPlan plan = plan_bootstrap(S, 3, R, budget);
    ASSERT_GT(plan.blocks, 2) << plan.block_columns;
    ASSERT_NE(S % plan.block_columns, 0) << "want an uneven last block";
    ASSERT_GT(plan.chunks, 2) << plan.chunk;
    EXPECT_LE(plan.device_bytes, budget);
    DeviceBuffer<float> d_a;
    d_a.upload(a.data, ctx().stream);
    std::vector<DeviceBuffer<float>> d_models(models.size());
    std::vector<const float*> ptrs;
    for (size_t l = 0; l < models.size(); ++l) {
        d_models[l].upload(models[l].data, ctx().stream);
        ptrs.push_back(d_models[l].get());
    }
    const uint64_t seed = 4242;
    const BootstrapResult blocked =
        bootstrap_launch(ctx().cublas, d_a.get(), ptrs, S, R, seed, 0, ctx().stream, budget);
    const BootstrapResult again =
        bootstrap_launch(ctx().cublas, d_a.get(), ptrs, S, R, seed, 0, ctx().stream, budget);
    const BootstrapResult whole = bootstrap_launch(ctx().cublas, d_a.get(), ptrs, S, R, seed, 0, ctx().stream);
    const BootstrapResult cpu = bootstrap_ref(a, views_of(models), R, seed);
    ASSERT_EQ(blocked.samples.size(), 3u);
    for (size_t l = 0; l < 3; ++l) {
        ASSERT_EQ(blocked.samples[l].size(), static_cast<size_t>(R));
        EXPECT_EQ(blocked.samples[l], again.samples[l]) << "model " << l << ": not deterministic";
        int64_t bad_cpu = 0, bad_whole = 0;
        double worst_cpu = 0.0, worst_whole = 0.0;
        for (int r = 0; r < R; ++r) {
            const double g = blocked.samples[l][static_cast<size_t>(r)];
            const double c = cpu.samples[l][static_cast<size_t>(r)], w = whole.samples[l][static_cast<size_t>(r)];
            const double rel_cpu = std::abs(g - c) / std::abs(c), rel_whole = std::abs(g - w) / std::abs(w);
            worst_cpu = std::max(worst_cpu, rel_cpu);
            worst_whole = std::max(worst_whole, rel_whole);
            bad_cpu += !(rel_cpu <= 1e-5);
            bad_whole += !(rel_whole <= 1e-5);
        }
        EXPECT_EQ(bad_cpu, 0) << "model " << l << " worst relative vs CPU " << worst_cpu;
        EXPECT_EQ(bad_whole, 0) << "model " << l << " worst relative vs one block " << worst_whole;
        EXPECT_NEAR(blocked.lo[l], cpu.lo[l], 1e-5 * std::abs(cpu.lo[l]));
        EXPECT_NEAR(blocked.hi[l], cpu.hi[l], 1e-5 * std::abs(cpu.hi[l]));
        EXPECT_EQ(blocked.nan_samples[l], 0);
    }
}

// The plan at the scale the blocking exists for: S = 50,000 with three models fits the default 2 GiB budget.
TEST(StatsGpu, BootstrapPlanAtFiftyThousandStimuli) {
    const BootstrapPlan p = plan_bootstrap(50000, 3, 10000, kBootstrapWorkCap);
    EXPECT_GT(p.blocks, 1);
    EXPECT_LE(p.device_bytes, kBootstrapWorkCap);
    EXPECT_GE(p.block_columns * 11, 1000);  // GEMMs of at least 1,000 rows
    EXPECT_GE(p.chunk, 1000);
    std::printf("S 50,000, 3 models: %lld blocks of %lld columns, %lld chunks of %lld resamples, %.2f GB\n",
                static_cast<long long>(p.blocks), static_cast<long long>(p.block_columns),
                static_cast<long long>(p.chunks), static_cast<long long>(p.chunk), p.device_bytes / 1e9);
}

TEST(StatsGpu, PermutationVsCpuTwin) {
    for (auto [S, P] : {std::pair<int64_t, int>{50, 3000}, {600, 400}}) {
        const Matrix a = random_rdm(S), b = random_rdm(S, &a, 0.05f);  // weak relation: p away from its floor
        DeviceBuffer<float> d_a, d_b;
        d_a.upload(a.data, ctx().stream);
        d_b.upload(b.data, ctx().stream);
        const uint64_t seed = 77 + static_cast<uint64_t>(S);
        const PermutationResult gpu = permutation_launch(d_a.get(), d_b.get(), S, P, seed, 0, ctx().stream);
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

// A rank's range of a distributed run (first > 0): the slice [first, first + count) of the whole run, drawn by
// absolute index on the device; permutations bit for bit (one permutation per block, the same order in any chunk),
// resamples within the twin's tolerance of the CPU range (the GEMM's shape, hence its rounding, can differ).
TEST(StatsGpu, RangesAreSlicesOfTheWholeRun) {
    const int64_t S = 60;
    const int R = 300, first = 117, count = 95;
    const Matrix a = random_rdm(S), b = random_rdm(S, &a, 0.3f);
    DeviceBuffer<float> d_a, d_b;
    d_a.upload(a.data, ctx().stream);
    d_b.upload(b.data, ctx().stream);
    const uint64_t seed = 4242;
    const PermutationResult whole = permutation_launch(d_a.get(), d_b.get(), S, R, seed, 0, ctx().stream);
    const PermutationResult part = permutation_launch(d_a.get(), d_b.get(), S, count, seed, first, ctx().stream);
    ASSERT_EQ(part.null.size(), static_cast<size_t>(count));
    for (int i = 0; i < count; ++i)
        EXPECT_EQ(part.null[static_cast<size_t>(i)], whole.null[static_cast<size_t>(first + i)]);
    EXPECT_EQ(part.r_obs, whole.r_obs);
    const BootstrapResult gpu =
        bootstrap_launch(ctx().cublas, d_a.get(), {d_b.get()}, S, count, seed, first, ctx().stream);
    const BootstrapResult cpu = bootstrap_ref(a, {MatrixView(b)}, R, seed);
    const BootstrapResult gwhole =
        bootstrap_launch(ctx().cublas, d_a.get(), {d_b.get()}, S, R, seed, 0, ctx().stream);
    ASSERT_EQ(gpu.samples.at(0).size(), static_cast<size_t>(count));
    int identical = 0;
    for (int i = 0; i < count; ++i) {
        const double g = gpu.samples[0][static_cast<size_t>(i)], c = cpu.samples[0][static_cast<size_t>(first + i)];
        EXPECT_LE(std::abs(g - c), 1e-5 * std::abs(c)) << "resample " << first + i;
        identical += g == gwhole.samples[0][static_cast<size_t>(first + i)];
    }
    // Whether cuBLAS gave the range the whole run's bits (its kernel choice depends on the GEMM's shape): reported,
    // not required (the CPU twin's sums are exact, stats.h round_for_exact_sums; the GPU's FP32 GEMM is not).
    std::printf("GPU bootstrap range: %d of %d resamples bit-identical to the whole run\n", identical, count);
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

// More units than one launch's grid height held before (ceil(N / 128) > 65,535): the group means grid-stride.
TEST(StatsGpu, NoiseCeilingWithManyUnits) {
    const int64_t T = 8, N = int64_t{65535} * 128 + 777;
    // Bin b's signal is cos(b / 2) u + sin(b / 2) v: its RDM entries 1 - cos((a - b) / 2) are well apart, so the
    // FP32 rounding of 8.4-million-term products cannot move r_half.
    const std::vector<float> u = rsa_test::random_uniform(static_cast<size_t>(N), -1.0f, 1.0f);
    const std::vector<float> v = rsa_test::random_uniform(static_cast<size_t>(N), -1.0f, 1.0f);
    const std::vector<float> noise = rsa_test::random_uniform(static_cast<size_t>(T * N), -0.3f, 0.3f);
    Matrix resp(T, N);
    std::vector<int64_t> bins(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
        const int64_t b = t / 2;  // 4 bins of 2 trials
        bins[static_cast<size_t>(t)] = b;
        const float c = std::cos(0.5f * static_cast<float>(b)), sn = std::sin(0.5f * static_cast<float>(b));
        for (int64_t n = 0; n < N; ++n)
            resp.at(t, n) = c * u[static_cast<size_t>(n)] + sn * v[static_cast<size_t>(n)] +
                            noise[static_cast<size_t>(t * N + n)];
    }
    DeviceBuffer<float> d_resp;
    d_resp.upload(resp.data, ctx().stream);
    const NoiseCeilingResult gpu = noise_ceiling_launch(ctx().cublas, d_resp.get(), T, N, bins, 1, 9, ctx().stream);
    const NoiseCeilingResult cpu = noise_ceiling_ref(resp, bins, 1, 9);
    EXPECT_EQ(gpu.bins_kept, 4);
    EXPECT_NEAR(gpu.r_half[0], cpu.r_half[0], 1e-5);
    EXPECT_NEAR(gpu.ceiling, cpu.ceiling, 1e-5);
}

TEST(StatsGpu, NaNInputsAreInputErrors) {
    const int64_t S = 20;
    Matrix a = random_rdm(S), b = random_rdm(S);
    b.at(3, 9) = std::nanf("");
    DeviceBuffer<float> d_a, d_b;
    d_a.upload(a.data, ctx().stream);
    d_b.upload(b.data, ctx().stream);
    EXPECT_THROW(bootstrap_launch(ctx().cublas, d_a.get(), {d_b.get()}, S, 10, 1, 0, ctx().stream), InputError);
    EXPECT_THROW(permutation_launch(d_a.get(), d_b.get(), S, 10, 1, 0, ctx().stream), InputError);
    std::vector<int64_t> bins(static_cast<size_t>(S));
    for (int64_t t = 0; t < S; ++t) bins[static_cast<size_t>(t)] = t / 2;
    EXPECT_THROW(noise_ceiling_launch(ctx().cublas, d_b.get(), S, S, bins, 1, 0, ctx().stream), InputError);
    // An infinity in an upper triangle is an InputError too, as check_rdm_pair makes it on the CPU.
    Matrix c = random_rdm(S);
    c.at(2, 17) = std::numeric_limits<float>::infinity();
    EXPECT_THROW(bootstrap_ref(a, {c}, 10, 1), InputError);
    DeviceBuffer<float> d_c;
    d_c.upload(c.data, ctx().stream);
    EXPECT_THROW(bootstrap_launch(ctx().cublas, d_a.get(), {d_c.get()}, S, 10, 1, 0, ctx().stream), InputError);
    EXPECT_THROW(permutation_launch(d_c.get(), d_a.get(), S, 10, 1, 0, ctx().stream), InputError);
}

// The interval at full size (S = 4,598, 10,000 resamples) contains the observed r; its speed is measured by
// bench/bench_stats_gpu.cu, not here.
TEST(StatsGpu, BootstrapFullSizeInterval) {
    const int64_t S = 4598;
    const Matrix a = random_rdm(S), b = random_rdm(S, &a, 0.5f);
    DeviceBuffer<float> d_a, d_b;
    d_a.upload(a.data, ctx().stream);
    d_b.upload(b.data, ctx().stream);
    const BootstrapResult res = bootstrap_launch(ctx().cublas, d_a.get(), {d_b.get()}, S, 10000, 3, 0, ctx().stream);
    const double r_obs = pearson_upper_ref(a.data.data(), b.data.data(), S).r;
    EXPECT_LE(res.lo[0], r_obs);
    EXPECT_GE(res.hi[0], r_obs);
}

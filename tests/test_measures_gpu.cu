// GPU comparison measures (Pearson, Spearman, Kendall tau-a, cosine) and linear CKA against their CPU twins on
// fresh random inputs with ties, NaN pairs (upper and lower triangle) and signed zeros, at several sizes; degenerate
// inputs (one used pair, no pair, a side constant or constant up to float rounding) NaN for every measure on both
// twins, and through the backends (compare, compare_pearson, cka) NaN on the GPU exactly where the CPU gives NaN.
// Rank-based measures: |GPU - CPU| < 1e-9; Pearson / cosine: relative 1e-6; CKA: relative 1e-5 (the twins'
// FP32 Gram matrices come from different BLAS summation orders: OpenBLAS SSYRK vs cuBLAS pedantic SGEMM). The
// launchers run on a caller-provided workspace poisoned with NaN (0xFF) first, so nothing is read before it is
// written; the allocating conveniences give the same results bit for bit (deterministic sums).
#include "backend_calls.h"
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <limits>
#include <random>

#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "measures.cuh"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/measures.h"
#include "test_util.h"

using namespace rsa;

namespace {

GpuContext& ctx() { return gpu_context(0); }

const Measure kAll[] = {Measure::Pearson, Measure::Spearman, Measure::Kendall, Measure::Cosine};

CompareResult poisoned() {
    CompareResult r;
    r.value = std::numeric_limits<double>::quiet_NaN();
    r.pairs = -1;
    r.skipped = -1;
    return r;
}

// A pair of S x S RDMs: few distinct values (ties in a, in b and jointly) or continuous, some NaN pairs in both
// triangles and on the diagonal, signed zeros.
void make_pair(int64_t S, bool ties, std::vector<float>* a, std::vector<float>* b) {
    const size_t n = static_cast<size_t>(S * S);
    uint64_t seed = 0;
    if (ties) {
        *a = rsa_test::random_integers(n, -3, 12, &seed);
        *b = rsa_test::random_integers(n, 0, 8);
        for (size_t i = 0; i < n; ++i) {
            (*a)[i] *= 0.25f;
            (*b)[i] = 0.5f * (*b)[i] + ((*a)[i] > 1.0f ? 1.0f : 0.0f);
        }
    } else {
        *a = rsa_test::random_uniform(n, 0.0f, 2.0f, &seed);
        *b = rsa_test::random_uniform(n, 0.0f, 2.0f);
        for (size_t i = 0; i < n; ++i) (*b)[i] = 0.5f * (*b)[i] + 0.5f * (*a)[i];
    }
    std::printf("S %lld ties %d seed %llu\n", static_cast<long long>(S), ties ? 1 : 0,
                static_cast<unsigned long long>(seed));
    std::mt19937_64 gen(seed + 1);
    std::uniform_int_distribution<int64_t> pos(0, static_cast<int64_t>(n) - 1);
    const int64_t nans = S > 4 ? S / 3 + 1 : 1;
    for (int64_t k = 0; k < nans; ++k) {
        (*a)[static_cast<size_t>(pos(gen))] = std::nanf("");
        (*b)[static_cast<size_t>(pos(gen))] = std::nanf("");
    }
    if (S > 3) {
        (*a)[static_cast<size_t>(1 * S + 2)] = -0.0f;
        (*a)[static_cast<size_t>(1 * S + 3)] = 0.0f;
        (*b)[static_cast<size_t>(0 * S + 2)] = -0.0f;
    }
}

bool same_bits(double x, double y) {
    return std::memcmp(&x, &y, sizeof(double)) == 0 || (std::isnan(x) && std::isnan(y));
}

// expect_nan: the inputs are degenerate (compare_degenerate), so both twins must give NaN for every measure.
void compare_all(int64_t S, const std::vector<float>& a, const std::vector<float>& b, const std::string& what,
                 bool expect_nan = false) {
    DeviceBuffer<float> d_a, d_b;
    d_a.upload(a, ctx().stream);
    d_b.upload(b, ctx().stream);
    for (Measure m : kAll) {
        CompareResult gpu = poisoned();
        DeviceBuffer<char> work(compare_workspace_bytes(m, S));
        work.poison(ctx().stream);
        gpu = compare_upper_launch(m, d_a.get(), d_b.get(), S, work.get(), ctx().stream);
        const CompareResult cpu = compare_upper_ref(m, a.data(), b.data(), S);
        const std::string tag = what + " " + measure_name(m) + " S " + std::to_string(S);
        const CompareResult again = compare_upper_launch(m, d_a.get(), d_b.get(), S, ctx().stream);
        EXPECT_EQ(again.pairs, gpu.pairs) << tag;
        EXPECT_EQ(again.skipped, gpu.skipped) << tag;
        EXPECT_TRUE(same_bits(again.value, gpu.value)) << tag << ": " << again.value << " then " << gpu.value;
        EXPECT_EQ(gpu.pairs, cpu.pairs) << tag;
        EXPECT_EQ(gpu.skipped, cpu.skipped) << tag;
        if (expect_nan) EXPECT_TRUE(std::isnan(cpu.value)) << tag << " cpu " << cpu.value;
        if (std::isnan(cpu.value)) {
            EXPECT_TRUE(std::isnan(gpu.value)) << tag << " gpu " << gpu.value;
            continue;
        }
        const bool ranks = m == Measure::Spearman || m == Measure::Kendall;
        const double tol = ranks ? 1e-9 : 1e-6 * std::max(1.0, std::abs(cpu.value));
        EXPECT_NEAR(gpu.value, cpu.value, tol) << tag;
    }
    // The inputs are not modified.
    std::vector<float> back(a.size());
    d_a.download(back.data(), back.size(), ctx().stream);
    EXPECT_EQ(std::memcmp(back.data(), a.data(), a.size() * sizeof(float)), 0) << what;
}

}  // namespace

TEST(MeasuresGpu, AllMeasuresVsCpuTwinWithTies) {
    for (int64_t S : {5, 181, 3000}) {
        std::vector<float> a, b;
        make_pair(S, true, &a, &b);
        compare_all(S, a, b, "ties");
    }
}

TEST(MeasuresGpu, AllMeasuresVsCpuTwinContinuous) {
    for (int64_t S : {4, 181, 3000}) {
        std::vector<float> a, b;
        make_pair(S, false, &a, &b);
        compare_all(S, a, b, "continuous");
    }
}

TEST(MeasuresGpu, DegenerateInputs) {
    // S = 2: one used pair: NaN for every measure (cosine included: fewer than 2 pairs is degenerate).
    std::vector<float> a = {0.0f, 1.0f, 1.0f, 0.0f}, b = {0.0f, 3.0f, 3.0f, 0.0f};
    compare_all(2, a, b, "S2", true);
    const int64_t S = 40;
    const size_t n = static_cast<size_t>(S * S);
    std::vector<float> nan(n, std::nanf("")), c(n, 2.0f);
    std::vector<float> r = rsa_test::random_integers(n, 0, 3);
    compare_all(S, nan, r, "all-NaN", true);
    compare_all(S, c, r, "constant", true);
    compare_all(S, r, c, "constant second side", true);
    // Constant up to float rounding: 2 and the next float alternate (SD ~1.2e-7, far below 1e-6 of the mean).
    std::vector<float> near = c;
    for (size_t i = 0; i < n; i += 2) near[i] = std::nextafter(2.0f, 3.0f);
    compare_all(S, near, r, "constant up to rounding", true);
    // One used pair left in the upper triangle (every other one NaN on one side).
    std::vector<float> one = r;
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j)
            if (!(i == 3 && j == 17)) one[static_cast<size_t>(i * S + j)] = std::nanf("");
    compare_all(S, one, r, "one used pair", true);
    // Not degenerate: a small but real spread (2 and 2.001) gives values on both twins.
    std::vector<float> small = c;
    for (size_t i = 0; i < n; i += 3) small[i] = 2.001f;
    compare_all(S, small, r, "small real spread");
    for (Measure m : kAll) EXPECT_FALSE(std::isnan(compare_upper_ref(m, small.data(), r.data(), S).value));
    compare_all(S, r, r, "identical");
}

// Through the backends: GpuBackend::compare / compare_pearson / cka give NaN exactly where the CPU backend does
// (degenerate sides are not InputErrors there: only shapes are checked), and agree elsewhere.
TEST(MeasuresGpu, BackendDegenerateInputsAsCpu) {
    auto gpu = make_gpu_backend(0);
    auto cpu = make_cpu_backend();
    const int64_t S = 33;
    Matrix r(S, S), c(S, S, 0.75f), near(S, S, 0.75f);
    r.data = rsa_test::random_uniform(r.data.size(), 0.0f, 2.0f);
    for (size_t i = 0; i < near.data.size(); i += 2) near.data[i] = std::nextafter(0.75f, 1.0f);
    for (const Matrix* side : {&c, &near}) {
        for (Measure m : kAll) {
            const CompareResult g = rsa_test::compare_one(*gpu, r, *side, m), h = rsa_test::compare_one(*cpu, r, *side, m);
            EXPECT_TRUE(std::isnan(g.value)) << measure_name(m) << " gpu " << g.value;
            EXPECT_TRUE(std::isnan(h.value)) << measure_name(m) << " cpu " << h.value;
            EXPECT_EQ(g.pairs, h.pairs);
            EXPECT_EQ(g.skipped, h.skipped);
        }
        const CompareResult g = rsa_test::compare_one(*gpu, *side, r, Measure::Pearson),
                            h = rsa_test::compare_one(*cpu, *side, r, Measure::Pearson);
        EXPECT_TRUE(std::isnan(g.value) && std::isnan(h.value)) << "gpu " << g.value << " cpu " << h.value;
        EXPECT_EQ(g.pairs, h.pairs);
        EXPECT_EQ(g.skipped, h.skipped);
    }
    EXPECT_NEAR(rsa_test::pearson_of(*gpu, r, r), 1.0, 1e-12);
    EXPECT_THROW(rsa_test::compare_one(*gpu, Matrix(2, 2), Matrix(2, 2), Measure::Kendall), InputError);  // shapes still checked

    // CKA: a response matrix whose stimuli (rows) are all the same, exactly or up to rounding, gives NaN.
    const int64_t N = 17;
    Matrix x(S, N), same(S, N), almost(S, N);
    x.data = rsa_test::random_uniform(x.data.size(), -1.0f, 1.0f);
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < N; ++j) {
            same.at(i, j) = 1.0f + 0.5f * static_cast<float>(j);
            almost.at(i, j) = (i % 2) ? std::nextafter(same.at(i, j), 100.0f) : same.at(i, j);
        }
    for (bool deb : {false, true})
        for (const Matrix* y : {&same, &almost}) {
            const double g1 = rsa_test::cka_one(*gpu, x, *y, deb), g2 = rsa_test::cka_one(*gpu, *y, x, deb), h1 = rsa_test::cka_one(*cpu, x, *y, deb);
            EXPECT_TRUE(std::isnan(g1) && std::isnan(g2) && std::isnan(h1))
                << "debiased " << deb << ": gpu " << g1 << ", " << g2 << ", cpu " << h1;
        }
    EXPECT_NEAR(rsa_test::cka_one(*gpu, x, x, false), 1.0, 1e-5);
    EXPECT_THROW(rsa_test::cka_one(*gpu, x, Matrix(S + 1, N), false), InputError);
}

TEST(MeasuresGpu, CkaVsCpuTwin) {
    for (auto [S, N1, N2] : {std::tuple<int64_t, int64_t, int64_t>{5, 3, 4}, {181, 37, 23}, {1000, 300, 120}}) {
        const std::vector<float> xv = rsa_test::random_uniform(static_cast<size_t>(S * N1), -1.0f, 1.0f);
        std::vector<float> yv = rsa_test::random_uniform(static_cast<size_t>(S * N2), -1.0f, 1.0f);
        for (int64_t i = 0; i < S; ++i)  // Y shares part of X's structure, so CKA is well away from 0
            for (int64_t j = 0; j < std::min(N1, N2); ++j) yv[i * N2 + j] = 0.8f * xv[i * N1 + j] + 0.3f * yv[i * N2 + j];
        Matrix x(S, N1), y(S, N2);
        x.data = xv;
        y.data = yv;
        DeviceBuffer<float> d_x, d_y;
        d_x.upload(xv, ctx().stream);
        d_y.upload(yv, ctx().stream);
        for (bool deb : {false, true}) {
            double gpu = std::numeric_limits<double>::quiet_NaN();
            DeviceBuffer<char> work(cka_workspace_bytes(S, N1, N2));
            work.poison(ctx().stream);
            gpu = cka_linear_launch(ctx().cublas, d_x.get(), S, N1, d_y.get(), N2, deb, work.get(), ctx().stream);
            EXPECT_TRUE(same_bits(gpu, cka_linear_launch(ctx().cublas, d_x.get(), S, N1, d_y.get(), N2, deb,
                                                         ctx().stream)))
                << S << " debiased " << deb << ": not deterministic";
            const double cpu = cka_linear_ref(x, y, deb);
            EXPECT_NEAR(gpu, cpu, 1e-5 * std::max(1.0, std::abs(cpu))) << S << " debiased " << deb;
            const double self = cka_linear_launch(ctx().cublas, d_x.get(), S, N1, d_x.get(), N1, deb, ctx().stream);
            EXPECT_NEAR(self, 1.0, 1e-5) << S << " debiased " << deb;
        }
        std::vector<float> back(xv.size());
        d_x.download(back.data(), back.size(), ctx().stream);
        EXPECT_EQ(back, xv);
    }
    DeviceBuffer<float> d(12);
    EXPECT_THROW(cka_linear_launch(ctx().cublas, d.get(), 3, 2, d.get(), 2, true, ctx().stream), InputError);
}

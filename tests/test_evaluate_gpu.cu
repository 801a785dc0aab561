// The evaluation engine on the GPU (evaluate_rdms through the GPU backend: the corr / cosine bootstrap's weighted sums
// as DGEMMs in kernels/evaluate.cu) against the CPU twin (evaluate_ref), on the rsatoolbox fixture
// (tests/data/evaluate) and on random RDMs across several resample chunks: every resampled evaluation and noise
// ceiling within 1e-10 (both float64; sums in another order), the same valid resamples, and the launcher's shape
// errors. Exits 77 on a machine without a GPU (gpu_test_main.cu).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "evaluate.cuh"
#include "gpu_context.cuh"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using namespace rsa;

namespace {


void expect_close(const std::vector<double>& gpu, const std::vector<double>& cpu, double tol, const char* what) {
    ASSERT_EQ(gpu.size(), cpu.size()) << what;
    for (size_t i = 0; i < gpu.size(); ++i) {
        if (std::isnan(cpu[i])) {
            EXPECT_TRUE(std::isnan(gpu[i])) << what << "[" << i << "]";
            continue;
        }
        EXPECT_NEAR(gpu[i], cpu[i], tol) << what << "[" << i << "]";
    }
}

}  // namespace

TEST(EvaluateGpu, BootstrapMatchesTwinOnRsatoolboxFixture) {
    const rsa_test::EvaluateFixture& f = rsa_test::evaluate_fixture();
    const int64_t K = f.K, M = f.M, S = f.S;
    const std::vector<double>& data = f.data;
    const std::vector<double>& models = f.models;
    auto gpu = make_gpu_backend(0);
    for (EvalMethod method : {EvalMethod::Corr, EvalMethod::Cosine})
        for (EvalInference inference : {EvalInference::Pattern, EvalInference::Rdm, EvalInference::Both}) {
            SCOPED_TRACE(std::string(eval_method_name(method)) + " " + eval_inference_name(inference));
            EvaluateOptions o;
            o.method = method;
            o.inference = inference;
            o.bootstrap = 300;
            o.seed = 17;
            const EvaluateResult c = evaluate_ref(data, K, models, M, S, o);
            const EvaluateResult g = evaluate_rdms(*gpu, data, K, models, M, S, o);
            expect_close(g.samples, c.samples, 1e-10, "samples");
            expect_close(g.sample_lower, c.sample_lower, 1e-10, "lower");
            expect_close(g.sample_upper, c.sample_upper, 1e-10, "upper");
            expect_close(g.se, c.se, 1e-10, "se");
            EXPECT_EQ(g.valid_samples, c.valid_samples);
        }
}

TEST(EvaluateGpu, MomentsMatchTwinAcrossChunksAndBlocks) {
    // S = 181: 16,290 pairs (two pair blocks), 150 resamples (three chunks of 64), 4 data RDMs, 7 models
    const int64_t S = 181, P = S * (S - 1) / 2, K = 4, M = 7, R = 150;
    std::vector<float> d = rsa_test::random_uniform(static_cast<size_t>(K * P), 0.0f, 2.0f);
    std::vector<float> m = rsa_test::random_uniform(static_cast<size_t>(M * P), 0.0f, 2.0f);
    const std::vector<double> data(d.begin(), d.end()), models(m.begin(), m.end());
    std::vector<double> counts(static_cast<size_t>(R * S), 0.0);
    for (int64_t r = 0; r < R; ++r)
        for (int64_t k = 0; k < S; ++k) counts[r * S + bootstrap_draw(99, S, r, k)] += 1.0;
    auto gpu = make_gpu_backend(0);
    for (bool centre : {true, false}) {
        const WeightedMoments c = weighted_moments_ref(data, K, models, M, S, counts, R, centre);
        const WeightedMoments g = gpu->evaluate_moments(data, K, models, M, S, counts, R, centre);
        for (size_t i = 0; i < c.G.size(); ++i) EXPECT_NEAR(g.G[i], c.G[i], 1e-9 * (1.0 + std::fabs(c.G[i])));
        for (size_t i = 0; i < c.n.size(); ++i) EXPECT_NEAR(g.n[i], c.n[i], 1e-9 * c.n[i]);
        for (size_t i = 0; i < c.C.size(); ++i) EXPECT_NEAR(g.C[i], c.C[i], 1e-9 * (1.0 + std::fabs(c.C[i])));
        for (size_t i = 0; i < c.sx.size(); ++i) EXPECT_NEAR(g.sx[i], c.sx[i], 1e-9 * (1.0 + std::fabs(c.sx[i])));
        for (size_t i = 0; i < c.syy.size(); ++i) EXPECT_NEAR(g.syy[i], c.syy[i], 1e-9 * (1.0 + std::fabs(c.syy[i])));
    }
}

TEST(EvaluateGpu, LauncherRejectsMismatchedShapes) {
    GpuContext& ctx = gpu_context(0);
    const std::vector<double> data(3, 1.0), models(3, 1.0), counts(3, 1.0);
    EXPECT_THROW(evaluate_moments_launch(ctx.cublas, data, 1, models, 1, 3, counts, 2, true, ctx.stream), InputError);
}

// The memory plan of `rsa_gpu evaluate`'s resamples (evaluate_plan.h): 1,000 models x 10,000 resamples at S = 1,000
// fit an H200 in one batch; a small device budget splits the models; a tiny budget (the --max-gpu-mem cap) forces
// many resample and model batches with results identical to one batch, on the twin and the CPU backend, for the
// weighted sums, the expanded resamples and the permutations; an impossible budget is a clear InputError.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/evaluate_plan.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using namespace rsa;

namespace {

EvaluateMemory gpu_memory(uint64_t device, uint64_t host) {
    EvaluateMemory m;
    m.gpu = true;
    m.device_bytes = device;
    m.host_bytes = host;
    m.name = "test";
    return m;
}

EvaluateMemory host_memory(uint64_t host, uint64_t cap = 0) {
    EvaluateMemory m;
    m.host_bytes = host;
    m.cap_bytes = cap;
    m.name = "test";
    return m;
}

using Data = rsa_test::EvaluateFixture;
const Data& fixture() { return rsa_test::evaluate_fixture(); }

// The smallest cap (in steps of 256 bytes) the fixture's run of `o` plans for: many batches.
uint64_t tightest_cap(const Data& f, const EvaluateOptions& o) {
    const int64_t N = evaluate_bootstrap_count(o);
    for (uint64_t cap = 256;; cap += 256) {
        try {
            plan_evaluate(f.S, f.K, f.M, N, o.permutations, o.method, o.weighted_sums, host_memory(64ull << 30, cap));
            return cap;
        } catch (const InputError&) {
        }
        if (cap > (64u << 20)) return 0;
    }
}

void expect_same(const std::vector<double>& a, const std::vector<double>& b, const char* what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) && std::isnan(b[i])) continue;
        EXPECT_EQ(a[i], b[i]) << what << "[" << i << "]";
    }
}

}  // namespace

TEST(EvaluatePlan, ThousandModelsTenThousandResamplesFitAnH200InOneBatch) {
    // S = 1,000 patterns, 20 subjects, 1,000 models, 10,000 pattern resamples of corr; an H200's 141 GB free and a
    // 128 GiB host: every model and every resample in one weighted-sums call
    const EvaluatePlan p =
        plan_evaluate(1000, 20, 1000, 10000, 0, EvalMethod::Corr, true, gpu_memory(141'000'000'000ull, 128ull << 30));
    EXPECT_TRUE(p.weighted);
    EXPECT_TRUE(p.gpu);
    EXPECT_EQ(p.model_batch, 1000);
    EXPECT_EQ(p.model_batches, 1);
    EXPECT_EQ(p.resample_batch, 10000);
    EXPECT_EQ(p.resample_batches, 1);
    // the device holds the centred data, the models and their squares (8.07 GB) and one chunk's buffers
    EXPECT_GT(p.device_bytes, 8'000'000'000ull);
    EXPECT_LT(p.device_bytes, 8'300'000'000ull);
    EXPECT_LE(p.device_bytes, p.device_budget_bytes);
    EXPECT_LT(p.device_budget_bytes, 141'000'000'000ull);  // the margin is kept
    EXPECT_LE(p.host_resident_bytes + p.host_batch_bytes, p.host_budget_bytes);
    const std::string line = describe(p);
    EXPECT_NE(line.find("10000 resamples in 1 batch of 10000 (weighted sums on the device)"), std::string::npos)
        << line;
    EXPECT_NE(line.find("1000 models in 1 batch of 1000"), std::string::npos) << line;
    std::printf("%s\n", line.c_str());
    const nlohmann::json j = evaluate_plan_json(p);
    EXPECT_EQ(j["resample_batch"], 10000);
    EXPECT_EQ(j["model_batches"], 1);
    EXPECT_EQ(j["line"], line);
}

TEST(EvaluatePlan, SmallDeviceOrHostSplitsTheBatches) {
    // 4 GB of device memory cannot hold 1,000 models and their squares (8 GB): model batches, each within the budget
    const EvaluatePlan d =
        plan_evaluate(1000, 20, 1000, 10000, 0, EvalMethod::Corr, true, gpu_memory(4'000'000'000ull, 128ull << 30));
    EXPECT_GT(d.model_batches, 1);
    EXPECT_EQ(d.model_batches, (d.M + d.model_batch - 1) / d.model_batch);
    EXPECT_LE(d.device_bytes, d.device_budget_bytes);
    // a 16 GiB host on the CPU: the models, their copies and the moments of 10,000 resamples (1.9 GB) fit; capped at
    // 5.5 GB they do not: more batches
    const EvaluatePlan h = plan_evaluate(1000, 20, 1000, 10000, 0, EvalMethod::Corr, true, host_memory(16ull << 30));
    EXPECT_FALSE(h.gpu);
    EXPECT_EQ(h.model_batches, 1);
    const EvaluatePlan t = plan_evaluate(1000, 20, 1000, 10000, 0, EvalMethod::Corr, true,
                                         host_memory(16ull << 30, 5'500'000'000ull));
    EXPECT_GT(t.resample_batches * t.model_batches, 1);
    EXPECT_LE(t.host_resident_bytes + t.host_batch_bytes, t.host_budget_bytes);
    // other methods run one resample at a time; their model batches hold the expanded resamples
    const EvaluatePlan s = plan_evaluate(1000, 20, 1000, 10000, 0, EvalMethod::Spearman, true, host_memory(64ull << 30));
    EXPECT_FALSE(s.weighted);
    EXPECT_EQ(s.resample_batch, 1);
    EXPECT_NE(describe(s).find("10000 resamples one at a time"), std::string::npos) << describe(s);
}

TEST(EvaluatePlan, TinyBudgetGivesManyBatchesAndTheSameResults) {
    const Data& f = fixture();
    auto cpu = make_cpu_backend();
    for (const std::string method : {"corr", "cosine", "spearman", "corr_cov"}) {
        for (const std::string mode : {"pattern", "rdm", "both"}) {
            SCOPED_TRACE(method + " " + mode);
            EvaluateOptions o;
            o.method = parse_eval_method(method);
            o.inference = parse_eval_inference(mode);
            o.bootstrap = 150;
            o.permutations = 20;
            o.seed = 3;
            const EvaluateResult one = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
            EXPECT_EQ(one.plan.model_batches, 1);
            EXPECT_EQ(one.plan.resample_batches, one.plan.weighted ? 1 : 150);
            o.max_memory_bytes = tightest_cap(f, o);
            ASSERT_GT(o.max_memory_bytes, 0u);
            const EvaluateResult many = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
            EXPECT_EQ(many.plan.model_batches, f.M);  // one model at a time
            if (many.plan.weighted) EXPECT_GT(many.plan.resample_batches, 2);
            expect_same(one.samples, many.samples, "samples");
            expect_same(one.sample_lower, many.sample_lower, "lower");
            expect_same(one.sample_upper, many.sample_upper, "upper");
            EXPECT_EQ(one.p_perm, many.p_perm);
            expect_same(one.p_zero, many.p_zero, "p_zero");
            expect_same(one.pairwise, many.pairwise, "pairwise");
            // the backend's path plans the same way (the CPU backend: the host budget)
            const EvaluateResult backend = evaluate_rdms(*cpu, f.data, f.K, f.models, f.M, f.S, o);
            EXPECT_EQ(backend.plan.model_batches, many.plan.model_batches);
            EXPECT_EQ(backend.plan.resample_batches, many.plan.resample_batches);
            expect_same(one.samples, backend.samples, "backend samples");
        }
    }
}

TEST(EvaluatePlan, ImpossibleBudgetIsAClearError) {
    try {
        plan_evaluate(1000, 20, 1000, 10000, 0, EvalMethod::Corr, true, host_memory(64ull << 30, 1ull << 20));
        ADD_FAILURE() << "no error";
    } catch (const InputError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("1000 model(s) against 20 data RDM(s) of 1000 patterns do not fit"), std::string::npos) << m;
        EXPECT_NE(m.find("--max-gpu-mem"), std::string::npos) << m;
    }
    // the device too small for one model: named
    try {
        plan_evaluate(1000, 20, 10, 100, 0, EvalMethod::Cosine, true, gpu_memory(100ull << 20, 64ull << 30));
        ADD_FAILURE() << "no error";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("device budget"), std::string::npos) << e.what();
    }
    const Data& f = fixture();
    EvaluateOptions o;
    o.inference = EvalInference::Pattern;
    o.bootstrap = 50;
    o.max_memory_bytes = 1024;
    EXPECT_THROW(evaluate_ref(f.data, f.K, f.models, f.M, f.S, o), InputError);
    EXPECT_THROW(plan_evaluate(2, 1, 1, 10, 0, EvalMethod::Corr, true, host_memory(1ull << 30)), InputError);
}

TEST(EvaluatePlan, TheRunTellsItsPlan) {
    const Data& f = fixture();
    EvaluateOptions o;
    o.inference = EvalInference::Both;
    o.bootstrap = 40;
    int calls = 0;
    o.on_plan = [&](const EvaluatePlan& p) {
        ++calls;
        EXPECT_EQ(p.resamples, 40);
        EXPECT_EQ(p.M, f.M);
    };
    const EvaluateResult r = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
    EXPECT_EQ(calls, 1);
    const nlohmann::json j = evaluate_json(r, {"a", "b", "c"}, o);
    EXPECT_EQ(j["plan"]["resamples"], 40);
    EXPECT_EQ(j["plan"]["resample_batches"], 1);
    EXPECT_NE(j["plan"]["line"].get<std::string>().find("evaluation plan: 40 resamples in 1 batch of 40"),
              std::string::npos);
}

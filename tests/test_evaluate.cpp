// The evaluation engine's CPU twin (evaluate.h) against rsatoolbox (tools/make_evaluate_golden.py): every comparison
// method on full RDMs and on a pattern resample with repeats, boot_noise_ceiling, eval_fixed's estimates and tests,
// rsatoolbox's Result inference on its own bootstrap samples (exact), bootstrap standard errors within 10% of
// rsatoolbox's (different random streams), p-values on fixtures with a clear answer, the corrections, the t
// distribution and input errors; rsatoolbox's other test types on the same samples (bootstrap) and evaluations
// (ranksum, on every branch of scipy's wilcoxon), exact at 1e-9; get_ci's interval of each test type (bootstrap:
// percentiles of the same samples and of sample sets at the edges of its -inf / +inf frame; ranksum: t).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using namespace rsa;
using rsa_test::upper_vectors;

namespace {

struct Fixture {
    int64_t S = 0, K = 0, M = 0;
    std::vector<double> data, models;  // vectors, rsatoolbox's order
    nlohmann::json golden;
};


const Fixture& fixture() {
    static Fixture f = [] {
        Fixture x;
        int64_t S2 = 0;
        x.data = upper_vectors(npy_load(rsa_test::data_path("evaluate/data.npy")), &x.K, &x.S);
        x.models = upper_vectors(npy_load(rsa_test::data_path("evaluate/models.npy")), &x.M, &S2);
        std::ifstream in(rsa_test::data_path("evaluate/evaluate_golden.json"));
        x.golden = nlohmann::json::parse(in);
        return x;
    }();
    return f;
}

// Agreement with a golden vector (null: NaN expected): within tol x max(1, |want|), or, `relative`, within
// tol x |want| (p-values far below 1 compared on their own scale).
void expect_close(const std::vector<double>& got, const nlohmann::json& want, double tol, const std::string& what,
                  bool relative) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t i = 0; i < got.size(); ++i) {
        if (want[i].is_null()) {
            EXPECT_TRUE(std::isnan(got[i])) << what << "[" << i << "]";
            continue;
        }
        const double w = want[i].get<double>();
        const double bound = relative ? tol * std::fabs(w) + 1e-300 : tol * std::max(1.0, std::fabs(w));
        EXPECT_NEAR(got[i], w, bound) << what << "[" << i << "]";
    }
}
void expect_vec(const std::vector<double>& got, const nlohmann::json& want, double tol, const std::string& what) {
    expect_close(got, want, tol, what, false);
}
void expect_rel(const std::vector<double>& got, const nlohmann::json& want, double tol, const std::string& what) {
    expect_close(got, want, tol, what, true);
}

std::vector<double> flatten(const nlohmann::json& m) {
    std::vector<double> out;
    for (const auto& row : m)
        for (const auto& v : row) out.push_back(v.is_null() ? std::nan("") : v.get<double>());
    return out;
}

nlohmann::json as_json(const std::vector<double>& v) {
    nlohmann::json j = nlohmann::json::array();
    for (double x : v) j.push_back(x);
    return j;
}

const std::vector<std::string> kMethods = {"corr", "cosine", "spearman", "rho-a", "tau-a", "corr_cov", "cosine_cov"};

// A Result of the golden bootstrap subset (rsatoolbox's own samples) for `test`.
EvaluateResult subset_result(const Fixture& f, const std::string& name, const std::string& mode, EvalTest test) {
    const nlohmann::json& g = f.golden["bootstrap"][name][mode]["subset"];
    EvaluateResult r;
    r.method = parse_eval_method(name);
    r.inference = parse_eval_inference(mode);
    r.test = test;
    r.correction = Correction::None;
    r.n_model = f.M;
    r.n_rdm = f.K;
    r.n_pattern = f.S;
    r.samples = flatten(g["samples"]);
    for (const auto& v : g["lower"]) r.sample_lower.push_back(v.is_null() ? std::nan("") : v.get<double>());
    for (const auto& v : g["upper"]) r.sample_upper.push_back(v.is_null() ? std::nan("") : v.get<double>());
    return r;
}

}  // namespace

TEST(Evaluate, FixedMatchesRsatoolboxForEveryMethod) {
    const Fixture& f = fixture();
    for (const std::string& name : kMethods) {
        SCOPED_TRACE(name);
        EvaluateOptions o;
        o.method = parse_eval_method(name);
        o.inference = EvalInference::Fixed;
        const EvaluateResult r = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
        const nlohmann::json& g = f.golden["methods"][name]["fixed"];
        expect_vec(r.per_rdm, as_json(flatten(g["evaluations"])), 1e-9, "evaluations");
        expect_vec(r.mean, g["mean"], 1e-9, "mean");
        expect_vec(r.point, g["mean"], 1e-9, "point");
        expect_vec(r.se, g["sem"], 1e-9, "sem");
        expect_vec(r.ci_low, g["ci_low"], 1e-8, "ci_low");
        expect_vec(r.ci_high, g["ci_high"], 1e-8, "ci_high");
        expect_vec(r.p_zero, g["p_zero"], 1e-8, "p_zero");
        expect_vec(r.p_noise, g["p_noise"], 1e-8, "p_noise");
        expect_vec(r.pairwise, as_json(flatten(g["pairwise"])), 1e-8, "pairwise");
        EXPECT_NEAR(r.ceiling.lower, g["noise_ceiling"][0].get<double>(), 1e-9);
        EXPECT_NEAR(r.ceiling.upper, g["noise_ceiling"][1].get<double>(), 1e-9);
        EXPECT_EQ(r.dof, g["dof"].get<int>());
    }
}

TEST(Evaluate, PatternResampleComparisonsAndNoiseCeilingMatchRsatoolbox) {
    const Fixture& f = fixture();
    std::vector<int64_t> drawn;
    for (const auto& v : f.golden["resample_drawn"]) drawn.push_back(v.get<int64_t>());
    std::vector<int64_t> source;
    const RdmStructure s = resample_structure(drawn, f.S, &source);
    EXPECT_FALSE(s.all_pairs);
    const int64_t E = s.entries(), P = f.S * (f.S - 1) / 2;
    std::vector<double> d(static_cast<size_t>(f.K * E)), m(static_cast<size_t>(f.M * E));
    for (int64_t k = 0; k < f.K; ++k)
        for (int64_t e = 0; e < E; ++e) d[k * E + e] = f.data[k * P + source[e]];
    for (int64_t k = 0; k < f.M; ++k)
        for (int64_t e = 0; e < E; ++e) m[k * E + e] = f.models[k * P + source[e]];
    std::vector<int64_t> groups = {0, 1, 2, 3, 4};
    for (const std::string& name : kMethods) {
        SCOPED_TRACE(name);
        const EvalMethod method = parse_eval_method(name);
        const nlohmann::json& g = f.golden["methods"][name]["resample"];
        expect_vec(compare_rdm_vectors(method, m, f.M, d, f.K, s), as_json(flatten(g["compare"])), 1e-9, "compare");
        const NoiseCeiling nc = boot_noise_ceiling_ref(method, d, f.K, groups, s);
        EXPECT_NEAR(nc.lower, g["noise_ceiling"][0].get<double>(), 1e-9);
        EXPECT_NEAR(nc.upper, g["noise_ceiling"][1].get<double>(), 1e-9);
    }
}

TEST(Evaluate, RdmResampleNoiseCeilingGroupsRepeatsLikeRsatoolbox) {
    const Fixture& f = fixture();
    const RdmStructure s = full_structure(f.S);
    const int64_t P = f.S * (f.S - 1) / 2;
    for (const std::string& name : kMethods) {
        SCOPED_TRACE(name);
        const nlohmann::json& g = f.golden["methods"][name]["rdm_resample"];
        std::vector<int64_t> rows;
        for (const auto& v : g["rows"]) rows.push_back(v.get<int64_t>());
        std::vector<double> d;
        for (int64_t r : rows) d.insert(d.end(), f.data.begin() + r * P, f.data.begin() + (r + 1) * P);
        const NoiseCeiling nc =
            boot_noise_ceiling_ref(parse_eval_method(name), d, static_cast<int64_t>(rows.size()), rows, s);
        EXPECT_NEAR(nc.lower, g["noise_ceiling"][0].get<double>(), 1e-9);
        EXPECT_NEAR(nc.upper, g["noise_ceiling"][1].get<double>(), 1e-9);
    }
}

TEST(Evaluate, ResultInferenceOnRsatoolboxSamplesIsExact) {
    const Fixture& f = fixture();
    for (const std::string& name : {"corr", "spearman"}) {
        for (const std::string& mode : {"pattern", "rdm", "both"}) {
            SCOPED_TRACE(name + " " + mode);
            const nlohmann::json& g = f.golden["bootstrap"][name][mode]["subset"];
            EvaluateResult r = subset_result(f, name, mode, EvalTest::TTest);
            evaluate_inference(r, 0.95);
            expect_vec(r.mean, g["mean"], 1e-12, "mean");
            expect_vec(r.se, g["sem"], 1e-10, "sem");
            expect_vec(r.ci_low, g["ci_low"], 1e-8, "ci_low");
            expect_vec(r.ci_high, g["ci_high"], 1e-8, "ci_high");
            expect_vec(r.p_zero, g["p_zero"], 1e-8, "p_zero");
            expect_vec(r.p_noise, g["p_noise"], 1e-8, "p_noise");
            expect_vec(r.pairwise, as_json(flatten(g["pairwise"])), 1e-8, "pairwise");
            EXPECT_NEAR(r.ceiling.lower, g["noise_ceiling"][0].get<double>(), 1e-12);
            EXPECT_EQ(r.dof, g["dof"].get<int>());
            EXPECT_EQ(r.pairwise_corrected, r.pairwise);  // correction none
        }
    }
}

TEST(Evaluate, BootstrapStandardErrorsWithinTenPercentOfRsatoolbox) {
    const Fixture& f = fixture();
    for (const std::string& name : {"corr", "spearman"}) {
        for (const std::string& mode : {"pattern", "rdm", "both"}) {
            SCOPED_TRACE(name + " " + mode);
            const nlohmann::json& g = f.golden["bootstrap"][name][mode];
            EvaluateOptions o;
            o.method = parse_eval_method(name);
            o.inference = parse_eval_inference(mode);
            o.bootstrap = 2000;
            o.seed = 11;
            const EvaluateResult r = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
            for (int64_t m = 0; m < f.M; ++m) {
                const double want = g["sem"][m].get<double>();
                EXPECT_NEAR(r.se[m], want, 0.10 * want) << "model " << m;
                EXPECT_NEAR(r.mean[m], g["mean"][m].get<double>(), 3.0 * want) << "model " << m;
            }
            EXPECT_NEAR(r.ceiling.lower, g["noise_ceiling"][0].get<double>(), 0.05);
            EXPECT_NEAR(r.ceiling.upper, g["noise_ceiling"][1].get<double>(), 0.05);
            EXPECT_EQ(r.dof, g["dof"].get<int>());
            EXPECT_EQ(static_cast<int64_t>(r.samples.size()), 2000 * f.M);
        }
    }
}

TEST(Evaluate, ClearFixturesGiveClearPValues) {
    // 8 subjects who all see the model's structure plus small noise; a second model unrelated (a permuted copy).
    const int64_t S = 12, P = S * (S - 1) / 2, K = 8;
    std::vector<double> truth(static_cast<size_t>(P));
    for (int64_t e = 0; e < P; ++e) truth[e] = 1.0 + std::fmod(e * 0.6180339887, 1.0) + (e % 7) * 0.3;
    std::vector<double> data;
    for (int64_t k = 0; k < K; ++k)
        for (int64_t e = 0; e < P; ++e) data.push_back(truth[e] + 0.05 * std::sin(1.7 * e + 3.1 * k));
    std::vector<double> models = truth;
    for (int64_t e = 0; e < P; ++e) models.push_back(truth[(e * 37 + 11) % P]);
    EvaluateOptions o;
    o.inference = EvalInference::Fixed;
    o.permutations = 199;
    o.seed = 3;
    const EvaluateResult r = evaluate_ref(data, K, models, 2, S, o);
    EXPECT_GT(r.mean[0], 0.95);
    EXPECT_LT(r.p_zero[0], 1e-6);
    EXPECT_GT(r.p_zero[1], 1e-3);
    EXPECT_LT(r.pairwise[1], 1e-6);
    EXPECT_DOUBLE_EQ(r.pairwise[0], 1.0);
    EXPECT_NEAR(r.p_perm[0], 1.0 / 200.0, 1e-12);  // the true model beats every permutation
    EXPECT_GT(r.p_perm[1], 0.01);
    // the noise ceiling brackets the true model
    EXPECT_GT(r.ceiling.upper, r.ceiling.lower);
    EXPECT_LE(r.ceiling.lower, 1.0);
}

TEST(Evaluate, CorrectionsAndStudentT) {
    const std::vector<double> p = {0.01, 0.04, 0.03, 0.5};
    const std::vector<double> bh = correct_p_values(p, Correction::Fdr);
    EXPECT_NEAR(bh[0], 0.04, 1e-15);       // 0.01 * 4 / 1
    EXPECT_NEAR(bh[1], 0.04 * 4 / 3, 1e-15);
    EXPECT_NEAR(bh[2], 0.04 * 4 / 3, 1e-15);  // min(0.03 * 4 / 2, 0.0533)
    EXPECT_NEAR(bh[3], 0.5, 1e-15);
    const std::vector<double> bf = correct_p_values(p, Correction::Bonferroni);
    EXPECT_NEAR(bf[1], 0.16, 1e-15);
    EXPECT_EQ(bf[3], 1.0);
    EXPECT_EQ(correct_p_values(p, Correction::None), p);
    // scipy.stats.t.cdf(2.0, 4) = 0.9419417382415922; t.ppf(0.025, 9) = -2.2621571627982053
    EXPECT_NEAR(student_t_cdf(2.0, 4), 0.9419417382415922, 1e-13);
    EXPECT_NEAR(student_t_cdf(-1.5, 30), 1.0 - 0.927967035435677, 1e-12);
    EXPECT_NEAR(student_t_ppf(0.025, 9), -2.2621571627982053, 1e-10);
}

TEST(Evaluate, BadInputIsAnInputError) {
    const Fixture& f = fixture();
    EvaluateOptions o;
    std::vector<double> bad = f.data;
    bad[3] = std::nan("");
    EXPECT_THROW(evaluate_ref(bad, f.K, f.models, f.M, f.S, o), InputError);
    EXPECT_THROW(evaluate_ref(f.data, f.K, f.models, f.M, 2, o), InputError);
    EXPECT_THROW(evaluate_ref(f.data, f.K, std::vector<double>(f.models.begin(), f.models.end() - 1), f.M, f.S, o),
                 InputError);
    o.inference = EvalInference::Rdm;
    EXPECT_THROW(evaluate_ref(std::vector<double>(f.data.begin(), f.data.begin() + 45), 1, f.models, f.M, f.S, o),
                 InputError);
    EXPECT_THROW(parse_eval_method("pearson"), InputError);
    EXPECT_THROW(parse_eval_inference("crossval"), InputError);
    EXPECT_THROW(parse_correction("holm"), InputError);
}

TEST(Evaluate, WeightedSumsEqualExpandedResamples) {
    // corr and cosine bootstraps by weighted sums against the expanded resampled vectors, same draws.
    const Fixture& f = fixture();
    for (const std::string& name : {"corr", "cosine"}) {
        for (const std::string& mode : {"pattern", "rdm", "both"}) {
            SCOPED_TRACE(name + " " + mode);
            EvaluateOptions o;
            o.method = parse_eval_method(name);
            o.inference = parse_eval_inference(mode);
            o.bootstrap = 300;
            o.seed = 5;
            o.weighted_sums = true;
            const EvaluateResult a = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
            o.weighted_sums = false;
            const EvaluateResult b = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
            ASSERT_EQ(a.samples.size(), b.samples.size());
            for (size_t i = 0; i < a.samples.size(); ++i) {
                if (std::isnan(b.samples[i])) {
                    EXPECT_TRUE(std::isnan(a.samples[i])) << i;
                    continue;
                }
                EXPECT_NEAR(a.samples[i], b.samples[i], 1e-10) << i;
            }
            for (size_t i = 0; i < a.sample_lower.size(); ++i) {
                if (std::isnan(b.sample_lower[i])) continue;
                EXPECT_NEAR(a.sample_lower[i], b.sample_lower[i], 1e-10) << i;
                EXPECT_NEAR(a.sample_upper[i], b.sample_upper[i], 1e-10) << i;
            }
            EXPECT_EQ(a.valid_samples, b.valid_samples);
        }
    }
}

TEST(Evaluate, BackendPathEqualsTwin) {
    const Fixture& f = fixture();
    auto cpu = make_cpu_backend();
    EvaluateOptions o;
    o.inference = EvalInference::Both;
    o.bootstrap = 100;
    o.seed = 9;
    const EvaluateResult a = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
    const EvaluateResult b = evaluate_rdms(*cpu, f.data, f.K, f.models, f.M, f.S, o);
    EXPECT_EQ(a.samples, b.samples);
    EXPECT_EQ(a.se, b.se);
}


TEST(Evaluate, BootstrapTestOnRsatoolboxSamplesIsExact) {
    // rsatoolbox's zero_tests / nc_tests / bootstrap_pair_tests (test_type 'bootstrap') on its own 300 samples
    const Fixture& f = fixture();
    for (const std::string& name : {"corr", "spearman"}) {
        for (const std::string& mode : {"pattern", "rdm", "both"}) {
            SCOPED_TRACE(name + " " + mode);
            const nlohmann::json& g = f.golden["bootstrap"][name][mode]["subset"]["bootstrap_test"];
            EvaluateResult r = subset_result(f, name, mode, EvalTest::Bootstrap);
            evaluate_inference(r, 0.95);
            expect_rel(r.p_zero, g["p_zero"], 1e-9, "p_zero");
            expect_rel(r.p_noise, g["p_noise"], 1e-9, "p_noise");
            expect_rel(r.pairwise, as_json(flatten(g["pairwise"])), 1e-9, "pairwise");
            // get_ci(0.95, 'bootstrap'): the percentile intervals of the same samples
            EXPECT_EQ(r.interval, EvalInterval::Percentile);
            expect_rel(r.ci_low, g["ci_low"], 1e-12, "ci_low");
            expect_rel(r.ci_high, g["ci_high"], 1e-12, "ci_high");
            // the standard errors are the same whichever test gives the p-values; the t-test's intervals are t
            EvaluateResult t = subset_result(f, name, mode, EvalTest::TTest);
            evaluate_inference(t, 0.95);
            EXPECT_EQ(t.interval, EvalInterval::T);
            EXPECT_EQ(r.se, t.se);
            EXPECT_NE(r.ci_low, t.ci_low);
            EXPECT_NE(r.p_zero, t.p_zero);
        }
    }
}

TEST(Evaluate, BootstrapTestCountsNanRowsAndTies) {
    // 4 samples, one NaN row (an invalid pattern resample): p_zero = (1 + #{e <= 0}) / 4, pairs with ties
    EvaluateResult r;
    r.inference = EvalInference::Pattern;
    r.test = EvalTest::Bootstrap;
    r.correction = Correction::None;
    r.n_model = 2;
    r.n_rdm = 3;
    r.n_pattern = 10;
    const double nan = std::nan("");
    r.samples = {0.5, 0.5, -0.1, 0.2, nan, nan, 0.3, 0.4};
    r.sample_lower = {0.4, 0.1, nan, 0.35};
    r.sample_upper = {0.6, 0.6, nan, 0.6};
    evaluate_inference(r, 0.95);
    for (int m = 0; m < 2; ++m) {  // np.quantile over a column with a NaN row: NaN (and 4 samples are too few)
        EXPECT_TRUE(std::isnan(r.ci_low[m]));
        EXPECT_TRUE(std::isnan(r.ci_high[m]));
    }
    EXPECT_DOUBLE_EQ(r.p_zero[0], 2.0 / 4.0);  // -0.1
    EXPECT_DOUBLE_EQ(r.p_zero[1], 1.0 / 4.0);
    // lower_r - e_r <= 0: model 0 only in row 0 (0.4 - 0.5); model 1 in rows 0, 1 and 3
    EXPECT_DOUBLE_EQ(r.p_noise[0], 2.0 / 4.0);
    EXPECT_DOUBLE_EQ(r.p_noise[1], 4.0 / 4.0);  // rsatoolbox's formula can exceed 1 by 1 / N; here it is 1
    // pair (0, 1): less 2 (-0.1 < 0.2, 0.3 < 0.4), equal 1 (0.5 == 0.5): q = 2 / 3; 2 min(q, 1 - q) = 2 / 3
    EXPECT_DOUBLE_EQ(r.pairwise[1], 3.0 / 4.0 * (2.0 / 3.0) + 1.0 / 4.0);
    EXPECT_DOUBLE_EQ(r.pairwise[2], r.pairwise[1]);
    EXPECT_EQ(r.pairwise[0], 1.0);
}

namespace {

// A golden number that may be non-finite ("nan", "inf", "-inf": make_evaluate_golden.py's finite_or_name).
double golden_number(const nlohmann::json& v) {
    if (!v.is_string()) return v.get<double>();
    const std::string s = v.get<std::string>();
    if (s == "nan") return std::nan("");
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    throw std::runtime_error("golden number '" + s + "'");
}

// Equal to the golden value: NaN for NaN, the same infinity, else within `tol` relative.
void expect_golden(double got, const nlohmann::json& want, double tol, const std::string& what) {
    const double w = golden_number(want);
    if (std::isnan(w)) {
        EXPECT_TRUE(std::isnan(got)) << what << ": " << got;
    } else if (std::isinf(w)) {
        EXPECT_EQ(got, w) << what;
    } else {
        EXPECT_NEAR(got, w, tol * std::fabs(w) + 1e-300) << what;
    }
}

}  // namespace

TEST(Evaluate, PercentileIntervalsMatchRsatoolboxAtTheirEdges) {
    // Result.get_ci(ci, 'bootstrap') on sample sets made for its edges: too few samples (rsatoolbox's -inf / +inf
    // frame: NaN or infinite bounds), the first finite counts, a NaN row, ties, levels 0.5, 0.9, 0.99
    const Fixture& f = fixture();
    ASSERT_GE(f.golden["percentile_cases"].size(), 12u);
    int finite = 0, non_finite = 0;
    for (const nlohmann::json& c : f.golden["percentile_cases"]) {
        SCOPED_TRACE(c["name"].get<std::string>());
        EvaluateResult r;
        r.inference = EvalInference::Pattern;
        r.test = EvalTest::Bootstrap;
        r.correction = Correction::None;
        r.n_model = static_cast<int64_t>(c["samples"][0].size());
        r.n_rdm = 5;
        r.n_pattern = 10;
        for (const auto& row : c["samples"])
            for (const auto& v : row) r.samples.push_back(golden_number(v));
        const int64_t N = static_cast<int64_t>(c["samples"].size());
        r.sample_lower.assign(N, 0.5);
        r.sample_upper.assign(N, 0.6);
        evaluate_inference(r, c["ci"].get<double>());
        EXPECT_EQ(r.interval, EvalInterval::Percentile);
        ASSERT_EQ(r.ci_low.size(), c["ci_low"].size());
        for (size_t m = 0; m < r.ci_low.size(); ++m) {
            expect_golden(r.ci_low[m], c["ci_low"][m], 1e-12, "ci_low[" + std::to_string(m) + "]");
            expect_golden(r.ci_high[m], c["ci_high"][m], 1e-12, "ci_high[" + std::to_string(m) + "]");
            (std::isfinite(golden_number(c["ci_low"][m])) ? finite : non_finite) += 1;
        }
    }
    EXPECT_GT(finite, 0);
    EXPECT_GT(non_finite, 0);
}

TEST(Evaluate, NumpyQuantileLinear) {
    const double inf = std::numeric_limits<double>::infinity();
    // np.quantile([1, 2, 3, 4], q): virtual index 3 q
    EXPECT_DOUBLE_EQ(numpy_quantile_linear({4.0, 1.0, 3.0, 2.0}, 0.5), 2.5);
    EXPECT_DOUBLE_EQ(numpy_quantile_linear({4.0, 1.0, 3.0, 2.0}, 0.1), 1.3);
    EXPECT_DOUBLE_EQ(numpy_quantile_linear({4.0, 1.0, 3.0, 2.0}, 0.9), 3.7);
    EXPECT_EQ(numpy_quantile_linear({4.0, 1.0, 3.0, 2.0}, 0.0), 1.0);
    EXPECT_EQ(numpy_quantile_linear({4.0, 1.0, 3.0, 2.0}, 1.0), 4.0);
    EXPECT_EQ(numpy_quantile_linear({7.0}, 0.3), 7.0);
    EXPECT_TRUE(std::isnan(numpy_quantile_linear({}, 0.5)));
    EXPECT_TRUE(std::isnan(numpy_quantile_linear({1.0, std::nan(""), 3.0}, 0.5)));
    // numpy's _lerp with an infinity: -inf + inf g is NaN below g = 0.5, b - inf (1 - g) is -inf from 0.5 on
    EXPECT_TRUE(std::isnan(numpy_quantile_linear({-inf, 1.0, 2.0, inf}, 0.1)));  // g = 0.3
    EXPECT_EQ(numpy_quantile_linear({-inf, 1.0, 2.0, inf}, 0.2), -inf);          // g = 0.6
    EXPECT_EQ(numpy_quantile_linear({-inf, 1.0, 2.0, inf}, 0.8), inf);           // index 2.4: 2 + inf 0.4
    EXPECT_TRUE(std::isnan(numpy_quantile_linear({-inf, 1.0, 2.0, inf}, 2.0 / 3.0)));  // index 2, g = 0: inf * 0
}

TEST(Evaluate, FixedRanksumMatchesRsatoolboxForEveryMethod) {
    const Fixture& f = fixture();
    for (const std::string& name : kMethods) {
        SCOPED_TRACE(name);
        EvaluateOptions o;
        o.method = parse_eval_method(name);
        o.test = EvalTest::Ranksum;
        o.correction = Correction::None;
        const EvaluateResult r = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
        const nlohmann::json& g = f.golden["methods"][name]["fixed"]["ranksum"];
        expect_rel(r.p_zero, g["p_zero"], 1e-9, "p_zero");
        expect_rel(r.p_noise, g["p_noise"], 1e-9, "p_noise");
        expect_rel(r.pairwise, as_json(flatten(g["pairwise"])), 1e-9, "pairwise");
        const nlohmann::json fixed_t = f.golden["methods"][name]["fixed"];
        expect_vec(r.se, fixed_t["sem"], 1e-9, "sem (unchanged by the test type)");
        // get_ci(0.95, 'ranksum'): rsatoolbox's t interval (every test type but 'bootstrap')
        EXPECT_EQ(r.interval, EvalInterval::T);
        expect_vec(r.ci_low, g["ci_low"], 1e-8, "ci_low");
        expect_vec(r.ci_high, g["ci_high"], 1e-8, "ci_high");
    }
}

TEST(Evaluate, RanksumMatchesScipyOnEveryBranch) {
    // evaluations made for each branch of scipy's wilcoxon (exact, permutation, normal approximation), through
    // rsatoolbox's ranksum tests
    const Fixture& f = fixture();
    ASSERT_GE(f.golden["ranksum_cases"].size(), 8u);
    for (const nlohmann::json& c : f.golden["ranksum_cases"]) {
        SCOPED_TRACE(c["name"].get<std::string>());
        EvaluateResult r;
        r.inference = EvalInference::Fixed;
        r.test = EvalTest::Ranksum;
        r.correction = Correction::None;
        r.n_model = static_cast<int64_t>(c["evaluations"].size());
        r.n_rdm = static_cast<int64_t>(c["evaluations"][0].size());
        r.n_pattern = 10;
        r.per_rdm = flatten(c["evaluations"]);
        r.point_ceiling = {c["noise_ceiling"][0].get<double>(), c["noise_ceiling"][1].get<double>()};
        evaluate_inference(r, 0.95);
        expect_rel(r.p_zero, c["p_zero"], 1e-9, "p_zero");
        expect_rel(r.p_noise, c["p_noise"], 1e-9, "p_noise");
        expect_rel(r.pairwise, as_json(flatten(c["pairwise"])), 1e-9, "pairwise");
    }
}

TEST(Evaluate, WilcoxonEdgeCases) {
    EXPECT_TRUE(std::isnan(wilcoxon_signed_rank_p({})));
    EXPECT_TRUE(std::isnan(wilcoxon_signed_rank_p({0.1, std::nan(""), 0.3})));
    EXPECT_DOUBLE_EQ(wilcoxon_signed_rank_p({0.0, 0.0, 0.0}), 1.0);  // permutation: every sign ties
    EXPECT_TRUE(std::isnan(wilcoxon_signed_rank_p(std::vector<double>(20, 0.0))));  // normal: nothing left
    EXPECT_DOUBLE_EQ(wilcoxon_signed_rank_p({1.0, 2.0, 3.0, 4.0, 5.0}), 2.0 / 32.0);  // exact, all positive
}

TEST(Evaluate, TestTypeNeedsItsInference) {
    const Fixture& f = fixture();
    EXPECT_EQ(parse_eval_test("t-test"), EvalTest::TTest);
    EXPECT_EQ(parse_eval_test("bootstrap"), EvalTest::Bootstrap);
    EXPECT_EQ(parse_eval_test("ranksum"), EvalTest::Ranksum);
    EXPECT_THROW(parse_eval_test("wilcoxon"), InputError);
    EvaluateOptions o;
    o.test = EvalTest::Bootstrap;  // inference fixed: no samples
    try {
        evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
        ADD_FAILURE() << "no error";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("--test bootstrap"), std::string::npos) << e.what();
    }
    o.test = EvalTest::Ranksum;
    o.inference = EvalInference::Pattern;
    o.bootstrap = 20;
    EXPECT_THROW(evaluate_ref(f.data, f.K, f.models, f.M, f.S, o), InputError);
    EXPECT_THROW(check_eval_test(EvalTest::Ranksum, EvalInference::Both, "test_type", "inference"), InputError);
    EXPECT_NO_THROW(check_eval_test(EvalTest::Bootstrap, EvalInference::Rdm, "--test", "--inference"));
    // the JSON records the test and its interval
    o.test = EvalTest::Bootstrap;
    const EvaluateResult r = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
    const nlohmann::json j = evaluate_json(r, {"a", "b", "c"}, o);
    EXPECT_EQ(j["test"], "bootstrap");
    EXPECT_EQ(j["ci_type"], "percentile");
    EXPECT_EQ(j["plan"]["resamples"], 20);
}

TEST(Evaluate, IntervalFollowsTheTestType) {
    EXPECT_EQ(eval_interval(EvalTest::TTest), EvalInterval::T);
    EXPECT_EQ(eval_interval(EvalTest::Ranksum), EvalInterval::T);
    EXPECT_EQ(eval_interval(EvalTest::Bootstrap), EvalInterval::Percentile);
    EXPECT_STREQ(eval_interval_name(EvalInterval::T), "t");
    EXPECT_STREQ(eval_interval_name(EvalInterval::Percentile), "percentile");
    const Fixture& f = fixture();
    EvaluateOptions o;
    o.inference = EvalInference::Both;
    o.bootstrap = 400;
    o.seed = 3;
    o.correction = Correction::None;
    const EvaluateResult t = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
    o.test = EvalTest::Bootstrap;
    const EvaluateResult b = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
    EXPECT_EQ(t.samples, b.samples);
    EXPECT_EQ(evaluate_json(t, {"a", "b", "c"}, o)["ci_type"], "t");
    EXPECT_EQ(evaluate_json(b, {"a", "b", "c"}, o)["ci_type"], "percentile");
    for (int64_t m = 0; m < f.M; ++m) {
        // the 2.5% and 97.5% quantiles of the 402 framed samples: virtual index 401 q between sorted samples
        std::vector<double> col;
        for (int64_t r = 0; r < o.bootstrap; ++r) col.push_back(b.samples[r * f.M + m]);
        std::sort(col.begin(), col.end());
        const double vl = 401.0 * 0.025 - 1.0, vh = 401.0 * 0.975 - 1.0;  // in the unframed sorted samples
        const auto at = [&](double v) {
            const int64_t i = static_cast<int64_t>(std::floor(v));
            return col[i] + (col[i + 1] - col[i]) * (v - std::floor(v));
        };
        EXPECT_NEAR(b.ci_low[m], at(vl), 1e-12);
        EXPECT_NEAR(b.ci_high[m], at(vh), 1e-12);
        EXPECT_NE(b.ci_low[m], t.ci_low[m]);
        EXPECT_EQ(b.se[m], t.se[m]);
        EXPECT_EQ(b.mean[m], t.mean[m]);
        EXPECT_LT(b.ci_low[m], b.ci_high[m]);
    }
    o.test = EvalTest::Ranksum;
    o.inference = EvalInference::Fixed;
    const EvaluateResult rk = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
    o.test = EvalTest::TTest;
    const EvaluateResult tf = evaluate_ref(f.data, f.K, f.models, f.M, f.S, o);
    EXPECT_EQ(rk.ci_low, tf.ci_low);  // ranksum: the t interval
    EXPECT_EQ(rk.ci_high, tf.ci_high);
}

// Dissimilarities beyond correlation (dissimilarity.h) on the CPU backend against rsatoolbox's calc_rdm golden files
// (tools/make_dissimilarity_golden.py -> tests/data/dissimilarity/): euclidean, mahalanobis (identity, a given
// precision, the diagonal precision from residuals), crossnobis (identity, given, diagonal; unbalanced runs); the
// euclidean engine through every plan kind (streamed and tiled under tiny host budgets); the precision checks; and
// `rsa_gpu rdm --method ...` end to end with every input error (exit 2, nothing written); the main job's
// --dissimilarity crossnobis.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cli_test_util.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/dissimilarity.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/v1_data.h"
#include "test_util.h"

using namespace rsa;
using rsa_test::expect_error;
using rsa_test::run_rsa_gpu;

namespace {

constexpr double kGoldenRelL2 = 1e-5;  // float32 engine vs rsatoolbox in float64

std::string golden(const std::string& name) { return rsa_test::data_path("dissimilarity/" + name + ".npy"); }

std::vector<float> golden_values(const std::string& name) {
    const NpyArray a = npy_load(golden(name));
    return std::vector<float>(a.values.begin(), a.values.end());
}

Matrix run_spec(const Matrix& x, const DissimilaritySpec& spec, RdmOptions options = {}) {
    auto cpu = make_cpu_backend();
    return compute_dissimilarity_rdm(*cpu, x, spec, options, "golden x").rdm.rdm.to_matrix();
}

void expect_golden(const Matrix& got, const std::string& name) {
    const std::vector<float> want = golden_values(name);
    ASSERT_EQ(got.data.size(), want.size()) << name;
    EXPECT_LT(rsa_test::rel_l2(got.data, want), kGoldenRelL2) << name;
    const int64_t S = got.rows;
    for (int64_t i = 0; i < S; ++i) EXPECT_EQ(got.at(i, i), 0.0f) << name << " diagonal " << i;
}

DissimilaritySpec spec_of(Dissimilarity d) {
    DissimilaritySpec s;
    s.method = d;
    return s;
}

DissimilaritySpec crossnobis_spec() {
    DissimilaritySpec s = spec_of(Dissimilarity::Crossnobis);
    s.conditions = load_labels(golden("cross_conditions"), "conditions");
    s.runs = load_labels(golden("cross_runs"), "runs");
    return s;
}

}  // namespace

TEST(Dissimilarity, EuclideanMatchesRsatoolbox) {
    expect_golden(run_spec(npy_load_matrix(golden("x")), spec_of(Dissimilarity::Euclidean)), "euclidean");
}

TEST(Dissimilarity, MahalanobisIdentityIsEuclidean) {
    expect_golden(run_spec(npy_load_matrix(golden("x")), spec_of(Dissimilarity::Mahalanobis)), "mahalanobis_identity");
}

TEST(Dissimilarity, MahalanobisGivenPrecisionMatchesRsatoolbox) {
    DissimilaritySpec s = spec_of(Dissimilarity::Mahalanobis);
    s.noise = parse_noise(golden("precision"));
    expect_golden(run_spec(npy_load_matrix(golden("x")), s), "mahalanobis_precision");
}

TEST(Dissimilarity, MahalanobisDiagFromResidualsAveragesConditions) {
    DissimilaritySpec s = spec_of(Dissimilarity::Mahalanobis);
    s.noise = parse_noise("diag");
    s.conditions = load_labels(golden("trials_conditions"), "conditions");
    auto cpu = make_cpu_backend();
    const DissimilarityResult r =
        compute_dissimilarity_rdm(*cpu, npy_load_matrix(golden("trials_x")), s, {}, "trials");
    EXPECT_EQ(r.condition_values, (std::vector<int64_t>{3, 8, 17, 30, 42}));  // sorted, as rsatoolbox
    expect_golden(r.rdm.rdm.to_matrix(), "mahalanobis_diag");
}

TEST(Dissimilarity, CrossnobisMatchesRsatoolbox) {
    const Matrix x = npy_load_matrix(golden("cross_x"));
    expect_golden(run_spec(x, crossnobis_spec()), "crossnobis_identity");
    DissimilaritySpec s = crossnobis_spec();
    s.noise = parse_noise(golden("precision"));
    expect_golden(run_spec(x, s), "crossnobis_precision");
    s.noise = parse_noise("diag");
    expect_golden(run_spec(x, s), "crossnobis_diag");
}

// The euclidean kind through the engine's every plan (CPU memory forced small) against a double reference.
TEST(Dissimilarity, EuclideanEveryPlanKindAgrees) {
    const int64_t S = 150, N = 700;
    Matrix x(S, N);
    x.data = rsa_test::random_uniform(static_cast<size_t>(S * N), 1.0f, 3.0f);
    auto cpu = make_cpu_backend();
    RdmOptions o;
    o.kind = RdmKind::Euclidean;
    const Matrix one = compute_rdm(*cpu, x, o, "x").rdm.to_matrix();
    // Reference in double.
    std::vector<float> ref(static_cast<size_t>(S * S));
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < S; ++j) {
            double d = 0.0;
            for (int64_t n = 0; n < N; ++n) d += (double(x.at(i, n)) - x.at(j, n)) * (double(x.at(i, n)) - x.at(j, n));
            ref[static_cast<size_t>(i * S + j)] = static_cast<float>(d / N);
        }
    EXPECT_LT(rsa_test::rel_l2(one.data, ref), 1e-5);
    std::string plan;
    o.on_plan = [&plan](const std::string& t) { plan = t; };
    {
        o.max_gpu_bytes = static_cast<uint64_t>(S * S) * 4 + S * kRowStatBytes + 2 * S * 4 * 128;  // streamed
        const Matrix streamed = compute_rdm(*cpu, x, o, "x").rdm.to_matrix();
        EXPECT_NE(plan.find("streamed"), std::string::npos) << plan;
        EXPECT_LT(rsa_test::rel_l2(streamed.data, ref), 1e-5);
    }
    {
        const std::string dir = rsa_test::scratch_dir("dissimilarity_tiled");
        o.max_gpu_bytes = S * kRowStatBytes + 4 * 40 * 128 * 4 + 2 * 40 * 40 * 4;  // tiled
        o.output_path = dir + "/tiled.npy";
        const RdmResult r = compute_rdm(*cpu, x, o, "x");
        EXPECT_EQ(r.plan.kind, PlanKind::Tiled) << plan;
        const NpyArray a = npy_load(o.output_path);
        EXPECT_LT(rsa_test::rel_l2(std::vector<float>(a.values.begin(), a.values.end()), ref), 1e-5);
    }
}

TEST(Dissimilarity, PrecisionChecks) {
    NpyArray p;
    p.shape = {2, 2};
    p.values = {1.0, 0.0, 0.0, 1.0};
    EXPECT_THROW(precision_factor(p, 3, "p.npy"), InputError);  // wrong size
    p.values = {1.0, 0.5, 0.0, 1.0};
    try {
        precision_factor(p, 2, "p.npy");
        FAIL() << "not symmetric accepted";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("not symmetric"), std::string::npos) << e.what();
    }
    p.values = {1.0, 2.0, 2.0, 1.0};
    try {
        precision_factor(p, 2, "p.npy");
        FAIL() << "indefinite accepted";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("not positive definite"), std::string::npos) << e.what();
    }
    p.values = {4.0, 2.0, 2.0, 5.0};  // L = [[2, 0], [1, 2]]
    const Matrix f = precision_factor(p, 2, "p.npy");
    EXPECT_FLOAT_EQ(f.at(0, 0), 2.0f);
    EXPECT_FLOAT_EQ(f.at(0, 1), 0.0f);
    EXPECT_FLOAT_EQ(f.at(1, 0), 1.0f);
    EXPECT_FLOAT_EQ(f.at(1, 1), 2.0f);
}

// ---- the command line
class DissimilarityCli : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = rsa_test::scratch_dir("dissimilarity_cli");
        inputs_ = rsa_test::scratch_dir("dissimilarity_cli_inputs");
    }
    // Runs rdm with the golden inputs; `extra` appended.
    rsa_test::RunResult rdm(const std::string& responses, const std::string& extra) {
        return run_rsa_gpu("rdm --device cpu --quiet --responses " + golden(responses) + " --out " + dir_ +
                               "/out.npy " + extra,
                           dir_);
    }
    void expect_nothing_written() const {
        EXPECT_TRUE(rsa_test::list_dir(dir_).empty()) << "left: " << rsa_test::list_dir(dir_).size() << " files";
    }
    std::string save(const std::string& name, const std::vector<float>& v, std::vector<int64_t> shape) {
        const std::string p = inputs_ + "/" + name;
        npy_save_f32(p, v.data(), shape);
        return p;
    }
    std::string dir_, inputs_;
};

TEST_F(DissimilarityCli, EveryMethodWritesRsatoolboxNumbers) {
    const std::string cross = "--runs " + golden("cross_runs") + " --conditions " + golden("cross_conditions");
    const struct {
        std::string responses, args, golden_name;
    } cases[] = {
        {"x", "--method euclidean", "euclidean"},
        {"x", "--method mahalanobis --noise " + golden("precision"), "mahalanobis_precision"},
        {"trials_x", "--method mahalanobis --noise diag --conditions " + golden("trials_conditions"),
         "mahalanobis_diag"},
        {"cross_x", "--method crossnobis " + cross, "crossnobis_identity"},
        {"cross_x", "--method crossnobis --noise diag " + cross, "crossnobis_diag"},
    };
    for (const auto& c : cases) {
        const auto r = rdm(c.responses, c.args + " --force");
        ASSERT_EQ(r.exit_code, 0) << c.args << "\n" << r.err;
        const NpyArray a = npy_load(dir_ + "/out.npy");
        EXPECT_LT(rsa_test::rel_l2(std::vector<float>(a.values.begin(), a.values.end()), golden_values(c.golden_name)),
                  kGoldenRelL2)
            << c.args;
    }
}

TEST_F(DissimilarityCli, BadInputIsExit2AndWritesNothing) {
    const std::string runs = golden("cross_runs"), conds = golden("cross_conditions");
    expect_error(rdm("x", "--method cosine"), 2, "unknown dissimilarity 'cosine'");
    expect_nothing_written();
    // A noise matrix of the wrong size, one not positive definite, one not symmetric.
    expect_error(rdm("cross_x", "--method mahalanobis --noise " + save("p3.npy", {1, 0, 0, 0, 1, 0, 0, 0, 1}, {3, 3})),
                 2, "must be N x N = 20 x 20");
    std::vector<float> indefinite(400, 0.0f), asym(400, 0.0f);
    for (int i = 0; i < 20; ++i) indefinite[i * 21] = asym[i * 21] = 1.0f;
    indefinite[5 * 21] = -1.0f;
    asym[1] = 0.5f;
    expect_error(rdm("x", "--method mahalanobis --noise " + save("indef.npy", indefinite, {20, 20})), 2,
                 "not positive definite (its leading 6 x 6 minor");
    expect_error(rdm("x", "--method mahalanobis --noise " + save("asym.npy", asym, {20, 20})), 2, "not symmetric");
    // Runs with one run; runs and conditions of the wrong length; a condition missing from a run; < 3 conditions.
    const NpyArray cn = npy_load(conds), rn = npy_load(runs);
    const int64_t S = static_cast<int64_t>(cn.values.size());
    const std::string one_run = save("one_run.npy", std::vector<float>(static_cast<size_t>(S), 1.0f), {S});
    expect_error(rdm("cross_x", "--method crossnobis --runs " + one_run + " --conditions " + conds), 2,
                 "needs at least 2");
    const std::string short_runs = save("short.npy", std::vector<float>(5, 1.0f), {5});
    expect_error(rdm("cross_x", "--method crossnobis --runs " + short_runs + " --conditions " + conds), 2,
                 "5 labels, but the responses have " + std::to_string(S) + " rows");
    expect_error(rdm("cross_x", "--method crossnobis --runs " + runs + " --conditions " + short_runs), 2,
                 "5 labels, but the responses have");
    std::vector<float> c2(cn.values.begin(), cn.values.end());
    for (size_t i = 0; i < c2.size(); ++i)
        if (c2[i] == 2.0f && rn.values[i] == 9.0) c2[i] = 3.0f;  // condition 2 never in run 9
    expect_error(rdm("cross_x", "--method crossnobis --runs " + runs + " --conditions " + save("c2.npy", c2, {S})), 2,
                 "condition 2 has no rows in run 9");
    std::vector<float> two(static_cast<size_t>(S));
    for (size_t i = 0; i < two.size(); ++i) two[i] = static_cast<float>(i % 2);
    expect_error(rdm("cross_x", "--method crossnobis --runs " + runs + " --conditions " + save("two.npy", two, {S})),
                 2, "at least 3 conditions");
    expect_error(rdm("cross_x", "--method crossnobis"), 2, "crossnobis needs --runs");
    expect_error(rdm("x", "--method mahalanobis --noise diag"), 2, "give --conditions");
    expect_error(rdm("x", "--noise diag"), 2, "--noise applies to mahalanobis and crossnobis");
    expect_nothing_written();
}

TEST_F(DissimilarityCli, DefaultIsCorrelation) {
    const auto a = rdm("x", "");
    ASSERT_EQ(a.exit_code, 0) << a.err;
    const NpyArray d = npy_load(dir_ + "/out.npy");
    const auto b = rdm("x", "--method correlation --force");
    ASSERT_EQ(b.exit_code, 0) << b.err;
    EXPECT_EQ(npy_load(dir_ + "/out.npy").values, d.values);
    const Matrix x = npy_load_matrix(golden("x"));
    std::vector<float> ref(static_cast<size_t>(x.rows * x.rows));
    rdm_ref(x.data.data(), x.rows, x.cols, ref.data());
    EXPECT_LT(rsa_test::rel_l2(std::vector<float>(d.values.begin(), d.values.end()), ref), 1e-6);
}

// The main job's --dissimilarity crossnobis on a small embedded recording: the V1 RDM is the crossnobis RDM of the
// 181 bins from their trials split in halves by order; with two runs that is (m0_i - m0_j).(m1_i - m1_j) / N,
// computed here in double from the same trials. Without the option the V1 RDM is the correlation RDM as before.
TEST_F(DissimilarityCli, MainJobCrossnobisV1Rdm) {
    const int64_t neurons = 64, trials = 1440;
    const std::string common = "--device cpu --quiet --no-cnn --no-figures --bootstrap 0 --permutations 0 "
                               "--v1-neurons " + std::to_string(neurons) + " --v1-trials " + std::to_string(trials);
    auto r = run_rsa_gpu(common + " --out cn --dissimilarity crossnobis", dir_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto c = run_rsa_gpu(common + " --out corr", dir_);
    ASSERT_EQ(c.exit_code, 0) << c.err;
    auto c2 = run_rsa_gpu(common + " --out corr2 --dissimilarity correlation", dir_);
    ASSERT_EQ(c2.exit_code, 0) << c2.err;
    EXPECT_EQ(npy_load(dir_ + "/corr/rdm_v1.npy").values, npy_load(dir_ + "/corr2/rdm_v1.npy").values);

    SyntheticV1Params p;
    p.neurons = neurons;
    p.trials = trials;
    const V1Trials t = v1_trials_from_synthetic(make_cpu_backend()->synthetic_v1_trials(p), p);
    const int64_t C = 181, N = neurons;
    std::vector<double> sum(2 * C * N, 0.0);
    std::vector<int64_t> count(2 * C, 0), seen(C, 0);
    for (size_t k = 0; k < t.bin.size(); ++k) {
        const int b = t.bin[k];
        if (b > 180) continue;
        const int64_t run = seen[b]++ % 2;
        ++count[run * C + b];
        for (int64_t n = 0; n < N; ++n) sum[(run * C + b) * N + n] += t.resp.at(static_cast<int64_t>(k), n);
    }
    std::vector<float> want(static_cast<size_t>(C * C), 0.0f);
    for (int64_t i = 0; i < C; ++i)
        for (int64_t j = 0; j < C; ++j) {
            double d = 0.0;
            for (int64_t n = 0; n < N; ++n) {
                const double a = sum[i * N + n] / count[i] - sum[j * N + n] / count[j];
                const double b = sum[(C + i) * N + n] / count[C + i] - sum[(C + j) * N + n] / count[C + j];
                d += a * b;
            }
            want[static_cast<size_t>(i * C + j)] = static_cast<float>(d / N);
        }
    const NpyArray got = npy_load(dir_ + "/cn/rdm_v1.npy");
    ASSERT_EQ(got.shape, (std::vector<int64_t>{C, C}));
    EXPECT_LT(rsa_test::rel_l2(std::vector<float>(got.values.begin(), got.values.end()), want), 1e-5);

    // Crossnobis needs the trials binned: not with --trials, --responses or a binned file; the main job takes only
    // correlation and crossnobis.
    expect_error(run_rsa_gpu(common + " --out x --trials --dissimilarity crossnobis", dir_), 2,
                 "--dissimilarity crossnobis");
    expect_error(run_rsa_gpu(common + " --out x --dissimilarity euclidean", dir_), 2,
                 "the main job takes correlation or crossnobis");
    expect_error(run_rsa_gpu(common + " --out x --dissimilarity cosine", dir_), 2, "unknown dissimilarity");
    EXPECT_FALSE(rsa_test::file_exists(dir_ + "/x"));
}

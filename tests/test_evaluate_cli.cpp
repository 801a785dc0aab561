// `rsa_gpu evaluate` end to end (CPU): on the rsatoolbox fixture (tests/data/evaluate, tools/make_evaluate_golden.py)
// --json gives rsatoolbox's eval_fixed point estimates, tests and noise ceiling (also from rsatoolbox's own HDF5 file
// and named .npz models); --out writes its files; bad input (RDMs of different sizes, asymmetric, NaN, non-square or
// 2 x 2 RDMs, duplicate model names, a missing --models, an unknown method) exits 2 naming the problem and writes
// nothing; --test bootstrap / ranksum (recorded in the JSON, named on the table's p-value line; rsatoolbox's ranksum
// p-values; a test its inference cannot run exits 2) and its interval (ci_type in the JSON, named in the table's
// header and notes and the report: percentile for bootstrap, with a note when too few resamples make it infinite;
// t otherwise, ranksum's equal to rsatoolbox's); the memory plan's line on stderr and in the JSON, --max-gpu-mem
// forcing many batches with the same numbers, and an impossible budget exiting 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using rsa_test::expect_error;
using rsa_test::run_rsa_gpu;

namespace {

std::string dir_for(const std::string& name) { return rsa_test::scratch_dir("evaluate_cli_" + name); }
std::string data_file(const std::string& name) { return rsa_test::data_path("evaluate/" + name); }

nlohmann::json golden() {
    std::ifstream in(data_file("evaluate_golden.json"));
    return nlohmann::json::parse(in);
}

}  // namespace

TEST(EvaluateCli, JsonGivesRsatoolboxPointEstimatesAndNoiseCeiling) {
    const std::string d = dir_for("json");
    const nlohmann::json g = golden();
    for (const std::string method : {"corr", "spearman", "cosine_cov"}) {
        SCOPED_TRACE(method);
        const auto r = run_rsa_gpu("evaluate --device cpu --data " + data_file("data.npy") + " --models " +
                                       data_file("models.npy") + " --method " + method + " --correction none --json",
                                   d);
        ASSERT_EQ(r.exit_code, 0) << r.err;
        const nlohmann::json j = nlohmann::json::parse(r.out);
        const nlohmann::json& f = g["methods"][method]["fixed"];
        EXPECT_EQ(j["method"], method);
        EXPECT_EQ(j["inference"], "fixed");
        EXPECT_EQ(j["n_rdm"], 5);
        EXPECT_EQ(j["n_pattern"], 10);
        ASSERT_EQ(j["models"].size(), 3u);
        for (size_t m = 0; m < 3; ++m) {
            const nlohmann::json& e = j["models"][m];
            EXPECT_NEAR(e["evaluation"].get<double>(), f["mean"][m].get<double>(), 1e-9);
            EXPECT_NEAR(e["se"].get<double>(), f["sem"][m].get<double>(), 1e-9);
            EXPECT_NEAR(e["p_zero"].get<double>(), f["p_zero"][m].get<double>(), 1e-8);
            EXPECT_NEAR(e["p_noise"].get<double>(), f["p_noise"][m].get<double>(), 1e-8);
            for (size_t k = 0; k < 3; ++k)
                EXPECT_NEAR(j["pairwise"][m][k].get<double>(), f["pairwise"][m][k].get<double>(), 1e-8);
        }
        EXPECT_NEAR(j["noise_ceiling"]["lower"].get<double>(), f["noise_ceiling"][0].get<double>(), 1e-9);
        EXPECT_NEAR(j["noise_ceiling"]["upper"].get<double>(), f["noise_ceiling"][1].get<double>(), 1e-9);
    }
}

TEST(EvaluateCli, RsatoolboxHdf5DataAndNamedNpzModels) {
    // data.h5 was written by rsatoolbox's RDMs.save; the models are an .npz with keys truth, noisy, random
    const std::string d = dir_for("h5");
    const nlohmann::json f = golden()["methods"]["tau-a"]["fixed"];
    const auto r = run_rsa_gpu("evaluate --device cpu --data " + data_file("data.h5") + " --models " +
                                   data_file("models_named.npz") + " --method tau-a --correction none --json",
                               d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    std::vector<std::string> names;
    for (const auto& e : j["models"]) names.push_back(e["name"]);
    ASSERT_EQ(names.size(), 3u);
    const std::vector<std::string> order = {"truth", "noisy", "random"};
    for (size_t i = 0; i < 3; ++i) {
        const size_t m = static_cast<size_t>(std::find(order.begin(), order.end(), names[i]) - order.begin());
        ASSERT_LT(m, 3u) << names[i];
        EXPECT_NEAR(j["models"][i]["evaluation"].get<double>(), f["mean"][m].get<double>(), 1e-9) << names[i];
    }
    EXPECT_NEAR(j["noise_ceiling"]["lower"].get<double>(), f["noise_ceiling"][0].get<double>(), 1e-9);
    EXPECT_NEAR(j["noise_ceiling"]["upper"].get<double>(), f["noise_ceiling"][1].get<double>(), 1e-9);
}

TEST(EvaluateCli, ModelsDirTakesEveryRdmFileNamedByStem) {
    const std::string d = dir_for("dir");
    const rsa::NpyArray a = rsa::npy_load(data_file("models.npy"));
    std::filesystem::create_directory(d + "/models");
    for (int m = 0; m < 3; ++m) {
        const std::vector<double> one(a.values.begin() + m * 100, a.values.begin() + (m + 1) * 100);
        rsa::npy_save_f64(d + "/models/m" + std::to_string(m) + ".npy", one, {10, 10});
    }
    { std::ofstream(d + "/models/notes.txt") << "not an RDM\n"; }
    const auto r = run_rsa_gpu("evaluate --device cpu --data " + data_file("data.npy") + " --models-dir models --json", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    const nlohmann::json f = golden()["methods"]["corr"]["fixed"];
    ASSERT_EQ(j["models"].size(), 3u);
    for (int m = 0; m < 3; ++m) {
        EXPECT_EQ(j["models"][m]["name"], "m" + std::to_string(m));
        EXPECT_NEAR(j["models"][m]["evaluation"].get<double>(), f["mean"][m].get<double>(), 1e-9);
    }
    const auto empty = run_rsa_gpu("evaluate --device cpu --data " + data_file("data.npy") + " --models-dir .. --json",
                                   d + "/models");
    expect_error(empty, 2, "no RDM file");
}

TEST(EvaluateCli, BootstrapTableAndOutputFolder) {
    const std::string d = dir_for("out");
    auto r = run_rsa_gpu("evaluate --device cpu --data " + data_file("data.npy") + " --models " +
                             data_file("models.npy") + " --inference both --bootstrap 200 --permutations 50 --out ev "
                             "--no-figures",
                         d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("noise ceiling: lower"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("p (permutation)"), std::string::npos) << r.out;
    const std::vector<std::string> files = rsa_test::list_dir(d + "/ev");
    EXPECT_EQ(files, (std::vector<std::string>{"evaluate.csv", "evaluate.json", "pairwise.csv", "report.html"}));
    std::ifstream in(d + "/ev/evaluate.json");
    const nlohmann::json j = nlohmann::json::parse(in);
    EXPECT_EQ(j["bootstrap"], 200);
    EXPECT_GT(j["models"][0]["se"].get<double>(), 0.0);
    // the CSV names the interval, as the JSON's ci_type does
    std::ifstream csv(d + "/ev/evaluate.csv");
    std::string header, first;
    std::getline(csv, header);
    std::getline(csv, first);
    EXPECT_EQ(header.rfind("name,evaluation,se,ci_low,ci_high,ci_type,p_zero,", 0), 0u) << header;
    EXPECT_NE(first.find(",t,"), std::string::npos) << first;
    EXPECT_EQ(j["ci_type"], "t");
    // an existing --out is refused without --force, before any work
    r = run_rsa_gpu("evaluate --device cpu --data " + data_file("data.npy") + " --models " + data_file("models.npy") +
                        " --out ev",
                    d);
    EXPECT_EQ(r.exit_code, 2) << r.err;
}

TEST(EvaluateCli, BadInputExitsTwoAndWritesNothing) {
    const std::string d = dir_for("bad");
    // a 4 x 4 model against 10 x 10 data
    std::vector<double> small(16, 0.0);
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) small[i * 4 + j] = i == j ? 0.0 : 1.0 + i + j;
    rsa::npy_save_f64(d + "/small.npy", small, {4, 4});
    auto r = run_rsa_gpu("evaluate --device cpu --data " + data_file("data.npy") + " --models small.npy --out o1", d);
    expect_error(r, 2, "small.npy have 4 patterns");
    // the same model file twice: duplicate names
    r = run_rsa_gpu("evaluate --device cpu --data " + data_file("data.npy") + " --models " + data_file("models.npy") +
                        " " + data_file("models.npy") + " --out o2",
                    d);
    expect_error(r, 2, "duplicate model name");
    r = run_rsa_gpu("evaluate --device cpu --data " + data_file("data.npy") + " --out o3", d);
    expect_error(r, 2, "no models");
    r = run_rsa_gpu("evaluate --device cpu --data " + data_file("data.npy") + " --models " + data_file("models.npy") +
                        " --method pearson",
                    d);
    EXPECT_EQ(r.exit_code, 2);
    // one data RDM cannot be resampled over RDMs
    std::vector<double> one(100);
    const rsa::NpyArray a = rsa::npy_load(data_file("data.npy"));
    std::copy(a.values.begin(), a.values.begin() + 100, one.begin());
    rsa::npy_save_f64(d + "/one.npy", one, {10, 10});
    r = run_rsa_gpu("evaluate --device cpu --data one.npy --models " + data_file("models.npy") +
                        " --inference rdm --out o4",
                    d);
    expect_error(r, 2, "needs at least 2");
    // asymmetric, NaN, non-square and 2 x 2 model files: the reader's errors, exit 2
    std::vector<double> m(a.values.begin(), a.values.begin() + 100);
    std::vector<double> asym = m, withnan = m;
    asym[1 * 10 + 2] += 0.5;
    withnan[3 * 10 + 4] = withnan[4 * 10 + 3] = std::nan("");
    rsa::npy_save_f64(d + "/asym.npy", asym, {10, 10});
    rsa::npy_save_f64(d + "/nan.npy", withnan, {10, 10});
    rsa::npy_save_f64(d + "/rect.npy", std::vector<double>(30, 1.0), {10, 3});
    rsa::npy_save_f64(d + "/two.npy", {0.0, 1.0, 1.0, 0.0}, {2, 2});
    for (const std::string bad : {"asym.npy", "nan.npy", "rect.npy", "two.npy"}) {
        r = run_rsa_gpu("evaluate --device cpu --data " + data_file("data.npy") + " --models " + bad + " --out o5", d);
        EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
        EXPECT_NE(r.err.find(bad), std::string::npos) << "the error names the file: " << r.err;
    }
    EXPECT_EQ(rsa_test::list_dir(d),
              (std::vector<std::string>{"asym.npy", "nan.npy", "one.npy", "rect.npy", "small.npy", "two.npy"}));
}

TEST(EvaluateCli, ResponseMatricesGiveTheRdmsOfTheRdmCommand) {
    // --data-responses / --model-responses with --dissimilarity equal evaluating the RDMs `rsa_gpu rdm --method`
    // writes (each checked against rsatoolbox's calc_rdm in test_dissimilarity): same names, same numbers.
    const std::string d = dir_for("responses");
    std::filesystem::create_directories(d + "/rdms");
    for (const std::string name : {"subject", "m1", "m2"}) {
        rsa::npy_save(d + "/" + name + ".npy", rsa_test::random_responses(12, 30));
        const auto r = run_rsa_gpu("rdm --device cpu --method euclidean --responses " + name + ".npy --out rdms/" +
                                       name + ".npy",
                                   d);
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const std::string tail = " --inference pattern --bootstrap 40 --seed 3 --correction none --json";
    const auto from_responses = run_rsa_gpu(
        "evaluate --device cpu --data-responses subject.npy --model-responses m1.npy m2.npy --dissimilarity euclidean" +
            tail,
        d);
    ASSERT_EQ(from_responses.exit_code, 0) << from_responses.err;
    const auto from_rdms =
        run_rsa_gpu("evaluate --device cpu --data rdms/subject.npy --models rdms/m1.npy rdms/m2.npy" + tail, d);
    ASSERT_EQ(from_rdms.exit_code, 0) << from_rdms.err;
    const nlohmann::json a = nlohmann::json::parse(from_responses.out), b = nlohmann::json::parse(from_rdms.out);
    EXPECT_EQ(a["dissimilarity"], "euclidean");
    ASSERT_EQ(a["models"].size(), 2u);
    for (size_t m = 0; m < 2; ++m) {
        EXPECT_EQ(a["models"][m]["name"], b["models"][m]["name"]);
        EXPECT_DOUBLE_EQ(a["models"][m]["evaluation"].get<double>(), b["models"][m]["evaluation"].get<double>());
        EXPECT_DOUBLE_EQ(a["models"][m]["se"].get<double>(), b["models"][m]["se"].get<double>());
    }
    // one source of data only; crossnobis needs its runs; some data at all
    expect_error(run_rsa_gpu("evaluate --device cpu --data rdms/subject.npy --data-responses subject.npy --models "
                             "rdms/m1.npy",
                             d),
                 2, "excludes");
    expect_error(run_rsa_gpu("evaluate --device cpu --data-responses subject.npy --model-responses m1.npy "
                             "--dissimilarity crossnobis",
                             d),
                 2, "--runs");
    expect_error(run_rsa_gpu("evaluate --device cpu --models rdms/m1.npy", d), 2, "no data");
    EXPECT_FALSE(rsa_test::file_exists(d + "/evaluate.json"));
}

TEST(EvaluateCli, TestTypesAreRecordedAndNamed) {
    const std::string d = dir_for("test_types");
    const std::string base = "evaluate --device cpu --data " + data_file("data.npy") + " --models " +
                             data_file("models.npy") + " --correction none";
    // ranksum: rsatoolbox's eval_fixed Result.test_*('ranksum')
    auto r = run_rsa_gpu(base + " --test ranksum --json", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["test"], "ranksum");
    EXPECT_EQ(j["ci_type"], "t");  // get_ci(0.95, 'ranksum') is the t interval
    const nlohmann::json all = golden();
    const nlohmann::json& g = all["methods"]["corr"]["fixed"]["ranksum"];
    for (size_t m = 0; m < 3; ++m) {
        EXPECT_NEAR(j["models"][m]["ci_low"].get<double>(), g["ci_low"][m].get<double>(), 1e-8);
        EXPECT_NEAR(j["models"][m]["ci_high"].get<double>(), g["ci_high"][m].get<double>(), 1e-8);
        EXPECT_NEAR(j["models"][m]["p_zero"].get<double>(), g["p_zero"][m].get<double>(), 1e-12);
        EXPECT_NEAR(j["models"][m]["p_noise"].get<double>(), g["p_noise"][m].get<double>(), 1e-12);
        for (size_t k = 0; k < 3; ++k)
            EXPECT_NEAR(j["pairwise"][m][k].get<double>(), g["pairwise"][m][k].get<double>(), 1e-12);
    }
    r = run_rsa_gpu(base + " --test ranksum", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("p-values: rsatoolbox's ranksum tests (Wilcoxon signed-rank over the 5 data RDMs"),
              std::string::npos)
        << r.out;
    // bootstrap: proportions of the resamples, (1 + count) / N
    r = run_rsa_gpu(base + " --inference pattern --bootstrap 400 --test bootstrap --json", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["test"], "bootstrap");
    EXPECT_EQ(j["ci_type"], "percentile");
    for (size_t m = 0; m < 3; ++m) {
        const double p = j["models"][m]["p_zero"].get<double>() * 400.0;
        EXPECT_NEAR(p, std::round(p), 1e-9) << "a count over 400 resamples";
        EXPECT_GE(p, 1.0);
    }
    // the same resamples with the t-test: the same means and SEs, t intervals instead of percentiles
    const auto rt = run_rsa_gpu(base + " --inference pattern --bootstrap 400 --json", d);
    ASSERT_EQ(rt.exit_code, 0) << rt.err;
    const nlohmann::json jt = nlohmann::json::parse(rt.out);
    EXPECT_EQ(jt["ci_type"], "t");
    for (size_t m = 0; m < 3; ++m) {
        EXPECT_EQ(j["models"][m]["evaluation"], jt["models"][m]["evaluation"]);
        EXPECT_EQ(j["models"][m]["se"], jt["models"][m]["se"]);
        EXPECT_NE(j["models"][m]["ci_low"], jt["models"][m]["ci_low"]);
        EXPECT_LT(j["models"][m]["ci_low"].get<double>(), j["models"][m]["ci_high"].get<double>());
    }
    r = run_rsa_gpu(base + " --inference pattern --bootstrap 400 --test bootstrap --out boot --no-figures", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("p-values: rsatoolbox's bootstrap tests (proportions of the 400 resamples)"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("| 95% percentile CI  |"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("intervals: percentiles 2.5 and 97.5 of the 400 bootstrap evaluations (rsatoolbox's "
                         "get_ci(0.95, 'bootstrap')"),
              std::string::npos)
        << r.out;
    EXPECT_EQ(r.out.find("non-finite"), std::string::npos) << r.out;
    std::ifstream report(d + "/boot/report.html");
    const std::string html((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
    EXPECT_NE(html.find("<th>95% percentile CI</th>"), std::string::npos) << html;
    EXPECT_NE(html.find("intervals: percentiles 2.5 and 97.5"), std::string::npos) << html;
    std::ifstream saved(d + "/boot/evaluate.json");
    EXPECT_EQ(nlohmann::json::parse(saved)["ci_type"], "percentile");
    // too few resamples for a 95% percentile interval: rsatoolbox's -inf / +inf frame gives the bounds (JSON null)
    r = run_rsa_gpu(base + " --inference rdm --bootstrap 20 --test bootstrap --json", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["models"][0]["ci_low"].is_null()) << j["models"][0];
    EXPECT_TRUE(j["models"][0]["ci_high"].is_null()) << j["models"][0];
    r = run_rsa_gpu(base + " --inference rdm --bootstrap 20 --test bootstrap", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("[-inf,  inf]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("non-finite intervals: too few resamples for a 95% percentile interval"), std::string::npos)
        << r.out;
    // the default, as rsatoolbox: t-test, t intervals
    r = run_rsa_gpu(base + " --json", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["test"], "t-test");
    EXPECT_EQ(nlohmann::json::parse(r.out)["ci_type"], "t");
    r = run_rsa_gpu(base, d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("| 95% t CI           |"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("intervals: rsatoolbox's t intervals (get_ci(0.95, 't-test'): mean +- SEM x t quantile, "
                         "dof 4)"),
              std::string::npos)
        << r.out;
}

TEST(EvaluateCli, TestTheInferenceCannotRunExitsTwoAndWritesNothing) {
    const std::string d = dir_for("bad_test");
    const std::string base =
        "evaluate --device cpu --data " + data_file("data.npy") + " --models " + data_file("models.npy");
    auto r = run_rsa_gpu(base + " --test bootstrap --out o1", d);  // inference fixed: no samples
    expect_error(r, 2, "--test bootstrap counts over bootstrap samples, and --inference 'fixed' has none");
    r = run_rsa_gpu(base + " --test ranksum --inference both --out o2", d);
    expect_error(r, 2, "--test ranksum is rsatoolbox's Wilcoxon test");
    r = run_rsa_gpu(base + " --test wilcoxon --out o3", d);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("--test"), std::string::npos) << r.err;
    EXPECT_TRUE(rsa_test::list_dir(d).empty());
}

TEST(EvaluateCli, MemoryPlanLineJsonAndBudget) {
    const std::string d = dir_for("plan");
    const std::string base = "evaluate --device cpu --data " + data_file("data.npy") + " --models " +
                             data_file("models.npy") + " --inference both --bootstrap 300 --seed 4";
    auto r = run_rsa_gpu(base, d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("evaluation plan: 300 resamples in 1 batch of 300 (weighted sums); 3 models in 1 batch of 3; "
                         "host "),
              std::string::npos)
        << r.err;
    r = run_rsa_gpu(base + " --json", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err.find("evaluation plan"), std::string::npos) << "--json prints no plan line: " << r.err;
    const nlohmann::json one = nlohmann::json::parse(r.out);
    EXPECT_EQ(one["plan"]["resample_batches"], 1);
    EXPECT_EQ(one["plan"]["model_batches"], 1);
    EXPECT_GT(one["plan"]["host_budget_bytes"].get<double>(), 0.0);
    // a 60 KB cap: many batches, the same numbers
    r = run_rsa_gpu(base + " --json --max-gpu-mem 60K", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json many = nlohmann::json::parse(r.out);
    EXPECT_GT(many["plan"]["resample_batches"].get<int>(), 1);
    EXPECT_GT(many["plan"]["model_batches"].get<int>(), 1);
    EXPECT_EQ(many["models"], one["models"]);
    EXPECT_EQ(many["pairwise"], one["pairwise"]);
    EXPECT_EQ(many["noise_ceiling"], one["noise_ceiling"]);
    // the host budget of RSA_GPU_HOST_MEM_BYTES plans the same way
    setenv("RSA_GPU_HOST_MEM_BYTES", "60K", 1);
    r = run_rsa_gpu(base + " --json", d);
    unsetenv("RSA_GPU_HOST_MEM_BYTES");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json host = nlohmann::json::parse(r.out);
    EXPECT_EQ(host["plan"]["resample_batches"], many["plan"]["resample_batches"]);
    EXPECT_EQ(host["models"], one["models"]);
    // impossible: exit 2 naming the budget, nothing written
    r = run_rsa_gpu(base + " --max-gpu-mem 4K --out o", d);
    expect_error(r, 2, "do not fit the memory budget");
    EXPECT_NE(r.err.find("--max-gpu-mem"), std::string::npos) << r.err;
    EXPECT_TRUE(rsa_test::list_dir(d).empty());
}

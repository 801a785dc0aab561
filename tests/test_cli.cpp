// End-to-end tests of the rsa_gpu binary on the CPU: each command's normal use, and every bad input giving
// a clear message, a non-zero exit code (2 for bad input or usage, 1 for runtime failure) and no partial output.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/npy.h"
#include "cli_test_util.h"
#include "test_util.h"

using namespace rsa;
using rsa_test::expect_error;
using rsa_test::random_responses;
using rsa_test::run_rsa_gpu;

namespace {

std::string dir_for(const std::string& name) { return rsa_test::scratch_dir("cli_" + name); }


}  // namespace

TEST(Cli, HelpAndVersion) {
    const std::string d = dir_for("help");
    auto r = run_rsa_gpu("--help", d);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("--device"), std::string::npos);
    EXPECT_NE(r.out.find("stimuli"), std::string::npos);
    r = run_rsa_gpu("rdm --help", d);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("--constant-rows"), std::string::npos);
    r = run_rsa_gpu("--version", d);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("rsa_gpu"), std::string::npos);
    r = run_rsa_gpu("--no-such-option", d);
    EXPECT_EQ(r.exit_code, 2);
}

TEST(Cli, StimuliCommand) {
    const std::string d = dir_for("stimuli");
    auto r = run_rsa_gpu("stimuli --device cpu --angles -90,-45,0,45,90 --out gratings.npy", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const NpyArray g = npy_load(d + "/gratings.npy");
    ASSERT_EQ(g.shape, (std::vector<int64_t>{5, 48, 64}));
    for (int64_t i = 0; i < 48 * 64; ++i) ASSERT_EQ(g.values[i], g.values[4 * 48 * 64 + i]);  // -90 == +90

    npy_save(d + "/angles.npy", std::vector<float>{10.0f, 20.0f});
    r = run_rsa_gpu("stimuli --device cpu --angles-from angles.npy --res 0.05 --out g2.npy", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(npy_load(d + "/g2.npy").shape, (std::vector<int64_t>{2, 24, 32}));

    expect_error(run_rsa_gpu("stimuli --device cpu --angles 1,x,3 --out bad.npy", d), 2, "'x'");
    expect_error(run_rsa_gpu("stimuli --device cpu --out bad.npy", d), 2, "--angles");
    EXPECT_FALSE(rsa_test::file_exists(d + "/bad.npy"));
}

TEST(Cli, RdmAndCompare) {
    const std::string d = dir_for("rdm");
    npy_save(d + "/x.npy", random_responses(30, 50));
    npy_save(d + "/y.npy", random_responses(30, 70));
    ASSERT_EQ(run_rsa_gpu("rdm --device cpu --responses x.npy --out rx.npy", d).exit_code, 0);
    ASSERT_EQ(run_rsa_gpu("rdm --device cpu --responses y.npy --out ry.npy", d).exit_code, 0);
    auto r = run_rsa_gpu("compare --device cpu rx.npy rx.npy", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NEAR(std::stod(r.out), 1.0, 1e-6);
    r = run_rsa_gpu("compare --device cpu --json rx.npy ry.npy", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["pairs"].get<int64_t>(), 30 * 29 / 2);
    EXPECT_LT(std::abs(j["value"].get<double>()), 1.0);

    // An existing output file is replaced only with --force; nothing else is left in the folder.
    expect_error(run_rsa_gpu("rdm --device cpu --responses y.npy --out rx.npy", d), 2, "--force");
    EXPECT_EQ(npy_load(d + "/rx.npy").shape, (std::vector<int64_t>{30, 30}));
    ASSERT_EQ(run_rsa_gpu("rdm --device cpu --responses x.npy --out rx.npy --force", d).exit_code, 0);
    EXPECT_EQ(rsa_test::list_dir(d), (std::vector<std::string>{"rx.npy", "ry.npy", "x.npy", "y.npy"}));
}

TEST(Cli, RdmBadInputs) {
    const std::string d = dir_for("rdm_bad");
    expect_error(run_rsa_gpu("rdm --device cpu --responses missing.npy --out o.npy", d), 2, "missing.npy");
    Matrix c = random_responses(5, 8);
    for (int j = 0; j < 8; ++j) c.at(3, j) = 1.0f;
    npy_save(d + "/const.npy", c);
    expect_error(run_rsa_gpu("rdm --device cpu --responses const.npy --out o.npy", d), 2, "row 3");
    EXPECT_FALSE(rsa_test::file_exists(d + "/o.npy"));
    ASSERT_EQ(run_rsa_gpu("rdm --device cpu --constant-rows nan --responses const.npy --out o.npy", d).exit_code, 0);
    npy_save(d + "/ok.npy", random_responses(5, 8));
    ASSERT_EQ(run_rsa_gpu("rdm --device cpu --responses ok.npy --out ok_rdm.npy", d).exit_code, 0);
    auto r = run_rsa_gpu("compare --device cpu o.npy ok_rdm.npy", d);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("skipped 4 of 10"), std::string::npos) << r.err;

    Matrix nan = random_responses(5, 8);
    nan.at(2, 6) = std::nanf("");
    npy_save(d + "/nan.npy", nan);
    expect_error(run_rsa_gpu("rdm --device cpu --responses nan.npy --out o2.npy", d), 2, "nan.npy");
    npy_save(d + "/two.npy", random_responses(2, 8));
    expect_error(run_rsa_gpu("rdm --device cpu --responses two.npy --out o2.npy", d), 2, "at least 3");
    npy_save_f64(d + "/empty.npy", {}, {0, 4});
    expect_error(run_rsa_gpu("rdm --device cpu --responses empty.npy --out o2.npy", d), 2, "empty");
    std::ofstream(d + "/trunc.npy") << "\x93NUMPY\x01";
    expect_error(run_rsa_gpu("rdm --device cpu --responses trunc.npy --out o2.npy", d), 2, "trunc.npy");
    expect_error(run_rsa_gpu("rdm --device cpu --responses ok.npy --out nodir/o2.npy", d), 2, "nodir");
    EXPECT_FALSE(rsa_test::file_exists(d + "/o2.npy"));
    expect_error(run_rsa_gpu("compare --device cpu ok_rdm.npy ok.npy", d), 2, "ok.npy");
}

TEST(Cli, MainJobOnSmallSyntheticFile) {
    const std::string d = dir_for("main");
    auto r = run_rsa_gpu("synthetic --device cpu --neurons 300 --out v1.npz", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_rsa_gpu("--device cpu --v1 v1.npz --no-figures --out res", d);
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("pixels"), std::string::npos) << r.out;
    for (const char* f : {"results.json", "rdm_v1.npy", "rdm_pixels.npy", "orientations.npy", "correlations.csv"})
        EXPECT_TRUE(rsa_test::file_exists(d + "/res/" + f)) << f;
    std::ifstream in(d + "/res/results.json");
    const auto j = nlohmann::json::parse(in);
    EXPECT_EQ(j["device"], "cpu");
    EXPECT_TRUE(j["timings_ms"].contains("rdm_ms"));
    const double v = j["correlations"][0]["value"].get<double>();
    EXPECT_TRUE(std::isfinite(v));
    // Default statistics at this size: a 95% bootstrap interval around r and a permutation p-value.
    EXPECT_LE(j["correlations"][0]["ci_low"].get<double>(), v);
    EXPECT_GE(j["correlations"][0]["ci_high"].get<double>(), v);
    EXPECT_GT(j["correlations"][0]["p_value"].get<double>(), 0.0);
    EXPECT_EQ(j["statistics"]["bootstrap_resamples"], 10000);
    EXPECT_EQ(npy_load(d + "/res/rdm_v1.npy").shape, (std::vector<int64_t>{181, 181}));

    // Existing folder: refused without --force, replaced with it.
    expect_error(run_rsa_gpu("--device cpu --v1 v1.npz --out res", d), 2, "--force");
    EXPECT_EQ(run_rsa_gpu("--device cpu --v1 v1.npz --out res --force --json --no-figures --bootstrap 100", d).exit_code, 0);
}

TEST(Cli, MainJobBadInputsLeaveNoFolder) {
    const std::string d = dir_for("main_bad");
    npz_save(d + "/nokey.npz", {{"resp", {{4, 3}, std::vector<float>(12, 1.0f)}}});
    expect_error(run_rsa_gpu("--device cpu --v1 nokey.npz --out res", d), 2, "stimuli");
    npy_save(d + "/x.npy", random_responses(10, 20));
    npy_save(d + "/o.npy", std::vector<float>(9, 0.0f));
    expect_error(run_rsa_gpu("--device cpu --responses x.npy --orientations o.npy --out res", d), 2, "mismatch");
    expect_error(run_rsa_gpu("--device cpu --responses x.npy --out res", d), 2, "--orientations");
    expect_error(run_rsa_gpu("--device cpu --v1 nokey.npz --out nodir/res", d), 2, "nodir");
    EXPECT_EQ(rsa_test::list_dir(d), (std::vector<std::string>{"nokey.npz", "o.npy", "x.npy"}));
}

TEST(Cli, ExplicitGpuWithoutOne) {
    std::string why;
    if (gpu_usable(&why)) GTEST_SKIP() << "a GPU is usable here";
    const std::string d = dir_for("gpu");
    expect_error(run_rsa_gpu("compare --device 0 a.npy b.npy", d), 2, "a.npy");  // file check comes first
    npy_save(d + "/x.npy", random_responses(5, 8));
    expect_error(run_rsa_gpu("rdm --device 0 --responses x.npy --out r.npy", d), 1, "--device cpu");
}

TEST(Cli, TrialLevelRuns) {
    const std::string d = dir_for("trials");
    auto r = run_rsa_gpu("synthetic --device cpu --neurons 200 --trials 720 --trial-level --out t.npz", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(npz_load_key(d + "/t.npz", "sresp").shape, (std::vector<int64_t>{200, 720}));
    r = run_rsa_gpu("--device cpu --v1 t.npz --trials --epochs 2 --no-figures --bootstrap 20 --out res", d);
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_EQ(npy_load(d + "/res/rdm_v1.npy").shape, (std::vector<int64_t>{720, 720}));
    EXPECT_EQ(npy_load(d + "/res/rdm_pool.npy").shape, (std::vector<int64_t>{720, 720}));
    r = run_rsa_gpu("--device cpu --v1 t.npz --epochs 2 --no-figures --bootstrap 50 --out res_binned", d);
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_EQ(npy_load(d + "/res_binned/rdm_v1.npy").shape.size(), 2u);
    r = run_rsa_gpu("synthetic --device cpu --neurons 50 --out binned.npz", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_error(run_rsa_gpu("--device cpu --v1 binned.npz --trials --out res3", d), 2, "trial-level");
    EXPECT_FALSE(rsa_test::file_exists(d + "/res3"));
}

TEST(Cli, TrainSaveAndLoadModel) {
    const std::string d = dir_for("model");
    auto r = run_rsa_gpu("train --device cpu --epochs 5 --save-model net.npz", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("epoch 5 | loss on last mini-batch:  4.10e-01"), std::string::npos) << r.out;
    EXPECT_TRUE(rsa_test::file_exists(d + "/net.npz"));
    ASSERT_EQ(run_rsa_gpu("synthetic --device cpu --neurons 300 --out v1.npz", d).exit_code, 0);
    r = run_rsa_gpu("--device cpu --v1 v1.npz --load-model net.npz --no-figures --bootstrap 0 --out res", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.find("training done"), std::string::npos);
    std::ifstream in(d + "/res/results.json");
    const auto j = nlohmann::json::parse(in);
    EXPECT_EQ(j["cnn"]["weights"], "net.npz");
    EXPECT_EQ(rsa::cnn_load_npz(d + "/res/model.npz"), rsa::cnn_load_npz(d + "/net.npz"));
    expect_error(run_rsa_gpu("--device cpu --v1 v1.npz --layers pool,nope --out res2", d), 2, "nope");
    expect_error(run_rsa_gpu("--device cpu --v1 v1.npz --load-model v1.npz --out res3", d), 2, "conv.weight");
    EXPECT_FALSE(rsa_test::file_exists(d + "/res2"));
    EXPECT_FALSE(rsa_test::file_exists(d + "/res3"));
}

// --cnn-kernels cudnn|exact chooses the GPU training path; on the CPU both run the one twin (same losses, same
// weights), the choice is recorded in results.json, and any other value is refused naming the option (exit 2).
TEST(Cli, CnnKernelsOptionOnCpu) {
    const std::string d = dir_for("cnn_kernels");
    auto r = run_rsa_gpu("train --help", d);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("--cnn-kernels"), std::string::npos) << r.out;
    const std::string train = "train --device cpu --epochs 2 --train-size 200 --cnn-kernels ";
    const auto exact = run_rsa_gpu(train + "exact --save-model e.npz", d);
    ASSERT_EQ(exact.exit_code, 0) << exact.err;
    const auto cudnn = run_rsa_gpu(train + "cudnn --save-model c.npz", d);
    ASSERT_EQ(cudnn.exit_code, 0) << cudnn.err;
    EXPECT_EQ(rsa::cnn_load_npz(d + "/e.npz"), rsa::cnn_load_npz(d + "/c.npz"));
    expect_error(run_rsa_gpu("train --device cpu --cnn-kernels fast", d), 2, "--cnn-kernels");
    ASSERT_EQ(run_rsa_gpu("synthetic --device cpu --neurons 300 --out v1.npz", d).exit_code, 0);
    r = run_rsa_gpu("--device cpu --v1 v1.npz --epochs 1 --train-size 100 --cnn-kernels exact --no-figures "
                    "--bootstrap 0 --permutations 0 --out res", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ifstream in(d + "/res/results.json");
    const auto j = nlohmann::json::parse(in);
    EXPECT_EQ(j["cnn"]["kernels"], "exact");
    expect_error(run_rsa_gpu("--device cpu --v1 v1.npz --cnn-kernels CUDNN --out res2", d), 2, "--cnn-kernels");
    EXPECT_FALSE(rsa_test::file_exists(d + "/res2"));
}

TEST(Cli, MeasuresAndCka) {
    const std::string d = dir_for("measures");
    npy_save(d + "/x.npy", random_responses(20, 30));
    npy_save(d + "/y.npy", random_responses(20, 40));
    ASSERT_EQ(run_rsa_gpu("rdm --device cpu --responses x.npy --out rx.npy", d).exit_code, 0);
    ASSERT_EQ(run_rsa_gpu("rdm --device cpu --responses y.npy --out ry.npy", d).exit_code, 0);
    for (const char* m : {"pearson", "spearman", "kendall", "cosine"}) {
        auto r = run_rsa_gpu(std::string("compare --device cpu --method ") + m + " --json rx.npy ry.npy", d);
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(nlohmann::json::parse(r.out)["measure"], m);
    }
    auto r = run_rsa_gpu("cka --device cpu x.npy x.npy", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NEAR(std::stod(r.out), 1.0, 1e-5);
    EXPECT_EQ(run_rsa_gpu("cka --device cpu --debiased x.npy y.npy", d).exit_code, 0);
    npy_save(d + "/z.npy", random_responses(21, 40));
    expect_error(run_rsa_gpu("cka --device cpu x.npy z.npy", d), 2, "z.npy");
    expect_error(run_rsa_gpu("compare --device cpu --method nope rx.npy ry.npy", d), 2, "method");
}

TEST(Cli, ChunkedPathsMatchOneShot) {
    const std::string d = dir_for("chunked");
    npy_save(d + "/x.npy", random_responses(300, 5000));
    ASSERT_EQ(run_rsa_gpu("rdm --device cpu --responses x.npy --out one.npy", d).exit_code, 0);
    auto r = run_rsa_gpu("rdm --device cpu --responses x.npy --max-gpu-mem 3M --out streamed.npy", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("memory plan"), std::string::npos) << r.err;
    r = run_rsa_gpu("rdm --device cpu --responses x.npy --max-gpu-mem 300K --out tiled.npy", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const NpyArray one = npy_load(d + "/one.npy");
    for (const char* f : {"streamed.npy", "tiled.npy"}) {
        const NpyArray other = npy_load(d + "/" + f);
        ASSERT_EQ(other.shape, one.shape) << f;
        const std::vector<float> a(other.values.begin(), other.values.end()), b(one.values.begin(), one.values.end());
        EXPECT_LT(rsa_test::rel_l2(a, b), 1e-5) << f;
    }
    EXPECT_EQ(rsa_test::list_dir(d), (std::vector<std::string>{"one.npy", "streamed.npy", "tiled.npy", "x.npy"}));
    expect_error(run_rsa_gpu("rdm --device cpu --responses x.npy --max-gpu-mem 12Q --out t.npy", d), 2, "12Q");
}

TEST(Cli, MainJobUnderMemoryCaps) {
    const std::string d = dir_for("main_caps");
    const std::string base = "--device cpu --no-cnn --no-figures --bootstrap 0 --v1-neurons 4000 ";
    ASSERT_EQ(run_rsa_gpu(base + "--out one", d).exit_code, 0);
    auto r = run_rsa_gpu(base + "--max-gpu-mem 1M --out streamed", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("streamed RDM"), std::string::npos) << r.err;
    const NpyArray a = npy_load(d + "/one/rdm_v1.npy"), b = npy_load(d + "/streamed/rdm_v1.npy");
    const std::vector<float> va(a.values.begin(), a.values.end()), vb(b.values.begin(), b.values.end());
    EXPECT_LT(rsa_test::rel_l2(vb, va), 1e-5);
    expect_error(run_rsa_gpu(base + "--max-gpu-mem 100K --out tiled", d), 2, "raise --max-gpu-mem");
    EXPECT_FALSE(rsa_test::file_exists(d + "/tiled"));
}

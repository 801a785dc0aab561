// End-to-end tests of the rsa_gpu binary (CPU) for inputs that cannot give an answer and jobs that cannot fit:
// degenerate RDMs and responses as named errors (or NaN for every measure with --constant-rows nan), RDMs and
// gratings over the host memory budget (tiled to disk, or refused with the sizes before any work), allocation
// failures as clear exit-1 errors, and the main job's split-half noise ceiling (181 bins, 0..180 degrees).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/stats.h"
#include "rsa_gpu/v1_data.h"
#include "cli_test_util.h"
#include "test_util.h"

using namespace rsa;
using rsa_test::expect_error;
using rsa_test::random_responses;
using rsa_test::run_rsa_gpu;

// The main job's noise ceiling on the fixture of MainJobNoiseCeilingKeeps181Bins (recorded from this
// implementation; the float SYRK of the half RDMs may move it by ~1e-7 between CPUs).
constexpr double kPinnedCeiling = 0.43729830604570957;

namespace {

std::string dir_for(const std::string& name) { return rsa_test::scratch_dir("degenerate_cli_" + name); }


// Sets RSA_GPU_HOST_MEM_BYTES for the commands run in one scope.
struct HostBudget {
    explicit HostBudget(const char* v) { setenv(kHostMemEnv, v, 1); }
    ~HostBudget() { unsetenv(kHostMemEnv); }
};

// Orientations -90 .. 90 (S values, 1 degree apart from -90).
std::vector<float> orientations(int64_t S) {
    std::vector<float> o(static_cast<size_t>(S));
    for (int64_t i = 0; i < S; ++i) o[static_cast<size_t>(i)] = static_cast<float>(-90 + i % 181);
    return o;
}

nlohmann::json results(const std::string& dir) {
    std::ifstream in(dir + "/results.json");
    return nlohmann::json::parse(in);
}

}  // namespace

TEST(DegenerateCli, CompareOfConstantOrRoundingNoiseRdmIsAnErrorForEveryMeasure) {
    const std::string d = dir_for("compare");
    npy_save(d + "/x.npy", random_responses(12, 30));
    ASSERT_EQ(run_rsa_gpu("rdm --device cpu --responses x.npy --out ok.npy", d).exit_code, 0);
    Matrix constant(12, 12, 1.0f), noise(12, 12);
    for (int64_t i = 0; i < 12; ++i) constant.at(i, i) = 0.0f;
    std::mt19937_64 gen(1);
    std::uniform_int_distribution<int> k(-3, 3);
    for (auto& v : noise.data) v = static_cast<float>(k(gen)) * 1e-7f;  // an RDM of rows equal up to an offset
    for (int64_t i = 0; i < 12; ++i) noise.at(i, i) = 0.0f;
    npy_save(d + "/constant.npy", constant);
    npy_save(d + "/noise.npy", noise);
    for (const char* m : {"pearson", "spearman", "kendall", "cosine"}) {
        // Used to print nan (JSON null) with exit 0, and 0 for Kendall.
        auto r = run_rsa_gpu(std::string("compare --device cpu --json --method ") + m + " constant.npy ok.npy", d);
        expect_error(r, 2, "constant.npy: its 66 upper-triangle values are all equal (1)");
        EXPECT_TRUE(r.out.empty()) << m << ": " << r.out;
        r = run_rsa_gpu(std::string("compare --device cpu --method ") + m + " ok.npy constant.npy", d);
        expect_error(r, 2, "constant.npy");
    }
    // Values within 3e-7 of 0 are a real spread for an arbitrary RDM file (its own scale); the RDM command
    // itself rejects rounding noise (RowsEqualUpToAnOffset below).
    EXPECT_EQ(run_rsa_gpu("compare --device cpu noise.npy ok.npy", d).exit_code, 0);
    Matrix noise_at_one = noise;
    for (auto& v : noise_at_one.data) v += 1.0f;
    npy_save(d + "/noise1.npy", noise_at_one);
    expect_error(run_rsa_gpu("compare --device cpu --method kendall noise1.npy ok.npy", d), 2,
                 "noise1.npy: its 66 upper-triangle values are equal up to float rounding");
}

TEST(DegenerateCli, V1RowsEqualUpToAnOffset) {
    // Every V1 row is the same pattern plus an offset: every correlation is 1 up to float rounding and the RDM is
    // ~1e-7 noise. It used to be accepted and reported as a correlation with a confident interval.
    const std::string d = dir_for("v1_offset");
    const int64_t S = 181, N = 500;
    std::mt19937_64 gen(2);
    std::normal_distribution<float> nd;
    std::uniform_real_distribution<float> off(-50.0f, 50.0f);
    std::vector<float> base(static_cast<size_t>(N));
    for (auto& v : base) v = nd(gen);
    Matrix x(S, N);
    for (int64_t s = 0; s < S; ++s) {
        const float c = off(gen);
        for (int64_t j = 0; j < N; ++j) x.at(s, j) = base[static_cast<size_t>(j)] + c;
    }
    npy_save(d + "/x.npy", x);
    npy_save(d + "/o.npy", orientations(S));
    const std::string job = "--device cpu --responses x.npy --orientations o.npy --no-cnn --no-figures ";
    auto r = run_rsa_gpu(job + "--out res", d);
    expect_error(r, 2, "V1 responses: the RDM is constant");
    EXPECT_NE(r.err.find("float rounding"), std::string::npos) << r.err;
    EXPECT_FALSE(rsa_test::file_exists(d + "/res"));
    // With --constant-rows nan: NaN (JSON null) for every measure alike, no statistics.
    r = run_rsa_gpu(job + "--constant-rows nan --measures pearson,spearman,kendall,cosine --out nan", d);
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto j = results(d + "/nan");
    int rows = 0;
    for (const auto& c : j["correlations"]) {
        EXPECT_TRUE(c["value"].is_null()) << c.dump();
        EXPECT_EQ(c["pairs"].get<int64_t>(), 0) << c.dump();
        EXPECT_FALSE(c.contains("ci_low")) << c.dump();
        ++rows;
    }
    EXPECT_EQ(rows, 4);
}

TEST(DegenerateCli, CkaNeedsThreeStimuli) {
    const std::string d = dir_for("cka");
    npy_save(d + "/x2.npy", random_responses(2, 6));
    npy_save(d + "/y2.npy", random_responses(2, 4));
    expect_error(run_rsa_gpu("cka --device cpu x2.npy y2.npy", d), 2, "at least 3 stimuli");
    npy_save(d + "/x3.npy", random_responses(3, 6));
    npy_save(d + "/y3.npy", random_responses(3, 4));
    EXPECT_EQ(run_rsa_gpu("cka --device cpu x3.npy y3.npy", d).exit_code, 0);
}

TEST(DegenerateCli, StimuliOverTheBudgetRefusedBeforeAnyWork) {
    const std::string d = dir_for("stimuli");
    npy_save(d + "/angles.npy", std::vector<float>(2000000, 30.0f));  // 2 million gratings: 24.6 GB
    {
        HostBudget b("4G");
        const auto t0 = std::chrono::steady_clock::now();
        auto r = run_rsa_gpu("stimuli --device cpu --angles-from angles.npy --out g.npy", d);
        expect_error(r, 2, "2000000 gratings of 48 x 64 float32 pixels need 24.58 GB");
        EXPECT_NE(r.err.find("host memory budget of 4.29 GB"), std::string::npos) << r.err;
        EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
    }
    EXPECT_FALSE(rsa_test::file_exists(d + "/g.npy"));
    // --res 1e10 used to overflow int ("negative dimension in shape (2, -2147483648, ...)").
    expect_error(run_rsa_gpu("stimuli --device cpu --angles 0,45 --res 1e10 --out g.npy", d), 2, "--res");
    EXPECT_FALSE(rsa_test::file_exists(d + "/g.npy"));
}

TEST(DegenerateCli, RdmOverTheBudgetIsTiledOrRefused) {
    const std::string d = dir_for("rdm_budget");
    const Matrix x = random_responses(4000, 8);  // a 64 MB RDM
    npy_save(d + "/x.npy", x);
    ASSERT_EQ(run_rsa_gpu("rdm --device cpu --responses x.npy --out one.npy", d).exit_code, 0);
    {
        HostBudget b("100M");
        auto r = run_rsa_gpu("rdm --device cpu --responses x.npy --out tiled.npy", d);
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.err.find("tiled RDM"), std::string::npos) << r.err;
        // The main job keeps RDMs in memory: refused with the sizes, before any output.
        npy_save(d + "/o.npy", orientations(4000));
        r = run_rsa_gpu("--device cpu --responses x.npy --orientations o.npy --no-cnn --no-figures --out res", d);
        expect_error(r, 2, "V1 responses: its 4000 x 4000 RDM needs 64.0 MB");
        EXPECT_NE(r.err.find("RSA_GPU_HOST_MEM_BYTES"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("fewer stimuli"), std::string::npos) << r.err;
        EXPECT_FALSE(rsa_test::file_exists(d + "/res"));
    }
    const NpyArray one = npy_load(d + "/one.npy"), tiled = npy_load(d + "/tiled.npy");
    ASSERT_EQ(tiled.shape, one.shape);
    const std::vector<float> a(tiled.values.begin(), tiled.values.end()), b(one.values.begin(), one.values.end());
    EXPECT_LT(rsa_test::rel_l2(a, b), 1e-5);
    EXPECT_EQ(rsa_test::list_dir(d), (std::vector<std::string>{"o.npy", "one.npy", "tiled.npy", "x.npy"}));
}

TEST(DegenerateCli, AllocationFailureIsAClearRuntimeError) {
    const std::string d = dir_for("oom");
    HostBudget b("1G");
    // 10 million neurons: 360 x 10^7 binned responses, 14.4 GB (allocated unchecked, it used to end in a bare
    // std::bad_alloc, or in the OOM killer, on a machine without that much memory).
    auto r = run_rsa_gpu("synthetic --device cpu --neurons 10000000 --out v1.npz", d);
    expect_error(r, 1, "out of host memory: cannot allocate 14.40 GB for the binned synthetic V1 responses "
                       "(360 x 10000000 float32)");
    EXPECT_FALSE(rsa_test::file_exists(d + "/v1.npz"));
}

TEST(DegenerateCli, MainJobNoiseCeilingKeeps181Bins) {
    // The embedded recording at a small size: its trials binned to 1 degree, bins 0..180 kept (180 included),
    // split halves of each bin's trials, Spearman-Brown corrected.
    const std::string d = dir_for("ceiling");
    auto r = run_rsa_gpu("--device cpu --no-cnn --no-figures --noise-ceiling --bootstrap 0 --permutations 0 "
                         "--v1-neurons 300 --v1-trials 1000 --out res",
                         d);
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto j = results(d + "/res");
    const auto& nc = j["statistics"]["noise_ceiling"];
    ASSERT_TRUE(nc.is_object()) << j["statistics"].dump();
    EXPECT_EQ(nc["bins_kept"].get<int64_t>(), 181);
    EXPECT_EQ(nc["bins_dropped"].get<int64_t>(), 0);
    const double ceiling = nc["ceiling"].get<double>();
    // The same computation through the public functions.
    SyntheticV1Params p;
    p.neurons = 300;
    p.trials = 1000;
    const V1Trials t = v1_trials_from_synthetic(synthetic_v1_trials_ref(p), p);
    std::vector<int64_t> keep, bins;
    for (size_t k = 0; k < t.bin.size(); ++k)
        if (t.bin[k] <= 180) keep.push_back(static_cast<int64_t>(k)), bins.push_back(t.bin[k]);
    Matrix sub(static_cast<int64_t>(keep.size()), t.resp.cols);
    for (size_t i = 0; i < keep.size(); ++i)
        std::copy(t.resp.row(keep[i]), t.resp.row(keep[i]) + t.resp.cols, sub.row(static_cast<int64_t>(i)));
    const NoiseCeilingResult want = noise_ceiling_ref(sub, bins, 1, 1);
    EXPECT_EQ(want.bins_kept, 181);
    // The command line may run other OpenBLAS kernels than this test does (it picks the CPU's AVX-512 kernels when
    // OpenBLAS fell back to generic ones, blas_setup.h): the half RDMs' SYRK rounding then moves r by ~1e-7.
    EXPECT_NEAR(ceiling, want.ceiling, 1e-6);
    // And its value on this fixture (seed 2021, stats seed 1), so a change in what the job feeds it shows.
    EXPECT_NEAR(ceiling, kPinnedCeiling, 1e-5);
    // The Pearson row of the table carries it.
    for (const auto& c : j["correlations"])
        if (c["measure"] == "pearson") EXPECT_NEAR(c["ceiling"].get<double>(), ceiling, 1e-12);
}

// The dissimilarity stage (dissimilarity.h) on the GPU backend against rsatoolbox's golden RDMs
// (tests/data/dissimilarity/, tools/make_dissimilarity_golden.py) and the CPU backend: euclidean, mahalanobis
// (identity, given precision, diagonal from residuals) and crossnobis (identity, given, diagonal), FP32 relative L2
// < 1e-5 against both; the euclidean engine through the GPU's streamed and tiled plans against its one-shot RDM.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/dissimilarity.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using namespace rsa;

namespace {

std::string golden(const std::string& name) { return rsa_test::data_path("dissimilarity/" + name + ".npy"); }

std::vector<float> values(const NpyArray& a) { return std::vector<float>(a.values.begin(), a.values.end()); }

void expect_both(const std::string& x_name, const DissimilaritySpec& spec, const std::string& golden_name) {
    const Matrix x = npy_load_matrix(golden(x_name));
    auto gpu = make_gpu_backend(0);
    auto cpu = make_cpu_backend();
    const Matrix g = compute_dissimilarity_rdm(*gpu, x, spec, {}, x_name).rdm.rdm.to_matrix();
    const Matrix c = compute_dissimilarity_rdm(*cpu, x, spec, {}, x_name).rdm.rdm.to_matrix();
    EXPECT_LT(rsa_test::rel_l2(g.data, values(npy_load(golden(golden_name)))), 1e-5) << golden_name;
    EXPECT_LT(rsa_test::rel_l2(g.data, c.data), 1e-5) << golden_name;
}

DissimilaritySpec spec_of(Dissimilarity d, const std::string& noise = "") {
    DissimilaritySpec s;
    s.method = d;
    s.noise = parse_noise(noise);
    return s;
}

DissimilaritySpec crossnobis(const std::string& noise) {
    DissimilaritySpec s = spec_of(Dissimilarity::Crossnobis, noise);
    s.conditions = load_labels(golden("cross_conditions"), "conditions");
    s.runs = load_labels(golden("cross_runs"), "runs");
    return s;
}

}  // namespace

TEST(DissimilarityGpu, EuclideanAndMahalanobis) {
    expect_both("x", spec_of(Dissimilarity::Euclidean), "euclidean");
    expect_both("x", spec_of(Dissimilarity::Mahalanobis), "mahalanobis_identity");
    expect_both("x", spec_of(Dissimilarity::Mahalanobis, golden("precision")), "mahalanobis_precision");
    DissimilaritySpec s = spec_of(Dissimilarity::Mahalanobis, "diag");
    s.conditions = load_labels(golden("trials_conditions"), "conditions");
    expect_both("trials_x", s, "mahalanobis_diag");
}

TEST(DissimilarityGpu, Crossnobis) {
    expect_both("cross_x", crossnobis(""), "crossnobis_identity");
    expect_both("cross_x", crossnobis(golden("precision")), "crossnobis_precision");
    expect_both("cross_x", crossnobis("diag"), "crossnobis_diag");
}

TEST(DissimilarityGpu, EuclideanPlansAgree) {
    const int64_t S = 300, N = 900;
    Matrix x(S, N);
    x.data = rsa_test::random_uniform(static_cast<size_t>(S * N), 1.0f, 3.0f);
    auto gpu = make_gpu_backend(0);
    RdmOptions o;
    o.kind = RdmKind::Euclidean;
    const std::vector<float> one = compute_rdm(*gpu, x, o, "x").rdm.to_matrix().data;
    o.max_gpu_bytes = static_cast<uint64_t>(S * S) * 4 + S * kRowStatBytes + 2 * S * 4 * 128;
    const RdmResult streamed = compute_rdm(*gpu, x, o, "x");
    EXPECT_EQ(streamed.plan.kind, PlanKind::Streamed);
    EXPECT_LT(rsa_test::rel_l2(streamed.rdm.to_matrix().data, one), 1e-5);
    o.max_gpu_bytes = S * kRowStatBytes + 4 * 64 * 128 * 4 + 2 * 64 * 64 * 4;
    o.output_path = rsa_test::scratch_dir("dissimilarity_gpu") + "/tiled.npy";
    const RdmResult tiled = compute_rdm(*gpu, x, o, "x");
    EXPECT_EQ(tiled.plan.kind, PlanKind::Tiled);
    EXPECT_LT(rsa_test::rel_l2(values(npy_load(o.output_path)), one), 1e-5);
}

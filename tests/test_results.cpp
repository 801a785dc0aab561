// results.json (results.h): the serialiser's round trip, the keys tools/make_figures.py reads, the written file being
// exactly the serialiser's output; and the small output functions of the main job (correlations.csv, the V1 column
// sample, the printed table).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include "rsa_gpu/analysis_stages.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/results.h"
#include "test_util.h"

using namespace rsa;
using nlohmann::json;

namespace {

CorrelationRow row(const std::string& layer, const std::string& measure, double value) {
    CorrelationRow r;
    r.layer = layer;
    r.measure = measure;
    r.value = value;
    r.pairs = 16290;
    return r;
}

// A run with every part filled in: trained CNN, statistics with a noise ceiling, figures.
Results full_results() {
    Results r;
    r.version = "0.1.0";
    r.command = "rsa_gpu --device cpu --out x";
    r.device = "cpu";
    r.versions = "rsa_gpu 0.1.0\nOpenBLAS 0.3";
    r.data.kind = "embedded synthetic, trial level";
    r.data.synthetic = SyntheticV1Params{};
    r.data.trials = 4598;
    r.data.neurons = 23589;
    r.stimuli = {181, 48, 64, 1.0 / 28.0, 0.1};
    r.v1 = {181, 23589, "embedded synthetic V1 (seed 2021)"};
    r.constant_rows = ConstantRows::Nan;
    CnnDescription cnn;
    cnn.train.lr = 5e-4f;
    cnn.losses.step_losses = {0.7f, 0.5f, 0.25f};
    cnn.losses.epoch_losses = {0.5f, 0.25f};
    cnn.train_correct = 999;
    cnn.train_total = 1000;
    cnn.misclassified_angles = {-89.9f};
    r.cnn = cnn;
    StatisticsDescription stats;
    stats.seed = 18446744073709551615ull;
    stats.bootstrap_resamples = 10000;
    stats.permutations = 500;
    stats.noise_ceiling = NoiseCeilingDescription{0.9, {0.8, 0.85}, 181, 0, "split halves"};
    r.statistics = stats;
    CorrelationRow pool = row("pool", "pearson", 0.6605);
    pool.ci_low = 0.6026, pool.ci_high = 0.7155, pool.p_value = 1e-4, pool.ceiling = 0.9;
    r.correlations = {pool, row("pixels", "pearson", 0.39), row("pixels", "spearman", NAN)};
    r.correlations.back().skipped_pairs = 12;
    r.timings_ms = {{"rdm_ms", 12.5}, {"v1_data_ms", 3.0}};
    r.files = {"orientations.npy", "rdm_v1.npy", "correlations.csv", "results.json"};
    r.figures = {{"made", true}, {"report", "report.html"}, {"folder", "figures/"}};
    return r;
}

}  // namespace

TEST(Results, RoundTripKeepsEveryField) {
    const Results r = full_results();
    const json doc = results_to_json(r);
    const Results back = results_from_json(json::parse(doc.dump(2)));
    EXPECT_EQ(results_to_json(back), doc);
    EXPECT_EQ(back.schema, kResultsSchema);
    EXPECT_EQ(back.data.kind, r.data.kind);
    EXPECT_EQ(back.data.trials, 4598);
    ASSERT_TRUE(back.cnn.has_value());
    EXPECT_EQ(back.cnn->train.lr, 5e-4f);
    EXPECT_EQ(back.cnn->losses.epoch_losses, r.cnn->losses.epoch_losses);
    ASSERT_TRUE(back.statistics && back.statistics->noise_ceiling);
    EXPECT_EQ(back.statistics->seed, 18446744073709551615ull);
    EXPECT_EQ(back.statistics->noise_ceiling->r_half, (std::vector<double>{0.8, 0.85}));
    ASSERT_EQ(back.correlations.size(), 3u);
    EXPECT_EQ(back.correlations[0].ci_high, 0.7155);
    EXPECT_TRUE(std::isnan(back.correlations[1].ci_low));
    EXPECT_TRUE(std::isnan(back.correlations[2].value));
    EXPECT_EQ(back.correlations[2].skipped_pairs, 12);
    EXPECT_EQ(back.timings_ms, r.timings_ms);
    EXPECT_EQ(back.files, r.files);
    EXPECT_EQ(back.figures, r.figures);
    EXPECT_EQ(back.constant_rows, ConstantRows::Nan);
}

TEST(Results, RoundTripOfALoadedModelAndSkippedStatistics) {
    Results r = full_results();
    r.cnn = CnnDescription{};
    r.cnn->weights = "net.npz";
    r.statistics.reset();
    r.figures = nullptr;
    r.data = DataDescription{};
    r.data.kind = "responses";
    r.data.responses = "x.npy";
    r.data.orientations = "o.npy";
    const json doc = results_to_json(r);
    EXPECT_EQ(doc["cnn"], json({{"weights", "net.npz"}}));
    EXPECT_TRUE(doc["statistics"].is_null());
    EXPECT_FALSE(doc.contains("figures"));
    EXPECT_EQ(doc["data"], json({{"kind", "responses"}, {"responses", "x.npy"}, {"orientations", "o.npy"}}));
    EXPECT_EQ(results_to_json(results_from_json(doc)), doc);
    r.cnn.reset();
    EXPECT_TRUE(results_to_json(r)["cnn"].is_null());
    EXPECT_EQ(results_to_json(results_from_json(results_to_json(r))), results_to_json(r));
}

TEST(Results, HoldsTheKeysMakeFiguresReads) {
    const json doc = results_to_json(full_results());
    EXPECT_EQ(doc["schema"], 1);
    for (const char* key : {"tool", "version", "command", "device", "versions", "data", "stimuli", "v1", "rdm", "cnn",
                            "statistics", "correlations", "timings_ms", "files"})
        EXPECT_TRUE(doc.contains(key)) << key;
    EXPECT_EQ(doc["tool"], "rsa_gpu");
    for (const char* key : {"height", "width", "count", "sf", "res"}) EXPECT_TRUE(doc["stimuli"].contains(key)) << key;
    for (const char* key : {"source", "neurons", "stimuli"}) EXPECT_TRUE(doc["v1"].contains(key)) << key;
    EXPECT_TRUE(doc["rdm"]["method"].is_string());
    EXPECT_TRUE(doc["data"]["seed"].is_number());  // the report's "seeds" line
    for (const char* key : {"epochs", "batch", "lr", "momentum", "seed", "kernels", "step_losses",
                            "epoch_losses", "train_correct", "train_total", "misclassified_angles"})
        EXPECT_TRUE(doc["cnn"].contains(key)) << key;
    const json& pool = doc["correlations"][0];
    for (const char* key : {"layer", "measure", "value", "ci_low", "ci_high", "p_value", "ceiling", "pairs",
                            "skipped_pairs"})
        EXPECT_TRUE(pool.contains(key)) << key;
    // Statistics not computed are left out; an undefined value is null.
    EXPECT_FALSE(doc["correlations"][1].contains("ci_low"));
    EXPECT_FALSE(doc["correlations"][1].contains("p_value"));
    EXPECT_TRUE(doc["correlations"][2]["value"].is_null());
    EXPECT_TRUE(doc["timings_ms"]["rdm_ms"].is_number());
}

TEST(Results, ReadingRejectsOtherSchemasAndMissingKeys) {
    json doc = results_to_json(full_results());
    doc["schema"] = 2;
    EXPECT_THROW(results_from_json(doc), InputError);
    doc = results_to_json(full_results());
    doc["cnn"].erase("epochs");
    try {
        results_from_json(doc);
        FAIL() << "no error";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("epochs"), std::string::npos) << e.what();
    }
    doc = results_to_json(full_results());
    doc["v1"]["neurons"] = "many";
    EXPECT_THROW(results_from_json(doc), InputError);
}

TEST(Results, CsvLinesFollowTheRows) {
    const Results r = full_results();
    const std::string csv = correlations_csv(r.correlations);
    EXPECT_EQ(csv,
              "layer,measure,value,ci_low,ci_high,p_value,ceiling,pairs,skipped_pairs\n"
              "pool,pearson,0.6605,0.6026,0.7155,0.0001,0.9,16290,0\n"
              "pixels,pearson,0.39,,,,,16290,0\n"
              "pixels,spearman,,,,,,16290,12\n");
    const std::string table = format_correlation_table(r.correlations);
    EXPECT_NE(table.find("model 'pool' layer"), std::string::npos) << table;
    EXPECT_NE(table.find("pixels (control)"), std::string::npos) << table;
    EXPECT_NE(table.find("[ 0.6026,  0.7155]"), std::string::npos) << table;
    EXPECT_NE(table.find("(12 NaN pairs skipped)"), std::string::npos) << table;
}

TEST(Results, ColumnSampleIsSeededDistinctAndInFileOrder) {
    Matrix x(3, 5000);
    for (int64_t i = 0; i < x.rows; ++i)
        for (int64_t j = 0; j < x.cols; ++j) x.at(i, j) = static_cast<float>(i * 100000 + j);
    const Matrix a = sample_columns(x, 2048, 1), b = sample_columns(x, 2048, 1), c = sample_columns(x, 2048, 2);
    ASSERT_EQ(a.rows, 3);
    ASSERT_EQ(a.cols, 2048);
    EXPECT_EQ(a.data, b.data);
    EXPECT_NE(a.data, c.data);
    std::set<float> seen;
    for (int64_t j = 0; j < a.cols; ++j) {
        if (j) EXPECT_LT(a.at(0, j - 1), a.at(0, j));  // file order
        seen.insert(a.at(0, j));
        EXPECT_EQ(a.at(2, j), a.at(0, j) + 200000);  // whole columns
    }
    EXPECT_EQ(seen.size(), 2048u);
    EXPECT_EQ(sample_columns(x, 10000, 1).cols, 5000);  // at most every column
}

// The file the main job writes is the serialiser's output for what it reads back (written by one function).
TEST(Results, MainJobWritesTheSerialisersDocument) {
    const std::string d = rsa_test::scratch_dir("results_main");
    auto r = rsa_test::run_rsa_gpu("synthetic --device cpu --neurons 200 --out v1.npz", d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = rsa_test::run_rsa_gpu("--device cpu --v1 v1.npz --epochs 2 --bootstrap 50 --permutations 20 --cka "
                              "--no-figures --out res",
                              d);
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    std::ifstream in(d + "/res/results.json");
    const json doc = json::parse(in);
    EXPECT_EQ(doc["schema"], kResultsSchema);
    const Results back = results_from_json(doc);
    EXPECT_EQ(results_to_json(back), doc);
    EXPECT_EQ(back.data.kind, "binned npz");
    ASSERT_TRUE(back.cnn.has_value());
    EXPECT_EQ(back.cnn->train.epochs, 2);
    EXPECT_EQ(back.correlations.size(), 9u);  // (pool, fc, pixels) x (pearson, cka, cka_debiased)
    for (const std::string& f : back.files) EXPECT_TRUE(rsa_test::file_exists(d + "/res/" + f)) << f;
}

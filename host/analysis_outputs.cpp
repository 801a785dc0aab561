// Stages 6 and 7 of the main job (analysis_stages.h): the printed table, the files of the output folder
// (arrays, correlations.csv, the model, a seeded subset of large V1 matrices) and the figures.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "rsa_gpu/analysis_stages.h"
#include "rsa_gpu/figures.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/philox.h"

namespace rsa {

std::string format_correlation_table(const std::vector<CorrelationRow>& rows) {
    bool ci = false, p = false, ceil = false;
    for (const auto& r : rows) {
        ci |= !std::isnan(r.ci_low);
        p |= !std::isnan(r.p_value);
        ceil |= !std::isnan(r.ceiling);
    }
    std::ostringstream os;
    char line[320];
    std::snprintf(line, sizeof(line), "%-22s %-13s %9s", "representation", "measure", "vs V1");
    os << line;
    if (ci) os << "   95% interval      ";
    if (p) os << "  p-value ";
    if (ceil) os << "  ceiling";
    os << "\n";
    for (const auto& r : rows) {
        std::snprintf(line, sizeof(line), "%-22s %-13s %9.4f", representation_label(r.layer).c_str(),
                      r.measure.c_str(), r.value);
        os << line;
        if (ci) {
            if (std::isnan(r.ci_low))
                os << std::string(21, ' ');
            else {
                std::snprintf(line, sizeof(line), "   [%7.4f, %7.4f]", r.ci_low, r.ci_high);
                os << line;
            }
        }
        if (p) {
            if (std::isnan(r.p_value))
                os << std::string(10, ' ');
            else {
                std::snprintf(line, sizeof(line), "  %8.2g", r.p_value);
                os << line;
            }
        }
        if (ceil && !std::isnan(r.ceiling)) {
            std::snprintf(line, sizeof(line), "  %7.4f", r.ceiling);
            os << line;
        }
        if (r.skipped_pairs) os << "  (" << r.skipped_pairs << " NaN pairs skipped)";
        os << "\n";
    }
    std::string text = os.str();
    if (!text.empty()) text.pop_back();
    return text;
}

namespace {

// A CSV field: %.9g, empty for NaN (not computed).
std::string csv_number(double v) {
    if (std::isnan(v)) return "";
    char b[64];
    std::snprintf(b, sizeof(b), "%.9g", v);
    return b;
}

}  // namespace

std::string correlations_csv(const std::vector<CorrelationRow>& rows) {
    std::ostringstream csv;
    csv << "layer,measure,value,ci_low,ci_high,p_value,ceiling,pairs,skipped_pairs\n";
    for (const CorrelationRow& r : rows)
        csv << r.layer << "," << r.measure << "," << csv_number(r.value) << "," << csv_number(r.ci_low) << ","
            << csv_number(r.ci_high) << "," << csv_number(r.p_value) << "," << csv_number(r.ceiling) << ","
            << r.pairs << "," << r.skipped_pairs << "\n";
    return csv.str();
}

Matrix sample_columns(const Matrix& x, int64_t count, uint64_t seed) {
    const int64_t keep = std::min<int64_t>(count, x.cols);
    std::vector<int64_t> cols(static_cast<size_t>(x.cols));
    for (int64_t j = 0; j < x.cols; ++j) cols[static_cast<size_t>(j)] = j;
    for (int64_t j = 0; j < keep; ++j) {  // partial Fisher-Yates with Philox draws
        const int64_t k = j + static_cast<int64_t>(philox_uniform01(seed, 200, static_cast<uint64_t>(j)) *
                                                   static_cast<double>(x.cols - j));
        std::swap(cols[static_cast<size_t>(j)], cols[static_cast<size_t>(std::min(k, x.cols - 1))]);
    }
    std::sort(cols.begin(), cols.begin() + keep);
    Matrix subset(x.rows, keep);
    for (int64_t i = 0; i < x.rows; ++i)
        for (int64_t j = 0; j < keep; ++j) subset.at(i, j) = x.at(i, cols[static_cast<size_t>(j)]);
    return subset;
}

std::vector<std::string> write_output_files(OutputDir& out, const AnalysisConfig& cfg, const V1Data& v1,
                                            const RepresentationsStage& reps, const RdmStage& rdms,
                                            const std::vector<CorrelationRow>& rows, OutputFile* model_file,
                                            StageTimings& timings) {
    const auto t0 = StageClock::now();
    std::vector<std::string> files = {"orientations.npy", "rdm_v1.npy", "correlations.csv", "results.json"};
    npy_save(out.path("orientations.npy"), v1.orientation);
    npy_save(out.path("rdm_v1.npy"), rdms.v1.rdm.view());
    for (size_t i = 0; i < reps.reps.size(); ++i) {
        const Representation& r = reps.reps[i];
        npy_save(out.path("resp_" + r.name + ".npy"), r.resp.view());
        npy_save(out.path("rdm_" + r.name + ".npy"), rdms.reps[i].rdm.view());
        files.push_back("rdm_" + r.name + ".npy");
        files.push_back("resp_" + r.name + ".npy");
    }
    if (!reps.params.empty()) {
        cnn_save_npz(out.path("model.npz"), reps.params);
        if (model_file) model_file->write([&](const std::string& p) { cnn_save_npz(p, reps.params); });
        files.push_back("model.npz");
    }
    // V1's responses up to 64 MB (or with --save-v1); else, for the figures (tuning curves, embedding), a seeded
    // random subset of 2,048 neurons.
    if (cfg.save_v1 || v1.resp.size() * 4 <= (64ll << 20)) {
        npy_save(out.path("resp_v1.npy"), v1.resp);
        files.push_back("resp_v1.npy");
    } else {
        npy_save(out.path("resp_v1_subset.npy"), sample_columns(v1.resp, 2048, cfg.stats_seed));
        files.push_back("resp_v1_subset.npy");
    }
    write_file_atomic(out.path("correlations.csv"), correlations_csv(rows));
    timings["write_ms"] = ms_since(t0);
    return files;
}

nlohmann::json figures_stage(const OutputDir& out, const std::string& results_json, StageTimings& timings,
                             const Say& say) {
    const auto t0 = StageClock::now();
    nlohmann::json figures = make_figures(out.path(""), out.target(), results_json, say);
    if (figures.value("made", false)) say("figures and report: " + out.target() + "/report.html");
    timings["figures_ms"] = ms_since(t0);
    return figures;
}

}  // namespace rsa

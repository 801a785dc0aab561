// The main job (see analysis.h): load or generate V1, draw gratings at its orientations, compute every RDM,
// correlate each representation's RDM with V1's, print the table and write the output folder atomically.
#include "rsa_gpu/analysis.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "rsa_gpu/cnn.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/figures.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/stats.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/output_dir.h"
#include "rsa_gpu/philox.h"
#include "rsa_gpu/progress.h"
#include "rsa_gpu/v1_data.h"

namespace rsa {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// One line of the results: a representation compared with V1 by one measure, with its statistics (NaN when
// not computed).
struct ResultRow {
    std::string layer, label, measure;
    double value = NAN;
    int64_t pairs = 0, skipped = 0;
    size_t rep = 0;  // index of the representation
    double ci_low = NAN, ci_high = NAN, p_value = NAN, ceiling = NAN;
};

std::string num(double v) {
    if (std::isnan(v)) return "";
    char b[64];
    std::snprintf(b, sizeof(b), "%.9g", v);
    return b;
}

nlohmann::json json_num(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

std::string format_table(const std::vector<ResultRow>& rows) {
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
        std::snprintf(line, sizeof(line), "%-22s %-13s %9.4f", r.label.c_str(), r.measure.c_str(), r.value);
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
        if (r.skipped) os << "  (" << r.skipped << " NaN pairs skipped)";
        os << "\n";
    }
    std::string text = os.str();
    if (!text.empty()) text.pop_back();
    return text;
}

template <typename Say>
void add_statistics(Backend& backend, const AnalysisConfig& cfg, const Matrix& rdm_v1, const std::vector<Matrix>& rdms,
                    const NoiseCeilingResult* ceiling, std::vector<ResultRow>& rows, nlohmann::json& timings,
                    nlohmann::json& stats_json, Say&& say) {
    const int64_t S = rdm_v1.rows;
    // Counts left at -1 follow default_stat_counts (stats.h: 10,000 each while the cost model's budget allows,
    // fewer for large S, skipped beyond); its notes say what was reduced or skipped and how to ask explicitly.
    const StatCounts defaults = default_stat_counts(S, static_cast<int64_t>(rdms.size()), backend.is_gpu());
    const int resamples = cfg.bootstrap >= 0 ? cfg.bootstrap : defaults.bootstrap;
    const int perms = cfg.permutations >= 0 ? cfg.permutations : defaults.permutations;
    if (cfg.bootstrap < 0 && !defaults.bootstrap_note.empty()) say(defaults.bootstrap_note);
    if (cfg.permutations < 0 && !defaults.permutation_note.empty()) say(defaults.permutation_note);
    bool has_nan = false;
    for (const Matrix* m : {&rdm_v1}) for (float v : m->data) has_nan |= std::isnan(v);
    for (const Matrix& m : rdms) for (float v : m.data) has_nan |= std::isnan(v);
    if (has_nan && (resamples > 0 || perms > 0)) {
        say("statistics: skipped because an RDM holds NaN (constant rows kept with --constant-rows nan)");
        return;
    }
    stats_json = {{"seed", cfg.stats_seed}, {"bootstrap_resamples", resamples}, {"permutations", perms}};
    if (resamples > 0 || perms > 0)
        say("statistics: " + std::to_string(resamples) + " bootstrap resamples over stimuli, " +
            std::to_string(perms) + " permutations per representation (seed " + std::to_string(cfg.stats_seed) + ")");
    if (resamples > 0) {
        auto t0 = Clock::now();
        const BootstrapResult b = backend.bootstrap(rdm_v1, rdms, resamples, cfg.stats_seed);
        for (auto& r : rows)
            if (r.measure == std::string("pearson")) r.ci_low = b.lo[r.rep], r.ci_high = b.hi[r.rep];
        timings["bootstrap_ms"] = ms_since(t0);
    }
    if (perms > 0) {
        auto t0 = Clock::now();
        for (auto& r : rows)
            if (r.measure == std::string("pearson"))
                r.p_value = backend.permutation(rdm_v1, rdms[r.rep], perms, cfg.stats_seed).p_value;
        timings["permutation_ms"] = ms_since(t0);
    }
    if (ceiling) {
        for (auto& r : rows)
            if (r.measure == std::string("pearson")) r.ceiling = ceiling->ceiling;
        stats_json["noise_ceiling"] = {{"ceiling", ceiling->ceiling},       {"r_half", ceiling->r_half},
                                       {"bins_kept", ceiling->bins_kept},   {"bins_dropped", ceiling->bins_dropped},
                                       {"method", "split halves of each 1-degree bin's trials (0..180 degrees), "
                                                  "Spearman-Brown corrected"}};
    }
}

struct Representation {
    std::string name;   // file-name friendly: "pixels", "pool", ...
    std::string label;  // for the table
    Matrix resp;
};

// The job after its outputs are claimed (below run_analysis).
int run_job(Backend& backend, const AnalysisConfig& cfg, OutputDir& out, OutputFile* model_file);

}  // namespace

int run_analysis(Backend& backend, const AnalysisConfig& cfg) {
    // Both outputs are claimed before any work: an existing folder or file without --force, a missing or unwritable
    // parent folder, another run writing the same name are refused at once. Errors name the output folder, not the
    // staging folder the files are written to first.
    OutputDir out(cfg.out_dir, cfg.force);
    std::unique_ptr<OutputFile> model_file;
    if (!cfg.save_model.empty() && !cfg.no_cnn)
        model_file = std::make_unique<OutputFile>(cfg.save_model, cfg.force, "--save-model");
    int code = kExitOk;
    out.write([&] { code = run_job(backend, cfg, out, model_file.get()); });
    return code;
}

namespace {

int run_job(Backend& backend, const AnalysisConfig& cfg, OutputDir& out, OutputFile* model_file) {
    nlohmann::json timings = nlohmann::json::object();
    auto say = [&](const std::string& line) {
        if (!cfg.quiet && !cfg.json) std::printf("%s\n", line.c_str());
        std::fflush(stdout);
    };
    if (!cfg.device_note.empty()) say(cfg.device_note);

    // 1. V1 data.
    auto t0 = Clock::now();
    V1Data v1;
    nlohmann::json data_json;
    std::unique_ptr<NoiseCeilingResult> ceiling;
    auto compute_ceiling = [&](const V1Trials& trials) {
        auto t1 = Clock::now();
        // The trials of the stimuli the tutorial keeps (bins 0..180 degrees).
        std::vector<int64_t> keep;
        for (size_t k = 0; k < trials.bin.size(); ++k)
            if (trials.bin[k] <= 180) keep.push_back(static_cast<int64_t>(k));
        Matrix sub(static_cast<int64_t>(keep.size()), trials.resp.cols);
        std::vector<int64_t> bins;
        for (size_t i = 0; i < keep.size(); ++i) {
            std::copy(trials.resp.row(keep[i]), trials.resp.row(keep[i]) + trials.resp.cols, sub.row(static_cast<int64_t>(i)));
            bins.push_back(trials.bin[static_cast<size_t>(keep[i])]);
        }
        ceiling = std::make_unique<NoiseCeilingResult>(backend.noise_ceiling(sub, bins, 1, cfg.stats_seed));
        timings["noise_ceiling_ms"] = ms_since(t1);
    };
    auto trial_level = [&](V1Trials&& trials) {
        data_json["trials"] = trials.resp.rows;
        data_json["neurons"] = trials.resp.cols;
        compute_ceiling(trials);
        v1 = cfg.trials ? v1_per_trial(std::move(trials)) : bin_v1_trials(trials);
    };
    if (!cfg.v1_path.empty()) {
        data_json = {{"path", cfg.v1_path}};
        if (v1_npz_kind(cfg.v1_path) == V1FileKind::Binned) {
            if (cfg.trials)
                throw InputError(cfg.v1_path + ": --trials needs trial-level data (keys sresp, istim); this file is "
                                 "binned (resp, stimuli)");
            data_json["kind"] = "binned npz";
            v1 = load_v1_npz(cfg.v1_path);
        } else {
            data_json["kind"] = "trial-level npz";
            trial_level(load_v1_trials_npz(cfg.v1_path));
        }
    } else if (!cfg.sresp_path.empty()) {
        data_json = {{"kind", "trial-level npy"}, {"sresp", cfg.sresp_path}, {"istim", cfg.istim_path}};
        trial_level(load_v1_trials_npy(cfg.sresp_path, cfg.istim_path));
    } else if (!cfg.responses_path.empty()) {
        if (cfg.trials) throw InputError("--trials needs trial-level data (--v1 with sresp/istim, or --sresp/--istim)");
        v1 = load_responses(cfg.responses_path, cfg.orientations_path);
        data_json = {{"kind", "responses"}, {"responses", cfg.responses_path}, {"orientations", cfg.orientations_path}};
    } else {
        data_json = {{"kind", cfg.trials ? "embedded synthetic, trial level" : "embedded synthetic"},
                     {"seed", cfg.synthetic.seed},
                     {"neurons", cfg.synthetic.neurons},
                     {"trials", cfg.synthetic.trials},
                     {"bins", cfg.synthetic.bins},
                     {"shared_factors", cfg.synthetic.shared_factors},
                     {"noise_sd", cfg.synthetic.noise_sd}};
        if (cfg.trials) {
            trial_level(v1_trials_from_synthetic(backend.synthetic_v1_trials(cfg.synthetic), cfg.synthetic));
        } else {
            const SyntheticV1 syn = backend.synthetic_v1(cfg.synthetic);
            v1 = v1_from_synthetic(syn, cfg.synthetic);
            if (cfg.noise_ceiling)
                compute_ceiling(v1_trials_from_synthetic(backend.synthetic_v1_trials(cfg.synthetic), cfg.synthetic));
        }
    }
    timings["v1_data_ms"] = ms_since(t0);
    check_interrupt("loading the V1 data");
    check_rdm_input(v1.resp, "V1 responses (" + v1.source + ")");
    {
        std::ostringstream os;
        os << "V1: " << v1.resp.rows << " stimuli x " << v1.resp.cols << " neurons from " << v1.source;
        say(os.str());
    }

    // 2. Stimuli: gratings at the V1 orientations.
    t0 = Clock::now();
    std::vector<Representation> reps;
    const Matrix v1_gratings = backend.gratings(v1.orientation, cfg.grating);
    timings["stimuli_ms"] = ms_since(t0);
    check_interrupt("drawing the stimuli");

    // 3. The CNN: train (or load) and read out its layers at the V1 orientations.
    nlohmann::json cnn_json = nullptr;
    std::vector<float> params;
    if (!cfg.no_cnn) {
        const auto& names = cnn_layer_names();
        for (const auto& layer : cfg.layers)  // validate names before any work
            if (std::find(names.begin(), names.end(), layer) == names.end()) {
                std::string valid;
                for (const auto& n : names) valid += (valid.empty() ? "" : ", ") + n;
                throw InputError("--layers: unknown layer '" + layer + "' (valid: " + valid + ")");
            }
        if (!cfg.load_model.empty()) {
            params = cnn_load_npz(cfg.load_model);
            say("CNN: weights loaded from " + cfg.load_model);
            cnn_json = {{"weights", cfg.load_model}};
        } else {
            say("CNN: training on " + std::to_string(cfg.train.train_size) + " gratings, " +
                std::to_string(cfg.train.epochs) + " epochs, batch " + std::to_string(cfg.train.batch));
            double stim_ms = 0, train_ms = 0;
            TrainedNetwork net = train_tutorial_network(backend, cfg.train, cfg.grating, cfg.quiet || cfg.json,
                                                        &stim_ms, &train_ms);
            timings["stimuli_train_ms"] = stim_ms;
            timings["training_ms"] = train_ms;
            params = net.params;
            char line[160];
            std::snprintf(line, sizeof(line), "training-set accuracy: %d / %d", net.correct, net.total);
            say(line);
            cnn_json = {{"epochs", cfg.train.epochs}, {"batch", cfg.train.batch}, {"train_size", cfg.train.train_size},
                        {"lr", cfg.train.lr}, {"momentum", cfg.train.momentum}, {"seed", cfg.train.seed},
                        {"step_losses", net.result.step_losses}, {"epoch_losses", net.result.epoch_losses},
                        {"train_correct", net.correct}, {"train_total", net.total},
                        {"misclassified_angles", net.misclassified_angles}};
        }
        t0 = Clock::now();
        const CnnActivations act = backend.cnn_forward(params, v1_gratings);
        for (const auto& layer : cfg.layers)
            reps.push_back({layer, "model '" + layer + "' layer", cnn_layer_matrix(act, layer)});
        timings["readout_ms"] = ms_since(t0);
        check_interrupt("reading out the CNN");
    }
    reps.push_back({"pixels", "pixels (control)", v1_gratings});

    // 4. RDMs.
    t0 = Clock::now();
    const Matrix rdm_v1 = backend.rdm(v1.resp, cfg.rdm, "V1 responses");
    std::vector<Matrix> rdms;
    for (const auto& r : reps) {
        check_interrupt("the RDMs");
        rdms.push_back(backend.rdm(r.resp, cfg.rdm, "'" + r.name + "' representation"));
    }
    timings["rdm_ms"] = ms_since(t0);

    // 5. Comparison with V1: every measure for every representation (+ CKA on the responses when asked).
    t0 = Clock::now();
    std::vector<ResultRow> rows;
    for (size_t i = 0; i < reps.size(); ++i)
        for (Measure m : cfg.measures) {
            check_interrupt("the comparisons");
            const CompareResult c = backend.compare(rdm_v1, rdms[i], m);
            rows.push_back({reps[i].name, reps[i].label, measure_name(m), c.value, c.pairs, c.skipped, i});
        }
    if (cfg.cka)
        for (size_t i = 0; i < reps.size(); ++i)
            for (bool debiased : {false, true}) {
                check_interrupt("the comparisons");
                const double v = backend.cka(v1.resp, reps[i].resp, debiased);
                rows.push_back({reps[i].name, reps[i].label, debiased ? "cka_debiased" : "cka", v, v1.resp.rows, 0, i});
            }
    timings["compare_ms"] = ms_since(t0);

    // 6. Statistics (bootstrap interval, permutation p-value, noise ceiling) for the Pearson rows.
    nlohmann::json stats_json = nullptr;
    add_statistics(backend, cfg, rdm_v1, rdms, ceiling.get(), rows, timings, stats_json, say);
    check_interrupt("the statistics");

    // 7. Table.
    say("");
    say(format_table(rows));

    // 8. Output folder.
    t0 = Clock::now();
    npy_save(out.path("orientations.npy"), v1.orientation);
    npy_save(out.path("rdm_v1.npy"), rdm_v1);
    npy_save(out.path("resp_pixels.npy"), v1_gratings);
    if (!params.empty()) {
        cnn_save_npz(out.path("model.npz"), params);
        if (model_file) model_file->write([&](const std::string& p) { cnn_save_npz(p, params); });
        for (const auto& r : reps)
            if (r.name != "pixels") npy_save(out.path("resp_" + r.name + ".npy"), r.resp);
    }
    const bool v1_written = cfg.save_v1 || v1.resp.size() * 4 <= (64ll << 20);
    if (v1_written) {
        npy_save(out.path("resp_v1.npy"), v1.resp);
    } else {
        // For the figures (tuning curves, embedding): a seeded random subset of 2,048 neurons, in file order.
        const int64_t keep = std::min<int64_t>(2048, v1.resp.cols);
        std::vector<int64_t> cols(static_cast<size_t>(v1.resp.cols));
        for (int64_t j = 0; j < v1.resp.cols; ++j) cols[static_cast<size_t>(j)] = j;
        for (int64_t j = 0; j < keep; ++j) {  // partial Fisher-Yates with Philox draws
            const int64_t k = j + static_cast<int64_t>(philox_uniform01(cfg.stats_seed, 200, static_cast<uint64_t>(j)) *
                                                       static_cast<double>(v1.resp.cols - j));
            std::swap(cols[static_cast<size_t>(j)], cols[static_cast<size_t>(std::min(k, v1.resp.cols - 1))]);
        }
        std::sort(cols.begin(), cols.begin() + keep);
        Matrix subset(v1.resp.rows, keep);
        for (int64_t i = 0; i < v1.resp.rows; ++i)
            for (int64_t j = 0; j < keep; ++j) subset.at(i, j) = v1.resp.at(i, cols[static_cast<size_t>(j)]);
        npy_save(out.path("resp_v1_subset.npy"), subset);
    }
    for (size_t i = 0; i < reps.size(); ++i) npy_save(out.path("rdm_" + reps[i].name + ".npy"), rdms[i]);
    std::ostringstream csv;
    csv << "layer,measure,value,ci_low,ci_high,p_value,ceiling,pairs,skipped_pairs\n";
    nlohmann::json results = nlohmann::json::array();
    for (const ResultRow& r : rows) {
        csv << r.layer << "," << r.measure << "," << num(r.value) << "," << num(r.ci_low) << "," << num(r.ci_high) << ","
            << num(r.p_value) << "," << num(r.ceiling) << "," << r.pairs << "," << r.skipped << "\n";
        nlohmann::json j = {{"layer", r.layer}, {"measure", r.measure}, {"value", json_num(r.value)},
                            {"pairs", r.pairs}, {"skipped_pairs", r.skipped}};
        if (!std::isnan(r.ci_low)) j["ci_low"] = r.ci_low, j["ci_high"] = r.ci_high;
        if (!std::isnan(r.p_value)) j["p_value"] = r.p_value;
        if (!std::isnan(r.ceiling)) j["ceiling"] = r.ceiling;
        results.push_back(j);
    }
    write_file_atomic(out.path("correlations.csv"), csv.str());
    timings["write_ms"] = ms_since(t0);

    nlohmann::json doc = {
        {"tool", "rsa_gpu"},
        {"version", RSA_GPU_VERSION},
        {"command", cfg.command_line},
        {"device", backend.name()},
        {"versions", version_report()},
        {"data", data_json},
        {"stimuli", {{"count", v1.resp.rows}, {"height", cfg.grating.height()}, {"width", cfg.grating.width()},
                     {"sf", cfg.grating.sf}, {"res", cfg.grating.res}}},
        {"v1", {{"stimuli", v1.resp.rows}, {"neurons", v1.resp.cols}, {"source", v1.source}}},
        {"rdm", {{"method", "1 - Pearson correlation (z-score rows, ddof 0; SYRK)"},
                 {"constant_rows", cfg.rdm.constant_rows == ConstantRows::Nan ? "nan" : "fail"}}},
        {"cnn", cnn_json},
        {"statistics", stats_json},
        {"correlations", results},
        {"timings_ms", timings},
        {"files", {"orientations.npy", "rdm_v1.npy", "correlations.csv", "results.json"}},
    };
    for (const auto& r : reps) {
        doc["files"].push_back("rdm_" + r.name + ".npy");
        doc["files"].push_back("resp_" + r.name + ".npy");
    }
    if (!params.empty()) doc["files"].push_back("model.npz");
    doc["files"].push_back(v1_written ? "resp_v1.npy" : "resp_v1_subset.npy");
    write_file_atomic(out.path("results.json"), doc.dump(2) + "\n");
    if (!cfg.no_figures) {
        t0 = Clock::now();
        const nlohmann::json figures_json = make_figures(out.path(""), out.target(), say);
        if (figures_json.value("made", false))
            say("figures and report: " + out.target() + "/report.html");
        timings["figures_ms"] = ms_since(t0);
        doc["figures"] = figures_json;
        doc["timings_ms"] = timings;
        write_file_atomic(out.path("results.json"), doc.dump(2) + "\n");
    }
    check_interrupt("writing the results");
    out.commit();
    if (model_file) model_file->commit();
    say("");
    say("results written to " + out.target() + "/");
    if (cfg.json) {
        nlohmann::json line = {{"device", backend.name()}, {"out", out.target()}, {"correlations", results},
                               {"timings_ms", timings}};
        std::printf("%s\n", line.dump().c_str());
    }
    return kExitOk;
}

}  // namespace

}  // namespace rsa

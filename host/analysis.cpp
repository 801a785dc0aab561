// The main job (see analysis.h): load or generate V1, draw gratings at its orientations, compute every RDM,
// correlate each representation's RDM with V1's, print the table and write the output folder atomically.
#include "rsa_gpu/analysis.h"

#include <algorithm>
#include <chrono>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "rsa_gpu/cnn.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/output_dir.h"
#include "rsa_gpu/v1_data.h"

namespace rsa {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Representation {
    std::string name;   // file-name friendly: "pixels", "pool", ...
    std::string label;  // for the table
    Matrix resp;
};

}  // namespace

TrainedNetwork train_tutorial_network(Backend& backend, const TrainConfig& config, const GratingParams& grating,
                                      bool quiet, double* stimuli_ms, double* training_ms) {
    if (grating.height() != cnn::kHeight || grating.width() != cnn::kWidth)
        throw InputError("the CNN takes 48 x 64 images, but --res " + std::to_string(grating.res) + " gives " +
                         std::to_string(grating.height()) + " x " + std::to_string(grating.width()) +
                         "; keep --res 0.1 or use --no-cnn");
    if (config.epochs < 1 || config.batch < 1 || config.train_size < 1 || !(config.lr > 0) ||
        !(config.momentum >= 0 && config.momentum < 1))
        throw InputError("training: need --epochs, --batch, --train-size >= 1, --lr > 0 and 0 <= --momentum < 1");
    TrainedNetwork net;
    auto t0 = Clock::now();
    std::vector<float> angles, labels;
    cnn_training_set(config, &angles, &labels);
    const Matrix images = backend.gratings(angles, grating);
    *stimuli_ms = ms_since(t0);

    t0 = Clock::now();
    net.params = cnn_init_params(config.seed);
    const bool tty = !quiet && isatty(fileno(stdout));
    const int every = std::max(1, config.epochs / 5);
    net.result = backend.cnn_train(net.params, images, labels, config, [&](int epoch, float loss) {
        if (tty) {
            const int width = 30, done = width * epoch / config.epochs;
            std::fprintf(stdout, "\r  training [%s%s] epoch %d/%d  loss % .2e", std::string(done, '#').c_str(),
                         std::string(width - done, ' ').c_str(), epoch, config.epochs, loss);
            if (epoch % every == 0) std::fprintf(stdout, "\r\033[K");
        }
        if (!quiet && epoch % every == 0) std::printf("epoch %d | loss on last mini-batch: % .2e\n", epoch, loss);
        std::fflush(stdout);
    });
    if (tty) std::fprintf(stdout, "\r\033[K");
    if (!quiet) std::printf("training done!\n");
    *training_ms = ms_since(t0);

    // Accuracy on the training set (the tutorial does not print it; we check the net separates the set).
    const CnnActivations act = backend.cnn_forward(net.params, images);
    net.total = static_cast<int>(labels.size());
    for (int i = 0; i < net.total; ++i) {
        const bool right = act.logit[static_cast<size_t>(i)] > 0.0f;
        if (right == (labels[static_cast<size_t>(i)] > 0.5f))
            ++net.correct;
        else
            net.misclassified_angles.push_back(angles[static_cast<size_t>(i)]);
    }
    return net;
}

int run_analysis(Backend& backend, const AnalysisConfig& cfg) {
    OutputDir out(cfg.out_dir, cfg.force);  // refuses an existing folder before any work
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
    auto trial_level = [&](V1Trials&& trials) {
        data_json["trials"] = trials.resp.rows;
        data_json["neurons"] = trials.resp.cols;
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
        }
    }
    timings["v1_data_ms"] = ms_since(t0);
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
    }
    reps.push_back({"pixels", "pixels (control)", v1_gratings});

    // 4. RDMs.
    t0 = Clock::now();
    const Matrix rdm_v1 = backend.rdm(v1.resp, cfg.rdm, "V1 responses");
    std::vector<Matrix> rdms;
    for (const auto& r : reps) rdms.push_back(backend.rdm(r.resp, cfg.rdm, "'" + r.name + "' representation"));
    timings["rdm_ms"] = ms_since(t0);

    // 5. Comparison with V1.
    t0 = Clock::now();
    std::vector<PearsonResult> corr;
    for (const auto& m : rdms) corr.push_back(backend.compare_pearson(rdm_v1, m));
    timings["compare_ms"] = ms_since(t0);

    // 6. Table.
    say("");
    say("representation        Pearson r with V1 RDM   pairs");
    for (size_t i = 0; i < reps.size(); ++i) {
        char line[256];
        std::snprintf(line, sizeof(line), "%-21s %20.6f   %lld%s", reps[i].label.c_str(), corr[i].r,
                      static_cast<long long>(corr[i].pairs),
                      corr[i].skipped ? (" (" + std::to_string(corr[i].skipped) + " NaN pairs skipped)").c_str() : "");
        say(line);
    }

    // 7. Output folder.
    t0 = Clock::now();
    npy_save(out.path("orientations.npy"), v1.orientation);
    npy_save(out.path("rdm_v1.npy"), rdm_v1);
    npy_save(out.path("resp_pixels.npy"), v1_gratings);
    if (!params.empty()) {
        cnn_save_npz(out.path("model.npz"), params);
        if (!cfg.save_model.empty()) cnn_save_npz(cfg.save_model, params);
        for (const auto& r : reps)
            if (r.name != "pixels") npy_save(out.path("resp_" + r.name + ".npy"), r.resp);
    }
    std::ostringstream csv;
    csv << "layer,measure,value,pairs,skipped_pairs\n";
    nlohmann::json results = nlohmann::json::array();
    for (size_t i = 0; i < reps.size(); ++i) {
        npy_save(out.path("rdm_" + reps[i].name + ".npy"), rdms[i]);
        char value[64];
        std::snprintf(value, sizeof(value), "%.9g", corr[i].r);
        csv << reps[i].name << ",pearson," << value << "," << corr[i].pairs << "," << corr[i].skipped << "\n";
        results.push_back({{"layer", reps[i].name},
                           {"measure", "pearson"},
                           {"value", corr[i].r},
                           {"pairs", corr[i].pairs},
                           {"skipped_pairs", corr[i].skipped}});
    }
    write_file_atomic(out.path("correlations.csv"), csv.str());
    timings["write_ms"] = ms_since(t0);

    nlohmann::json doc = {
        {"tool", "rsa_gpu"},
        {"version", RSA_GPU_VERSION},
        {"command", cfg.command_line},
        {"device", backend.name()},
        {"data", data_json},
        {"stimuli", {{"count", v1.resp.rows}, {"height", cfg.grating.height()}, {"width", cfg.grating.width()},
                     {"sf", cfg.grating.sf}, {"res", cfg.grating.res}}},
        {"v1", {{"stimuli", v1.resp.rows}, {"neurons", v1.resp.cols}, {"source", v1.source}}},
        {"rdm", {{"method", "1 - Pearson correlation (z-score rows, ddof 0; SYRK)"},
                 {"constant_rows", cfg.rdm.constant_rows == ConstantRows::Nan ? "nan" : "fail"}}},
        {"cnn", cnn_json},
        {"correlations", results},
        {"timings_ms", timings},
        {"files", {"orientations.npy", "rdm_v1.npy", "correlations.csv", "results.json"}},
    };
    for (const auto& r : reps) {
        doc["files"].push_back("rdm_" + r.name + ".npy");
        doc["files"].push_back("resp_" + r.name + ".npy");
    }
    if (!params.empty()) doc["files"].push_back("model.npz");
    write_file_atomic(out.path("results.json"), doc.dump(2) + "\n");
    out.commit();
    say("");
    say("results written to " + out.target() + "/");
    if (cfg.json) {
        nlohmann::json line = {{"device", backend.name()}, {"out", out.target()}, {"correlations", results},
                               {"timings_ms", timings}};
        std::printf("%s\n", line.dump().c_str());
    }
    return kExitOk;
}

}  // namespace rsa

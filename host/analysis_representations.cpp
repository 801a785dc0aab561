// Stage 2 of the main job (analysis_stages.h): gratings at the V1 orientations; the CNN trained (or loaded) and
// read out at its layers; the gratings' own pixels as the control representation.
#include <cstdio>

#include "rsa_gpu/analysis_stages.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/train_network.h"

namespace rsa {

namespace {

// Trains the tutorial's CNN (printing its loss lines) and says its training-set accuracy.
CnnDescription train_cnn(Backend& backend, const AnalysisConfig& cfg, std::vector<float>* params,
                         StageTimings& timings, const Say& say) {
    say("CNN: training on " + std::to_string(cfg.train.train_size) + " gratings, " +
        std::to_string(cfg.train.epochs) + " epochs, batch " + std::to_string(cfg.train.batch) +
        (backend.is_gpu() ? std::string(", ") + cnn_kernels_name(cfg.train.kernels) + " kernels" : std::string()));
    double stimuli_ms = 0, training_ms = 0;
    TrainedNetwork net =
        train_tutorial_network(backend, cfg.train, cfg.grating, cfg.quiet || cfg.json, &stimuli_ms, &training_ms);
    timings["stimuli_train_ms"] = stimuli_ms;
    timings["training_ms"] = training_ms;
    char line[160];
    std::snprintf(line, sizeof(line), "training-set accuracy: %d / %d", net.correct, net.total);
    say(line);
    *params = std::move(net.params);
    CnnDescription cnn;
    cnn.train = cfg.train;
    cnn.losses = std::move(net.result);
    cnn.train_correct = net.correct;
    cnn.train_total = net.total;
    cnn.misclassified_angles = std::move(net.misclassified_angles);
    return cnn;
}

}  // namespace

RepresentationsStage build_representations(Backend& backend, const AnalysisConfig& cfg, const V1Data& v1,
                                           StageTimings& timings, const Say& say) {
    auto t0 = StageClock::now();
    Array gratings = backend.gratings(v1.orientation, cfg.grating);
    timings["stimuli_ms"] = ms_since(t0);
    check_interrupt("drawing the stimuli");

    RepresentationsStage stage;
    if (!cfg.no_cnn) {
        if (!cfg.load_model.empty()) {
            stage.params = cnn_load_npz(cfg.load_model);
            say("CNN: weights loaded from " + cfg.load_model);
            stage.cnn = CnnDescription{};
            stage.cnn->weights = cfg.load_model;
        } else {
            stage.cnn = train_cnn(backend, cfg, &stage.params, timings, say);
        }
        t0 = StageClock::now();
        const CnnActivations act = backend.cnn_forward(stage.params, gratings);
        for (const auto& layer : cfg.layers) stage.reps.push_back({layer, cnn_layer_matrix(act, layer)});
        timings["readout_ms"] = ms_since(t0);
        check_interrupt("reading out the CNN");
    }
    stage.reps.push_back({"pixels", std::move(gratings)});
    return stage;
}

}  // namespace rsa

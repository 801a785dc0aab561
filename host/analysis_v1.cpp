// Stage 1 of the main job (analysis_stages.h): the V1 data from --v1, --sresp/--istim, --responses/--orientations
// or the embedded synthetic recording, with its description for results.json, the split-half noise ceiling of
// trial-level data, and (--dissimilarity crossnobis) the V1 RDM from the trials.
#include <algorithm>
#include <map>
#include <sstream>

#include "rsa_gpu/analysis_stages.h"
#include "rsa_gpu/dissimilarity.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/v1_data.h"

namespace rsa {

namespace {

// The split-half noise ceiling of the trials of the stimuli the tutorial keeps (bins 0..180 degrees).
NoiseCeilingResult tutorial_noise_ceiling(Backend& backend, const V1Trials& trials, uint64_t seed) {
    std::vector<int64_t> keep;
    for (size_t k = 0; k < trials.bin.size(); ++k)
        if (trials.bin[k] <= 180) keep.push_back(static_cast<int64_t>(k));
    Matrix sub(static_cast<int64_t>(keep.size()), trials.resp.cols);
    std::vector<int64_t> bins;
    for (size_t i = 0; i < keep.size(); ++i) {
        std::copy(trials.resp.row(keep[i]), trials.resp.row(keep[i]) + trials.resp.cols,
                  sub.row(static_cast<int64_t>(i)));
        bins.push_back(trials.bin[static_cast<size_t>(keep[i])]);
    }
    return backend.noise_ceiling(sub, bins, 1, seed);
}

// The crossnobis RDM of the stimuli the tutorial keeps (bins 0..180 degrees) from their trials: each bin a
// condition, its trials split by order into two runs (even and odd occurrences), identity noise. Its rows must be
// the binned V1 stimuli (bin - 90 degrees), in order.
Matrix crossnobis_v1_rdm(Backend& backend, const V1Trials& trials, const V1Data& binned) {
    DissimilaritySpec spec;
    spec.method = Dissimilarity::Crossnobis;
    spec.conditions_what = trials.source + " (1-degree bins as conditions)";
    spec.runs_what = trials.source + " (split halves as runs)";
    std::vector<int64_t> keep;
    std::map<int, int64_t> seen;
    for (size_t k = 0; k < trials.bin.size(); ++k)
        if (trials.bin[k] <= 180) {
            keep.push_back(static_cast<int64_t>(k));
            spec.conditions.push_back(trials.bin[k]);
            spec.runs.push_back(seen[trials.bin[k]]++ % 2);
        }
    Matrix sub(static_cast<int64_t>(keep.size()), trials.resp.cols);
    for (size_t i = 0; i < keep.size(); ++i)
        std::copy(trials.resp.row(keep[i]), trials.resp.row(keep[i]) + trials.resp.cols,
                  sub.row(static_cast<int64_t>(i)));
    DissimilarityResult r = compute_dissimilarity_rdm(backend, sub, spec, RdmOptions{}, "V1 trials (crossnobis)");
    bool same = r.condition_values.size() == binned.orientation.size();
    for (size_t i = 0; same && i < binned.orientation.size(); ++i)
        same = static_cast<float>(r.condition_values[i] - 90) == binned.orientation[i];
    if (!same)
        throw InputError(trials.source + ": the crossnobis conditions (" + std::to_string(r.condition_values.size()) +
                         " bins with trials in both halves) are not the " + std::to_string(binned.orientation.size()) +
                         " binned stimuli");
    return r.rdm.rdm.to_matrix();
}

}  // namespace

V1Stage load_v1_stage(Backend& backend, const AnalysisConfig& cfg, StageTimings& timings, const Say& say) {
    const auto t0 = StageClock::now();
    V1Stage stage;
    DataDescription& data = stage.data;
    const bool crossnobis = cfg.dissimilarity == Dissimilarity::Crossnobis;
    const auto compute_ceiling = [&](const V1Trials& trials) {
        const auto t1 = StageClock::now();
        stage.ceiling = tutorial_noise_ceiling(backend, trials, cfg.stats_seed);
        timings["noise_ceiling_ms"] = ms_since(t1);
    };
    // Trial-level data: the ceiling from its trials, then binned to 1 degree or (--trials) one stimulus per trial.
    const auto trial_level = [&](V1Trials&& trials) {
        data.trials = trials.resp.rows;
        data.neurons = trials.resp.cols;
        compute_ceiling(trials);
        if (cfg.trials) {
            stage.v1 = v1_per_trial(std::move(trials));
            return;
        }
        stage.v1 = bin_v1_trials(trials);
        if (crossnobis) stage.v1_rdm = crossnobis_v1_rdm(backend, trials, stage.v1);
    };
    if (!cfg.v1_path.empty()) {
        data.path = cfg.v1_path;
        NpzReader npz(cfg.v1_path);  // opened once: its keys tell the kind, then the loader reads from it
        if (v1_npz_kind(npz) == V1FileKind::Binned) {
            if (cfg.trials)
                throw InputError(cfg.v1_path + ": --trials needs trial-level data (keys sresp, istim); this file is "
                                 "binned (resp, stimuli)");
            if (crossnobis)
                throw InputError(cfg.v1_path + ": --dissimilarity crossnobis needs trial-level data (keys sresp, istim); "
                                 "this file is binned (resp, stimuli)");
            data.kind = "binned npz";
            stage.v1 = load_v1_npz(npz);
        } else {
            data.kind = "trial-level npz";
            trial_level(load_v1_trials_npz(npz));
        }
    } else if (!cfg.sresp_path.empty()) {
        data.kind = "trial-level npy";
        data.sresp = cfg.sresp_path;
        data.istim = cfg.istim_path;
        trial_level(load_v1_trials_npy(cfg.sresp_path, cfg.istim_path));
    } else if (!cfg.responses_path.empty()) {
        stage.v1 = load_responses(cfg.responses_path, cfg.orientations_path);
        data.kind = "responses";
        data.responses = cfg.responses_path;
        data.orientations = cfg.orientations_path;
    } else {
        data.kind = cfg.trials ? "embedded synthetic, trial level" : "embedded synthetic";
        data.synthetic = cfg.synthetic;
        if (cfg.trials) {
            trial_level(v1_trials_from_synthetic(backend.synthetic_v1_trials(cfg.synthetic), cfg.synthetic));
        } else {
            stage.v1 = v1_from_synthetic(backend.synthetic_v1(cfg.synthetic), cfg.synthetic);
            if (cfg.noise_ceiling || crossnobis) {
                const V1Trials trials =
                    v1_trials_from_synthetic(backend.synthetic_v1_trials(cfg.synthetic), cfg.synthetic);
                if (cfg.noise_ceiling) compute_ceiling(trials);
                if (crossnobis) stage.v1_rdm = crossnobis_v1_rdm(backend, trials, stage.v1);
            }
        }
    }
    timings["v1_data_ms"] = ms_since(t0);
    check_interrupt("loading the V1 data");
    check_rdm_input(stage.v1.resp, "V1 responses (" + stage.v1.source + ")");
    std::ostringstream os;
    os << "V1: " << stage.v1.resp.rows << " stimuli x " << stage.v1.resp.cols << " neurons from " << stage.v1.source;
    say(os.str());
    return stage;
}

}  // namespace rsa

// The main job (see analysis.h): its configuration checked before any work, then its outputs claimed and the
// stages of analysis_stages.h run one after another into one Results, printed as a table and written to the output
// folder with results.json.
#include "rsa_gpu/analysis.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "rsa_gpu/analysis_stages.h"
#include "rsa_gpu/distributed.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/output_dir.h"
#include "rsa_gpu/results.h"

namespace rsa {

void check_analysis_config(const AnalysisConfig& cfg) {
    check_grating_params(cfg.grating);  // the image size, in 64 bits and bounded
    if (cfg.trials && !cfg.responses_path.empty())
        throw InputError("--trials needs trial-level data (--v1 with sresp/istim, or --sresp/--istim)");
    if (cfg.dissimilarity != Dissimilarity::Correlation && cfg.dissimilarity != Dissimilarity::Crossnobis)
        throw InputError(std::string("--dissimilarity: the main job takes correlation or crossnobis, not ") +
                         dissimilarity_name(cfg.dissimilarity));
    if (cfg.dissimilarity == Dissimilarity::Crossnobis && (cfg.trials || !cfg.responses_path.empty()))
        throw InputError("--dissimilarity crossnobis makes the V1 RDM of the 1-degree bins from their trials: it needs "
                         "trial-level data binned (the embedded recording, --v1 with sresp/istim, or --sresp/--istim) "
                         "and not --trials or --responses");
    if (cfg.no_cnn) return;
    const auto& names = cnn_layer_names();
    for (const auto& layer : cfg.layers)
        if (std::find(names.begin(), names.end(), layer) == names.end()) {
            std::string valid;
            for (const auto& n : names) valid += (valid.empty() ? "" : ", ") + n;
            throw InputError("--layers: unknown layer '" + layer + "' (valid: " + valid + ")");
        }
    if (cfg.grating.height() != cnn::kHeight || cfg.grating.width() != cnn::kWidth)
        throw InputError("the CNN takes 48 x 64 images, but --res " + std::to_string(cfg.grating.res) + " gives " +
                         std::to_string(cfg.grating.height()) + " x " + std::to_string(cfg.grating.width()) +
                         "; keep --res 0.1 or use --no-cnn");
}

namespace {

// What results.json says about the run before any stage: the command, the device, the stimuli and RDM settings.
Results describe_run(const Backend& backend, const AnalysisConfig& cfg) {
    Results r;
    r.version = RSA_GPU_VERSION;
    r.command = cfg.command_line;
    r.device = backend.name();
    r.versions = version_report(backend.is_gpu());
    r.stimuli.height = cfg.grating.height();
    r.stimuli.width = cfg.grating.width();
    r.stimuli.sf = cfg.grating.sf;
    r.stimuli.res = cfg.grating.res;
    r.constant_rows = cfg.rdm.constant_rows;
    if (cfg.dissimilarity == Dissimilarity::Crossnobis)
        r.rdm_method = "V1: crossnobis (1-degree bins of the trials, split-half runs, identity noise); representations: " +
                       r.rdm_method;
    return r;
}

}  // namespace

JobState run_job_stages(Backend& backend, const AnalysisConfig& cfg, const Say& say) {
    JobState job;
    Results& results = job.results;
    results = describe_run(backend, cfg);
    StageTimings& timings = results.timings_ms;

    job.v1 = load_v1_stage(backend, cfg, timings, say);
    results.data = job.v1.data;
    results.stimuli.count = job.v1.v1.resp.rows;
    results.v1 = {job.v1.v1.resp.rows, job.v1.v1.resp.cols, job.v1.v1.source};

    job.reps = build_representations(backend, cfg, job.v1.v1, timings, say);
    results.cnn = job.reps.cnn;

    const Array v1_resp(job.v1.v1.resp);  // one Array for the job: a GPU backend uploads the responses once
    job.rdms = compute_rdms(backend, cfg.rdm, v1_resp, job.reps.reps, timings,
                            job.v1.v1_rdm ? &*job.v1.v1_rdm : nullptr);
    results.correlations = compare_with_v1(backend, cfg, v1_resp, job.reps.reps, job.rdms, timings);
    results.statistics = add_statistics(backend, cfg, job.rdms, job.v1.ceiling ? &*job.v1.ceiling : nullptr,
                                        results.correlations, timings, say);
    check_interrupt("the statistics");
    return job;
}

namespace {

// The stages, after the outputs are claimed.
int run_stages(Backend& backend, const AnalysisConfig& cfg, OutputDir& out, OutputFile* model_file) {
    const Say say = [&cfg](const std::string& line) {
        if (!cfg.quiet && !cfg.json) std::printf("%s\n", line.c_str());
        std::fflush(stdout);
    };
    if (!cfg.device_note.empty()) say(cfg.device_note);
    JobState job = run_job_stages(backend, cfg, say);
    Results& results = job.results;
    StageTimings& timings = results.timings_ms;
    const V1Stage& v1 = job.v1;
    const RepresentationsStage& reps = job.reps;
    const RdmStage& rdms = job.rdms;

    say("");
    say(format_correlation_table(results.correlations));

    results.files = write_output_files(out, cfg, v1.v1, reps, rdms, results.correlations, model_file, timings);
    // The figures script gets the results through a temporary file; results.json is written once, with their outcome.
    if (!cfg.no_figures) results.figures = figures_stage(out, results_to_json(results).dump(), timings, say);
    write_results_json(out.path("results.json"), results);
    check_interrupt("writing the results");
    out.commit();
    if (model_file) model_file->commit();
    say("");
    say("results written to " + out.target() + "/");
    if (cfg.json) {
        const nlohmann::json doc = results_to_json(results);
        const nlohmann::json line = {{"device", doc["device"]},
                                     {"out", out.target()},
                                     {"correlations", doc["correlations"]},
                                     {"timings_ms", doc["timings_ms"]}};
        std::printf("%s\n", line.dump().c_str());
    }
    return kExitOk;
}

}  // namespace

int run_analysis(Backend& backend, const AnalysisConfig& cfg) {
    // Both outputs are claimed before any work: an existing folder or file without --force, a missing or unwritable
    // parent folder, another run writing the same name are refused at once. Errors name the output folder, not the
    // staging folder the files are written to first. In a distributed run only the printing rank claims and writes
    // (the claim agreed, so a refused claim is every rank's error); the other ranks run the same stages for their
    // share of the statistics (distributed_stats.h) and write nothing.
    std::unique_ptr<OutputDir> out;
    std::unique_ptr<OutputFile> model_file;
    agreed(world(), "claiming the outputs", [&] {
        if (!printing_rank()) return;
        out = std::make_unique<OutputDir>(cfg.out_dir, cfg.force);
        if (!cfg.save_model.empty() && !cfg.no_cnn)
            model_file = std::make_unique<OutputFile>(cfg.save_model, cfg.force, "--save-model");
    });
    std::vector<std::pair<std::string, bool>> staging;
    if (out) staging = {{out->staging(), true}, {out->lock_path(), false}};
    if (model_file) {
        staging.push_back({model_file->staging_folder(), true});
        staging.push_back({model_file->lock_path(), false});
    }
    const auto kept = register_root_staging(world(), staging);  // removed by the others if rank 0 is killed
    if (!out) {
        run_job_stages(backend, cfg, [](const std::string&) {});
        return kExitOk;
    }
    int code = kExitOk;
    out->write([&] { code = run_stages(backend, cfg, *out, model_file.get()); });
    return code;
}

}  // namespace rsa

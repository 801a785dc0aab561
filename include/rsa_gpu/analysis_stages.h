// The stages of the main job (run_analysis, analysis.h), each a function from typed inputs to a typed output:
//   load_v1_stage           V1 data (file or embedded recording) and, for trial-level data, the noise ceiling
//   build_representations   gratings at the V1 orientations; the CNN trained or loaded and read out; pixels
//   compute_rdms            the RDM of V1 and of every representation
//   compare_with_v1         every measure (and CKA when asked) of every representation against V1: the table rows
//   add_statistics          bootstrap interval, permutation p-value and noise ceiling on the Pearson rows
//   write_output_files      the arrays, correlations.csv and the model into the output folder
//   figures_stage           tools/make_figures.py on the folder
// Stages print their progress lines through `say` and record their times (milliseconds) in `timings` under the
// results.json names (results.h). check_interrupt() runs between and inside them.
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rsa_gpu/analysis.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/output_dir.h"
#include "rsa_gpu/rdm_engine.h"
#include "rsa_gpu/results.h"
#include "rsa_gpu/stats.h"
#include "rsa_gpu/v1_data.h"

namespace rsa {

using Say = std::function<void(const std::string&)>;
using StageTimings = std::map<std::string, double>;
using StageClock = std::chrono::steady_clock;
inline double ms_since(StageClock::time_point t0) {
    return std::chrono::duration<double, std::milli>(StageClock::now() - t0).count();
}

// 1. V1.
struct V1Stage {
    V1Data v1;
    DataDescription data;
    std::optional<NoiseCeilingResult> ceiling;  // trial-level data, or --noise-ceiling on the embedded recording
    std::optional<Matrix> v1_rdm;  // --dissimilarity crossnobis: the V1 RDM, made here from the trials
};
V1Stage load_v1_stage(Backend& backend, const AnalysisConfig& config, StageTimings& timings, const Say& say);

// 2. Representations, in table order: the CNN's layers (config.layers), then the pixel control "pixels".
struct Representation {
    std::string name;  // "pool", ..., "pixels": file names (rdm_<name>.npy) and the results' "layer"
    Array resp;        // S x units (on the backend's device when it made them)
};
struct RepresentationsStage {
    std::vector<Representation> reps;
    std::vector<float> params;          // the CNN's weights (empty with --no-cnn)
    std::optional<CnnDescription> cnn;  // how they were obtained (none with --no-cnn)
};
RepresentationsStage build_representations(Backend& backend, const AnalysisConfig& config, const V1Data& v1,
                                           StageTimings& timings, const Say& say);

// 3. RDMs (compute_rdm, rdm_engine.h), left where the backend made them. v1_resp: the V1 responses as one Array for
// the whole job, so that a GPU backend uploads them once (for the RDM and CKA).
struct RdmStage {
    RdmResult v1;
    std::vector<RdmResult> reps;  // one per representation, same order
    std::vector<Array> rep_rdms() const;
    bool has_nan() const;         // any RDM with NaN rows (constant rows kept with --constant-rows nan)
};
// v1_rdm: the V1 RDM made already (crossnobis, load_v1_stage), used instead of the correlation RDM of v1_resp.
RdmStage compute_rdms(Backend& backend, const RdmOptions& options, const Array& v1_resp,
                      const std::vector<Representation>& reps, StageTimings& timings, const Matrix* v1_rdm = nullptr);

// 4. Comparisons: every measure of each representation's RDM with V1's in one backend call, then (config.cka)
// linear CKA and debiased CKA of its responses with V1's. Statistics of the rows are NaN until add_statistics.
std::vector<CorrelationRow> compare_with_v1(Backend& backend, const AnalysisConfig& config, const Array& v1_resp,
                                            const std::vector<Representation>& reps, const RdmStage& rdms,
                                            StageTimings& timings);

// 5. Statistics of the Pearson rows (counts left at -1 follow default_stat_counts, stats.h; its notes are said).
// Returns what was computed; none when skipped because an RDM holds NaN.
std::optional<StatisticsDescription> add_statistics(Backend& backend, const AnalysisConfig& config,
                                                    const RdmStage& rdms, const NoiseCeilingResult* ceiling,
                                                    std::vector<CorrelationRow>& rows, StageTimings& timings,
                                                    const Say& say);

// 6. Outputs. The printed table of the rows (no trailing newline).
std::string format_correlation_table(const std::vector<CorrelationRow>& rows);
// correlations.csv: one line per row (layer, measure, value, interval, p-value, ceiling, pairs, skipped pairs).
std::string correlations_csv(const std::vector<CorrelationRow>& rows);
// `count` columns of x chosen by a seeded partial Fisher-Yates shuffle (Philox stream 200), in file order: the V1
// neurons kept for the figures when the whole matrix is too large to write.
Matrix sample_columns(const Matrix& x, int64_t count, uint64_t seed);
// Writes orientations.npy, rdm_<name>.npy, resp_<name>.npy, model.npz (and the --save-model file), resp_v1.npy (or
// resp_v1_subset.npy) and correlations.csv into `out`; returns results.json's "files" list.
std::vector<std::string> write_output_files(OutputDir& out, const AnalysisConfig& config, const V1Data& v1,
                                            const RepresentationsStage& reps, const RdmStage& rdms,
                                            const std::vector<CorrelationRow>& rows, OutputFile* model_file,
                                            StageTimings& timings);
// Stages 1 to 5 in one call, in memory (nothing written): the job's state and its Results (without files and
// figures). run_analysis (analysis.h) runs it, then writes the outputs; the Python package runs it alone.
struct JobState {
    V1Stage v1;
    RepresentationsStage reps;
    RdmStage rdms;
    Results results;
};
JobState run_job_stages(Backend& backend, const AnalysisConfig& config, const Say& say);

// 7. Figures and report.html drawn from the folder (results.json must be there); returns results.json's "figures".
// results_json: the run's results so far (the script reads them; results.json is written after this stage).
nlohmann::json figures_stage(const OutputDir& out, const std::string& results_json, StageTimings& timings,
                             const Say& say);

}  // namespace rsa

// What the main job found, as one value (Results), and its one serialisation: results.json in the output folder
// (results_to_json / write_results_json; results_from_json reads it back). tools/make_figures.py and the report read
// this file; the --json summary line repeats its "device", "correlations" and "timings_ms".
//
// results.json, schema 1 (every key; objects are written with their keys in alphabetical order):
//   schema        1; raised when a key changes meaning or disappears (new keys do not raise it)
//   tool          "rsa_gpu"
//   version       rsa_gpu's version
//   command       the command line as given
//   device        the backend that ran: "cpu" or "cuda:N (<card>)"
//   versions      version report: rsa_gpu, OpenBLAS, CUDA runtime/driver and libraries, the GPUs (one text)
//   data          where V1 came from: kind ("binned npz", "trial-level npz", "trial-level npy", "responses",
//                 "embedded synthetic", "embedded synthetic, trial level") and, as the kind has them: path (--v1),
//                 sresp / istim (--sresp / --istim), responses / orientations (--responses / --orientations),
//                 seed, neurons, trials, bins, shared_factors, noise_sd (the embedded generator), trials / neurons
//                 (trial-level recordings: their size)
//   stimuli       the gratings at the V1 orientations: count, height, width (pixels), sf, res
//   v1            the V1 matrix compared: stimuli, neurons, source (a sentence)
//   rdm           method (a sentence), constant_rows ("fail" or "nan")
//   cnn           null with --no-cnn; {weights: path} with --load-model; else the training: epochs, batch,
//                 train_size, lr, momentum, seed, kernels (--cnn-kernels: "cudnn" or "exact"; on the CPU the
//                 same twin), step_losses (every mini-batch), epoch_losses (last mini-batch of
//                 each epoch), train_correct, train_total, misclassified_angles (degrees)
//   statistics    null when skipped (an RDM holds NaN); else seed, bootstrap_resamples, permutations (0: not run)
//                 and, when computed, noise_ceiling: {ceiling, r_half (per split), bins_kept, bins_dropped, method}
//   correlations  one object per table row, in table order: layer ("pool", "fc", ..., "pixels"), measure
//                 (pearson, spearman, kendall, cosine, cka, cka_debiased), value (null when undefined), pairs,
//                 skipped_pairs (NaN pairs left out), and when computed ci_low + ci_high (95% bootstrap interval),
//                 p_value (permutation test), ceiling (V1 noise ceiling); statistics are on Pearson rows only
//   timings_ms    milliseconds per stage: v1_data, noise_ceiling, stimuli, stimuli_train, training, readout, rdm,
//                 compare, bootstrap, permutation, write, figures (each "<stage>_ms", present when the stage ran)
//   files         the files written into the folder (figures/ and report.html not listed)
//   figures       only when the figures step ran: made (true/false), reason (when not made), report and folder
//                 (when made)
// Keys tools/make_figures.py reads: tool, version, command, device, data, stimuli (height, width), v1, rdm.method,
// cnn (epochs, batch, lr, momentum, seed, step_losses, epoch_losses, train_correct, train_total,
// misclassified_angles), correlations (layer, measure, value, ci_low, ci_high, p_value, ceiling, pairs,
// skipped_pairs), timings_ms.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "rsa_gpu/cnn.h"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/synthetic_v1.h"

namespace rsa {

constexpr int kResultsSchema = 1;

// Where the V1 data came from ("data"). Empty strings and negative sizes are left out of the file.
struct DataDescription {
    std::string kind;
    std::string path;                            // --v1
    std::string sresp, istim;                    // --sresp / --istim
    std::string responses, orientations;         // --responses / --orientations
    std::optional<SyntheticV1Params> synthetic;  // the embedded generator's parameters
    int64_t trials = -1, neurons = -1;           // a trial-level recording's size
};

struct StimuliDescription {
    int64_t count = 0;
    int height = 0, width = 0;
    double sf = 0, res = 0;
};

struct V1Description {
    int64_t stimuli = 0, neurons = 0;
    std::string source;
};

// The CNN: loaded from `weights`, or trained (everything else).
struct CnnDescription {
    std::string weights;  // non-empty: loaded from this file (nothing else is written)
    TrainConfig train;
    TrainResult losses;
    int train_correct = 0, train_total = 0;
    std::vector<float> misclassified_angles;
};

struct NoiseCeilingDescription {
    double ceiling = 0;
    std::vector<double> r_half;
    int64_t bins_kept = 0, bins_dropped = 0;
    std::string method;
};

struct StatisticsDescription {
    uint64_t seed = 0;
    int bootstrap_resamples = 0, permutations = 0;
    std::optional<NoiseCeilingDescription> noise_ceiling;
};

// One row of the table: a representation compared with V1 by one measure; statistics NaN when not computed.
struct CorrelationRow {
    std::string layer, measure;
    double value = NAN;
    int64_t pairs = 0, skipped_pairs = 0;
    double ci_low = NAN, ci_high = NAN, p_value = NAN, ceiling = NAN;
    size_t representation = 0;  // index of the representation in the run (not written; its RDM for the statistics)
};

// The table's name of a representation: "pixels (control)", "model 'pool' layer".
std::string representation_label(const std::string& layer);

struct Results {
    int schema = kResultsSchema;
    std::string tool = "rsa_gpu";
    std::string version, command, device, versions;
    DataDescription data;
    StimuliDescription stimuli;
    V1Description v1;
    std::string rdm_method = "1 - Pearson correlation (z-score rows, ddof 0; SYRK)";
    ConstantRows constant_rows = ConstantRows::Fail;
    std::optional<CnnDescription> cnn;                // none with --no-cnn
    std::optional<StatisticsDescription> statistics;  // none when skipped
    std::vector<CorrelationRow> correlations;
    std::map<std::string, double> timings_ms;
    std::vector<std::string> files;
    nlohmann::json figures;  // null: the figures step did not run (key left out)
};

// The one serialisation of Results (the schema above).
nlohmann::json results_to_json(const Results& results);
// The inverse (for tools and tests): InputError naming the key when a required key is missing or of the wrong type,
// or when the schema is not kResultsSchema.
Results results_from_json(const nlohmann::json& doc);
// results_to_json, indented by 2, written atomically to `path`. The main job calls it once, last (after the figures,
// which get the same document through a temporary file, make_figures).
void write_results_json(const std::string& path, const Results& results);

}  // namespace rsa

// The main job: V1 data (file or embedded synthetic), gratings at the V1 orientations, the representations
// to compare (the CNN's layers once trained, and the gratings' own pixels as a control), their RDMs, each
// one's comparison with V1 and its statistics, a printed table and an output folder (RDMs, responses,
// orientations, results.json, correlations.csv, figures). Its configuration is checked once, before any work
// (check_analysis_config); run_analysis chains the stages of analysis_stages.h.
#pragma once
#include <string>
#include <vector>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/dissimilarity.h"
#include "rsa_gpu/grating.h"
#include "rsa_gpu/measures.h"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/synthetic_v1.h"
#include "rsa_gpu/train_network.h"

namespace rsa {

struct AnalysisConfig {
    std::string out_dir = "rsa_out";
    bool force = false;
    std::string v1_path;            // tutorial npz (resp, stimuli)
    std::string responses_path;     // or a response matrix ...
    std::string orientations_path;  // ... with its orientations
    std::string sresp_path;         // or a trial-level pair: sresp (neurons x trials) ...
    std::string istim_path;         // ... and istim (trials, radians)
    bool trials = false;            // per-trial analysis (trial-level data: T x T RDMs)
    SyntheticV1Params synthetic;    // the embedded default when no file is given
    GratingParams grating;
    RdmOptions rdm;
    // The V1 RDM's dissimilarity (--dissimilarity): correlation, or crossnobis from trial-level V1 data (the 1-degree
    // bins as conditions, each bin's trials split in halves by order as two runs); representations stay correlation.
    Dissimilarity dissimilarity = Dissimilarity::Correlation;
    TrainConfig train;                                    // the tutorial's hyper-parameters by default
    std::string load_model;                               // skip training, use these weights (.npz)
    std::string save_model;                               // also save the trained weights here (.npz)
    std::vector<std::string> layers = {"pool", "fc"};     // CNN layers compared with V1
    bool no_cnn = false;                                  // only V1 vs pixels
    std::vector<Measure> measures = {Measure::Pearson};   // RDM comparison measures
    bool cka = false;                                     // also linear CKA (and debiased) on the responses
    int bootstrap = -1;     // resamples for the 95% interval (-1: 10,000 on a GPU, or on the CPU when S <= 1,000)
    int permutations = -1;  // permutations for the p-value (-1: as bootstrap)
    bool noise_ceiling = false;  // split-half ceiling (always on for trial-level data)
    uint64_t stats_seed = 1;
    bool save_v1 = false;   // also write resp_v1.npy when it is larger than 64 MB (always written below that)
    bool no_figures = false;  // skip tools/make_figures.py (figures/ and report.html)
    bool quiet = false;
    bool json = false;              // one machine-readable summary line on stdout
    std::string device_note;        // which device was chosen and why
    std::string command_line;
};

// The checks of a configuration that need no file and no device, so that a bad one is refused before any work:
// the grating size; with the CNN, the layer names and the CNN's 48 x 64 input (--res 0.1); --trials with a plain
// response matrix. InputError naming the option. (Numeric ranges are checked on the command line.)
void check_analysis_config(const AnalysisConfig& config);

// Runs the job on a configuration that passed check_analysis_config (the command line checks it before opening a
// device); returns the exit code. Throws InputError/RuntimeError on failure (nothing left in out_dir).
int run_analysis(Backend& backend, const AnalysisConfig& config);

}  // namespace rsa

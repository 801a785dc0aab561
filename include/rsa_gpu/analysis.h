// The main job: V1 data (file or embedded synthetic), gratings at the V1 orientations, the representations
// to compare (the CNN's layers once trained, and the gratings' own pixels as a control), their RDMs, each
// one's Pearson correlation with V1, a printed table and an output folder (RDMs, orientations, results.json,
// correlations.csv).
#pragma once
#include <string>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/grating.h"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/synthetic_v1.h"

namespace rsa {

struct AnalysisConfig {
    std::string out_dir = "rsa_out";
    bool force = false;
    std::string v1_path;            // tutorial npz (resp, stimuli)
    std::string responses_path;     // or a response matrix ...
    std::string orientations_path;  // ... with its orientations
    SyntheticV1Params synthetic;    // the embedded default when no file is given
    GratingParams grating;
    RdmOptions rdm;
    bool quiet = false;
    bool json = false;              // one machine-readable summary line on stdout
    std::string device_note;        // which device was chosen and why
    std::string command_line;
};

// Runs the job; returns the exit code. Throws InputError/RuntimeError on failure (nothing left in out_dir).
int run_analysis(Backend& backend, const AnalysisConfig& config);

}  // namespace rsa

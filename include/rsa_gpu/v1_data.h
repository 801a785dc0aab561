// V1 data as the tutorial uses it: responses S x N with one orientation per stimulus (degrees, 0 = vertical,
// negative = tilted left). Sources: the tutorial's npz (resp S x N, stimuli S in degrees 0..360; rows with
// stimulus <= 180 kept and shifted by -90, exactly as its load_data()), a plain response matrix with its
// orientations, or the embedded synthetic recording (same filter and shift). Files are read straight into float32
// (npy_load_matrix, NpzReader::read_matrix); an .npz is opened once (pass one NpzReader to v1_npz_kind and then
// to its loader).
#pragma once
#include <string>
#include <vector>

#include "rsa_gpu/matrix.h"
#include "rsa_gpu/synthetic_v1.h"

namespace rsa {

class NpzReader;

struct V1Data {
    Matrix resp;                     // S x N
    std::vector<float> orientation;  // S, degrees
    std::string source;              // where it came from, for messages and results.json
};

// A trial-level recording: responses trials x neurons (the file stores sresp neurons x trials, as the original
// stringer_orientations.npy does) and each trial's orientation in degrees [0, 360) (the file's istim is radians).
struct V1Trials {
    Matrix resp;                     // T x N
    std::vector<float> orientation;  // T, degrees [0, 360)
    std::vector<int> bin;            // T, 1-degree bin: round(orientation) mod 360
    std::string source;
};

// Which kind of V1 npz this is, by its keys: binned (resp, stimuli) or trial-level (sresp, istim).
enum class V1FileKind { Binned, Trials };
V1FileKind v1_npz_kind(const std::string& path);  // InputError naming the keys found when neither
V1FileKind v1_npz_kind(const NpzReader& npz);      // the same from an open archive (its directory only)

V1Trials load_v1_trials_npz(const std::string& path);
V1Trials load_v1_trials_npz(NpzReader& npz);
V1Trials load_v1_trials_npy(const std::string& sresp_path, const std::string& istim_path);
V1Trials v1_trials_from_synthetic(SyntheticV1Trials&& trials, const SyntheticV1Params& params);
// Mean response per 1-degree bin (bins with no trial are dropped), each neuron then z-scored over bins
// (as the tutorial's file), stimuli = bin centres in degrees; then the tutorial's selection.
V1Data bin_v1_trials(const V1Trials& trials);
// The per-trial analysis: responses as they are, grating angle = orientation wrapped to [-90, 90).
V1Data v1_per_trial(V1Trials&& trials);

// The tutorial's binned file: keys `resp` (S x N) and `stimuli` (S or S x 1, degrees).
V1Data load_v1_npz(const std::string& path);
V1Data load_v1_npz(NpzReader& npz);
// A response matrix (.npy, S x N) and its orientations (.npy, S or S x 1, degrees), used as given.
V1Data load_responses(const std::string& responses_path, const std::string& orientations_path);
// The tutorial's selection (stimulus <= 180, minus 90) applied to the embedded synthetic recording.
V1Data v1_from_synthetic(const SyntheticV1& synthetic, const SyntheticV1Params& params);
// The tutorial's selection on any (resp, stimuli in 0..360) pair; `source` names it in errors.
V1Data select_tutorial_rows(const Matrix& resp, const std::vector<float>& stimuli, const std::string& source);

}  // namespace rsa

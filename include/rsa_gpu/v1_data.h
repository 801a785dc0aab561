// V1 data as the tutorial uses it: responses S x N with one orientation per stimulus (degrees, 0 = vertical,
// negative = tilted left). Sources: the tutorial's npz (resp S x N, stimuli S in degrees 0..360; rows with
// stimulus <= 180 kept and shifted by -90, exactly as its load_data()), a plain response matrix with its
// orientations, or the embedded synthetic recording (same filter and shift).
#pragma once
#include <string>
#include <vector>

#include "rsa_gpu/matrix.h"
#include "rsa_gpu/synthetic_v1.h"

namespace rsa {

struct V1Data {
    Matrix resp;                     // S x N
    std::vector<float> orientation;  // S, degrees
    std::string source;              // where it came from, for messages and results.json
};

// The tutorial's binned file: keys `resp` (S x N) and `stimuli` (S or S x 1, degrees).
V1Data load_v1_npz(const std::string& path);
// A response matrix (.npy, S x N) and its orientations (.npy, S or S x 1, degrees), used as given.
V1Data load_responses(const std::string& responses_path, const std::string& orientations_path);
// The tutorial's selection (stimulus <= 180, minus 90) applied to the embedded synthetic recording.
V1Data v1_from_synthetic(const SyntheticV1& synthetic, const SyntheticV1Params& params);
// The tutorial's selection on any (resp, stimuli in 0..360) pair; `source` names it in errors.
V1Data select_tutorial_rows(const Matrix& resp, const std::vector<float>& stimuli, const std::string& source);

}  // namespace rsa

// Loading V1 data: the tutorial's npz (with its <= 180 filter and -90 shift), plain response matrices with
// orientations, and the embedded synthetic recording. Every shape mismatch names the files and shapes.
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/v1_data.h"

namespace rsa {

V1Data select_tutorial_rows(const Matrix& resp, const std::vector<float>& stimuli, const std::string& source) {
    if (static_cast<int64_t>(stimuli.size()) != resp.rows) {
        std::ostringstream os;
        os << source << ": 'resp' has " << resp.rows << " rows (stimuli) but 'stimuli' has " << stimuli.size()
           << " values; they must match";
        throw InputError(os.str());
    }
    V1Data out;
    out.source = source;
    int64_t kept = 0;
    for (float s : stimuli) kept += s <= 180.0f;
    out.resp = Matrix(kept, resp.cols);
    int64_t r = 0;
    for (int64_t i = 0; i < resp.rows; ++i) {
        if (!(stimuli[static_cast<size_t>(i)] <= 180.0f)) continue;
        std::copy(resp.row(i), resp.row(i) + resp.cols, out.resp.row(r++));
        out.orientation.push_back(stimuli[static_cast<size_t>(i)] - 90.0f);
    }
    if (kept < 3) {
        std::ostringstream os;
        os << source << ": only " << kept << " stimuli have orientation <= 180 degrees; at least 3 are needed";
        throw InputError(os.str());
    }
    return out;
}

V1Data load_v1_npz(const std::string& path) {
    const NpyArray resp = npz_load_key(path, "resp");
    const NpyArray stimuli = npz_load_key(path, "stimuli");
    const Matrix m = npy_to_matrix(resp, path + ":resp");
    const std::vector<float> s = npy_to_vector(stimuli, path + ":stimuli");
    return select_tutorial_rows(m, s, path);
}

V1Data load_responses(const std::string& responses_path, const std::string& orientations_path) {
    V1Data out;
    out.resp = npy_to_matrix(npy_load(responses_path), responses_path);
    out.orientation = npy_to_vector(npy_load(orientations_path), orientations_path);
    out.source = responses_path;
    if (static_cast<int64_t>(out.orientation.size()) != out.resp.rows) {
        std::ostringstream os;
        os << "shape mismatch: " << responses_path << " has " << out.resp.rows << " rows (stimuli) x "
           << out.resp.cols << " units, but " << orientations_path << " has " << out.orientation.size()
           << " orientations";
        throw InputError(os.str());
    }
    return out;
}

V1Data v1_from_synthetic(const SyntheticV1& synthetic, const SyntheticV1Params& params) {
    std::ostringstream os;
    os << "embedded synthetic V1 (seed " << params.seed << ", " << params.neurons << " neurons, " << params.trials
       << " trials, " << params.bins << " bins)";
    return select_tutorial_rows(synthetic.resp, synthetic.stimuli, os.str());
}

}  // namespace rsa

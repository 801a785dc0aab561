// Loading V1 data: the tutorial's npz (with its <= 180 filter and -90 shift), plain response matrices with
// orientations, and the embedded synthetic recording. Every shape mismatch names the files and shapes. Members and
// files go straight into float32 (no double copy); an .npz's directory is read once per NpzReader.
#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
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
    out.resp = checked_matrix(kept, resp.cols, "the V1 responses of the kept stimuli of " + source);
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

V1FileKind v1_npz_kind(const std::string& path) { return v1_npz_kind(NpzReader(path)); }

V1FileKind v1_npz_kind(const NpzReader& npz) {
    const std::string& path = npz.path();
    const std::vector<std::string> keys = npz.keys();  // the zip directory only, nothing inflated
    auto has = [&](const char* k) { return std::find(keys.begin(), keys.end(), k) != keys.end(); };
    if (has("resp") && has("stimuli")) return V1FileKind::Binned;
    if (has("sresp") && has("istim")) return V1FileKind::Trials;
    std::ostringstream os;
    os << path << ": not a V1 file: expected keys 'resp' and 'stimuli' (binned, as the tutorial's "
       << "W3D4_stringer_oribinned1.npz) or 'sresp' and 'istim' (trial level); keys present:";
    for (const auto& k : keys) os << " " << k;
    throw InputError(os.str());
}

// nt: sresp as stored, neurons x trials; rad: istim, radians.
static V1Trials make_trials(const Matrix& nt, const std::vector<float>& rad, const std::string& sresp_name,
                            const std::string& istim_name) {
    if (static_cast<int64_t>(rad.size()) != nt.cols) {
        std::ostringstream os;
        os << "shape mismatch: " << sresp_name << " is " << nt.rows << " neurons x " << nt.cols << " trials, but "
           << istim_name << " has " << rad.size() << " trial orientations";
        throw InputError(os.str());
    }
    V1Trials t;
    t.source = sresp_name;
    t.resp = checked_matrix(nt.cols, nt.rows, "the trials x neurons copy of " + sresp_name);
    transpose_f32(nt.data.data(), nt.rows, nt.cols, t.resp.data.data());
    for (size_t k = 0; k < rad.size(); ++k) {
        if (rad[k] < -1e-6f || rad[k] > 2.0f * static_cast<float>(M_PI) + 1e-4f) {
            std::ostringstream os;
            os << istim_name << ": trial " << k << " has orientation " << rad[k]
               << ", outside 0..2 pi: istim must be in radians";
            throw InputError(os.str());
        }
        double deg = std::fmod(static_cast<double>(rad[k]) * 180.0 / M_PI, 360.0);
        if (deg < 0) deg += 360.0;
        t.orientation.push_back(static_cast<float>(deg));
        t.bin.push_back(static_cast<int>(std::lround(deg)) % 360);
    }
    return t;
}

V1Trials load_v1_trials_npz(const std::string& path) {
    NpzReader npz(path);
    return load_v1_trials_npz(npz);
}

V1Trials load_v1_trials_npz(NpzReader& npz) {
    // Each member inflated only here, within what it declares, straight into float32.
    const std::string& path = npz.path();
    const Matrix sresp = npz.read_matrix("sresp");
    const std::vector<float> istim = npz.read_vector("istim");
    return make_trials(sresp, istim, path + ":sresp", path + ":istim");
}

V1Trials load_v1_trials_npy(const std::string& sresp_path, const std::string& istim_path) {
    const Matrix sresp = npy_load_matrix(sresp_path);
    return make_trials(sresp, npy_load_vector(istim_path), sresp_path, istim_path);
}

V1Trials v1_trials_from_synthetic(SyntheticV1Trials&& trials, const SyntheticV1Params& params) {
    V1Trials t;
    t.resp = std::move(trials.resp);
    t.orientation = std::move(trials.orientation);
    t.bin = std::move(trials.bin);
    std::ostringstream os;
    os << "embedded synthetic V1 at trial level (seed " << params.seed << ", " << params.neurons << " neurons, "
       << params.trials << " trials)";
    t.source = os.str();
    return t;
}

V1Data bin_v1_trials(const V1Trials& trials) {
    const int64_t N = trials.resp.cols;
    std::map<int, std::vector<int64_t>> members;
    for (int64_t k = 0; k < trials.resp.rows; ++k) members[trials.bin[static_cast<size_t>(k)]].push_back(k);
    Matrix binned = checked_matrix(static_cast<int64_t>(members.size()), N, "the 1-degree bin means of " + trials.source);
    std::vector<float> stimuli;
    int64_t r = 0;
    for (const auto& [bin, ks] : members) {
        std::vector<double> acc(static_cast<size_t>(N), 0.0);
        for (int64_t k : ks)
            for (int64_t n = 0; n < N; ++n) acc[static_cast<size_t>(n)] += trials.resp.at(k, n);
        for (int64_t n = 0; n < N; ++n) binned.at(r, n) = static_cast<float>(acc[static_cast<size_t>(n)] / ks.size());
        stimuli.push_back(static_cast<float>(bin));
        ++r;
    }
    zscore_columns_ref(binned.data.data(), binned.rows, binned.cols);
    return select_tutorial_rows(binned, stimuli, trials.source + ", binned to 1 degree");
}

V1Data v1_per_trial(V1Trials&& trials) {
    V1Data d;
    d.source = trials.source + ", per trial";
    d.resp = std::move(trials.resp);
    for (float deg : trials.orientation) {
        double o = std::fmod(static_cast<double>(deg), 180.0) - 90.0;  // gratings have a 180-degree period
        d.orientation.push_back(static_cast<float>(o));
    }
    return d;
}

V1Data load_v1_npz(const std::string& path) {
    NpzReader npz(path);
    return load_v1_npz(npz);
}

V1Data load_v1_npz(NpzReader& npz) {
    // Each member inflated only here, within what it declares, straight into float32.
    const Matrix m = npz.read_matrix("resp");
    const std::vector<float> s = npz.read_vector("stimuli");
    return select_tutorial_rows(m, s, npz.path());
}

V1Data load_responses(const std::string& responses_path, const std::string& orientations_path) {
    V1Data out;
    out.resp = npy_load_matrix(responses_path);
    out.orientation = npy_load_vector(orientations_path);
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

// The embedded synthetic V1 recording: the plan shared by both twins (neurons, trials, bins) and the CPU twin
// of the generator and of the per-neuron z-score over stimuli.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <thread>

#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/synthetic_v1.h"

namespace rsa {

// Philox streams of the generator (index in brackets).
enum : uint32_t {
    kStreamNeuron = 1,  // [neuron * 8 + field]
    kStreamTrial = 2,   // [trial]
    kStreamFactor = 3,  // [trial * factors + k]
    kStreamNoise = 4,   // [bin * neurons + neuron]
};

SyntheticV1Plan synthetic_v1_plan(const SyntheticV1Params& p) {
    if (p.neurons < 1 || p.trials < p.bins || p.bins < 3 || p.shared_factors < 0 || p.shared_factors > 4 ||
        p.trials > std::numeric_limits<int>::max()) {
        std::ostringstream os;
        os << "synthetic V1: need neurons >= 1, " << std::numeric_limits<int>::max()
           << " >= trials >= bins >= 3 and 0..4 shared factors (got " << p.neurons << " neurons, " << p.trials
           << " trials, " << p.bins << " bins, " << p.shared_factors << " factors)";
        throw InputError(os.str());
    }
    SyntheticV1Plan plan;
    plan.params = p;
    const uint64_t seed = p.seed;

    // Neurons: preferred orientation uniform in [0, 180), concentration 0.5..4 (narrow to broad tuning),
    // log-normal gain (median 1), loadings on the shared factors N(0, factor_sd^2).
    checked_resize(plan.neurons, static_cast<size_t>(p.neurons),
                   "the tuning of " + std::to_string(p.neurons) + " synthetic V1 neurons");
    for (int64_t n = 0; n < p.neurons; ++n) {
        const uint64_t base = static_cast<uint64_t>(n) * 8;
        SyntheticNeuron& nrn = plan.neurons[static_cast<size_t>(n)];
        const double pref = M_PI * philox_uniform01(seed, kStreamNeuron, base + 0);  // radians in [0, pi)
        nrn.cos2pref = static_cast<float>(std::cos(2.0 * pref));
        nrn.sin2pref = static_cast<float>(std::sin(2.0 * pref));
        nrn.kappa = static_cast<float>(0.5 + 3.5 * philox_uniform01(seed, kStreamNeuron, base + 1));
        nrn.gain = static_cast<float>(std::exp(0.5 * philox_normal(seed, kStreamNeuron, base + 2)));
        for (int k = 0; k < 4; ++k)
            nrn.loading[k] = k < p.shared_factors
                                 ? static_cast<float>(p.factor_sd * philox_normal(seed, kStreamNeuron, base + 3 + k))
                                 : 0.0f;
    }

    // Trials: jittered-stratified orientations over [0, 360) (uniform marginal, every 1-degree bin visited).
    const int64_t T = p.trials;
    const std::string trials_what = "the orientations of " + std::to_string(T) + " synthetic V1 trials";
    checked_resize(plan.trial_orientation, static_cast<size_t>(T), trials_what);
    checked_resize(plan.trial_cos2, static_cast<size_t>(T), trials_what);
    checked_resize(plan.trial_sin2, static_cast<size_t>(T), trials_what);
    for (int64_t t = 0; t < T; ++t) {
        const double deg = 360.0 * (static_cast<double>(t) + philox_uniform01(seed, kStreamTrial, t)) /
                           static_cast<double>(T);
        plan.trial_orientation[static_cast<size_t>(t)] = deg;
        const double rad2 = 2.0 * deg * (M_PI / 180.0);
        plan.trial_cos2[static_cast<size_t>(t)] = static_cast<float>(std::cos(rad2));
        plan.trial_sin2[static_cast<size_t>(t)] = static_cast<float>(std::sin(rad2));
    }

    // Bins: bin b holds trials with orientation in [b - w/2, b + w/2) (mod 360), w = 360 / bins; its stimulus
    // value is its centre b * w (whole degrees for 360 bins, as in the tutorial's file).
    const double width = 360.0 / p.bins;
    std::vector<std::vector<int>> members(static_cast<size_t>(p.bins));
    for (int64_t t = 0; t < T; ++t) {
        int b = static_cast<int>(std::floor(plan.trial_orientation[static_cast<size_t>(t)] / width + 0.5));
        if (b >= p.bins) b -= p.bins;
        members[static_cast<size_t>(b)].push_back(static_cast<int>(t));
    }
    plan.bin_start.push_back(0);
    const int K = p.shared_factors;
    plan.bin_factor_mean.assign(static_cast<size_t>(p.bins) * static_cast<size_t>(K > 0 ? K : 1), 0.0f);
    for (int b = 0; b < p.bins; ++b) {
        const auto& m = members[static_cast<size_t>(b)];
        if (m.empty()) throw RuntimeError("synthetic V1: bin " + std::to_string(b) + " received no trial");
        for (int t : m) plan.bin_trials.push_back(t);
        plan.bin_start.push_back(static_cast<int>(plan.bin_trials.size()));
        for (int k = 0; k < K; ++k) {
            double sum = 0.0;
            for (int t : m) sum += philox_normal(seed, kStreamFactor, static_cast<uint64_t>(t) * K + k);
            plan.bin_factor_mean[static_cast<size_t>(b * K + k)] = static_cast<float>(sum / m.size());
        }
        plan.stimuli.push_back(static_cast<float>(b * width));
    }
    return plan;
}

void zscore_columns_ref(float* x, int64_t rows, int64_t cols) {
    for (int64_t j = 0; j < cols; ++j) zscore_column(x, rows, cols, j);
}

SyntheticV1 synthetic_v1_ref(const SyntheticV1Params& params) {
    const SyntheticV1Plan plan = synthetic_v1_plan(params);
    const int64_t B = params.bins, N = params.neurons;
    SyntheticV1 out;
    out.resp = checked_matrix(B, N, "the binned synthetic V1 responses");
    out.stimuli = plan.stimuli;
    for (int64_t b = 0; b < B; ++b) {
        float* row = out.resp.row(b);
        const float* fmean = plan.bin_factor_mean.data() + b * params.shared_factors;
        for (int64_t n = 0; n < N; ++n)
            row[n] = synthetic_v1_binned_value(plan.neurons[static_cast<size_t>(n)], plan.bin_trials.data(),
                                               plan.bin_start[static_cast<size_t>(b)],
                                               plan.bin_start[static_cast<size_t>(b) + 1], plan.trial_cos2.data(),
                                               plan.trial_sin2.data(), fmean, params.shared_factors,
                                               params.noise_sd, params.seed, static_cast<uint64_t>(b * N + n));
    }
    zscore_columns_ref(out.resp.data.data(), B, N);
    return out;
}

std::vector<float> synthetic_v1_trial_factors(const SyntheticV1Plan& plan) {
    const int K = plan.params.shared_factors;
    const int64_t T = plan.params.trials;
    std::vector<float> f(static_cast<size_t>(T * (K > 0 ? K : 1)), 0.0f);
    for (int64_t t = 0; t < T; ++t)
        for (int k = 0; k < K; ++k)
            f[static_cast<size_t>(t * K + k)] =
                static_cast<float>(philox_normal(plan.params.seed, kStreamFactor, static_cast<uint64_t>(t) * K + k));
    return f;
}

std::vector<int> synthetic_v1_trial_bins(const SyntheticV1Plan& plan) {
    std::vector<int> bin(static_cast<size_t>(plan.params.trials));
    for (int b = 0; b < plan.params.bins; ++b)
        for (int i = plan.bin_start[static_cast<size_t>(b)]; i < plan.bin_start[static_cast<size_t>(b) + 1]; ++i)
            bin[static_cast<size_t>(plan.bin_trials[static_cast<size_t>(i)])] = b;
    return bin;
}

SyntheticV1Trials synthetic_v1_trials_ref(const SyntheticV1Params& params) {
    const SyntheticV1Plan plan = synthetic_v1_plan(params);
    const std::vector<float> factors = synthetic_v1_trial_factors(plan);
    const int64_t T = params.trials, N = params.neurons;
    const int K = params.shared_factors;
    SyntheticV1Trials out;
    out.resp = checked_matrix(T, N, "the trial-level synthetic V1 responses");
    for (double o : plan.trial_orientation) out.orientation.push_back(static_cast<float>(o));
    out.bin = synthetic_v1_trial_bins(plan);
    auto work = [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            float* row = out.resp.row(t);
            for (int64_t n = 0; n < N; ++n)
                row[n] = synthetic_v1_trial_value(plan.neurons[static_cast<size_t>(n)],
                                                  plan.trial_cos2[static_cast<size_t>(t)],
                                                  plan.trial_sin2[static_cast<size_t>(t)], factors.data() + t * K, K,
                                                  params.noise_sd, params.seed, static_cast<uint64_t>(t * N + n));
        }
    };
    const int threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) pool.emplace_back(work, T * i / threads, T * (i + 1) / threads);
    for (auto& th : pool) th.join();
    zscore_columns_ref(out.resp.data.data(), T, N);
    return out;
}

}  // namespace rsa

// The embedded default V1 population: a deterministic synthetic recording with the real one's dimensions
// (23,589 neurons, 4,598 trials at random orientations, binned to 1 degree = 360 stimuli, each neuron z-scored
// over stimuli). Orientation tuning is von Mises with a 180-degree period and heterogeneous preferred
// orientation, width and gain; trial noise; a few shared fluctuations. Every random number is Philox of
// (seed, stream, index), so the GPU generator and this CPU twin draw the same stream.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "rsa_gpu/matrix.h"
#include "rsa_gpu/philox.h"

namespace rsa {

struct SyntheticV1Params {
    int64_t neurons = 23589;
    int64_t trials = 4598;
    int bins = 360;             // 1-degree bins over 0..360
    int shared_factors = 3;     // shared trial-to-trial fluctuations
    double noise_sd = 1.0;      // per-trial private noise (tuning peak gains are about 1)
    double factor_sd = 0.3;     // SD of each neuron's loading on a shared factor
    uint64_t seed = 2021;
};

// Per-neuron tuning, drawn from (seed, stream 1, neuron).
struct SyntheticNeuron {
    float cos2pref, sin2pref;  // cos/sin of twice the preferred orientation
    float kappa;               // von Mises concentration (width)
    float gain;
    float loading[4];          // on the shared factors (at most 4)
};

// Host-side plan shared by both twins: neuron parameters, trial orientations, bins (CSR), per-bin means.
struct SyntheticV1Plan {
    SyntheticV1Params params;
    std::vector<SyntheticNeuron> neurons;      // neurons
    std::vector<double> trial_orientation;     // degrees in [0, 360)
    std::vector<float> trial_cos2, trial_sin2; // cos/sin of twice the trial orientation
    std::vector<int> bin_start;                // bins + 1 offsets into bin_trials
    std::vector<int> bin_trials;               // trial indices grouped by bin
    std::vector<float> bin_factor_mean;        // bins x shared_factors
    std::vector<float> stimuli;                // bin orientation in degrees (0, 1, ..., 359)
};

struct SyntheticV1 {
    Matrix resp;                  // bins x neurons, each neuron z-scored over bins
    std::vector<float> stimuli;   // bins, degrees 0..359
};

SyntheticV1Plan synthetic_v1_plan(const SyntheticV1Params& params);

// Binned response before z-scoring of neuron n to bin b (the heavy part; identical code on both twins):
// mean over the bin's trials of gain * exp(kappa (cos 2(theta - pref) - 1)), plus the loadings times the bin's
// mean shared factors, plus private noise with the SD of a mean of the bin's trials.
RSA_HD float synthetic_v1_binned_value(const SyntheticNeuron& nrn, const int* bin_trials, int begin, int end,
                                       const float* trial_cos2, const float* trial_sin2,
                                       const float* bin_factor_mean, int factors, double noise_sd,
                                       uint64_t seed, uint64_t noise_index) {
    float tuning = 0.0f;
    for (int i = begin; i < end; ++i) {
        const int t = bin_trials[i];
        const float c = trial_cos2[t] * nrn.cos2pref + trial_sin2[t] * nrn.sin2pref;  // cos 2(theta - pref)
        tuning += expf(nrn.kappa * (c - 1.0f));
    }
    const int n = end - begin;
    float value = nrn.gain * tuning / static_cast<float>(n);
    for (int k = 0; k < factors; ++k) value += nrn.loading[k] * bin_factor_mean[k];
    value += static_cast<float>(noise_sd / sqrt(static_cast<double>(n)) * philox_normal(seed, 4, noise_index));
    return value;
}

// Trial-level response of neuron n to trial t (before z-scoring): gain * exp(kappa (cos 2(theta_t - pref) - 1))
// plus the loadings times the trial's shared factors (the same draws the binned means average), plus private
// noise N(0, noise_sd^2) from stream 5. Binning these trials gives the binned recording's distribution.
RSA_HD float synthetic_v1_trial_value(const SyntheticNeuron& nrn, float cos2, float sin2, const float* factors,
                                      int n_factors, double noise_sd, uint64_t seed, uint64_t noise_index) {
    const float c = cos2 * nrn.cos2pref + sin2 * nrn.sin2pref;
    float value = nrn.gain * expf(nrn.kappa * (c - 1.0f));
    for (int k = 0; k < n_factors; ++k) value += nrn.loading[k] * factors[k];
    value += static_cast<float>(noise_sd * philox_normal(seed, 5, noise_index));
    return value;
}

struct SyntheticV1Trials {
    Matrix resp;                     // trials x neurons, each neuron z-scored over trials
    std::vector<float> orientation;  // trials, degrees in [0, 360)
    std::vector<int> bin;            // trials: the 1-degree bin of each trial (as the binned recording)
};

// The trials' shared factor values (trials x factors), from stream 3 as the binned means use.
std::vector<float> synthetic_v1_trial_factors(const SyntheticV1Plan& plan);

// The 1-degree bin of every trial.
std::vector<int> synthetic_v1_trial_bins(const SyntheticV1Plan& plan);

// CPU twin of the trial-level generator (multi-threaded over trials).
SyntheticV1Trials synthetic_v1_trials_ref(const SyntheticV1Params& params);

// CPU twin of the whole generator.
SyntheticV1 synthetic_v1_ref(const SyntheticV1Params& params);

// Column z-score (each neuron over stimuli, population SD, double accumulation), in place. CPU twin.
// Column j of x (rows x cols, row-major) z-scored in place over the rows (population SD, double sums; a constant
// column becomes 0). The one formula of zscore_columns_ref and of the GPU's zscore_columns_kernel (kernels/rdm.cu).
RSA_HD void zscore_column(float* x, int64_t rows, int64_t cols, int64_t j) {
    double sum = 0.0;
    for (int64_t i = 0; i < rows; ++i) sum += x[i * cols + j];
    const double mean = sum / static_cast<double>(rows);
    double ss = 0.0;
    for (int64_t i = 0; i < rows; ++i) {
        const double d = x[i * cols + j] - mean;
        ss += d * d;
    }
    const double sd = sqrt(ss / static_cast<double>(rows));
    const double inv = sd > 0.0 ? 1.0 / sd : 0.0;
    for (int64_t i = 0; i < rows; ++i) x[i * cols + j] = static_cast<float>((x[i * cols + j] - mean) * inv);
}
void zscore_columns_ref(float* x, int64_t rows, int64_t cols);

}  // namespace rsa

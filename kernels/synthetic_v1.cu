// Synthetic V1 generator kernel: one thread per (bin, neuron) evaluates synthetic_v1_binned_value (shared with
// the CPU twin), then the column z-score kernel normalises each neuron over bins.
#include "common.cuh"
#include "cuda_check.cuh"
#include "device_buffer.cuh"
#include "synthetic_v1.cuh"

namespace rsa {

// ---------------------------------------------------------------- CUDA kernels
__global__ void zscore_columns_kernel(float* __restrict__ x, int64_t rows, int64_t cols) {
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < cols;
         j += static_cast<int64_t>(gridDim.x) * blockDim.x)
        zscore_column(x, rows, cols, j);  // the CPU twin's formula (rsa_gpu/synthetic_v1.h)
}

__global__ void synthetic_v1_kernel(const SyntheticNeuron* __restrict__ neurons, int64_t n_neurons, int bins,
                                    const int* __restrict__ bin_start, const int* __restrict__ bin_trials,
                                    const float* __restrict__ trial_cos2, const float* __restrict__ trial_sin2,
                                    const float* __restrict__ bin_factor_mean, int factors, double noise_sd,
                                    uint64_t seed, float* __restrict__ out) {
    const int64_t total = n_neurons * bins;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int b = static_cast<int>(idx / n_neurons);
        const int64_t n = idx - static_cast<int64_t>(b) * n_neurons;
        out[idx] = synthetic_v1_binned_value(neurons[n], bin_trials, bin_start[b], bin_start[b + 1], trial_cos2,
                                             trial_sin2, bin_factor_mean + b * factors, factors, noise_sd, seed,
                                             static_cast<uint64_t>(idx));
    }
}

__global__ void synthetic_v1_trials_kernel(const SyntheticNeuron* __restrict__ neurons, int64_t n_neurons,
                                           int64_t trials, const float* __restrict__ trial_cos2,
                                           const float* __restrict__ trial_sin2, const float* __restrict__ factors,
                                           int n_factors, double noise_sd, uint64_t seed, float* __restrict__ out) {
    const int64_t total = n_neurons * trials;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t t = idx / n_neurons;
        const int64_t n = idx - t * n_neurons;
        out[idx] = synthetic_v1_trial_value(neurons[n], trial_cos2[t], trial_sin2[t], factors + t * n_factors,
                                            n_factors, noise_sd, seed, static_cast<uint64_t>(idx));
    }
}

// ---------------------------------------------------------------- launchers
void synthetic_v1_launch(const SyntheticV1Plan& plan, float* d_out, cudaStream_t stream) {
    const SyntheticV1Params& p = plan.params;
    DeviceBuffer<SyntheticNeuron> neurons;
    DeviceBuffer<int> bin_start, bin_trials;
    DeviceBuffer<float> cos2, sin2, factor_mean;
    neurons.upload(plan.neurons, stream);
    bin_start.upload(plan.bin_start, stream);
    bin_trials.upload(plan.bin_trials, stream);
    cos2.upload(plan.trial_cos2, stream);
    sin2.upload(plan.trial_sin2, stream);
    factor_mean.upload(plan.bin_factor_mean, stream);
    synthetic_v1_kernel<<<grid_1d(p.neurons * p.bins), kBlock, 0, stream>>>(
        neurons.get(), p.neurons, p.bins, bin_start.get(), bin_trials.get(), cos2.get(), sin2.get(),
        factor_mean.get(), p.shared_factors, p.noise_sd, p.seed, d_out);
    RSA_CHECK_LAUNCH();
    zscore_columns_launch(d_out, p.bins, p.neurons, stream);
    CUDA_CHECK(cudaStreamSynchronize(stream));  // the temporaries above are freed on return
}

}  // namespace rsa

namespace rsa {

void synthetic_v1_trials_launch(const SyntheticV1Plan& plan, float* d_out, cudaStream_t stream) {
    const SyntheticV1Params& p = plan.params;
    DeviceBuffer<SyntheticNeuron> neurons;
    DeviceBuffer<float> cos2, sin2, factors;
    neurons.upload(plan.neurons, stream);
    cos2.upload(plan.trial_cos2, stream);
    sin2.upload(plan.trial_sin2, stream);
    factors.upload(synthetic_v1_trial_factors(plan), stream);
    synthetic_v1_trials_kernel<<<grid_1d(p.neurons * p.trials), kBlock, 0, stream>>>(
        neurons.get(), p.neurons, p.trials, cos2.get(), sin2.get(), factors.get(), p.shared_factors, p.noise_sd,
        p.seed, d_out);
    RSA_CHECK_LAUNCH();
    zscore_columns_launch(d_out, p.trials, p.neurons, stream);
    CUDA_CHECK(cudaStreamSynchronize(stream));
}

void zscore_columns_launch(float* d_x, int64_t rows, int64_t cols, cudaStream_t stream) {
    if (cols == 0) return;
    zscore_columns_kernel<<<grid_1d(cols), kBlock, 0, stream>>>(d_x, rows, cols);
    RSA_CHECK_LAUNCH();
}

}  // namespace rsa

// Synthetic V1 generator on the GPU: the binned responses of every (bin, neuron) in one launch, then each
// neuron z-scored over bins. CPU twin: synthetic_v1_ref (same Philox stream, same per-element code).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "rsa_gpu/synthetic_v1.h"

namespace rsa {

// Each column of x (rows x cols) z-scored in place over its rows (zscore_column, synthetic_v1.h: population SD,
// double accumulation); one thread per column, grid-strided.
void zscore_columns_launch(float* d_x, int64_t rows, int64_t cols, cudaStream_t stream);

// d_out: bins x neurons on the device.
void synthetic_v1_launch(const SyntheticV1Plan& plan, float* d_out, cudaStream_t stream);

// d_out: trials x neurons on the device, each neuron z-scored over trials (CPU twin: synthetic_v1_trials_ref).
void synthetic_v1_trials_launch(const SyntheticV1Plan& plan, float* d_out, cudaStream_t stream);

}  // namespace rsa

// GPU launchers of the RDM statistics (CPU twins: host/stats_ref.cpp, semantics in include/rsa_gpu/stats.h).
// All inputs are device pointers on `stream`; temporaries are DeviceBuffers freed on return; each launcher
// synchronises the stream once at the end (results come back to the host) and checks every call.
//   bootstrap:   counts kernel (philox stream 101, atomic integer adds into FP32), the quadratic forms of all
//                resamples at once as cublasSgemm (counts chunk x S) * (S x M S) with M = 2 + 3 L centred forms
//                [A0, A0^2, per model B0, B0^2, A0 B0] (FP32, the handle's math mode: pedantic in GpuContext),
//                per-resample reductions in double, the correlation finished on the host in double.
//   permutation: permutations drawn per thread (philox stream 102, Fisher-Yates), one block per permutation
//                gathering the centred symmetric B0 (double) through the permutation, double accumulation.
//   noise ceiling: split plan on the host (stream 103), per-bin half means (double sums in trial order),
//                zscore_rows_launch + rdm_from_zscored_launch per half, pearson_upper_launch.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "rsa_gpu/stats.h"

namespace rsa {

// d_ref and each d_models[l]: S x S row-major RDMs on the device. InputError when an upper triangle holds NaN
// or an infinity (or S < 3, S > 65,535, no models, more than 21,844 models, resamples < 1). Binds `cublas` to
// `stream` (only when it is on another stream: cublasSetStream drops the handle's workspace).
BootstrapResult bootstrap_launch(cublasHandle_t cublas, const float* d_ref, const std::vector<const float*>& d_models,
                                 int64_t S, int resamples, uint64_t seed, cudaStream_t stream);

// Permutes the labels of d_model. InputError on NaN or an infinity in either upper triangle (or S < 3,
// S > 65,535, permutations < 1).
PermutationResult permutation_launch(const float* d_ref, const float* d_model, int64_t S, int permutations,
                                     uint64_t seed, cudaStream_t stream);

// d_resp: T x N row-major (one row per trial), bins: T ids on the host. InputError on non-finite responses,
// size mismatch, fewer than 3 kept bins. Rebinds `cublas` to `stream`.
NoiseCeilingResult noise_ceiling_launch(cublasHandle_t cublas, const float* d_resp, int64_t T, int64_t N,
                                        const std::vector<int64_t>& bins, int splits, uint64_t seed,
                                        cudaStream_t stream);

}  // namespace rsa

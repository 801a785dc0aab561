// GPU twin of the evaluation engine's weighted sums (evaluate.h, WeightedMoments; CPU twin weighted_moments_ref in
// host/evaluate_weighted_ref.cpp): for a chunk of pattern resamples at once, the pair weights u_ab = w_a w_b of each
// resample (one kernel), then every sum as a cuBLAS DGEMM of the weights with the data and model RDM vectors (one
// launch per product, all resamples and models together). float64 like the twin.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "rsa_gpu/evaluate.h"

namespace rsa {

// data: K x P, models: M x P (host, float64), counts: R x S; centre as weighted_moments_ref. Device memory is taken
// per resample chunk (at most 64 resamples x 8192 pairs of weights, plus the inputs); checked calls throughout.
WeightedMoments evaluate_moments_launch(cublasHandle_t cublas, const std::vector<double>& data, int64_t K,
                                        const std::vector<double>& models, int64_t M, int64_t S,
                                        const std::vector<double>& counts, int64_t R, bool centre,
                                        cudaStream_t stream);

}  // namespace rsa

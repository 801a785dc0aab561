// GPU launchers of the RDM statistics (CPU twins: host/stats_ref.cpp, semantics in include/rsa_gpu/stats.h).
// All inputs are device pointers on `stream`; temporaries are DeviceBuffers freed on return (an allocation failure
// is an OutOfMemoryError naming the buffer); each launcher checks every call and its grid dimensions.
//   bootstrap:   counts kernel (philox stream 101, atomic integer adds into FP32), the quadratic forms
//                w^T F_m w / 2 of M = 2 + 3 L centred forms [A0, A0^2, per model B0, B0^2, A0 B0] as cublasSgemm
//                (counts chunk x S) * (S x M cw) over column blocks of cw columns of the forms (FP32, the handle's
//                math mode: pedantic in GpuContext), each block's per-resample partial sums reduced in double and
//                added in ascending block order (deterministic for a given plan); the correlation is finished on the
//                host in double. The plan (plan_bootstrap) sizes blocks and resample chunks to a device-memory budget
//                (at most kBootstrapWorkCap, less when cudaMemGetInfo reports less free), so the forms never need
//                S x M S floats at once: S = 50,000 with three models uses ~2 GB besides the RDMs. With the whole
//                G within half the budget (every S up to ~4,900 with three models) there is one block, built once.
//                The plan, hence the rounding, depends on free memory only when less than kBootstrapWorkCap (plus the
//                reserve) is free; the same plan gives bit-identical results.
//   permutation: permutations drawn per thread (philox stream 102, Fisher-Yates), one block per permutation
//                gathering the centred symmetric B0 (double) through the permutation, double accumulation.
//   noise ceiling: split plan on the host (stream 103), per-bin half means (double sums in trial order),
//                rdm_resident_launch (the RDM engine's one-block path, z in place) per half, pearson_upper_launch.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "rsa_gpu/stats.h"

namespace rsa {

// Memory plan of the bootstrap for S stimuli, `models` model RDMs, `resamples` resamples and a device budget (bytes
// of work buffers: forms G, counts W, products T, sums q). block_columns = S (one block) when the whole G takes at
// most half the budget, else what half the budget holds (at least 1); chunk: resamples per GEMM, T at most 2^26
// floats and everything within the budget (at least 1).
struct BootstrapPlan {
    int64_t block_columns = 0, blocks = 0;  // columns of the forms per block, ceil(S / block_columns)
    int64_t chunk = 0, chunks = 0;          // resamples per chunk, ceil(resamples / chunk)
    uint64_t device_bytes = 0;              // what the plan allocates (besides the RDMs and a few row sums)
    uint64_t budget_bytes = 0;
};
BootstrapPlan plan_bootstrap(int64_t S, int64_t models, int64_t resamples, uint64_t budget_bytes);

// Work-buffer budget of the bootstrap when none is given: 2 GiB, or the free device memory less a reserve
// (256 MiB or 2% of the card) when that is smaller.
constexpr uint64_t kBootstrapWorkCap = uint64_t{2} << 30;

// d_ref and each d_models[l]: S x S row-major RDMs on the device. InputError when an upper triangle holds NaN
// or an infinity (or S < 3, S > 2^24 (counts exact in FP32), no models, more than 21,844 models, resamples < 1).
// work_bytes: the budget of plan_bootstrap (0: from cudaMemGetInfo, at most kBootstrapWorkCap; tests force
// small blocks with it). Binds `cublas` to `stream` with bind_cublas_stream (gpu_context.cuh). first: the index of
// the first resample (>= 0; results for first .. first + resamples - 1, Backend::bootstrap).
BootstrapResult bootstrap_launch(cublasHandle_t cublas, const float* d_ref, const std::vector<const float*>& d_models,
                                 int64_t S, int resamples, uint64_t seed, int64_t first, cudaStream_t stream,
                                 uint64_t work_bytes = 0);

// Permutes the labels of d_model. InputError on NaN or an infinity in either upper triangle (or S < 3,
// permutations < 1); the centred double copy of the model (S x S x 8 bytes) bounds S in practice. first: the index
// of the first permutation (>= 0).
PermutationResult permutation_launch(const float* d_ref, const float* d_model, int64_t S, int permutations,
                                     uint64_t seed, int64_t first, cudaStream_t stream);

// d_resp: T x N row-major (one row per trial), bins: T ids on the host. InputError on non-finite responses,
// size mismatch, fewer than 3 kept bins. Any N (units grid-strided). Binds `cublas` to `stream` (bind_cublas_stream).
NoiseCeilingResult noise_ceiling_launch(cublasHandle_t cublas, const float* d_resp, int64_t T, int64_t N,
                                        const std::vector<int64_t>& bins, int splits, uint64_t seed,
                                        cudaStream_t stream);

}  // namespace rsa

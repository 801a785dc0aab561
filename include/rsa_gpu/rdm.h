// Representational dissimilarity matrices: z-score each stimulus row across its N units (population SD, statistics
// in double), then M = 1 - Z Z^T / N, a full symmetric S x S matrix. This header holds the CPU engine (the CPU
// backend's one run of a plan, OpenBLAS) and the RDM options; the plan is made once above the backends
// (rdm_engine.h: compute_rdm, which also checks the input and the result), the GPU engine is kernels/rdm_scale.cu.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "rsa_gpu/compare.h"
#include "rsa_gpu/matrix.h"
#include "rsa_gpu/rdm_plan.h"

namespace rsa {

// What to do with a stimulus row whose units are all equal (zero variance: no correlation defined).
enum class ConstantRows { Fail, Nan };

struct RdmOptions {
    RdmKind kind = RdmKind::Correlation;    // correlation distance, or euclidean (rdm_plan.h; mahalanobis whitens first)
    ConstantRows constant_rows = ConstantRows::Fail;  // correlation only: euclidean rows need no variance
    Precision precision = Precision::FP32;  // --precision: exact FP32 SYRK, or TF32 tensor cores
    uint64_t max_gpu_bytes = 0;             // --max-gpu-mem cap (0: none); forces the chunked/tiled paths when small
    std::string output_path;                // where a tiled (out-of-core) RDM is written; required for that plan
    std::function<void(const std::string&)> on_plan;  // receives the memory plan of large jobs before they start
    // A launched run of several ranks (distributed.h): split an in-memory RDM's units over the ranks always, or (false)
    // only from kSpreadRdmMinMultiplyAdds on. Below that every rank computes it whole: the same bits as one process,
    // so statistics on it equal a single process's exactly.
    bool spread_always = false;
};
constexpr double kSpreadRdmMinMultiplyAdds = 1e11;  // S^2 N / 2 of an RDM worth splitting (about 1 s on 2 CPU cores)

// ---------------------------------------------------------------- the CPU engine
// Row moments of x (S x N): row_mean_m2 of every row, rows split over the cores.
RowMoments row_moments_ref(const float* x, int64_t S, int64_t N);

// z[r, c] = zscore_value(x[r, c], mean[r], inv_sd[r]) for a rows x cols block (leading dimensions ldx, ldz),
// rounded to TF32 when precision is TF32.
void zscore_block_ref(const float* x, int64_t ldx, int64_t rows, int64_t cols, const double* mean,
                      const double* inv_sd, Precision precision, float* z, int64_t ldz);

// The CPU engine: runs `plan` (plan_rdm) on x (S x N, row-major) with the row moments of x. For each output tile
// (the whole S x S matrix unless the plan is tiled) and each neuron block of plan.neuron_block columns: z-score the
// block's rows (plan.rdm_kind Euclidean: copy them), accumulate Z_i Z_j^T / N (cblas_ssyrk on diagonal tiles,
// cblas_sgemm off it; beta 0 on the first block), then finish each entry with rdm_entry (1 - value) or
// euclidean_entry. In-memory plans fill `out` (S x S, mirrored);
// tiled plans hand each tile to `sink`. Zero-variance rows come out NaN. Interruptible between blocks and tiles.
void rdm_run_ref(const float* x, int64_t S, int64_t N, const MemoryPlan& plan, Precision precision,
                 const RowMoments& moments, float* out, RdmTileSink* sink);

// Conveniences on the engine (one plan of one block, FP32): the RDM of x into out (S x S); the z-scored rows
// (a zero-variance row becomes NaN and is listed in constant_rows when not null).
void rdm_ref(const float* x, int64_t S, int64_t N, float* out);
void zscore_rows_ref(const float* x, int64_t rows, int64_t cols, float* z, std::vector<int64_t>* constant_rows);

// Sets rows and columns `rows` of the S x S matrix `rdm` to NaN.
void nan_rows_and_columns(float* rdm, int64_t S, const std::vector<int64_t>& rows);

}  // namespace rsa

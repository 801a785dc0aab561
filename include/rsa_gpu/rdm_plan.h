// The plan of an RDM, shared by every backend: the precision (exact FP32 or TF32 tensor-core inputs) and the memory
// plan, made once in the shared layer (rdm_engine.h) against the backend's memory: the whole problem in memory
// when it fits (one-shot: one neuron block), else the input in neuron blocks (output in memory), else the output in
// tiles written to disk. Each backend runs a plan with its one engine (Backend::rdm_run): row statistics over the
// neuron blocks (Chan merge in double), z-score, accumulate Z Z^T / N over the blocks (SYRK on diagonal tiles, GEMM
// off the diagonal), finish (1 - value), mirror, write. Also the formulas both engines share.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "rsa_gpu/matrix.h"

namespace rsa {

// ---------------------------------------------------------------- precision
// FP32: exact FP32 products (cuBLAS pedantic math, OpenBLAS on the CPU).
// TF32: z rounded to TF32 (10-bit mantissa, round to nearest even) and multiplied on tensor cores with FP32
//       accumulation; the CPU twin rounds z the same way before the FP32 SYRK, so both compute the same
//       products (TF32 x TF32 is exact in FP32) and differ only in accumulation order.
enum class Precision { FP32, TF32 };
Precision parse_precision(const std::string& text);  // "fp32" / "tf32"; InputError otherwise
const char* precision_name(Precision p);             // "fp32" / "tf32"

// Round a float to TF32: keep the sign, the 8-bit exponent and the top 10 mantissa bits, round to nearest
// even on the float bits (the low 13 bits become zero). NaN and Inf pass through; a value that rounds past
// the largest finite float becomes Inf, as IEEE rounding does.
float round_to_tf32(float x);
void round_to_tf32(float* x, size_t n);

// ---------------------------------------------------------------- dissimilarity kind
// What the Gram-based engine finishes its accumulated G = X_i X_j^T / N into (every plan kind alike):
// Correlation: rows z-scored first, d = 1 - g (the correlation distance);
// Euclidean:   rows as they are, d = n_i / N + n_j / N - 2 g with n_i = |x_i|^2 from the row moments (in double), the
//              diagonal exactly 0: rsatoolbox's squared euclidean distance divided by the number of channels.
//              Mahalanobis is this after whitening the rows (dissimilarity.h).
enum class RdmKind { Correlation, Euclidean };
const char* rdm_kind_name(RdmKind k);  // "correlation" / "euclidean"

// ---------------------------------------------------------------- memory plan
enum class PlanKind { OneShot, Streamed, Tiled };
enum class Place { Device, Host, PinnedHost, Disk };
const char* plan_kind_name(PlanKind k);
const char* place_name(Place p);

struct MemoryPlan {
    PlanKind kind = PlanKind::OneShot;
    RdmKind rdm_kind = RdmKind::Correlation;  // what the run finishes G into (set by the shared layer)
    int64_t stimuli = 0, neurons = 0;  // S, N
    bool streamed = false;             // input copied to the device in neuron blocks (never all at once)
    bool tiled = false;                // output computed in tiles and written to disk
    int64_t neuron_block = 0;          // columns per block (N when the input is not streamed in blocks)
    int64_t neuron_blocks = 1;         // ceil(N / neuron_block)
    int64_t row_tile = 0;              // rows per output tile (S when not tiled)
    int64_t row_tiles = 1;             // ceil(S / row_tile)
    uint64_t input_bytes = 0;          // the whole S x N fp32 input
    Place input_place = Place::Device; // where the whole input lives while the RDM is computed
    uint64_t workspace_bytes = 0;      // device workspace: input/z blocks, tile buffers, row statistics
    Place workspace_place = Place::Device;
    uint64_t staging_bytes = 0;        // pinned host staging buffers (copy double buffers, tile read-back)
    uint64_t output_bytes = 0;         // S x S fp32
    Place output_place = Place::Device;
    uint64_t device_bytes = 0;         // what the plan allocates on the device in all
    uint64_t budget_bytes = 0;         // the device budget the plan was made against
    // Tiled plans: which upper tiles (bi <= bj) to compute, row_tiles x row_tiles row-major, nonzero = computed;
    // empty: all of them. A rank of a distributed RDM (distributed_rdm.h) computes only its own tiles.
    std::vector<uint8_t> tile_mask;
};

// Whether a plan's run computes tile (bi, bj) / any tile of tile row bi (tile_mask above).
inline bool plan_computes_tile(const MemoryPlan& p, int64_t bi, int64_t bj) {
    return p.tile_mask.empty() || p.tile_mask[static_cast<size_t>(bi * p.row_tiles + bj)] != 0;
}
inline bool plan_computes_row(const MemoryPlan& p, int64_t bi) {
    if (p.tile_mask.empty()) return true;
    for (int64_t bj = bi; bj < p.row_tiles; ++bj)
        if (plan_computes_tile(p, bi, bj)) return true;
    return false;
}

// Device bytes per stimulus for the row statistics (mean and 1/SD in double, a constant-row flag; for Euclidean the
// same slots hold zero, one and the squared norm / N).
constexpr uint64_t kRowStatBytes = 2 * sizeof(double) + sizeof(int);

// Pick the plan for an S x N input: one-shot when input, z (in place) and output fit the budget, else the
// input streamed in neuron blocks (output on the device), else output tiles on disk. The budget is
// device_free_bytes less a margin (64 MiB or 2%, whichever is larger, for cuBLAS and the context), capped by
// max_gpu_bytes when that is non-zero (--max-gpu-mem). min_kind skips cheaper kinds (the one-shot fallback
// re-plans with PlanKind::Streamed). RuntimeError when not even a tiled plan of 1 x 1 tiles fits.
MemoryPlan plan_rdm(int64_t S, int64_t N, uint64_t max_gpu_bytes, uint64_t device_free_bytes,
                    PlanKind min_kind = PlanKind::OneShot);
// The budget a plan may use of a device's free memory: free less the margin above, capped by max_gpu_bytes when
// non-zero (plan_rdm and the evaluation's plan, evaluate_plan.h).
uint64_t device_plan_budget(uint64_t device_free_bytes, uint64_t max_gpu_bytes);
// A few human lines: plan, input, workspace, output (sizes and where each lives), device total vs budget.
std::string describe(const MemoryPlan& plan);
std::string format_bytes(uint64_t bytes);  // "84.6 MB", "1.20 GB"

// ---------------------------------------------------------------- row statistics
// The formulas of both engines (the CPU engine calls them; the device kernels of kernels/rdm_scale.cu compute the
// same expressions in the same order).
#if defined(__CUDACC__)
#define RSA_PLAN_HD __host__ __device__ inline
#else
#define RSA_PLAN_HD inline
#endif

// Mean and centred sum of squares (m2) of every stimulus row, two passes in double over the whole row: the one
// row-statistics result of an RDM. The shared layer checks the input with them (non-finite values, rows constant
// up to rounding) and hands them to the backend's run, which z-scores with them.
struct RowMoments {
    std::vector<double> mean, m2;
};

// One row of n floats: the two passes in double (the CPU's row statistics; the device kernel's per-thread sums
// are reduced with the kit's block_sum instead of in index order).
inline void row_mean_m2(const float* x, int64_t n, double* mean, double* m2) {
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) sum += x[j];
    const double m = sum / static_cast<double>(n);
    double ss = 0.0;
    for (int64_t j = 0; j < n; ++j) {
        const double d = x[j] - m;
        ss += d * d;
    }
    *mean = m;
    *m2 = ss;
}
// 1/SD (population) from m2 of N values; NaN for a zero-variance row (its z row, RDM row and column are then NaN).
RSA_PLAN_HD double inv_sd_from_m2(double m2, double N) {
    const double var = m2 / N;
#if defined(__CUDA_ARCH__)
    return var > 0.0 ? 1.0 / sqrt(var) : __longlong_as_double(0x7ff8000000000000LL);  // the same quiet NaN
#else
    return var > 0.0 ? 1.0 / std::sqrt(var) : std::numeric_limits<double>::quiet_NaN();
#endif
}
// The z-score of one value.
RSA_PLAN_HD float zscore_value(float x, double mean, double inv_sd) { return static_cast<float>((x - mean) * inv_sd); }
// An RDM entry from the accumulated (Z Z^T / N) entry: the correlation distance 1 - r.
RSA_PLAN_HD float rdm_entry(float zz_over_n) { return 1.0f - zz_over_n; }
// A Euclidean entry from the accumulated (X X^T / N) entry g and the rows' squared norms / N (double); 0 on the
// diagonal (i == j), as the distance of a row to itself.
RSA_PLAN_HD float euclidean_entry(float g_over_n, double ni_over_n, double nj_over_n, bool diagonal) {
    return diagonal ? 0.0f : static_cast<float>(ni_over_n + nj_over_n - 2.0 * static_cast<double>(g_over_n));
}
// A row's squared norm / N from its moments: (m2 + N mean^2) / N.
RSA_PLAN_HD double norm_over_n_from_moments(double mean, double m2, double N) { return m2 / N + mean * mean; }
// The row statistics a run scales its rows with: Correlation z-scores (mean, 1/SD); Euclidean keeps the rows as
// they are (0, 1), so the z-score step is an exact copy (rounded to TF32 under TF32).
RSA_PLAN_HD double kind_row_mean(RdmKind k, double mean) { return k == RdmKind::Correlation ? mean : 0.0; }
RSA_PLAN_HD double kind_row_inv_sd(RdmKind k, double m2, double N) {
    return k == RdmKind::Correlation ? inv_sd_from_m2(m2, N) : 1.0;
}

// ---------------------------------------------------------------- where a tiled plan's tiles go
// A tiled RDM is written tile by tile (rdm_engine.h makes the sink: the memory-mapped output file). A row-major
// tile (tr x tc, leading dimension ld) lands at rows [r0, r0 + tr) x cols [c0, c0 + tc), with mirror also its
// transpose; diagonal (r0 == c0): only its upper triangle is read and mirrored. A safe point for interrupts.
class RdmTileSink {
public:
    virtual ~RdmTileSink() = default;
    virtual void write_tile(const float* tile, int64_t ld, int64_t r0, int64_t tr, int64_t c0, int64_t tc,
                            bool mirror, bool diagonal) = 0;
};

}  // namespace rsa

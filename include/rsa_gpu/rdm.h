// Representational dissimilarity matrices: z-score each stimulus row across its N units (population SD,
// accumulated in double), then M = 1 - Z Z^T / N (SYRK), a full symmetric S x S matrix. CPU twins here, and
// the checks every backend's rdm() makes: input, rows constant up to float rounding, the memory plan's output,
// and an RDM that is itself constant up to rounding (all rows the same pattern up to an offset and scale).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "rsa_gpu/compare.h"
#include "rsa_gpu/matrix.h"
#include "rsa_gpu/rdm_scale.h"

namespace rsa {

// Mean and sum of squared deviations of n floats, two passes in double: the one row-statistics formula of the CPU
// twins (the z-score, the degenerate-row test and the neuron blocks that chan_merge combines). The GPU kernels
// (kernels/rdm.cu, kernels/rdm_scale.cu) compute the same two passes per row.
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

// What to do with a stimulus row whose units are all equal (zero variance: no correlation defined).
enum class ConstantRows { Fail, Nan };

struct RdmOptions {
    ConstantRows constant_rows = ConstantRows::Fail;
    Precision precision = Precision::FP32;  // --precision: exact FP32 SYRK, or TF32 tensor cores
    uint64_t max_gpu_bytes = 0;             // --max-gpu-mem cap (0: none); forces the chunked/tiled paths when small
    std::string output_path;                // where a tiled (out-of-core) RDM is written; required for that plan
    std::function<void(const std::string&)> on_plan;  // receives the memory plan of large jobs before they start
};

// z[s, :] = (x[s, :] - mean) / sd, population sd, mean and variance accumulated in double (two passes).
// A row with zero variance becomes NaN and its index is appended to constant_rows (if not null).
void zscore_rows_ref(const float* x, int64_t rows, int64_t cols, float* z, std::vector<int64_t>* constant_rows);

// M = 1 - Z Z^T / N from z-scored rows Z (S x N), full symmetric S x S, via cblas_ssyrk.
void rdm_from_zscored_ref(const float* z, int64_t rows, int64_t cols, float* rdm);

// Throws InputError naming the offending stimulus rows (at most 20 listed) of `what`.
[[noreturn]] void throw_constant_rows(const std::vector<int64_t>& rows, const std::string& what);

// Stimulus rows with no correlation: their values across units are constant, or constant up to float rounding
// (spread_degenerate(N, row mean, row centred sum of squares), compare.h: SD <= 1e-6 |mean| + 1e-30), in
// ascending order. Two passes in double per row, rows split over the cores. Both backends' rdm() run it on the
// host input before any work: with ConstantRows::Fail a non-empty list is throw_constant_rows; with Nan the
// listed rows and columns of the result are NaN (nan_rows_and_columns), whichever memory plan made it.
std::vector<int64_t> degenerate_rows(const Matrix& x);

// Sets rows and columns `rows` of the S x S matrix `rdm` to NaN.
void nan_rows_and_columns(float* rdm, int64_t S, const std::vector<int64_t>& rows);

// The same in place on an S x S float32 .npy at `path` as MappedNpyWriter writes it (npy_header_f32, C order): a
// tiled RDM on disk, which both backends' rdm() mark this way. Mapped, msync'd; RuntimeError naming the path on
// any failure.
void nan_rows_in_npy(const std::string& path, int64_t S, const std::vector<int64_t>& rows);

// The RDM itself: its non-NaN upper-triangle values constant up to float rounding at the scale of correlation
// distances (rdm_degenerate_reason with scale 1: SD <= 1e-6), which is what response rows that are all the same
// pattern up to an offset and a scale give (every correlation 1, the RDM rounding noise). With
// ConstantRows::Fail an InputError naming `what` and why; with Nan the whole RDM becomes NaN (every row counts
// as constant). Both backends' rdm() run it on an in-memory result.
void check_rdm_result(Matrix& rdm, const RdmOptions& options, const std::string& what);

// A tiled plan writes the RDM to options.output_path; without one (commands that keep RDMs in memory) that is an
// InputError naming `what`, the sizes (the S x S output against plan.budget_bytes) and how to proceed.
// `memory` says which memory the budget is ("device memory" by default; the CPU backend passes a line about the
// host budget).
void check_plan_output(const MemoryPlan& plan, const RdmOptions& options, const std::string& what,
                       const std::string& memory = "device memory");

// The memory plan of an S x N RDM on the CPU, before any work: host memory (host_memory.h) stands in for device
// memory. The S x N input is resident already, so the RDM may use the host budget less the input (capped by
// options.max_gpu_bytes when set); plan_rdm then picks one-shot, streamed or tiled as on the GPU. InputError
// naming `what` with the sizes when no plan fits, or when the plan is tiled and options.output_path is empty
// (check_plan_output). Calls options.on_plan with the plan of large or non-one-shot jobs. The CPU backend's
// rdm() runs it; the main job can run it for every RDM it will make before training anything.
MemoryPlan plan_host_rdm(int64_t S, int64_t N, const RdmOptions& options, const std::string& what);

// Inputs every RDM needs: at least 3 stimuli (rows) and 1 unit, finite values. Throws InputError naming `what`.
void check_rdm_input(const Matrix& x, const std::string& what);

}  // namespace rsa

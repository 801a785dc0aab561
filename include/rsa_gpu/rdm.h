// Representational dissimilarity matrices: z-score each stimulus row across its N units (population SD,
// accumulated in double), then M = 1 - Z Z^T / N (SYRK), a full symmetric S x S matrix. CPU twins here.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "rsa_gpu/matrix.h"
#include "rsa_gpu/rdm_scale.h"

namespace rsa {

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

// A tiled plan writes the RDM to options.output_path; without one (commands that keep RDMs in memory) that is an
// InputError naming `what` and saying how to proceed.
void check_plan_output(const MemoryPlan& plan, const RdmOptions& options, const std::string& what);

// Inputs every RDM needs: at least 3 stimuli (rows) and 1 unit, finite values. Throws InputError naming `what`.
void check_rdm_input(const Matrix& x, const std::string& what);

}  // namespace rsa

// CPU twins of the RDM path: row z-score (double accumulation, population SD) and M = 1 - Z Z^T / N with
// cblas_ssyrk (OpenBLAS), mirrored to a full symmetric matrix; plus the input checks shared by both twins.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <limits>
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/rdm.h"

namespace rsa {

// One stimulus row: mean and population variance in double (two passes), then z in float.
static bool zscore_row(const float* xr, int64_t cols, float* zr) {
    double sum = 0.0;
    for (int64_t j = 0; j < cols; ++j) sum += xr[j];
    const double mean = sum / static_cast<double>(cols);
    double ss = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
        const double d = xr[j] - mean;
        ss += d * d;
    }
    const double var = ss / static_cast<double>(cols);
    if (!(var > 0.0)) {
        for (int64_t j = 0; j < cols; ++j) zr[j] = std::numeric_limits<float>::quiet_NaN();
        return false;
    }
    const double inv_sd = 1.0 / std::sqrt(var);
    for (int64_t j = 0; j < cols; ++j) zr[j] = static_cast<float>((xr[j] - mean) * inv_sd);
    return true;
}

void zscore_rows_ref(const float* x, int64_t rows, int64_t cols, float* z, std::vector<int64_t>* constant_rows) {
    // Rows are independent: split them over the cores (each row's arithmetic is the same whatever the split).
    std::vector<char> constant(static_cast<size_t>(rows), 0);
    const int64_t threads = rows * cols < (1 << 20) ? 1 : std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (int64_t s = rows * t / threads; s < rows * (t + 1) / threads; ++s)
                constant[static_cast<size_t>(s)] = !zscore_row(x + s * cols, cols, z + s * cols);
        });
    for (auto& th : pool) th.join();
    if (constant_rows)
        for (int64_t s = 0; s < rows; ++s)
            if (constant[static_cast<size_t>(s)]) constant_rows->push_back(s);
}

void rdm_from_zscored_ref(const float* z, int64_t rows, int64_t cols, float* rdm) {
    // rdm(upper) = Z Z^T / N (OpenBLAS SSYRK), then one blocked pass: upper = 1 - upper, mirrored below.
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols),
                1.0f / static_cast<float>(cols), z, static_cast<int>(cols), 0.0f, rdm, static_cast<int>(rows));
    const int64_t tile = 64;
    for (int64_t i0 = 0; i0 < rows; i0 += tile)
        for (int64_t j0 = i0; j0 < rows; j0 += tile)
            for (int64_t i = i0; i < std::min(i0 + tile, rows); ++i)
                for (int64_t j = std::max(j0, i); j < std::min(j0 + tile, rows); ++j) {
                    const float v = 1.0f - rdm[i * rows + j];
                    rdm[i * rows + j] = v;
                    rdm[j * rows + i] = v;
                }
}

void throw_constant_rows(const std::vector<int64_t>& rows, const std::string& what) {
    std::ostringstream os;
    os << what << ": " << rows.size() << " stimulus row" << (rows.size() == 1 ? " has" : "s have")
       << " zero variance across units, so their correlation is undefined: row" << (rows.size() == 1 ? " " : "s ");
    for (size_t i = 0; i < rows.size() && i < 20; ++i) os << (i ? ", " : "") << rows[i];
    if (rows.size() > 20) os << ", ... (" << rows.size() - 20 << " more)";
    os << " (0-based). Use --constant-rows nan to keep them as NaN and skip them in comparisons.";
    throw InputError(os.str());
}

void check_plan_output(const MemoryPlan& plan, const RdmOptions& options, const std::string& what) {
    if (plan.kind != PlanKind::Tiled || !options.output_path.empty()) return;
    throw InputError(what + ": its " + std::to_string(plan.stimuli) + " x " + std::to_string(plan.stimuli) +
                     " RDM does not fit in the memory cap even with streaming, and this command keeps RDMs in memory: "
                     "raise --max-gpu-mem, or write out-of-core RDMs with `rsa_gpu rdm --max-gpu-mem ... --out file.npy`");
}

void check_rdm_input(const Matrix& x, const std::string& what) {
    if (x.rows == 0 || x.cols == 0) {
        std::ostringstream os;
        os << what << ": empty response matrix (" << x.rows << " x " << x.cols << ")";
        throw InputError(os.str());
    }
    if (x.rows < 3) {
        std::ostringstream os;
        os << what << ": an RDM comparison needs at least 3 stimuli (rows), got " << x.rows;
        throw InputError(os.str());
    }
    for (int64_t i = 0; i < x.rows; ++i)
        for (int64_t j = 0; j < x.cols; ++j)
            if (!std::isfinite(x.at(i, j))) {
                std::ostringstream os;
                os << what << ": non-finite value " << x.at(i, j) << " at row " << i << ", column " << j;
                throw InputError(os.str());
            }
}

}  // namespace rsa

// CPU twins of the RDM path: row z-score (double accumulation, population SD) and M = 1 - Z Z^T / N with
// cblas_ssyrk (OpenBLAS), mirrored to a full symmetric matrix; plus the checks shared by both twins (input,
// degenerate rows and their NaN rows and columns, in memory or in a tiled .npy on disk, degenerate result, the
// memory plan's output).
#include <cblas.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <thread>
#include <limits>
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/rdm.h"

namespace rsa {

// One stimulus row: mean and population variance in double (two passes), then z in float.
static bool zscore_row(const float* xr, int64_t cols, float* zr) {
    double mean = 0.0, ss = 0.0;
    row_mean_m2(xr, cols, &mean, &ss);
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
       << " zero variance across units (or a variance at float rounding level: SD at most " << kDegenerateRelSpread
     << " of the row's mean), so their correlation is undefined: row" << (rows.size() == 1 ? " " : "s ");
    for (size_t i = 0; i < rows.size() && i < 20; ++i) os << (i ? ", " : "") << rows[i];
    if (rows.size() > 20) os << ", ... (" << rows.size() - 20 << " more)";
    os << " (0-based). Use --constant-rows nan to keep them as NaN and skip them in comparisons.";
    throw InputError(os.str());
}

std::vector<int64_t> degenerate_rows(const Matrix& x) {
    const int64_t rows = x.rows, cols = x.cols;
    std::vector<char> flag(static_cast<size_t>(rows), 0);
    const int64_t threads = rows * cols < (1 << 20) ? 1 : std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (int64_t s = rows * t / threads; s < rows * (t + 1) / threads; ++s) {
                double mean = 0.0, m2 = 0.0;
                row_mean_m2(x.row(s), cols, &mean, &m2);
                // A single unit (cols == 1) is a constant row too: n < 2.
                flag[static_cast<size_t>(s)] = spread_degenerate(static_cast<double>(cols), mean, m2);
            }
        });
    for (auto& th : pool) th.join();
    std::vector<int64_t> out;
    for (int64_t s = 0; s < rows; ++s)
        if (flag[static_cast<size_t>(s)]) out.push_back(s);
    return out;
}

void nan_rows_and_columns(float* rdm, int64_t S, const std::vector<int64_t>& rows) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t r : rows) {
        if (r < 0 || r >= S) continue;
        std::fill(rdm + r * S, rdm + (r + 1) * S, nan);
        for (int64_t i = 0; i < S; ++i) rdm[i * S + r] = nan;
    }
}

void nan_rows_in_npy(const std::string& path, int64_t S, const std::vector<int64_t>& rows) {
    if (rows.empty()) return;
    const size_t header = npy_header_f32(S, S).size();
    const size_t bytes = header + static_cast<size_t>(S) * static_cast<size_t>(S) * sizeof(float);
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) throw RuntimeError(path + ": cannot reopen to mark constant rows: " + std::strerror(errno));
    void* map = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        throw RuntimeError(path + ": cannot map to mark constant rows: " + std::strerror(err));
    }
    nan_rows_and_columns(reinterpret_cast<float*>(static_cast<char*>(map) + header), S, rows);
    const bool synced = ::msync(map, bytes, MS_SYNC) == 0;
    const int err = errno;
    ::munmap(map, bytes);
    ::close(fd);
    if (!synced) throw RuntimeError(path + ": msync: " + std::strerror(err));
}

void check_rdm_result(Matrix& rdm, const RdmOptions& options, const std::string& what) {
    if (rdm.rows < 2 || rdm.rows != rdm.cols) return;
    const std::string why = rdm_degenerate_reason(rdm.data.data(), rdm.rows, 1.0);
    if (why.empty()) return;
    if (options.constant_rows == ConstantRows::Nan) {
        std::fill(rdm.data.begin(), rdm.data.end(), std::numeric_limits<float>::quiet_NaN());
        return;
    }
    throw InputError(what + ": the RDM is constant: " + why +
                     ". Its stimulus rows are all the same pattern up to an offset and a scale (every correlation "
                     "is the same up to float rounding). Use --constant-rows nan to keep it as NaN.");
}

void check_plan_output(const MemoryPlan& plan, const RdmOptions& options, const std::string& what,
                       const std::string& memory) {
    if (plan.kind != PlanKind::Tiled || !options.output_path.empty()) return;
    std::ostringstream os;
    os << what << ": its " << plan.stimuli << " x " << plan.stimuli << " RDM needs " << format_bytes(plan.output_bytes)
       << " (float32), more than the memory budget of " << format_bytes(plan.budget_bytes) << " (" << memory
       << ") even with streaming: it can only be made in tiles written to disk, and this command keeps RDMs in "
          "memory: raise --max-gpu-mem (when it caps the budget), write the out-of-core RDM with `rsa_gpu rdm "
          "--responses ... --out file.npy`, or use fewer stimuli.";
    throw InputError(os.str());
}

MemoryPlan plan_host_rdm(int64_t S, int64_t N, const RdmOptions& options, const std::string& what) {
    const uint64_t budget = host_memory_budget();
    const uint64_t input = checked_bytes(static_cast<uint64_t>(S) * static_cast<uint64_t>(N), sizeof(float),
                                         "the input of " + what);
    const uint64_t left = budget > input ? budget - input : 0;
    MemoryPlan plan;
    try {
        plan = plan_rdm(S, N, options.max_gpu_bytes, left);
    } catch (const InputError&) {
        throw;
    } catch (const RuntimeError&) {
        std::ostringstream os;
        os << what << ": no memory plan fits: the " << S << " x " << N << " input takes " << format_bytes(input)
           << " of the host memory budget of " << host_budget_text()
           << ", and even an RDM tiled to disk needs row statistics ("
           << format_bytes(static_cast<uint64_t>(S) * kRowStatBytes) << ") and tile buffers in the rest";
        if (options.max_gpu_bytes) os << " (capped by --max-gpu-mem at " << format_bytes(options.max_gpu_bytes) << ")";
        os << ". Use fewer stimuli or units, free memory"
           << (options.max_gpu_bytes ? ", or raise --max-gpu-mem." : ", or run on a machine with more memory.");
        throw InputError(os.str());
    }
    const uint64_t big = 256ull << 20;
    if (options.on_plan &&
        (options.max_gpu_bytes != 0 || plan.kind != PlanKind::OneShot || plan.input_bytes + plan.output_bytes > big))
        options.on_plan(describe(plan) + "(on the CPU: host memory stands in for device memory; the budget is what " +
                        host_budget_text() + " leaves beside the input)");
    check_plan_output(plan, options, what,
                      "host memory beside the " + format_bytes(plan.input_bytes) + " input; host budget " +
                          host_budget_text());
    return plan;
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

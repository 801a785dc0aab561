// The shared layer of the RDM (rdm_engine.h): input checks from the backend's row moments, one memory plan per RDM
// against the backend's memory, the backend's one run, the out-of-memory fallback to the next plan kind, tiled output
// into a memory-mapped .npy (with its progress bar and NaN rows), and the constant-result check.
#include "rsa_gpu/rdm_engine.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <sstream>

#include "rsa_gpu/distributed_rdm.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/progress.h"

namespace rsa {

namespace {

// Tiles into the mapped output file, with a progress bar once the count is known (more than a handful of tiles).
class FileTileSink final : public RdmTileSink {
public:
    FileTileSink(MappedNpyWriter& out, const MemoryPlan& plan) : out_(out) {
        total_ = plan.row_tiles * (plan.row_tiles + 1) / 2;
        if (total_ > 4) bar_ = std::make_unique<Progress>("RDM tiles", total_);
    }
    void write_tile(const float* tile, int64_t ld, int64_t r0, int64_t tr, int64_t c0, int64_t tc, bool mirror,
                    bool diagonal) override {
        out_.write_tile(tile, ld, r0, tr, c0, tc, mirror, diagonal);  // a safe point for interrupts
        ++done_;
        if (bar_) bar_->update(done_);
    }

private:
    MappedNpyWriter& out_;
    std::unique_ptr<Progress> bar_;
    int64_t total_ = 0, done_ = 0;
};

// The constant-result test (rdm_degenerate_reason at the scale of correlation distances) from the backend's spread.
bool spread_says_constant(const UpperSpread& s) {
    return s.values >= 2 && spread_degenerate(static_cast<double>(s.values), s.mean, s.m2, 1.0);
}

}  // namespace

void check_rdm_input(const MatrixView& x, const std::string& what) {
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
    for (int64_t i = 0; i < x.rows; ++i) {
        const float* r = x.row(i);
        for (int64_t j = 0; j < x.cols; ++j)
            if (!std::isfinite(r[j])) throw_non_finite_response(what, r[j], i, j);
    }
}

void throw_non_finite_response(const std::string& what, float v, int64_t row, int64_t col) {
    std::ostringstream os;
    os << what << ": non-finite value " << v << " at row " << row << ", column " << col;
    throw InputError(os.str());
}

std::vector<int64_t> degenerate_rows(const RowMoments& moments, int64_t N) {
    std::vector<int64_t> out;
    for (size_t s = 0; s < moments.mean.size(); ++s)
        // A single unit (N == 1) is a constant row too: n < 2.
        if (spread_degenerate(static_cast<double>(N), moments.mean[s], moments.m2[s]))
            out.push_back(static_cast<int64_t>(s));
    return out;
}

std::vector<int64_t> degenerate_rows(const MatrixView& x) {
    return degenerate_rows(row_moments_ref(x.ptr, x.rows, x.cols), x.cols);
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

MemoryPlan plan_backend_rdm(int64_t S, int64_t N, const PlanMemory& memory, const RdmOptions& options,
                            const std::string& what, PlanKind min_kind) {
    MemoryPlan plan;
    try {
        plan = plan_rdm(S, N, options.max_gpu_bytes, memory.free_bytes, min_kind);
    } catch (const InputError&) {
        throw;
    } catch (const RuntimeError&) {
        std::ostringstream os;
        os << what << ": no memory plan fits the " << S << " x " << N << " input in " << memory.name
           << ": even an RDM tiled to disk needs row statistics ("
           << format_bytes(static_cast<uint64_t>(S) * kRowStatBytes) << ") and tile buffers";
        if (options.max_gpu_bytes) os << " (capped by --max-gpu-mem at " << format_bytes(options.max_gpu_bytes) << ")";
        os << ". Use fewer stimuli or units, free memory"
           << (options.max_gpu_bytes ? ", or raise --max-gpu-mem." : ", or run on a machine with more memory.");
        throw InputError(os.str());
    }
    plan.rdm_kind = options.kind;
    const uint64_t big = 256ull << 20;
    if (options.on_plan && min_kind == PlanKind::OneShot &&
        (options.max_gpu_bytes != 0 || plan.kind != PlanKind::OneShot || plan.input_bytes + plan.output_bytes > big))
        options.on_plan(describe(plan) + "(memory: " + memory.name + ")");
    check_plan_output(plan, options, what, memory.name);
    return plan;
}

PlanMemory host_plan_memory(int64_t S, int64_t N) {
    // The S x N input is resident already: the RDM may use the host budget less the input.
    const uint64_t input = checked_bytes(static_cast<uint64_t>(S) * static_cast<uint64_t>(N), sizeof(float),
                                         "the RDM input");
    const uint64_t budget = host_memory_budget();
    PlanMemory memory;
    memory.free_bytes = budget > input ? budget - input : 0;
    memory.name = "host memory beside the " + format_bytes(input) + " input; host budget " + host_budget_text();
    return memory;
}

MemoryPlan plan_host_rdm(int64_t S, int64_t N, const RdmOptions& options, const std::string& what) {
    return plan_backend_rdm(S, N, host_plan_memory(S, N), options, what);
}

RdmResult compute_rdm(Backend& backend, const Array& x, const RdmOptions& options, const std::string& what) {
    const int64_t S = x.rows(), N = x.cols();
    if (S == 0 || N == 0 || S < 3) check_rdm_input(MatrixView(nullptr, S, N), what);  // the shape messages
    RdmResult res;
    // Sizes first (from the shape alone): no work before a plan exists.
    PlanMemory memory = backend.rdm_memory(S, N);
    res.plan = plan_backend_rdm(S, N, memory, options, what);

    // The input checks, once, from the row moments (on the backend's device).
    const RowMoments moments = backend.row_moments(x, res.plan.kind == PlanKind::OneShot);
    for (int64_t s = 0; s < S; ++s)
        if (!std::isfinite(moments.mean[s]) || !std::isfinite(moments.m2[s]))
            check_rdm_input(x.view(), what);  // names the row and column (the host copy: an error path)
    // Rows without variance have no correlation; euclidean distances need none.
    if (options.kind == RdmKind::Correlation) res.nan_rows = degenerate_rows(moments, N);
    if (!res.nan_rows.empty() && options.constant_rows == ConstantRows::Fail) throw_constant_rows(res.nan_rows, what);
    check_interrupt("the RDM");

    // A launched run of several ranks (distributed.h): every rank holds x alike; the units of a large RDM (or any,
    // with options.spread_always) are split over the ranks and the partial RDMs summed on every rank
    // (distributed_rdm.h). The memory plan above says that it fits.
    Comm& comm = world();
    const double work = static_cast<double>(S) * static_cast<double>(S) * static_cast<double>(N) / 2.0;
    const bool spread = comm.launched() && comm.size() > 1 && res.plan.kind != PlanKind::Tiled &&
                        (options.spread_always || work >= kSpreadRdmMinMultiplyAdds);
    if (spread) {
        res.rdm = distributed_rdm_in_memory(comm, backend, x, moments, options, what);
        Matrix m = res.rdm.take_matrix();
        nan_rows_and_columns(m.data.data(), S, res.nan_rows);
        res.rdm = Array(std::move(m));
    }
    // Run; when the device runs out of memory, re-plan against what is free now with the next kind.
    std::string history;
    for (; !spread;) {
        try {
            if (res.plan.kind == PlanKind::Tiled) {
                MappedNpyWriter out(options.output_path, S, S);
                FileTileSink sink(out, res.plan);
                backend.rdm_run(x, res.plan, options.precision, moments, res.nan_rows, &sink);
                nan_rows_and_columns(out.data(), S, res.nan_rows);
                out.commit();
                res.written_path = options.output_path;
                return res;  // a tiled RDM on disk is not read back for the constant-result test
            }
            res.rdm = backend.rdm_run(x, res.plan, options.precision, moments, res.nan_rows, nullptr);
            break;
        } catch (const OutOfMemoryError& e) {
            history += std::string(history.empty() ? "" : "; ") + plan_kind_name(res.plan.kind) + ": " + e.what();
            if (res.plan.kind == PlanKind::Tiled)
                throw RuntimeError(what + ": the RDM of " + std::to_string(S) + " x " + std::to_string(N) +
                                   " does not fit in " + memory.name + " under any plan (" + history + ")");
            memory = backend.rdm_memory(S, N);
            const PlanKind next = res.plan.kind == PlanKind::OneShot ? PlanKind::Streamed : PlanKind::Tiled;
            res.plan = plan_backend_rdm(S, N, memory, options, what, next);
            res.fell_back = true;
            if (options.on_plan)
                options.on_plan(memory.name + " ran short (" + history + "); fell back to:\n" + describe(res.plan));
        }
    }

    // The result: rows that are all one pattern up to an offset and a scale give an RDM constant up to rounding (a
    // correlation RDM only: equal euclidean distances are a valid result).
    if (options.kind == RdmKind::Correlation && S >= 2 && spread_says_constant(backend.rdm_spread(res.rdm))) {
        if (options.constant_rows == ConstantRows::Nan) {
            res.rdm = Array(Matrix(S, S, std::numeric_limits<float>::quiet_NaN()));
            res.all_nan = true;
        } else {
            throw InputError(what + ": the RDM is constant: " + rdm_degenerate_reason(res.rdm.host(), S, 1.0) +
                             ". Its stimulus rows are all the same pattern up to an offset and a scale (every "
                             "correlation is the same up to float rounding). Use --constant-rows nan to keep it as "
                             "NaN.");
        }
    }
    return res;
}

}  // namespace rsa

// The shared layer of the RDM above the backends: compute_rdm checks the input once (from the backend's row
// moments: non-finite values, rows constant up to float rounding), makes the memory plan once against the backend's
// memory (rdm_plan.h), runs it with the backend's one engine (Backend::rdm_run), falls back to the next plan kind
// when the device runs out of memory, writes a tiled plan's tiles into the output file (npy.h MappedNpyWriter),
// and checks the result (an RDM constant up to rounding). Also the checks and messages of those steps.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "rsa_gpu/array.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/rdm.h"

namespace rsa {

struct RdmResult {
    Array rdm;                       // S x S on the backend's device (empty when the plan was tiled)
    std::vector<int64_t> nan_rows;   // stimulus rows (and columns) set NaN: constant up to rounding, kept by Nan
    bool all_nan = false;            // the RDM was constant up to rounding and kept (as NaN) by ConstantRows::Nan
    MemoryPlan plan;                 // the plan that made it (after any fallback)
    bool fell_back = false;          // a cheaper plan ran out of device memory first
    std::string written_path;        // a tiled plan's file (options.output_path)
    bool has_nan() const { return all_nan || !nan_rows.empty(); }
};

// The RDM of x (S x N) on `backend`. `what` names the data in messages. InputError (exit 2) for bad input: fewer
// than 3 stimuli, non-finite values (row and column named), rows without a correlation with ConstantRows::Fail
// (listed), a constant RDM with Fail, a plan that must be tiled without options.output_path, no plan that fits.
RdmResult compute_rdm(Backend& backend, const Array& x, const RdmOptions& options, const std::string& what);

// Boundary check of a response matrix (a file the user gave): at least 3 stimuli (rows) and 1 unit, finite
// values. Throws InputError naming `what`, the row and the column.
void check_rdm_input(const MatrixView& x, const std::string& what);
// Its message for a non-finite value `v` at (row, col) of `what` (InputError): every reader of responses gives it.
[[noreturn]] void throw_non_finite_response(const std::string& what, float v, int64_t row, int64_t col);

// Stimulus rows with no correlation: their values across units are constant, or constant up to float rounding
// (spread_degenerate(N, row mean, row m2), compare.h), in ascending order, from the row moments.
std::vector<int64_t> degenerate_rows(const RowMoments& moments, int64_t N);
std::vector<int64_t> degenerate_rows(const MatrixView& x);  // the same from the data (row_moments_ref)

// Throws InputError naming the offending stimulus rows (at most 20 listed) of `what`.
[[noreturn]] void throw_constant_rows(const std::vector<int64_t>& rows, const std::string& what);

// A tiled plan writes the RDM to options.output_path; without one (commands that keep RDMs in memory) that is an
// InputError naming `what`, the sizes (the S x S output against plan.budget_bytes) and how to proceed. `memory`
// says which memory the budget is.
void check_plan_output(const MemoryPlan& plan, const RdmOptions& options, const std::string& what,
                       const std::string& memory);

// The memory plan of an S x N RDM against `memory` (Backend::rdm_memory), made before any work: plan_rdm, its
// RuntimeError turned into an InputError naming `what` with the sizes, check_plan_output, and options.on_plan told
// of large or non-one-shot plans. min_kind: skip cheaper kinds (the out-of-memory fallback).
MemoryPlan plan_backend_rdm(int64_t S, int64_t N, const PlanMemory& memory, const RdmOptions& options,
                            const std::string& what, PlanKind min_kind = PlanKind::OneShot);
// The CPU backend's memory for an S x N RDM: the host budget beside the resident input (Backend::rdm_memory of the
// CPU backend).
PlanMemory host_plan_memory(int64_t S, int64_t N);
// plan_backend_rdm with it, for the main job to check every RDM it will make before training anything.
MemoryPlan plan_host_rdm(int64_t S, int64_t N, const RdmOptions& options, const std::string& what);

}  // namespace rsa

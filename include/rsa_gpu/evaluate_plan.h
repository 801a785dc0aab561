// The memory plan of `rsa_gpu evaluate`'s resamples (evaluate.h), in the style of the RDM's plan (rdm_plan.h): made
// once per run (per rank's range in a distributed run) against the memory the backend has (a GPU: its free device
// memory less plan_rdm's margin, and the host budget for what comes back; the CPU: the host budget, host_memory.h),
// capped by --max-gpu-mem. It chooses how many resamples go into one call of the weighted sums
// (Backend::evaluate_moments: the corr and cosine bootstraps) and how many models go into one batch (every path: the
// models' copies, squares and expanded resamples scale with them), and says so in one line and in the JSON's
// `plan`. Batching changes no number on the CPU (the weighted sums are exact sums; evaluations are per model).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace rsa {

enum class EvalMethod;  // evaluate.h
class Backend;

// The memory an evaluation may plan for.
struct EvaluateMemory {
    bool gpu = false;                // the weighted sums run on a device (its buffers count against device_bytes)
    uint64_t device_bytes = 0;       // GPU: the device's free memory (Backend::rdm_memory); the margin is taken here
    uint64_t host_bytes = 0;         // the host budget (host_memory_budget)
    uint64_t cap_bytes = 0;          // --max-gpu-mem / max_gpu_mem (0: none): caps both budgets
    std::string name;                // where the numbers come from, for the line and the messages
};
// The host budget with `cap_bytes` (the CPU path), and a backend's memory now (on a GPU also its free memory).
EvaluateMemory host_evaluate_memory(uint64_t cap_bytes);
EvaluateMemory evaluate_memory(Backend& backend, uint64_t cap_bytes);

struct EvaluatePlan {
    int64_t S = 0, K = 0, M = 0;     // patterns, data RDMs, models
    int64_t resamples = 0;           // bootstrap resamples of this run (range)
    int64_t permutations = 0;        // permutations of this run (range)
    bool weighted = false;           // the corr / cosine weighted sums (batches of resamples); else one at a time
    bool gpu = false;
    int64_t resample_batch = 0, resample_batches = 0;  // resamples per weighted-sums call, and calls per model batch
    int64_t model_batch = 0, model_batches = 0;        // models per batch (every path), and batches
    uint64_t host_resident_bytes = 0;  // held throughout: the RDM vectors and the run's samples
    uint64_t host_batch_bytes = 0;     // one batch on the host (counts, moments, copies, work matrices)
    uint64_t host_budget_bytes = 0;
    uint64_t device_bytes = 0;         // one batch on the device (GPU weighted sums; 0 otherwise)
    uint64_t device_budget_bytes = 0;
    std::string memory;                // EvaluateMemory::name
};

// The plan for S patterns, K data RDMs, M models, `resamples` bootstrap resamples and `permutations` permutations
// of `method` (weighted: the corr / cosine weighted sums are used, EvaluateOptions::weighted_sums). Prefers every
// model in one batch with the largest resample batch (up to all of them); halves the model batch while fewer than
// min(resamples, 64) resamples fit. InputError naming the sizes, the budget and --max-gpu-mem when not even one
// model and one resample fit.
EvaluatePlan plan_evaluate(int64_t S, int64_t K, int64_t M, int64_t resamples, int64_t permutations,
                           EvalMethod method, bool weighted_sums, const EvaluateMemory& memory);
// One line: "evaluation plan: 10,000 resamples in 1 batch of 10,000, 1000 models in 1 batch; host 1.90 GB of a
// 120.00 GB budget, device 8.00 GB of a 138.00 GB budget (...)".
std::string describe(const EvaluatePlan& plan);
// The plan as the JSON's `plan` object (batch sizes and counts, bytes and budgets).
nlohmann::json evaluate_plan_json(const EvaluatePlan& plan);

}  // namespace rsa

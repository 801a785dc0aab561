// The memory plan of `rsa_gpu evaluate`'s resamples (evaluate_plan.h): what one batch of resamples and models
// allocates on the host and (GPU weighted sums) on the device, the largest batches that fit the budgets, the one-line
// description and the JSON object.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/evaluate_plan.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/rdm_plan.h"

namespace rsa {

EvaluateMemory host_evaluate_memory(uint64_t cap_bytes) {
    EvaluateMemory m;
    m.host_bytes = host_memory_budget();
    m.cap_bytes = cap_bytes;
    m.name = "host budget " + host_budget_text();
    if (cap_bytes > 0) m.name += "; capped by --max-gpu-mem at " + format_bytes(cap_bytes);
    return m;
}

EvaluateMemory evaluate_memory(Backend& backend, uint64_t cap_bytes) {
    EvaluateMemory m = host_evaluate_memory(cap_bytes);
    if (backend.is_gpu()) {
        const PlanMemory dev = backend.rdm_memory(0, 0);  // the device's free memory (no RDM input)
        m.gpu = true;
        m.device_bytes = dev.free_bytes;
        m.name = dev.name + " (" + format_bytes(dev.free_bytes) + " free); " + m.name;
    }
    return m;
}

namespace {

constexpr uint64_t kD = sizeof(double);
// The blocking of the weighted sums' engines (evaluate.h): the CPU twin's dtrmm rows and product matrices, the GPU's
// resample chunk and pair block.
constexpr uint64_t kCpuRows = kEvalTwinResampleRows, kCpuProductBytes = kEvalTwinProductBytes;
constexpr uint64_t kGpuChunk = kEvalResampleChunk, kGpuPairBlock = kEvalPairBlock;

struct Sizes {
    uint64_t S, K, M, P, N, perms;
};

// Moments per resample of a batch of mb models (WeightedMoments: n, sx, G, sy, syy, C), in doubles.
uint64_t moments_per_resample(const Sizes& z, uint64_t mb) { return 1 + z.K + z.K * z.K + 2 * mb + z.K * mb; }

// What one batch of mb models allocates on the host besides its resamples' counts and moments: the weighted sums'
// copies and work matrices, or (other methods, and the permutations) one resample's expanded vectors.
uint64_t host_fixed(const Sizes& z, uint64_t mb, bool weighted, bool gpu) {
    const uint64_t slice = mb < z.M ? mb * z.P * kD : 0;  // the batch's models copied out of the whole set
    // one resample or permutation at a time: the expanded data rows and their prepared form, the batch's expanded
    // (or permuted) models, a chunk of prepared models, the covariance methods' S x S factor
    const uint64_t single = (2 * z.K * z.P + mb * z.P + std::min<uint64_t>(64, mb) * z.P + z.S * z.S) * kD;
    uint64_t bytes = (!weighted && z.N > 0) || z.perms > 0 ? single : 0;
    if (weighted && z.N > 0) {
        uint64_t sums = 0;
        if (gpu) {  // the launcher's host copies: centred data, models and squared models; the pair indices
            sums = (z.K + 2 * mb) * z.P * kD + 2 * z.P * sizeof(int32_t);
        } else {  // the CPU twin: centred copies, the product matrices (a chunk of them), the dtrmm rows
            const uint64_t products = z.K + 2 * mb + z.K * (z.K + 1) / 2 + z.K * mb;
            const uint64_t per_product = z.S * z.S * kD;
            const uint64_t chunk = std::max<uint64_t>(1, std::min<uint64_t>(products, kCpuProductBytes / per_product));
            sums = (z.K + mb) * z.P * kD + chunk * per_product + kCpuRows * z.S * kD;
        }
        bytes = std::max(bytes, sums);
    }
    return slice + bytes;
}

// The device buffers of one weighted-sums call with mb models (kernels/evaluate.cu).
uint64_t device_for(const Sizes& z, uint64_t mb) {
    return (z.K + 2 * mb) * z.P * kD + 2 * z.P * sizeof(int32_t) +
           (kGpuChunk * z.S + 2 * kGpuChunk * std::min<uint64_t>(kGpuPairBlock, z.P) +
            kGpuChunk * moments_per_resample(z, mb)) *
               kD;
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

std::string count_text(uint64_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

EvaluatePlan plan_evaluate(int64_t S, int64_t K, int64_t M, int64_t resamples, int64_t permutations,
                           EvalMethod method, bool weighted_sums, const EvaluateMemory& memory) {
    if (S < 3 || K < 1 || M < 1 || resamples < 0 || permutations < 0)
        throw InputError("evaluate plan: bad sizes (" + std::to_string(S) + " patterns, " + std::to_string(K) +
                         " data RDMs, " + std::to_string(M) + " models, " + std::to_string(resamples) + " resamples)");
    const Sizes z{static_cast<uint64_t>(S), static_cast<uint64_t>(K), static_cast<uint64_t>(M),
                  static_cast<uint64_t>(S) * static_cast<uint64_t>(S - 1) / 2, static_cast<uint64_t>(resamples),
                  static_cast<uint64_t>(permutations)};
    EvaluatePlan p;
    p.S = S;
    p.K = K;
    p.M = M;
    p.resamples = resamples;
    p.permutations = permutations;
    p.weighted = weighted_sums && (method == EvalMethod::Corr || method == EvalMethod::Cosine);
    p.gpu = memory.gpu && p.weighted;  // only the weighted sums run on the device
    p.memory = memory.name;
    p.host_budget_bytes = memory.cap_bytes ? std::min(memory.host_bytes, memory.cap_bytes) : memory.host_bytes;
    p.device_budget_bytes = p.gpu ? device_plan_budget(memory.device_bytes, memory.cap_bytes) : 0;
    // held throughout: the data and model vectors, the samples (evaluations and noise ceilings), the permutation nulls
    p.host_resident_bytes = ((z.K + z.M) * z.P + z.N * (z.M + 2) + z.perms * z.M) * kD;
    const uint64_t avail = p.host_budget_bytes > p.host_resident_bytes ? p.host_budget_bytes - p.host_resident_bytes : 0;
    const uint64_t wanted = p.weighted ? std::min<uint64_t>(z.N, 64) : std::min<uint64_t>(z.N, 1);

    // the largest resample batch of mb models that fits (0: none), with the batch's host bytes
    auto fit = [&](uint64_t mb, uint64_t* host) -> uint64_t {
        if (p.gpu && device_for(z, mb) > p.device_budget_bytes) return 0;
        const uint64_t fixed = host_fixed(z, mb, p.weighted, p.gpu);
        if (fixed > avail) return 0;
        const uint64_t per = p.weighted ? (z.S + moments_per_resample(z, mb)) * kD : 0;
        const uint64_t r = z.N == 0 ? 0 : p.weighted ? std::min<uint64_t>(z.N, (avail - fixed) / per) : 1;
        if (z.N > 0 && r == 0) return 0;
        *host = fixed + r * per;
        return std::max<uint64_t>(r, 1);  // no resamples (permutations only): "fits"
    };
    uint64_t mb = 0, rb = 0, host = 0;
    for (uint64_t batches = 1;; batches *= 2) {
        const uint64_t m = ceil_div(z.M, std::min(batches, z.M));
        uint64_t h = 0;
        const uint64_t r = fit(m, &h);
        if (r > 0 && (r >= wanted || m == 1)) {
            mb = m;
            rb = r;
            host = h;
            break;
        }
        if (m == 1) break;
    }
    if (mb == 0) {
        std::ostringstream os;
        os << "evaluate: " << M << " model(s) against " << K << " data RDM(s) of " << S
           << " patterns do not fit the memory budget even one model and one resample at a time: the RDM vectors and "
              "samples need "
           << format_bytes(p.host_resident_bytes) << " and one batch "
           << format_bytes(host_fixed(z, 1, p.weighted, p.gpu) +
                           (p.weighted ? (z.S + moments_per_resample(z, 1)) * kD : 0))
           << " of a host budget of " << format_bytes(p.host_budget_bytes);
        if (p.gpu)
            os << ", and " << format_bytes(device_for(z, 1)) << " of a device budget of "
               << format_bytes(p.device_budget_bytes);
        os << " (" << memory.name << "). Use fewer models, patterns or resamples, free memory"
           << (memory.cap_bytes ? ", or raise --max-gpu-mem." : ", or run on a machine with more memory.");
        throw InputError(os.str());
    }
    p.model_batch = static_cast<int64_t>(mb);
    p.model_batches = static_cast<int64_t>(ceil_div(z.M, mb));
    p.resample_batch = z.N == 0 ? 0 : static_cast<int64_t>(rb);
    p.resample_batches = z.N == 0 ? 0 : static_cast<int64_t>(ceil_div(z.N, rb));
    p.host_batch_bytes = host;
    p.device_bytes = p.gpu ? device_for(z, mb) : 0;
    return p;
}

std::string describe(const EvaluatePlan& p) {
    std::ostringstream os;
    os << "evaluation plan: ";
    if (p.resamples > 0) {
        os << count_text(p.resamples, "resample", "resamples");
        if (p.weighted)
            os << " in " << count_text(p.resample_batches, "batch", "batches") << " of " << p.resample_batch
               << " (weighted sums" << (p.gpu ? " on the device)" : ")");
        else
            os << " one at a time";
    } else {
        os << "no resamples";
    }
    if (p.permutations > 0) os << ", " << count_text(p.permutations, "permutation", "permutations");
    os << "; " << count_text(p.M, "model", "models") << " in " << count_text(p.model_batches, "batch", "batches")
       << " of " << p.model_batch << "; host " << format_bytes(p.host_resident_bytes + p.host_batch_bytes)
       << " (batch " << format_bytes(p.host_batch_bytes) << ") of a " << format_bytes(p.host_budget_bytes)
       << " budget";
    if (p.gpu) os << ", device " << format_bytes(p.device_bytes) << " of a " << format_bytes(p.device_budget_bytes)
                  << " budget";
    return os.str();
}

nlohmann::json evaluate_plan_json(const EvaluatePlan& p) {
    return {{"resamples", p.resamples},
            {"resample_batch", p.resample_batch},
            {"resample_batches", p.resample_batches},
            {"permutations", p.permutations},
            {"models", p.M},
            {"model_batch", p.model_batch},
            {"model_batches", p.model_batches},
            {"weighted_sums", p.weighted},
            {"device", p.gpu},
            {"host_resident_bytes", p.host_resident_bytes},
            {"host_batch_bytes", p.host_batch_bytes},
            {"host_budget_bytes", p.host_budget_bytes},
            {"device_bytes", p.device_bytes},
            {"device_budget_bytes", p.device_budget_bytes},
            {"memory", p.memory},
            {"line", describe(p)}};
}

}  // namespace rsa

// The plan of an RDM (rdm_plan.h): precision parsing and TF32 rounding, the memory plan (one-shot, streamed or tiled
// against a memory budget) and its description.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/rdm_plan.h"

namespace rsa {

// ---------------------------------------------------------------- precision
Precision parse_precision(const std::string& text) {
    if (text == "fp32") return Precision::FP32;
    if (text == "tf32") return Precision::TF32;
    throw InputError("unknown precision '" + text + "': expected fp32 or tf32");
}

const char* precision_name(Precision p) { return p == Precision::TF32 ? "tf32" : "fp32"; }

float round_to_tf32(float x) {
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;  // Inf and NaN unchanged
    const uint32_t lsb = (u >> 13) & 1u;            // round to nearest, ties to even on bit 13
    u += 0x0fffu + lsb;
    u &= 0xffffe000u;
    float r;
    std::memcpy(&r, &u, sizeof r);
    return r;
}

void round_to_tf32(float* x, size_t n) {
    for (size_t i = 0; i < n; ++i) x[i] = round_to_tf32(x[i]);
}

const char* rdm_kind_name(RdmKind k) { return k == RdmKind::Euclidean ? "euclidean" : "correlation"; }

// ---------------------------------------------------------------- memory plan
const char* plan_kind_name(PlanKind k) {
    switch (k) {
        case PlanKind::OneShot: return "one-shot";
        case PlanKind::Streamed: return "streamed";
        case PlanKind::Tiled: return "tiled";
    }
    return "?";
}

const char* place_name(Place p) {
    switch (p) {
        case Place::Device: return "device";
        case Place::Host: return "host memory";
        case Place::PinnedHost: return "pinned host memory";
        case Place::Disk: return "disk";
    }
    return "?";
}

std::string format_bytes(uint64_t bytes) {
    char buf[64];
    const double b = static_cast<double>(bytes);
    if (b >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
    else if (b >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
    else if (b >= 1e3) std::snprintf(buf, sizeof buf, "%.1f KB", b / 1e3);
    else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
    return buf;
}

namespace {

constexpr uint64_t kF = sizeof(float);

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Round a block width down to a multiple of 32 columns (aligned copies) when that keeps it >= 64.
int64_t align_block(int64_t k, int64_t n) {
    k = std::min(k, n);
    if (k >= 64 && k < n) k = k / 32 * 32;
    return k;
}

}  // namespace

uint64_t device_plan_budget(uint64_t device_free_bytes, uint64_t max_gpu_bytes) {
    const uint64_t margin = std::max<uint64_t>(64ull << 20, device_free_bytes / 50);
    uint64_t budget = device_free_bytes > margin ? device_free_bytes - margin : 0;
    if (max_gpu_bytes > 0) budget = std::min(budget, max_gpu_bytes);
    return budget;
}

MemoryPlan plan_rdm(int64_t S, int64_t N, uint64_t max_gpu_bytes, uint64_t device_free_bytes, PlanKind min_kind) {
    if (S <= 0 || N <= 0) throw InputError("plan_rdm: empty input (" + std::to_string(S) + " x " + std::to_string(N) + ")");
    const uint64_t budget = device_plan_budget(device_free_bytes, max_gpu_bytes);
    const uint64_t s = static_cast<uint64_t>(S), n = static_cast<uint64_t>(N);
    const uint64_t stats = s * kRowStatBytes, output = s * s * kF, input = s * n * kF;

    MemoryPlan p;
    p.stimuli = S;
    p.neurons = N;
    p.input_bytes = input;
    p.output_bytes = output;
    p.budget_bytes = budget;

    // One-shot: the input copied once, z-scored in place, SYRK into the output, all on the device.
    if (min_kind == PlanKind::OneShot && input + output + stats <= budget) {
        p.kind = PlanKind::OneShot;
        p.neuron_block = N;
        p.row_tile = S;
        p.input_place = Place::Device;
        p.workspace_bytes = stats;  // z overwrites the input copy
        p.output_place = Place::Device;
        p.device_bytes = input + output + stats;
        return p;
    }
    // Streamed: two device blocks of S x K (copy of block k+1 overlaps z-score + SYRK of block k, each
    // z-scored in place) and two pinned staging blocks on the host; the output stays on the device.
    const int64_t min_stream_block = std::min<int64_t>(N, 64);
    if (min_kind != PlanKind::Tiled && output + stats + 2 * s * kF <= budget) {
        const int64_t k = align_block(static_cast<int64_t>((budget - output - stats) / (2 * s * kF)), N);
        if (k >= min_stream_block) {
            p.kind = PlanKind::Streamed;
            p.streamed = true;
            p.neuron_block = k;
            p.neuron_blocks = ceil_div(N, k);
            p.row_tile = S;
            p.input_place = Place::Host;
            p.workspace_bytes = 2 * s * static_cast<uint64_t>(k) * kF + stats;
            p.staging_bytes = 2 * s * static_cast<uint64_t>(k) * kF;
            p.output_place = Place::Device;
            p.device_bytes = output + p.workspace_bytes;
            return p;
        }
    }
    // Tiled: output tiles of T x T (two device buffers, read back through two pinned buffers) written to a
    // memory-mapped file; per tile the z-scored row blocks (T x K, two) from two raw copy buffers (T x K).
    // Prefer the largest T (the input is re-read about S / T times), then the widest K.
    auto device_for = [&](uint64_t t, uint64_t k) { return stats + 4 * t * k * kF + 2 * t * t * kF; };
    int64_t best_t = 0, best_k = 0;
    const int64_t wanted_k = std::min<int64_t>(N, 256);
    for (int pass = 0; pass < 2 && best_t == 0; ++pass) {
        for (int64_t t = std::min<int64_t>(S, 8192); t >= 1; t /= 2) {
            const uint64_t tt = static_cast<uint64_t>(t);
            if (device_for(tt, 1) > budget) continue;
            const int64_t kmax = static_cast<int64_t>((budget - stats - 2 * tt * tt * kF) / (4 * tt * kF));
            if (kmax >= (pass == 0 ? wanted_k : 1)) {
                best_t = t;
                best_k = align_block(kmax, N);
                break;
            }
        }
    }
    if (best_t == 0) {
        std::ostringstream os;
        os << "the RDM of " << S << " x " << N << " does not fit the device budget of " << format_bytes(budget)
           << " even as 1 x 1 tiles (row statistics alone need " << format_bytes(stats)
           << "); raise --max-gpu-mem or free device memory";
        throw RuntimeError(os.str());
    }
    p.kind = PlanKind::Tiled;
    p.streamed = best_k < N;
    p.tiled = true;
    p.neuron_block = best_k;
    p.neuron_blocks = ceil_div(N, best_k);
    p.row_tile = best_t;
    p.row_tiles = ceil_div(S, best_t);
    p.input_place = Place::Host;
    p.workspace_bytes = device_for(static_cast<uint64_t>(best_t), static_cast<uint64_t>(best_k));
    p.staging_bytes = (2 * static_cast<uint64_t>(best_t) * best_k + 2 * static_cast<uint64_t>(best_t) * best_t) * kF;
    p.output_place = Place::Disk;
    p.device_bytes = device_for(static_cast<uint64_t>(best_t), static_cast<uint64_t>(best_k));
    return p;
}

std::string describe(const MemoryPlan& p) {
    std::ostringstream os;
    const int64_t last_block = p.neurons - (p.neuron_blocks - 1) * p.neuron_block;
    const int64_t last_tile = p.stimuli - (p.row_tiles - 1) * p.row_tile;
    os << "plan:      " << plan_kind_name(p.kind) << " RDM of " << p.stimuli << " stimuli x " << p.neurons
       << " neurons";
    if (p.kind == PlanKind::Streamed || p.neuron_blocks > 1)
        os << ", " << p.neuron_blocks << " neuron block" << (p.neuron_blocks == 1 ? "" : "s") << " of "
           << p.neuron_block << " (last " << last_block << ")";
    if (p.tiled)
        os << ", " << p.row_tiles << " x " << p.row_tiles << " row tiles of " << p.row_tile << " (last "
           << last_tile << "), upper " << p.row_tiles * (p.row_tiles + 1) / 2 << " computed";
    os << "\n";
    os << "input:     " << format_bytes(p.input_bytes) << " fp32 in " << place_name(p.input_place);
    if (p.input_place != Place::Device)
        os << ", copied to the device in blocks through " << format_bytes(p.staging_bytes) << " of "
           << place_name(Place::PinnedHost);
    else
        os << " (z-scored in place)";
    os << "\n";
    os << "workspace: " << format_bytes(p.workspace_bytes) << " on the " << place_name(p.workspace_place)
       << " (" << (p.kind == PlanKind::OneShot ? "row statistics" : p.tiled ? "copy and z blocks, two output tiles, row statistics"
                                                                           : "two input blocks, row statistics")
       << ")\n";
    os << "output:    " << format_bytes(p.output_bytes) << " (" << p.stimuli << " x " << p.stimuli << " fp32) ";
    if (p.output_place == Place::Disk)
        os << "on disk (memory-mapped .npy, written tile by tile)";
    else
        os << "on the device, then copied to host memory";
    os << "\n";
    os << "device:    " << format_bytes(p.device_bytes) << " of a " << format_bytes(p.budget_bytes) << " budget\n";
    return os.str();
}

}  // namespace rsa

// The throughput benchmark's workloads, in one place: `rsa_gpu bench` (host/commands/cmd_bench.cpp) runs them and
// the developer programs in bench/ reuse their pieces (timing, seeded data, the tutorial analysis), so a number in
// bench/RESULTS.md and a user's `rsa_gpu bench` come from the same code.
//
// Workload groups (each runs through the Backend, on any device):
//   rdm          the correlation RDM (compute_rdm, rdm_engine.h) of each S x N size in FP32 and TF32, one-shot and
//                streamed under a memory cap (the cap is chosen so that plan_rdm picks the streamed plan)
//   train        the tutorial CNN's training (Backend::cnn_train), images/s at batch 100 and 1,000 (on a GPU for
//                both --cnn-kernels paths: train_batchN cudnn, train_exact_batchN exact)
//   tutorial     the whole tutorial analysis (run_job_stages, analysis_stages.h: training, read-out, RDMs,
//                comparison; statistics off, V1 generation not counted)
//   compare      Pearson, Spearman, Kendall tau-a and cosine of two RDMs (Backend::compare)
//   cka          linear CKA of two response matrices, plain and debiased (Backend::cka)
//   bootstrap    stimulus bootstrap of three models (Backend::bootstrap), resamples/s at a small and a large S
//   permutation  permutation test of three models (Backend::permutation), permutations/s at the same sizes
//
// Method (../shared/spec/performance.md): seeded random data (never zeros); untimed warm-up runs; inputs rotated
// through copies that together exceed 128 MiB (larger than any L2) when one is smaller; the median and the spread
// (min, max) of the timed repeats. Time is wall clock around Backend calls that return host values (they
// synchronise the device), so a GPU figure includes launch and read-back overheads; host/ has no CUDA and so no
// CUDA events. Each workload counts its work (FLOP, bytes, images, resamples) and its floor: the larger of
// FLOP / peak and bytes / bandwidth on this device (device_floor), and reports floor time / measured time.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/matrix.h"

namespace rsa::bench {

// ---------------------------------------------------------------- timing
using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Timing {
    std::vector<double> seconds;  // every timed repeat, in order
    double median = 0, min = 0, max = 0;
};
Timing summarise(std::vector<double> seconds);
// `warmup` untimed runs of f, then `repeats` timed ones; f(i) gets the run's index (warm-up runs first, from 0), so
// it can rotate its inputs. f may return a time of its own (seconds, e.g. a stage of a longer call) or a negative
// value to be timed from outside.
Timing time_runs(int warmup, int repeats, const std::function<double(int)>& f);
// The number of input copies to rotate through: 1 when one copy is at least kRotateBytes, else enough copies to
// reach kRotateBytes together (2 to 8).
constexpr uint64_t kRotateBytes = 128ull << 20;
int rotation_copies(uint64_t bytes_per_copy);

// ---------------------------------------------------------------- seeded data
// S x N responses: uniform noise in [0, 1) plus 0.5 x one of 32 shared patterns (stimulus s takes pattern s % 32),
// so the RDM has structure; a counter-based generator, filled on all cores, the same for a seed on every machine.
Matrix random_responses(int64_t S, int64_t N, uint64_t seed);
// Symmetric S x S RDMs with zero diagonals and values in [0, 2]: ref = 2u, model k = 2 (c_k u + (1 - c_k) v_k)
// with u, v_k uniform per pair, so model k correlates with ref by about c_k.
void random_rdms(int64_t S, uint64_t seed, const std::vector<double>& c, Matrix& ref, std::vector<Matrix>& models);

// ---------------------------------------------------------------- the device and its floor
struct DeviceFloor {
    bool known = false;          // false: a card not in the table (fractions are then null)
    double fp32_flops = 0;       // FLOP/s
    double tf32_flops = 0;       // FLOP/s (tensor cores; the CPU twin computes TF32 in FP32)
    double fp64_flops = 0;       // FLOP/s
    double mem_bytes_per_s = 0;  // device memory bandwidth
    double link_bytes_per_s = 0; // host to device (GPU), 0 on the CPU
    std::string basis;           // how these were obtained, in words
};
struct MachineInfo {
    std::string device;      // Backend::name()
    bool gpu = false;
    std::string card;        // the GPU's name, or the CPU model
    std::string driver;      // the CUDA driver/runtime lines, or "none (CPU)"
    std::string cpu;         // /proc/cpuinfo model name
    int cores = 0;           // CPUs this process may run on
    double cpu_mhz = 0;      // nominal clock from /proc/cpuinfo
    int vector_bits = 0;     // widest FP vector unit from the CPU flags (128, 256, 512)
    std::string os;          // PRETTY_NAME of /etc/os-release
    double load_average = 0; // 1-minute load average at the start (/proc/loadavg): other work on the machine
    std::string versions;    // version_report(): rsa_gpu, OpenBLAS (and its kernels), CUDA libraries
    DeviceFloor floor;
};
// Facts of this machine and the backend's device. On the CPU the memory bandwidth is measured (memcpy of 128 MiB,
// best of 3, read and write counted); the GPU's figures come from the table of known cards (gpu_floor).
MachineInfo machine_info(Backend& backend);
// The peaks of a card from its name ("H100", "H200", "A100", ...), known = false for others.
DeviceFloor gpu_floor(const std::string& card_name);
// The CPU's peaks: cores x clock x (vector bits / 32) x 2 (FMA) x 2 FMA units (assumed: every AVX2/AVX-512 server
// core since Haswell has two; some have one, and turbo clocks can exceed the nominal one).
DeviceFloor cpu_floor(int cores, double mhz, int vector_bits, double mem_bytes_per_s);

// ---------------------------------------------------------------- workloads
const std::vector<std::string>& workload_groups();  // rdm, train, tutorial, compare, cka, bootstrap, permutation

struct BenchConfig {
    bool quick = false;                                   // smaller sizes (under 30 s on a 2-core CPU)
    int repeats = 3;                                      // timed repeats per workload (after the warm-up)
    std::vector<std::pair<int64_t, int64_t>> rdm_sizes;   // S x N of the RDM workloads (empty: the default)
    std::vector<std::string> groups;                      // empty: every group
    uint64_t seed = 1;
    std::function<void(const std::string&)> say;          // progress lines (may be empty)
};

struct WorkloadResult {
    std::string name;            // e.g. rdm_fp32_oneshot_4598x23589, compare_spearman_s4598, bootstrap_s500
    std::string group;           // one of workload_groups()
    nlohmann::json params;       // the sizes and settings (also what the peers get)
    Timing timing;               // seconds per run
    double work = 0;             // units of `unit` per run (rate = work / median)
    std::string unit;            // "FLOP/s", "images/s", "analyses/s", "pairs/s", "resamples/s", "permutations/s"
    double rate = 0;
    double floor_s = 0;          // the floor time of one run (0 when unknown)
    double floor_fraction = -1;  // floor_s / median (-1: unknown, JSON null)
    std::string floor_basis;     // how floor_s was counted
    std::string note;            // anything the reader should know (the plan, what is excluded)
    std::map<std::string, double> peers;            // peer name -> our speed-up (peer time / our time for the same work)
    std::map<std::string, double> peer_seconds;     // peer name -> the peer's median seconds for `work`
    std::map<std::string, std::string> peer_notes;  // peer name -> why there is no ratio (or a caveat)
};

// Runs the chosen groups on `backend` (check_interrupt between runs); on_done sees each result as it finishes.
std::vector<WorkloadResult> run_workloads(Backend& backend, const MachineInfo& machine, const BenchConfig& config,
                                          const std::function<void(const WorkloadResult&)>& on_done = {});

// ---------------------------------------------------------------- growth (--sweep)
struct SweepPoint {
    int64_t S = 0, N = 0;
    std::string axis;   // "S" (N fixed) or "N" (S fixed)
    double median_s = 0, min_s = 0, max_s = 0, flops = 0;
    std::string plan;   // plan kind that ran (one-shot, streamed)
};
struct PlanTakeover {
    int64_t N = 0;
    int64_t streamed_from_S = 0;  // smallest S (at this N) whose plan is streamed under the backend's memory (0: none up to the search limit)
    int64_t tiled_from_S = 0;     // smallest S whose plan is tiled (0: none)
    std::string memory;           // which memory the plans were made against
};
struct SweepResult {
    std::vector<SweepPoint> points;
    double exponent_S = 0, exponent_N = 0;  // least-squares slopes of log(time) on log(S) and log(N)
    PlanTakeover takeover;
};
SweepResult run_sweep(Backend& backend, const BenchConfig& config);

// ---------------------------------------------------------------- output
nlohmann::json result_json(const WorkloadResult& r);
// {"tool", "version", "machine": {...}, "config": {...}, "workloads": [...], "sweep": {...} (when run)}.
nlohmann::json bench_json(const MachineInfo& machine, const BenchConfig& config,
                          const std::vector<WorkloadResult>& results, const SweepResult* sweep,
                          const nlohmann::json& peers_info);
std::string bench_table(const MachineInfo& machine, const std::vector<WorkloadResult>& results,
                        const std::vector<std::string>& peers);
std::string bench_csv(const std::vector<WorkloadResult>& results);
std::string sweep_csv(const SweepResult& sweep);
std::string format_rate(double rate, const std::string& unit);  // "344.1 GFLOP/s", "41,671 images/s"

// ---------------------------------------------------------------- pieces the bench/ programs share
// Training throughput: cnn_train of the tutorial's training set at `batch` for `epochs` epochs (one run) through
// `kernels`' GPU path (the CPU twin ignores it).
struct TrainRun {
    double seconds = 0, images_per_s = 0;
    float last_loss = 0;
};
TrainRun train_once(Backend& backend, int batch, int epochs, CnnKernels kernels);
// The whole tutorial analysis once (run_job_stages on the embedded synthetic V1 recording with `neurons` neurons,
// `epochs` epochs, statistics off): seconds without the V1 generation stage, and the pool and fc correlations.
struct TutorialRun {
    double seconds = 0, v1_seconds = 0, r_pool = 0, r_fc = 0;
};
TutorialRun tutorial_once(Backend& backend, int epochs, int64_t neurons);
// FLOP of one training image per step (forward and weight gradients; no input gradient), counted in the source.
double train_flops_per_image();

}  // namespace rsa::bench

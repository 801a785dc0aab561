// The throughput benchmark's workloads (bench_workloads.h): timing, seeded data, the device's floor, every workload
// group through the Backend, the RDM growth sweep, and the JSON / CSV / table of the results.
#include "rsa_gpu/bench_workloads.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "rsa_gpu/analysis.h"
#include "rsa_gpu/analysis_stages.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/grating.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/measures.h"
#include "rsa_gpu/rdm_engine.h"
#include "rsa_gpu/stats.h"

namespace rsa::bench {

// ---------------------------------------------------------------- timing

Timing summarise(std::vector<double> seconds) {
    Timing t;
    t.seconds = seconds;
    if (seconds.empty()) return t;
    std::sort(seconds.begin(), seconds.end());
    const size_t n = seconds.size();
    t.median = n % 2 ? seconds[n / 2] : 0.5 * (seconds[n / 2 - 1] + seconds[n / 2]);
    t.min = seconds.front();
    t.max = seconds.back();
    return t;
}

Timing time_runs(int warmup, int repeats, const std::function<double(int)>& f) {
    std::vector<double> s;
    for (int i = 0; i < warmup + repeats; ++i) {
        check_interrupt("the benchmark");
        const auto t0 = Clock::now();
        const double own = f(i);
        const double wall = seconds_since(t0);
        if (i >= warmup) s.push_back(own >= 0 ? own : wall);
    }
    return summarise(std::move(s));
}

int rotation_copies(uint64_t bytes_per_copy) {
    if (bytes_per_copy >= kRotateBytes) return 1;
    const uint64_t n = (kRotateBytes + bytes_per_copy - 1) / std::max<uint64_t>(bytes_per_copy, 1);
    return static_cast<int>(std::clamp<uint64_t>(n, 2, 8));
}

// ---------------------------------------------------------------- seeded data

namespace {

inline uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
inline float unit_float(uint64_t h) { return static_cast<float>(h >> 40) * (1.0f / 16777216.0f); }  // [0, 1)

int usable_cores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

// Runs body(begin, end) over [0, n) split across the usable cores.
void parallel_rows(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
    const int threads = static_cast<int>(std::min<int64_t>(usable_cores(), std::max<int64_t>(n, 1)));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] { body(n * t / threads, n * (t + 1) / threads); });
    for (auto& th : pool) th.join();
}

}  // namespace

Matrix random_responses(int64_t S, int64_t N, uint64_t seed) {
    Matrix x(S, N, 0.0f);
    const uint64_t base = splitmix64(seed ^ 0x5eedull);
    parallel_rows(S, [&](int64_t r0, int64_t r1) {
        for (int64_t s = r0; s < r1; ++s) {
            const uint64_t row_key = splitmix64(base + static_cast<uint64_t>(s));
            const uint64_t pattern_key = splitmix64(base ^ (0xabcdull + static_cast<uint64_t>(s % 32)));
            float* row = x.data.data() + s * N;
            for (int64_t n = 0; n < N; ++n) {
                const float noise = unit_float(splitmix64(row_key + static_cast<uint64_t>(n)));
                const float shared = unit_float(splitmix64(pattern_key + static_cast<uint64_t>(n)));
                row[n] = noise + 0.5f * shared;
            }
        }
    });
    return x;
}

void random_rdms(int64_t S, uint64_t seed, const std::vector<double>& c, Matrix& ref, std::vector<Matrix>& models) {
    ref = Matrix(S, S, 0.0f);
    models.assign(c.size(), Matrix(S, S, 0.0f));
    const uint64_t base = splitmix64(seed ^ 0x7d11ull);
    parallel_rows(S, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i)
            for (int64_t j = i + 1; j < S; ++j) {
                const uint64_t key = splitmix64(base + static_cast<uint64_t>(i * S + j));
                const float u = unit_float(key);
                ref.at(i, j) = 2.0f * u;
                for (size_t k = 0; k < c.size(); ++k) {
                    const float v = unit_float(splitmix64(key + 0x1000 + k));
                    const float ck = static_cast<float>(c[k]);
                    models[k].at(i, j) = std::min(2.0f, 2.0f * (ck * u + (1.0f - ck) * v));
                }
            }
    });
    parallel_rows(S, [&](int64_t r0, int64_t r1) {  // mirror
        for (int64_t i = r0; i < r1; ++i)
            for (int64_t j = 0; j < i; ++j) {
                ref.at(i, j) = ref.at(j, i);
                for (auto& m : models) m.at(i, j) = m.at(j, i);
            }
    });
}

// ---------------------------------------------------------------- the device and its floor

DeviceFloor gpu_floor(const std::string& card) {
    struct Known {
        const char* match;
        double fp32, tf32, fp64, mem, link;  // TFLOP/s, TFLOP/s, TFLOP/s, TB/s, GB/s
    };
    // Datasheet dense peaks (no sparsity); FP64 without tensor cores. Order matters: the first match wins.
    static const Known table[] = {
        {"H200", 66.9, 495, 33.5, 4.8, 50},      {"H100 PCIe", 51.2, 378, 25.6, 2.0, 50},
        {"H100", 66.9, 495, 33.5, 3.35, 50},     {"A100-SXM4-80GB", 19.5, 156, 9.7, 2.039, 25},
        {"A100 80GB", 19.5, 156, 9.7, 1.935, 25}, {"A100", 19.5, 156, 9.7, 1.555, 25},
        {"L40S", 91.6, 183, 1.4, 0.864, 25},     {"L4", 30.3, 60, 0.49, 0.3, 25},
        {"A10", 31.2, 62.5, 0.98, 0.6, 25},      {"RTX 4090", 82.6, 82.6, 1.3, 1.008, 25},
        {"V100", 15.7, 15.7, 7.8, 0.9, 12},
    };
    DeviceFloor f;
    for (const Known& k : table) {
        if (card.find(k.match) == std::string::npos) continue;
        f.known = true;
        f.fp32_flops = k.fp32 * 1e12;
        f.tf32_flops = k.tf32 * 1e12;
        f.fp64_flops = k.fp64 * 1e12;
        f.mem_bytes_per_s = k.mem * 1e12;
        f.link_bytes_per_s = k.link * 1e9;
        char b[320];
        std::snprintf(b, sizeof b,
                      "table of known cards (datasheet dense peaks) matched by '%s': FP32 %.1f TFLOP/s, TF32 %.0f "
                      "TFLOP/s, FP64 %.1f TFLOP/s, memory %.2f TB/s, host link %.0f GB/s",
                      k.match, k.fp32, k.tf32, k.fp64, k.mem, k.link);
        f.basis = b;
        return f;
    }
    f.basis = "'" + card + "' is not in the table of known cards (bench_workloads.cpp, gpu_floor): no floor";
    return f;
}

DeviceFloor cpu_floor(int cores, double mhz, int vector_bits, double mem_bytes_per_s) {
    DeviceFloor f;
    f.known = cores > 0 && mhz > 0 && vector_bits > 0;
    const double lanes32 = vector_bits / 32.0;
    f.fp32_flops = cores * mhz * 1e6 * lanes32 * 2 /*FMA*/ * 2 /*units*/;
    f.tf32_flops = f.fp32_flops;
    f.fp64_flops = f.fp32_flops / 2;
    f.mem_bytes_per_s = mem_bytes_per_s;
    char b[400];
    std::snprintf(b, sizeof b,
                  "%d cores x %.0f MHz (nominal, /proc/cpuinfo) x %d-bit vectors (%g FP32 lanes) x 2 (FMA) x 2 FMA "
                  "units (assumed) = %.1f GFLOP/s FP32, %.1f FP64 (TF32 runs as FP32 on the CPU); memory %.1f GB/s "
                  "measured (memcpy of 128 MiB on every core, best of 3, read + write); turbo clocks can exceed "
                  "the nominal one",
                  cores, mhz, vector_bits, lanes32, f.fp32_flops * 1e-9, f.fp64_flops * 1e-9, mem_bytes_per_s * 1e-9);
    f.basis = b;
    return f;
}

namespace {

std::string read_file_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// memcpy bandwidth over 128 MiB split across the cores, best of 3, read + write bytes counted.
double measure_copy_bandwidth(int cores) {
    const size_t n = (128ull << 20) / sizeof(float);
    std::vector<float> a(n), b(n);
    for (size_t i = 0; i < n; ++i) a[i] = static_cast<float>(i % 1021) + 0.5f;
    double best = 1e30;
    for (int rep = 0; rep < 4; ++rep) {
        const auto t0 = Clock::now();
        std::vector<std::thread> pool;
        for (int t = 0; t < cores; ++t)
            pool.emplace_back([&, t] {
                const size_t lo = n * t / cores, hi = n * (t + 1) / cores;
                std::memcpy(b.data() + lo, a.data() + lo, (hi - lo) * sizeof(float));
            });
        for (auto& th : pool) th.join();
        if (rep > 0) best = std::min(best, seconds_since(t0));  // the first run faults the pages in
    }
    return 2.0 * static_cast<double>(n * sizeof(float)) / best;
}

}  // namespace

MachineInfo machine_info(Backend& backend) {
    MachineInfo m;
    m.device = backend.name();
    m.gpu = backend.is_gpu();
    m.cores = usable_cores();
    const std::string cpuinfo = read_file_text("/proc/cpuinfo");
    std::istringstream lines(cpuinfo);
    std::string line, flags;
    while (std::getline(lines, line)) {
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string key = line.substr(0, colon), value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
        while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
        if (key == "model name" && m.cpu.empty()) m.cpu = value;
        if (key == "cpu MHz") m.cpu_mhz = std::max(m.cpu_mhz, std::atof(value.c_str()));
        if (key == "flags" && flags.empty()) flags = " " + value + " ";
    }
    m.vector_bits = flags.find(" avx512f ") != std::string::npos ? 512
                    : flags.find(" avx2 ") != std::string::npos || flags.find(" avx ") != std::string::npos ? 256
                    : flags.find(" sse2 ") != std::string::npos ? 128
                                                                : 0;
    // A model name that states its clock ("... @ 2.30GHz") is the nominal clock; prefer it over the current one.
    const size_t at = m.cpu.find(" @ ");
    if (at != std::string::npos) {
        const double ghz = std::atof(m.cpu.c_str() + at + 3);
        if (ghz > 0) m.cpu_mhz = ghz * 1000.0;
    }
    const std::string os = read_file_text("/etc/os-release");
    const size_t p = os.find("PRETTY_NAME=");
    if (p != std::string::npos) {
        std::string v = os.substr(p + 12, os.find('\n', p) - p - 12);
        v.erase(std::remove(v.begin(), v.end(), '"'), v.end());
        m.os = v;
    }
    std::istringstream load(read_file_text("/proc/loadavg"));
    load >> m.load_average;
    m.versions = version_report(m.gpu);
    if (m.gpu) {
        const size_t l = m.device.find('('), r = m.device.rfind(')');
        m.card = l != std::string::npos && r > l ? m.device.substr(l + 1, r - l - 1) : m.device;
        std::istringstream vs(m.versions);
        while (std::getline(vs, line))
            if (line.rfind("CUDA", 0) == 0) m.driver += (m.driver.empty() ? "" : "; ") + line;
        m.floor = gpu_floor(m.card);
    } else {
        m.card = m.cpu;
        m.driver = "none (CPU run)";
        m.floor = cpu_floor(m.cores, m.cpu_mhz, m.vector_bits, measure_copy_bandwidth(m.cores));
    }
    return m;
}

// ---------------------------------------------------------------- workloads

const std::vector<std::string>& workload_groups() {
    static const std::vector<std::string> g = {"rdm", "train", "tutorial", "compare", "cka", "bootstrap", "permutation"};
    return g;
}

double train_flops_per_image() {
    using namespace cnn;
    const double conv = 2.0 * kHeight * kWidth * kChannels * kKernel * kKernel;  // forward convolution
    const double fc = 2.0 * kPooled * kHidden + 2.0 * kHidden;                   // fc and out layers
    // Forward, then weight gradients of the same size (the input's gradient is not needed), plus the fc layers'
    // input gradient (ReLU, pooling and the loss are negligible).
    return 2 * conv + 3 * fc;
}

TrainRun train_once(Backend& backend, int batch, int epochs, CnnKernels kernels) {
    TrainConfig cfg;
    cfg.epochs = epochs;
    cfg.batch = batch;
    cfg.kernels = kernels;
    std::vector<float> angles, labels;
    cnn_training_set(cfg, &angles, &labels);
    const Array images = backend.gratings(angles, GratingParams{});
    std::vector<float> params = cnn_init_params(cfg.seed);
    const auto t0 = Clock::now();
    const TrainResult r = backend.cnn_train(params, images, labels, cfg, nullptr);
    TrainRun run;
    run.seconds = seconds_since(t0);
    run.images_per_s = static_cast<double>(cfg.train_size) * epochs / run.seconds;
    run.last_loss = r.epoch_losses.empty() ? NAN : r.epoch_losses.back();
    return run;
}

TutorialRun tutorial_once(Backend& backend, int epochs, int64_t neurons) {
    AnalysisConfig cfg;
    cfg.train.epochs = epochs;
    cfg.synthetic.neurons = neurons;
    cfg.bootstrap = 0;
    cfg.permutations = 0;
    cfg.quiet = true;
    cfg.no_figures = true;
    check_analysis_config(cfg);
    const auto t0 = Clock::now();
    const JobState job = run_job_stages(backend, cfg, [](const std::string&) {});
    TutorialRun run;
    const double total = seconds_since(t0);
    const auto v1 = job.results.timings_ms.find("v1_data_ms");
    run.v1_seconds = v1 == job.results.timings_ms.end() ? 0.0 : v1->second * 1e-3;
    run.seconds = total - run.v1_seconds;
    for (const CorrelationRow& row : job.results.correlations) {
        if (row.measure != "pearson") continue;
        if (row.layer == "pool") run.r_pool = row.value;
        if (row.layer == "fc") run.r_fc = row.value;
    }
    return run;
}

namespace {

struct Sizes {
    std::vector<std::pair<int64_t, int64_t>> rdm;
    int train_epochs;
    int tutorial_epochs;
    int64_t tutorial_neurons;
    int64_t compare_S;
    int64_t cka_S, cka_N1, cka_N2;
    int64_t stat_S[2];
    int boot_R[2], perm_P[2];
};

Sizes sizes_for(const BenchConfig& c, bool gpu) {
    Sizes z{};
    if (c.quick) {
        z.rdm = {{1000, 4000}};
        z.train_epochs = 2;
        z.tutorial_epochs = 2;
        z.tutorial_neurons = 2000;
        z.compare_S = 1000;
        z.cka_S = 1000, z.cka_N1 = 512, z.cka_N2 = 128;
        z.stat_S[0] = 200, z.stat_S[1] = 1000;
        z.boot_R[0] = gpu ? 1000 : 200, z.boot_R[1] = gpu ? 1000 : 20;
        z.perm_P[0] = gpu ? 1000 : 200, z.perm_P[1] = gpu ? 200 : 10;
    } else {
        z.rdm = {{4598, 23589}};
        z.train_epochs = 25;
        z.tutorial_epochs = 25;
        z.tutorial_neurons = 23589;
        z.compare_S = 4598;
        z.cka_S = 4598, z.cka_N1 = 2048, z.cka_N2 = 512;
        z.stat_S[0] = 500, z.stat_S[1] = 4598;
        z.boot_R[0] = gpu ? 10000 : 1000, z.boot_R[1] = gpu ? 10000 : 100;
        z.perm_P[0] = gpu ? 10000 : 1000, z.perm_P[1] = gpu ? 1000 : 20;
    }
    if (!c.rdm_sizes.empty()) z.rdm = c.rdm_sizes;
    return z;
}

std::string size_text(int64_t S, int64_t N) { return std::to_string(S) + "x" + std::to_string(N); }

// floor_s from work counts: the larger of FLOP / peak and bytes / bandwidth (and host-link bytes / link).
void set_floor(WorkloadResult& r, const DeviceFloor& f, double flops, double peak, const char* peak_name,
               double bytes, double link_bytes = 0) {
    if (!f.known || peak <= 0) {
        r.floor_basis = "unknown device peak";
        return;
    }
    const double t_flop = flops / peak;
    const double t_mem = f.mem_bytes_per_s > 0 ? bytes / f.mem_bytes_per_s : 0;
    const double t_link = f.link_bytes_per_s > 0 ? link_bytes / f.link_bytes_per_s : 0;
    r.floor_s = std::max({t_flop, t_mem, t_link});
    char b[320];
    if (r.floor_s == t_link && t_link > 0)
        std::snprintf(b, sizeof b, "host link: %.3g bytes at %.0f GB/s (FLOP floor %.3g s at the %s peak)",
                      link_bytes, f.link_bytes_per_s * 1e-9, t_flop, peak_name);
    else if (r.floor_s == t_mem && t_mem > t_flop)
        std::snprintf(b, sizeof b, "memory: %.3g bytes at %.1f GB/s", bytes, f.mem_bytes_per_s * 1e-9);
    else
        std::snprintf(b, sizeof b, "%.3g FLOP at the %s peak %.1f GFLOP/s", flops, peak_name, peak * 1e-9);
    r.floor_basis = b;
}

void finish(WorkloadResult& r, const Timing& t) {
    r.timing = t;
    r.rate = t.median > 0 ? r.work / t.median : 0;
    r.floor_fraction = r.floor_s > 0 && t.median > 0 ? r.floor_s / t.median : -1;
}

// The memory cap under which plan_rdm streams an S x N input in about four neuron blocks (0: not possible).
uint64_t streamed_cap(int64_t S, int64_t N) {
    const uint64_t s = static_cast<uint64_t>(S), n = static_cast<uint64_t>(N);
    const uint64_t k = std::max<uint64_t>(64, (n + 3) / 4);
    if (2 * k >= n) return 0;  // too few neurons to split
    return s * s * 4 + s * kRowStatBytes + 2 * s * k * 4 + 4096;
}

class Runner {
public:
    Runner(Backend& b, const MachineInfo& m, const BenchConfig& c, const std::function<void(const WorkloadResult&)>& d)
        : be_(b), m_(m), c_(c), done_(d), z_(sizes_for(c, b.is_gpu())) {}

    std::vector<WorkloadResult> run() {
        const auto want = [&](const char* g) {
            return c_.groups.empty() || std::find(c_.groups.begin(), c_.groups.end(), g) != c_.groups.end();
        };
        if (want("rdm")) rdm();
        if (want("train")) train();
        if (want("tutorial")) tutorial();
        if (want("compare")) compare();
        if (want("cka")) cka();
        if (want("bootstrap")) stats(true);
        if (want("permutation")) stats(false);
        return std::move(out_);
    }

private:
    Backend& be_;
    const MachineInfo& m_;
    const BenchConfig& c_;
    const std::function<void(const WorkloadResult&)>& done_;
    Sizes z_;
    std::vector<WorkloadResult> out_;

    void say(const std::string& s) {
        if (c_.say) c_.say(s);
    }
    void add(WorkloadResult r) {
        if (done_) done_(r);
        out_.push_back(std::move(r));
    }
    // Warm-up runs: one, or on a GPU one per rotated copy (its first use uploads it; the upload is kept).
    int warmup(int copies) const { return be_.is_gpu() ? std::max(1, copies) : 1; }

    void rdm() {
        for (const auto& [S, N] : z_.rdm) {
            const uint64_t bytes = static_cast<uint64_t>(S) * static_cast<uint64_t>(N) * 4;
            const int copies = rotation_copies(bytes);
            say("rdm " + size_text(S, N) + ": generating " + std::to_string(copies) + " seeded input(s)");
            std::vector<Array> xs;
            for (int i = 0; i < copies; ++i) xs.emplace_back(random_responses(S, N, c_.seed + static_cast<uint64_t>(i)));
            for (Precision p : {Precision::FP32, Precision::TF32})
                for (bool streamed : {false, true}) {
                    WorkloadResult r;
                    r.group = "rdm";
                    r.name = std::string("rdm_") + precision_name(p) + (streamed ? "_streamed_" : "_oneshot_") +
                             size_text(S, N);
                    RdmOptions opt;
                    opt.precision = p;
                    if (streamed) {
                        opt.max_gpu_bytes = streamed_cap(S, N);
                        if (opt.max_gpu_bytes == 0) {
                            say(r.name + ": skipped (too few neurons to stream in blocks)");
                            continue;
                        }
                    }
                    const MemoryPlan plan = plan_backend_rdm(S, N, be_.rdm_memory(S, N), opt, "the benchmark input");
                    r.params = {{"S", S}, {"N", N}, {"precision", precision_name(p)}, {"plan", plan_kind_name(plan.kind)},
                                {"neuron_blocks", plan.neuron_blocks}, {"cap_bytes", opt.max_gpu_bytes},
                                {"copies", copies}};
                    r.work = static_cast<double>(S) * static_cast<double>(S + 1) * static_cast<double>(N);
                    r.unit = "FLOP/s";
                    const double io = static_cast<double>(bytes) + static_cast<double>(S) * S * 4;
                    const bool tf = p == Precision::TF32;
                    set_floor(r, m_.floor, r.work, tf ? m_.floor.tf32_flops : m_.floor.fp32_flops, tf ? "TF32" : "FP32",
                              io);
                    std::string ran;
                    const Timing t = time_runs(warmup(copies), c_.repeats, [&](int i) {
                        const RdmResult res = compute_rdm(be_, xs[static_cast<size_t>(i % copies)], opt, "the benchmark input");
                        ran = plan_kind_name(res.plan.kind);
                        return -1.0;
                    });
                    r.params["plan"] = ran;
                    r.note = std::string("plan ") + ran + (streamed ? " (" + std::to_string(plan.neuron_blocks) +
                                                                         " neuron blocks under a cap of " +
                                                                         format_bytes(opt.max_gpu_bytes) + ")"
                                                                   : "") +
                             (be_.is_gpu() && !plan.streamed ? "; input resident on the device" : "") +
                             (be_.is_gpu() && plan.streamed
                                  ? "; the GPU engine keeps an input that fits half the free device memory resident "
                                    "(row_moments uploads it), so the blocks are read from that copy, not the host"
                                  : "");
                    finish(r, t);
                    add(std::move(r));
                }
        }
    }

    // On a GPU both training paths (--cnn-kernels): train_batchN the default cuDNN one, train_exact_batchN the
    // exact one; on the CPU the one twin.
    void train() {
        std::vector<CnnKernels> paths = {CnnKernels::cudnn};
        if (be_.is_gpu()) paths.push_back(CnnKernels::exact);
        for (CnnKernels kernels : paths) {
            for (int batch : {100, 1000}) {
                WorkloadResult r;
                r.group = "train";
                r.name = std::string(kernels == CnnKernels::exact ? "train_exact_batch" : "train_batch") +
                         std::to_string(batch);
                const int epochs = z_.train_epochs;
                r.params = {{"batch", batch}, {"epochs", epochs}, {"train_size", 1000}};
                if (be_.is_gpu()) r.params["kernels"] = cnn_kernels_name(kernels);
                r.work = 1000.0 * epochs;
                r.unit = "images/s";
                set_floor(r, m_.floor, r.work * train_flops_per_image(), m_.floor.fp32_flops, "FP32", 0);
                float loss = 0;
                const Timing t = time_runs(1, c_.repeats, [&](int) {
                    const TrainRun run = train_once(be_, batch, epochs, kernels);
                    loss = run.last_loss;
                    return run.seconds;
                });
                char b[160];
                std::snprintf(b, sizeof b, "1,000 tutorial gratings x %d epochs; last epoch loss %.3g; gratings drawn "
                              "outside the timing", epochs, loss);
                r.note = b;
                finish(r, t);
                add(std::move(r));
            }
        }
    }

    void tutorial() {
        WorkloadResult r;
        r.group = "tutorial";
        r.name = "tutorial_analysis";
        const int epochs = z_.tutorial_epochs;
        const int64_t neurons = z_.tutorial_neurons;
        r.params = {{"epochs", epochs}, {"neurons", neurons}, {"stimuli", 181}, {"layers", {"pool", "fc"}}};
        r.work = 1.0;
        r.unit = "analyses/s";
        const double S = 181;
        const double flops = 1000.0 * epochs * train_flops_per_image() + S * train_flops_per_image() / 2 +
                             S * (S + 1) * (static_cast<double>(neurons) + cnn::kPooled + cnn::kHidden);
        set_floor(r, m_.floor, flops, m_.floor.fp32_flops, "FP32", S * static_cast<double>(neurons) * 4);
        TutorialRun last;
        std::vector<double> v1s;
        const Timing t = time_runs(1, c_.repeats, [&](int) {
            last = tutorial_once(be_, epochs, neurons);
            v1s.push_back(last.v1_seconds);
            return last.seconds;
        });
        char b[240];
        std::snprintf(b, sizeof b,
                      "run_job_stages: training, read-out, RDMs of V1/pool/fc/pixels, Pearson; statistics off; the "
                      "V1 generation stage (%.2f s) not counted; pool r = %.3f, fc r = %.3f",
                      summarise(v1s).median, last.r_pool, last.r_fc);
        r.note = b;
        finish(r, t);
        add(std::move(r));
    }

    void compare() {
        const int64_t S = z_.compare_S;
        const uint64_t bytes = static_cast<uint64_t>(S) * S * 4 * 2;
        const int copies = rotation_copies(bytes);
        say("compare S=" + std::to_string(S) + ": generating " + std::to_string(copies) + " seeded RDM pair(s)");
        std::vector<Array> refs, models;
        for (int i = 0; i < copies; ++i) {
            Matrix ref;
            std::vector<Matrix> ms;
            random_rdms(S, c_.seed + 100 + static_cast<uint64_t>(i), {0.6}, ref, ms);
            refs.emplace_back(std::move(ref));
            models.emplace_back(std::move(ms[0]));
        }
        const double pairs = static_cast<double>(S) * (S - 1) / 2;
        for (Measure m : {Measure::Pearson, Measure::Spearman, Measure::Kendall, Measure::Cosine}) {
            WorkloadResult r;
            r.group = "compare";
            r.name = std::string("compare_") + measure_name(m) + "_s" + std::to_string(S);
            r.params = {{"S", S}, {"measure", measure_name(m)}, {"pairs", static_cast<int64_t>(pairs)}, {"copies", copies}};
            r.work = pairs;
            r.unit = "pairs/s";
            // Floor: reading both strict upper triangles once (Spearman and Kendall also sort: far above it).
            set_floor(r, m_.floor, 2 * pairs, m_.floor.fp32_flops, "FP32", pairs * 8);
            double value = 0;
            const Timing t = time_runs(warmup(copies), c_.repeats, [&](int i) {
                const size_t k = static_cast<size_t>(i % copies);
                value = be_.compare(refs[k], {models[k]}, {m})[0][0].value;
                return -1.0;
            });
            char b[120];
            std::snprintf(b, sizeof b, "two seeded RDMs (r about 0.8); value %.4f", value);
            r.note = b;
            finish(r, t);
            add(std::move(r));
        }
    }

    void cka() {
        const int64_t S = z_.cka_S, N1 = z_.cka_N1, N2 = z_.cka_N2;
        const uint64_t bytes = static_cast<uint64_t>(S) * static_cast<uint64_t>(N1 + N2) * 4;
        const int copies = rotation_copies(bytes);
        std::vector<Array> xs, ys;
        for (int i = 0; i < copies; ++i) {
            xs.emplace_back(random_responses(S, N1, c_.seed + 200 + static_cast<uint64_t>(i)));
            ys.emplace_back(random_responses(S, N2, c_.seed + 300 + static_cast<uint64_t>(i)));
        }
        WorkloadResult r;
        r.group = "cka";
        r.name = "cka_s" + std::to_string(S);
        r.params = {{"S", S}, {"N1", N1}, {"N2", N2}, {"copies", copies}};
        const double s = static_cast<double>(S);
        r.work = s * (s + 1) * static_cast<double>(N1 + N2) + 8 * s * s;  // two Gram matrices, centring and sums
        r.unit = "FLOP/s";
        set_floor(r, m_.floor, r.work, m_.floor.fp32_flops, "FP32", static_cast<double>(bytes) + 2 * s * s * 4);
        CkaResult v;
        const Timing t = time_runs(warmup(copies), c_.repeats, [&](int i) {
            const size_t k = static_cast<size_t>(i % copies);
            v = be_.cka(xs[k], ys[k]);
            return -1.0;
        });
        char b[120];
        std::snprintf(b, sizeof b, "plain and debiased together (Gram form); CKA %.4f, debiased %.4f", v.plain, v.debiased);
        r.note = b;
        finish(r, t);
        add(std::move(r));
    }

    void stats(bool bootstrap) {
        const std::vector<double> cs = {0.6, 0.4, 0.2};
        for (int k = 0; k < 2; ++k) {
            const int64_t S = z_.stat_S[k];
            const int count = bootstrap ? z_.boot_R[k] : z_.perm_P[k];
            const uint64_t bytes = static_cast<uint64_t>(S) * S * 4 * 4;
            const int copies = rotation_copies(bytes);
            std::vector<Array> refs;
            std::vector<std::vector<Array>> models(static_cast<size_t>(copies));
            for (int i = 0; i < copies; ++i) {
                Matrix ref;
                std::vector<Matrix> ms;
                random_rdms(S, c_.seed + 400 + static_cast<uint64_t>(i), cs, ref, ms);
                refs.emplace_back(std::move(ref));
                for (auto& m : ms) models[static_cast<size_t>(i)].emplace_back(std::move(m));
            }
            WorkloadResult r;
            r.group = bootstrap ? "bootstrap" : "permutation";
            r.name = r.group + "_s" + std::to_string(S);
            r.params = {{"S", S}, {"models", 3}, {bootstrap ? "resamples" : "permutations", count}, {"copies", copies}};
            r.work = count;
            r.unit = bootstrap ? "resamples/s" : "permutations/s";
            const bool gpu = be_.is_gpu();
            const double peak = gpu ? m_.floor.fp32_flops : m_.floor.fp64_flops;
            const char* peak_name = gpu ? "FP32" : "FP64";
            if (bootstrap) {
                // The cost model of stats.h: R x S^2 x (2 + 3 L) multiply-adds, 2 FLOP each.
                set_floor(r, m_.floor, 2 * count * bootstrap_cost_per_resample(S, 3), peak, peak_name,
                          static_cast<double>(bytes));
            } else {
                const double visits = count * permutation_cost_per_permutation(S, 3);
                set_floor(r, m_.floor, 2 * visits, peak, peak_name, visits * 4);  // one gathered float per visit
            }
            std::string note;
            const Timing t = time_runs(warmup(copies), c_.repeats, [&](int i) {
                const size_t c = static_cast<size_t>(i % copies);
                if (bootstrap) {
                    const BootstrapResult b = be_.bootstrap(refs[c], models[c], count, c_.seed + static_cast<uint64_t>(i), 0);
                    char s[120];
                    std::snprintf(s, sizeof s, "3 models; 95%% interval of model 1 [%.3f, %.3f]", b.lo[0], b.hi[0]);
                    note = s;
                } else {
                    const auto p = be_.permutation(refs[c], models[c], count, c_.seed + static_cast<uint64_t>(i), 0);
                    char s[120];
                    std::snprintf(s, sizeof s, "3 models; r_obs of model 1 %.3f, p = %.3g", p[0].r_obs, p[0].p_value);
                    note = s;
                }
                return -1.0;
            });
            r.note = note;
            finish(r, t);
            add(std::move(r));
        }
    }
};

}  // namespace

std::vector<WorkloadResult> run_workloads(Backend& backend, const MachineInfo& machine, const BenchConfig& config,
                                          const std::function<void(const WorkloadResult&)>& on_done) {
    return Runner(backend, machine, config, on_done).run();
}

// ---------------------------------------------------------------- growth (--sweep)

namespace {

double slope(const std::vector<double>& x, const std::vector<double>& y) {
    const double n = static_cast<double>(x.size());
    if (x.size() < 2) return NAN;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        sx += x[i], sy += y[i], sxx += x[i] * x[i], sxy += x[i] * y[i];
    }
    const double d = n * sxx - sx * sx;
    return d != 0 ? (n * sxy - sx * sy) / d : NAN;
}

// The smallest S (at N) whose plan under the backend's memory is at least `kind` (0: none up to 2^24).
int64_t first_S_with(Backend& be, int64_t N, PlanKind kind) {
    const auto kind_at = [&](int64_t S) {
        const PlanMemory m = be.rdm_memory(S, N);
        try {
            return plan_rdm(S, N, 0, m.free_bytes).kind;
        } catch (const std::exception&) {
            return PlanKind::Tiled;  // not even tiles fit: past the point
        }
    };
    int64_t hi = 4;
    while (hi <= (int64_t{1} << 24) && static_cast<int>(kind_at(hi)) < static_cast<int>(kind)) hi *= 2;
    if (hi > (int64_t{1} << 24)) return 0;
    int64_t lo = hi / 2;  // kind_at(lo) < kind <= kind_at(hi)
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        (static_cast<int>(kind_at(mid)) < static_cast<int>(kind) ? lo : hi) = mid;
    }
    return hi;
}

}  // namespace

SweepResult run_sweep(Backend& be, const BenchConfig& c) {
    std::vector<int64_t> s_values, n_values;
    int64_t n_fixed, s_fixed;
    if (be.is_gpu()) {
        s_values = c.quick ? std::vector<int64_t>{512, 1024, 2048, 4096} : std::vector<int64_t>{1024, 2048, 4096, 8192, 16384};
        n_values = c.quick ? std::vector<int64_t>{2048, 4096, 8192, 16384} : std::vector<int64_t>{4096, 8192, 16384, 32768, 65536};
        n_fixed = c.quick ? 8192 : 23589;
        s_fixed = c.quick ? 2048 : 4096;
    } else {
        s_values = c.quick ? std::vector<int64_t>{250, 500, 1000, 2000} : std::vector<int64_t>{500, 1000, 2000, 4000};
        n_values = c.quick ? std::vector<int64_t>{1000, 2000, 4000, 8000} : std::vector<int64_t>{2000, 4000, 8000, 16000};
        n_fixed = c.quick ? 2000 : 8000;
        s_fixed = c.quick ? 1000 : 2000;
    }
    SweepResult out;
    const auto point = [&](int64_t S, int64_t N, const char* axis) {
        if (c.say) c.say("sweep: RDM " + size_text(S, N));
        const int copies = rotation_copies(static_cast<uint64_t>(S) * static_cast<uint64_t>(N) * 4);
        std::vector<Array> xs;
        for (int i = 0; i < copies; ++i) xs.emplace_back(random_responses(S, N, c.seed + 500 + static_cast<uint64_t>(i)));
        SweepPoint p;
        p.S = S, p.N = N, p.axis = axis;
        p.flops = static_cast<double>(S) * (S + 1) * static_cast<double>(N);
        const Timing t = time_runs(be.is_gpu() ? copies : 1, c.repeats, [&](int i) {
            const Array& x = xs[static_cast<size_t>(i % copies)];
            p.plan = plan_kind_name(compute_rdm(be, x, RdmOptions{}, "the sweep input").plan.kind);
            return -1.0;
        });
        p.median_s = t.median, p.min_s = t.min, p.max_s = t.max;
        out.points.push_back(p);
    };
    std::vector<double> lx, ly;
    for (int64_t S : s_values) {
        point(S, n_fixed, "S");
        lx.push_back(std::log(static_cast<double>(S)));
        ly.push_back(std::log(out.points.back().median_s));
    }
    out.exponent_S = slope(lx, ly);
    lx.clear(), ly.clear();
    for (int64_t N : n_values) {
        point(s_fixed, N, "N");
        lx.push_back(std::log(static_cast<double>(N)));
        ly.push_back(std::log(out.points.back().median_s));
    }
    out.exponent_N = slope(lx, ly);
    out.takeover.N = n_fixed;
    out.takeover.streamed_from_S = first_S_with(be, n_fixed, PlanKind::Streamed);
    out.takeover.tiled_from_S = first_S_with(be, n_fixed, PlanKind::Tiled);
    out.takeover.memory = be.rdm_memory(s_values.back(), n_fixed).name;
    return out;
}

// ---------------------------------------------------------------- output

std::string format_rate(double rate, const std::string& unit) {
    char b[64];
    if (unit == "FLOP/s") {
        if (rate >= 1e12) std::snprintf(b, sizeof b, "%.2f TFLOP/s", rate * 1e-12);
        else std::snprintf(b, sizeof b, "%.1f GFLOP/s", rate * 1e-9);
    } else if (rate >= 1e9) {
        std::snprintf(b, sizeof b, "%.2fG %s", rate * 1e-9, unit.c_str());
    } else if (rate >= 1e6) {
        std::snprintf(b, sizeof b, "%.2fM %s", rate * 1e-6, unit.c_str());
    } else if (rate >= 100) {
        std::snprintf(b, sizeof b, "%.0f %s", rate, unit.c_str());
    } else {
        std::snprintf(b, sizeof b, "%.3g %s", rate, unit.c_str());
    }
    return b;
}

nlohmann::json result_json(const WorkloadResult& r) {
    nlohmann::json j = {{"name", r.name},
                        {"group", r.group},
                        {"params", r.params},
                        {"median_s", r.timing.median},
                        {"min_s", r.timing.min},
                        {"max_s", r.timing.max},
                        {"repeats", r.timing.seconds.size()},
                        {"seconds", r.timing.seconds},
                        {"work", r.work},
                        {"rate", r.rate},
                        {"unit", r.unit},
                        {"floor_s", r.floor_s > 0 ? nlohmann::json(r.floor_s) : nlohmann::json(nullptr)},
                        {"floor_fraction", r.floor_fraction >= 0 ? nlohmann::json(r.floor_fraction) : nlohmann::json(nullptr)},
                        {"floor_basis", r.floor_basis},
                        {"note", r.note},
                        {"peers", r.peers},
                        {"peer_seconds", r.peer_seconds},
                        {"peer_notes", r.peer_notes}};
    return j;
}

nlohmann::json bench_json(const MachineInfo& m, const BenchConfig& c, const std::vector<WorkloadResult>& results,
                          const SweepResult* sweep, const nlohmann::json& peers_info) {
    nlohmann::json machine = {{"device", m.device},
                              {"card", m.card},
                              {"driver", m.driver},
                              {"cpu", m.cpu},
                              {"cores", m.cores},
                              {"cpu_mhz", m.cpu_mhz},
                              {"vector_bits", m.vector_bits},
                              {"os", m.os},
                              {"load_average", m.load_average},
                              {"versions", m.versions},
                              {"floor",
                               {{"known", m.floor.known},
                                {"fp32_flops", m.floor.fp32_flops},
                                {"tf32_flops", m.floor.tf32_flops},
                                {"fp64_flops", m.floor.fp64_flops},
                                {"mem_bytes_per_s", m.floor.mem_bytes_per_s},
                                {"link_bytes_per_s", m.floor.link_bytes_per_s},
                                {"basis", m.floor.basis}}}};
    nlohmann::json wl = nlohmann::json::array();
    for (const auto& r : results) wl.push_back(result_json(r));
    nlohmann::json j = {{"tool", "rsa_gpu bench"},
                        {"version", RSA_GPU_VERSION},
                        {"timing", "wall clock around Backend calls that return host values (they synchronise the "
                                   "device); median, min and max of the timed repeats after a warm-up"},
                        {"machine", machine},
                        {"config", {{"quick", c.quick}, {"repeats", c.repeats}, {"seed", c.seed}}},
                        {"peers", peers_info},
                        {"workloads", wl}};
    if (sweep) {
        nlohmann::json pts = nlohmann::json::array();
        for (const auto& p : sweep->points)
            pts.push_back({{"S", p.S}, {"N", p.N}, {"axis", p.axis}, {"median_s", p.median_s}, {"min_s", p.min_s},
                           {"max_s", p.max_s}, {"flops", p.flops}, {"plan", p.plan}});
        j["sweep"] = {{"points", pts},
                      {"exponent_S", sweep->exponent_S},
                      {"exponent_N", sweep->exponent_N},
                      {"takeover",
                       {{"N", sweep->takeover.N},
                        {"streamed_from_S", sweep->takeover.streamed_from_S},
                        {"tiled_from_S", sweep->takeover.tiled_from_S},
                        {"memory", sweep->takeover.memory}}}};
    }
    return j;
}

std::string bench_table(const MachineInfo& m, const std::vector<WorkloadResult>& results,
                        const std::vector<std::string>& peers) {
    std::ostringstream os;
    char head[256];
    std::snprintf(head, sizeof head, " (%d CPU cores: %s; load average %.2f at the start)\n", m.cores, m.cpu.c_str(),
                  m.load_average);
    os << "rsa_gpu bench on " << m.device << head;
    os << "floor: " << m.floor.basis << "\n";
    char b[512];
    std::snprintf(b, sizeof b, "%-34s %10s %18s %8s %7s", "workload", "median", "rate", "spread", "floor");
    os << b;
    for (const auto& p : peers) {
        std::snprintf(b, sizeof b, " %10s", ("vs " + p).c_str());
        os << b;
    }
    os << "\n";
    for (const auto& r : results) {
        const double spread = r.timing.median > 0 ? (r.timing.max - r.timing.min) / r.timing.median : 0;
        char frac[32];
        if (r.floor_fraction >= 0) std::snprintf(frac, sizeof frac, "%.1f%%", 100 * r.floor_fraction);
        else std::snprintf(frac, sizeof frac, "-");
        char med[32];
        if (r.timing.median >= 1) std::snprintf(med, sizeof med, "%.3f s", r.timing.median);
        else std::snprintf(med, sizeof med, "%.2f ms", r.timing.median * 1e3);
        std::snprintf(b, sizeof b, "%-34s %10s %18s %7.0f%% %7s", r.name.c_str(), med, format_rate(r.rate, r.unit).c_str(),
                      100 * spread, frac);
        os << b;
        for (const auto& p : peers) {
            const auto it = r.peers.find(p);
            if (it != r.peers.end()) std::snprintf(b, sizeof b, " %9.2fx", it->second);
            else std::snprintf(b, sizeof b, " %10s", "-");
            os << b;
        }
        os << "\n";
    }
    os << "spread: (max - min) / median of the repeats; floor: the floor time / the median (performance.md); "
          "vs <peer>: our speed-up over the peer on the same work (peer time / our time)";
    return os.str();
}

std::string bench_csv(const std::vector<WorkloadResult>& results) {
    std::ostringstream os;
    os << "name,group,median_s,min_s,max_s,repeats,work,rate,unit,floor_s,floor_fraction,peer,peer_speedup\n";
    char b[512];
    for (const auto& r : results) {
        std::snprintf(b, sizeof b, "%s,%s,%.6g,%.6g,%.6g,%zu,%.6g,%.6g,%s,%.6g,%s,", r.name.c_str(), r.group.c_str(),
                      r.timing.median, r.timing.min, r.timing.max, r.timing.seconds.size(), r.work, r.rate,
                      r.unit.c_str(), r.floor_s,
                      r.floor_fraction >= 0 ? std::to_string(r.floor_fraction).c_str() : "");
        os << b;
        // the peers as two ';'-separated lists: names and our speed-ups over them
        std::string names, values;
        for (const auto& [k, v] : r.peers) {
            names += (names.empty() ? "" : ";") + k;
            char x[32];
            std::snprintf(x, sizeof x, "%s%.4g", values.empty() ? "" : ";", v);
            values += x;
        }
        os << names << "," << values << "\n";
    }
    return os.str();
}

std::string sweep_csv(const SweepResult& s) {
    std::ostringstream os;
    os << "axis,S,N,median_s,min_s,max_s,flops,plan\n";
    char b[256];
    for (const auto& p : s.points) {
        std::snprintf(b, sizeof b, "%s,%lld,%lld,%.6g,%.6g,%.6g,%.6g,%s\n", p.axis.c_str(), static_cast<long long>(p.S),
                      static_cast<long long>(p.N), p.median_s, p.min_s, p.max_s, p.flops, p.plan.c_str());
        os << b;
    }
    return os.str();
}

}  // namespace rsa::bench

// `rsa_gpu bench`: the standard throughput workloads (bench_workloads.h) on the chosen device, with the peers
// (numpy, PyTorch, rsatoolbox: tools/bench_peer.py in a child Python process) measured in the same run, the RDM's
// growth (--sweep, plotted by tools/bench_plot.py), a table on the terminal, one JSON object (--json) and an output
// folder (--out: bench.json, bench.csv, sweep.csv, sweep.png).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "commands.h"
#include "rsa_gpu/bench_workloads.h"
#include "rsa_gpu/child_process.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/output_dir.h"
#include "rsa_gpu/rdm_engine.h"

namespace rsa::commands {

namespace {

const std::vector<std::string> kPeers = {"numpy", "torch", "rsatoolbox"};

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
    return s;
}

// --sizes: "4598x23589,1000x4000"; S 3 to 1,000,000, N 1 to 100,000,000.
std::vector<std::pair<int64_t, int64_t>> parse_sizes(const std::string& text) {
    std::vector<std::pair<int64_t, int64_t>> sizes;
    for (const std::string& item : split_list(text, "--sizes", "4598x23589,1000x4000")) {
        const size_t x = item.find_first_of("xX");
        const auto number = [&](const std::string& t, long long lo, long long hi, const char* what) {
            char* end = nullptr;
            errno = 0;
            const long long v = std::strtoll(t.c_str(), &end, 10);
            if (t.empty() || end == t.c_str() || *end != '\0' || t[0] == '-' || t[0] == '+')
                throw InputError("--sizes: '" + item + "' is not S x N (expected e.g. 4598x23589)");
            if (errno == ERANGE || v < lo || v > hi)
                throw InputError("--sizes: " + std::string(what) + " of '" + item + "' is out of range (" +
                                 std::to_string(lo) + " to " + std::to_string(hi) + ")");
            return static_cast<int64_t>(v);
        };
        if (x == std::string::npos) throw InputError("--sizes: '" + item + "' is not S x N (expected e.g. 4598x23589)");
        sizes.emplace_back(number(item.substr(0, x), 3, 1000000, "S (stimuli)"),
                           number(item.substr(x + 1), 1, 100000000, "N (units)"));
    }
    return sizes;
}

std::string python_for_peers() {
    const char* env = std::getenv("RSA_GPU_PEER_PYTHON");
    return env && *env ? env : "/usr/bin/python3";
}

std::string tools_dir() {
    const char* env = std::getenv("RSA_GPU_TOOLS_DIR");
    return env && *env ? env : RSA_GPU_TOOLS_DIR;
}

// A private temporary folder, removed with its files on destruction.
struct TempDir {
    std::string path;
    TempDir() {
        const char* t = std::getenv("TMPDIR");
        std::string tmpl = std::string(t && *t ? t : "/tmp") + "/rsa_gpu_bench_XXXXXX";
        if (!::mkdtemp(tmpl.data())) throw RuntimeError("bench: cannot create a temporary folder: " + std::string(std::strerror(errno)));
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
    if (!out) throw RuntimeError("bench: cannot write " + path);
}

class BenchCommand : public Command {
public:
    void add_to(CLI::App& app) override {
        cmd_ = app.add_subcommand(
            "bench",
            "throughput benchmark: standard workloads on this device with rates, fractions of the device's floor "
            "and peers (numpy, PyTorch, rsatoolbox) measured in the same run. Times are wall clock around engine "
            "calls that return host values (they synchronise the device; no CUDA events): median and spread of the "
            "repeats after a warm-up, seeded random inputs rotated through copies larger than L2");
        add_device_and_quiet(*cmd_, device_, quiet_);
        cmd_->add_option("--workloads", workloads_,
                         "comma list of workload groups: all, rdm, train, tutorial, compare, cka, bootstrap, "
                         "permutation");
        sizes_opt_ = cmd_->add_option("--sizes", sizes_, "RDM sizes S x N, comma list (default 4598x23589; --quick 1000x4000)");
        cmd_->add_option("--repeats", repeats_, "timed repeats per workload, after the warm-up")
            ->check(integer_in(1, 1000, "an integer 1 to 1,000"));
        cmd_->add_flag("--quick", quick_, "smaller sizes: the whole run in under 30 s on a 2-core CPU");
        cmd_->add_option("--peer", peer_,
                         "peers measured in the same run (a child Python process, tools/bench_peer.py; "
                         "RSA_GPU_PEER_PYTHON names the interpreter, default /usr/bin/python3): comma list of "
                         "numpy, torch, rsatoolbox, or none; a peer that is not installed is skipped with a note");
        cmd_->add_flag("--sweep", sweep_,
                       "also the RDM over a range of S and of N: fitted exponents, where the streamed and tiled "
                       "plans take over, and a plot in --out");
        cmd_->add_flag("--json", json_, "print one JSON object (machine, workloads, peers, sweep) instead of the table");
        cmd_->add_option("--out", out_, "also write bench.json, bench.csv (and sweep.csv, sweep.png) into this folder");
        cmd_->add_flag("--force", force_, "replace an existing --out folder");
        cmd_->add_option("--seed", seed_, "seed of the random inputs")->check(seed_check());
    }

    bool chosen() const override { return static_cast<bool>(*cmd_); }
    bool heavy_blas() const override { return true; }

    int run(const std::string&) override {
        // Every option checked before any work.
        bench::BenchConfig cfg;
        cfg.quick = quick_;
        cfg.repeats = repeats_;
        cfg.seed = seed_;
        if (sizes_opt_->count() > 0) cfg.rdm_sizes = parse_sizes(sizes_);
        for (const std::string& g : split_list(workloads_, "--workloads", "rdm,compare")) {
            if (g == "all") {
                cfg.groups.clear();
                break;
            }
            const auto& all = bench::workload_groups();
            if (std::find(all.begin(), all.end(), g) == all.end())
                throw InputError("--workloads: unknown group '" + g + "' (expected all or a comma list of " +
                                 join(all) + ")");
            cfg.groups.push_back(g);
        }
        std::vector<std::string> peers;
        for (const std::string& p : split_list(peer_, "--peer", "numpy,torch")) {
            if (p == "none") continue;
            if (std::find(kPeers.begin(), kPeers.end(), p) == kPeers.end())
                throw InputError("--peer: unknown peer '" + p + "' (expected none or a comma list of " + join(kPeers) + ")");
            if (std::find(peers.begin(), peers.end(), p) == peers.end()) peers.push_back(p);
        }
        const auto say = [this](const std::string& s) {
            if (!quiet_) std::fprintf(stderr, "%s\n", s.c_str());
        };
        cfg.say = say;

        enable_progress(true);  // no progress bars inside timed runs
        auto backend = open_backend(device_, quiet_);
        std::unique_ptr<OutputDir> out;
        if (!out_.empty()) out = std::make_unique<OutputDir>(out_, force_);  // claimed before any work
        check_sizes(*backend, cfg);

        say("bench: measuring the machine");
        const bench::MachineInfo machine = bench::machine_info(*backend);
        const auto results_so_far = [&](const bench::WorkloadResult& r) {
            char b[256];
            std::snprintf(b, sizeof b, "  %-34s %10.4f s  %s", r.name.c_str(), r.timing.median,
                          bench::format_rate(r.rate, r.unit).c_str());
            say(b);
        };
        std::vector<bench::WorkloadResult> results = bench::run_workloads(*backend, machine, cfg, results_so_far);
        nlohmann::json peers_info = nlohmann::json::object();
        if (!peers.empty()) peers_info = run_peers(*backend, machine, cfg, peers, results, say);
        std::optional<bench::SweepResult> sweep;
        if (sweep_) sweep = bench::run_sweep(*backend, cfg);

        const nlohmann::json doc = bench::bench_json(machine, cfg, results, sweep ? &*sweep : nullptr, peers_info);
        if (json_) {
            std::printf("%s\n", doc.dump().c_str());
        } else {
            std::printf("%s\n", bench::bench_table(machine, results, peers).c_str());
            for (const auto& [name, info] : peers_info.items())
                if (info.contains("note") && !info["note"].get<std::string>().empty())
                    std::printf("peer %s: %s\n", name.c_str(), info["note"].get<std::string>().c_str());
            if (sweep) std::printf("%s\n", sweep_text(*sweep).c_str());
        }
        if (out) {
            out->write([&] {
                write_text(out->path("bench.json"), doc.dump(2) + "\n");
                write_text(out->path("bench.csv"), bench::bench_csv(results));
                if (sweep) {
                    write_text(out->path("sweep.csv"), bench::sweep_csv(*sweep));
                    plot_sweep(out->path("sweep.csv"), out->path("sweep.png"), say);
                }
            });
            check_interrupt("writing the results");
            out->commit();
            say("bench: results written to " + out->target() + "/");
        }
        return kExitOk;
    }

private:
    CLI::App* cmd_ = nullptr;
    CLI::Option* sizes_opt_ = nullptr;
    std::string device_ = "auto", workloads_ = "all", sizes_, peer_ = "numpy", out_;
    bool quiet_ = false, quick_ = false, sweep_ = false, json_ = false, force_ = false;
    int repeats_ = 3;
    uint64_t seed_ = 1;

    // Each RDM size must fit the device and the host without tiling to disk (the benchmark writes no RDM).
    static void check_sizes(Backend& backend, const bench::BenchConfig& cfg) {
        if (!cfg.groups.empty() && std::find(cfg.groups.begin(), cfg.groups.end(), "rdm") == cfg.groups.end()) return;
        for (const auto& [S, N] : cfg.rdm_sizes) {
            const std::string size = std::to_string(S) + "x" + std::to_string(N);
            const uint64_t bytes = static_cast<uint64_t>(S) * static_cast<uint64_t>(N) * 4;
            const uint64_t all = bytes * static_cast<uint64_t>(bench::rotation_copies(bytes));
            if (all > host_memory_budget())
                throw InputError("--sizes: " + size + " needs " + format_bytes(all) +
                                 " of host memory for its inputs; the host budget is " + host_budget_text());
            try {
                RdmOptions opt;
                plan_backend_rdm(S, N, backend.rdm_memory(S, N), opt, "the benchmark input " + size);
            } catch (const InputError& e) {
                throw InputError(std::string("--sizes: ") + e.what());
            }
        }
    }

    static std::string sweep_text(const bench::SweepResult& s) {
        std::ostringstream os;
        os << "sweep (FP32 RDM, median seconds):\n";
        char b[200];
        for (const auto& p : s.points) {
            std::snprintf(b, sizeof b, "  S=%-7lld N=%-7lld %10.4f s  %8.1f GFLOP/s  %s\n", static_cast<long long>(p.S),
                          static_cast<long long>(p.N), p.median_s, p.flops / p.median_s * 1e-9, p.plan.c_str());
            os << b;
        }
        std::snprintf(b, sizeof b, "time grows as S^%.2f (N fixed) and N^%.2f (S fixed)\n", s.exponent_S, s.exponent_N);
        os << b;
        os << "at N = " << s.takeover.N << " under " << s.takeover.memory << ": streamed from S = "
           << (s.takeover.streamed_from_S ? std::to_string(s.takeover.streamed_from_S) : "never (up to 2^24)")
           << ", tiled from S = "
           << (s.takeover.tiled_from_S ? std::to_string(s.takeover.tiled_from_S) : "never (up to 2^24)")
           << " (plan_rdm against this memory; not timed)";
        return os.str();
    }

    // tools/bench_plot.py draws sweep.png from sweep.csv (matplotlib); missing matplotlib is a note, not an error.
    static void plot_sweep(const std::string& csv, const std::string& png, const std::function<void(const std::string&)>& say) {
        const std::string script = tools_dir() + "/bench_plot.py", python = python_for_peers();
        if (access(script.c_str(), R_OK) != 0 || access(python.c_str(), X_OK) != 0) {
            say("bench: no sweep plot (" + script + " or " + python + " missing)");
            return;
        }
        TempDir tmp;
        const ChildResult r = run_child({python, script, csv, png}, {}, tmp.path + "/plot.log", "bench plot");
        if (r.interrupted) check_interrupt("the sweep plot");
        if (!(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0))
            say("bench: no sweep plot (" + describe_status(r.status) + ": " + read_text(tmp.path + "/plot.log") + ")");
    }

    // The peers in one child process: the workloads' names, groups, params and work go to tools/bench_peer.py; it
    // returns each peer's median seconds and the work it did (fewer resamples when the full count would not fit
    // its time budget). Our speed-up = our rate / the peer's rate.
    static nlohmann::json run_peers(Backend& backend, const bench::MachineInfo& machine, const bench::BenchConfig& cfg,
                                    const std::vector<std::string>& peers, std::vector<bench::WorkloadResult>& results,
                                    const std::function<void(const std::string&)>& say) {
        nlohmann::json info = nlohmann::json::object();
        const std::string script = tools_dir() + "/bench_peer.py", python = python_for_peers();
        const auto skip_all = [&](const std::string& why) {
            for (const auto& p : peers) info[p] = {{"available", false}, {"note", why}};
            say("bench: peers skipped: " + why);
            return info;
        };
        if (access(script.c_str(), R_OK) != 0) return skip_all(script + " not found (set RSA_GPU_TOOLS_DIR)");
        if (access(python.c_str(), X_OK) != 0) return skip_all(python + " not found (set RSA_GPU_PEER_PYTHON)");
        TempDir tmp;
        nlohmann::json wl = nlohmann::json::array();
        for (const auto& r : results)
            wl.push_back({{"name", r.name}, {"group", r.group}, {"params", r.params}, {"work", r.work}});
        const nlohmann::json spec = {
            {"device", backend.is_gpu() ? "cuda:" + std::to_string(backend.device()) : "cpu"},
            {"threads", machine.cores},
            {"repeats", cfg.repeats},
            {"budget_s", cfg.quick ? 2.0 : 20.0},
            {"seed", cfg.seed},
            {"peers", peers},
            {"workloads", wl}};
        write_text(tmp.path + "/spec.json", spec.dump());
        say("bench: running the peers (" + join(peers) + ") with " + python);
        const std::string log = tmp.path + "/peer.log";
        const ChildResult r =
            run_child({python, script, tmp.path + "/spec.json", tmp.path + "/peers.json"}, {}, log, "bench peers");
        if (r.interrupted) check_interrupt("the peers");
        if (!(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0)) {
            std::string tail = read_text(log);
            if (tail.size() > 600) tail = tail.substr(tail.size() - 600);
            return skip_all("bench_peer.py failed (" + describe_status(r.status) + "): " + tail);
        }
        nlohmann::json got;
        try {
            got = nlohmann::json::parse(read_text(tmp.path + "/peers.json"));
        } catch (const std::exception& e) {
            return skip_all(std::string("bench_peer.py wrote no readable results: ") + e.what());
        }
        info = got.value("peers", nlohmann::json::object());
        const nlohmann::json per = got.value("results", nlohmann::json::object());
        for (auto& w : results) {
            for (const auto& p : peers) {
                if (!per.contains(w.name) || !per[w.name].contains(p)) {
                    if (!info.contains(p) || info[p].value("available", false))
                        w.peer_notes[p] = "no " + p + " version of this workload";
                    else
                        w.peer_notes[p] = p + " not available";
                    continue;
                }
                const nlohmann::json& e = per[w.name][p];
                if (e.contains("note")) w.peer_notes[p] = e["note"].get<std::string>();
                if (!e.contains("median_s") || !e["median_s"].is_number() || !e.contains("work")) continue;
                const double s = e["median_s"].get<double>(), work = e["work"].get<double>();
                if (!(s > 0) || !(work > 0) || !(w.rate > 0)) continue;
                const double peer_rate = work / s;
                w.peers[p] = w.rate / peer_rate;
                w.peer_seconds[p] = w.work / peer_rate;
            }
        }
        return info;
    }
};

}  // namespace

std::unique_ptr<Command> make_bench_command() { return std::make_unique<BenchCommand>(); }

}  // namespace rsa::commands

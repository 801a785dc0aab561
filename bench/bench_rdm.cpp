// CPU benchmark of the RDM path at the full trial-level size (S = 4,598 x N = 23,589 by default): the CPU
// engine's row moments and z-score, its whole one-shot run (rdm_ref), OpenBLAS SSYRK alone (the floor the
// target is set against), and compute_rdm on the CPU backend (what `rsa_gpu rdm` and the Python rsa_gpu.rdm call:
// the input checks from the row moments, the plan, the run into a fresh result, the constant-result test), with its
// CPU time per call. Median of repeats after one warm-up, one line per stage; `compute_rdm` as the fourth argument
// times that stage alone (bench/bench_python_rdm.py alternates it with the Python call). Peer (numpy) in
// bench/peer_rdm_numpy.py, run together by bench/run_cpu.sh.
// Usage: bench_rdm [S N repeats [all|compute_rdm]]
#include <cblas.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_common.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/blas_setup.h"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/rdm_engine.h"


using rsa_bench::median_ms;

namespace {
// CPU seconds (user + system, every thread) this process has used so far.
double process_cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}
}  // namespace

int main(int argc, char** argv) {
    const int64_t S = argc > 1 ? std::atoll(argv[1]) : 4598, N = argc > 2 ? std::atoll(argv[2]) : 23589;
    const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
    const std::string stages = argc > 4 ? argv[4] : "all";
    if (stages != "all" && stages != "compute_rdm") {
        std::fprintf(stderr, "bench_rdm: the fourth argument is 'all' or 'compute_rdm', got '%s'\n", stages.c_str());
        return 2;
    }
    const bool all = stages == "all";
    // Seeded input of `rsa_gpu bench` (bench_workloads.h: uniform noise plus shared patterns).
    const rsa::Matrix xm = rsa::bench::random_responses(S, N, 1);
    const std::vector<float>& x = xm.data;
    std::vector<float> z, m;
    const double flops = static_cast<double>(S) * (S + 1) * N;  // SYRK: S(S+1)/2 dot products of length N
    double t_z = 0, t_blas = 0, t_all = 0;
    if (all) {
        z.resize(x.size());
        m.resize(static_cast<size_t>(S * S));
        t_z = median_ms(repeats, [&] { rsa::zscore_rows_ref(x.data(), S, N, z.data(), nullptr); });
        t_blas = median_ms(repeats, [&] {
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(S), static_cast<int>(N), 1.0f,
                        z.data(), static_cast<int>(N), 0.0f, m.data(), static_cast<int>(S));
        });
        t_all = median_ms(repeats, [&] { rsa::rdm_ref(x.data(), S, N, m.data()); });
    }
    const std::unique_ptr<rsa::Backend> cpu = rsa::make_cpu_backend();
    const rsa::Array input(xm);  // borrowed, as the Python binding borrows a numpy array
    const double cpu_before = process_cpu_seconds();
    const double t_compute = median_ms(repeats, [&] {
        const rsa::RdmResult r = rsa::compute_rdm(*cpu, input, rsa::RdmOptions{}, "bench input");
        if (r.rdm.rows() != S) std::abort();
    });
    const double cpu_compute = (process_cpu_seconds() - cpu_before) / (repeats + 1);  // the warm-up call included
    std::printf("bench_rdm (CPU twin, OpenBLAS %s kernels, %d threads) S=%lld N=%lld, median of %d\n",
                rsa::blas_corename().c_str(), openblas_get_num_threads(), static_cast<long long>(S),
                static_cast<long long>(N), repeats);
    if (all) {
        std::printf("%-28s %10.1f ms\n", "moments + z-score (double)", t_z);
        std::printf("%-28s %10.1f ms  %6.1f GFLOP/s\n", "OpenBLAS SSYRK alone", t_blas, flops / t_blas * 1e-6);
        std::printf("%-28s %10.1f ms  (%.2fx SSYRK alone)\n", "whole RDM", t_all, t_all / t_blas);
        std::printf("%-28s %10.1f ms  (%.2fx whole RDM)\n", "compute_rdm (CPU backend)", t_compute, t_compute / t_all);
    } else {
        std::printf("%-28s %10.1f ms\n", "compute_rdm (CPU backend)", t_compute);
    }
    std::printf("%-28s %10.2f s per call (user + system, all threads)\n", "compute_rdm CPU time", cpu_compute);
    if (all) std::printf("RESULT rsa_gpu_cpu_rdm_ms %.1f\n", t_all);
    std::printf("RESULT rsa_gpu_cpu_compute_rdm_ms %.1f\n", t_compute);
    std::printf("RESULT rsa_gpu_cpu_compute_rdm_cpu_s %.3f\n", cpu_compute);
    return 0;
}

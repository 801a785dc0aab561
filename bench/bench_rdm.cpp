// CPU benchmark of the RDM path at the full trial-level size (S = 4,598 x N = 23,589 by default): the CPU
// engine's row moments and z-score, its whole one-shot run (rdm_ref), OpenBLAS SSYRK alone (the floor the
// target is set against), and compute_rdm on the CPU backend (what `rsa_gpu rdm` and the Python rsa_gpu.rdm call:
// the input checks from the row moments, the plan, the run into a fresh result, the constant-result test). Median of repeats, one line per stage. Peer (numpy) in bench/peer_rdm_numpy.py, run together by
// bench/run_cpu.sh. Usage: bench_rdm [S N repeats]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "bench_common.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/rdm_engine.h"


using rsa_bench::median_ms;

int main(int argc, char** argv) {
    const int64_t S = argc > 1 ? std::atoll(argv[1]) : 4598, N = argc > 2 ? std::atoll(argv[2]) : 23589;
    const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
    // Seeded input of `rsa_gpu bench` (bench_workloads.h: uniform noise plus shared patterns).
    const rsa::Matrix xm = rsa::bench::random_responses(S, N, 1);
    const std::vector<float>& x = xm.data;
    std::vector<float> z(x.size()), m(static_cast<size_t>(S * S));
    const double flops = static_cast<double>(S) * (S + 1) * N;  // SYRK: S(S+1)/2 dot products of length N
    const double t_z = median_ms(repeats, [&] { rsa::zscore_rows_ref(x.data(), S, N, z.data(), nullptr); });
    const double t_blas = median_ms(repeats, [&] {
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(S), static_cast<int>(N), 1.0f, z.data(),
                    static_cast<int>(N), 0.0f, m.data(), static_cast<int>(S));
    });
    const double t_all = median_ms(repeats, [&] { rsa::rdm_ref(x.data(), S, N, m.data()); });
    const std::unique_ptr<rsa::Backend> cpu = rsa::make_cpu_backend();
    const rsa::Array input(xm);  // borrowed, as the Python binding borrows a numpy array
    const double t_compute = median_ms(repeats, [&] {
        const rsa::RdmResult r = rsa::compute_rdm(*cpu, input, rsa::RdmOptions{}, "bench input");
        if (r.rdm.rows() != S) std::abort();
    });
    std::printf("bench_rdm (CPU twin, OpenBLAS, %d threads) S=%lld N=%lld, median of %d\n", openblas_get_num_threads(),
                static_cast<long long>(S), static_cast<long long>(N), repeats);
    std::printf("%-28s %10.1f ms\n", "moments + z-score (double)", t_z);
    std::printf("%-28s %10.1f ms  %6.1f GFLOP/s\n", "OpenBLAS SSYRK alone", t_blas, flops / t_blas * 1e-6);
    std::printf("%-28s %10.1f ms  (%.2fx SSYRK alone)\n", "whole RDM", t_all, t_all / t_blas);
    std::printf("%-28s %10.1f ms  (%.2fx whole RDM)\n", "compute_rdm (CPU backend)", t_compute, t_compute / t_all);
    std::printf("RESULT rsa_gpu_cpu_rdm_ms %.1f\n", t_all);
    std::printf("RESULT rsa_gpu_cpu_compute_rdm_ms %.1f\n", t_compute);
    return 0;
}

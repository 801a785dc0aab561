// CPU benchmark of the RDM comparison measures and the inference statistics on the CPU twins: Pearson,
// Spearman, Kendall tau-a and cosine between two random RDMs at the full size (S = 4,598: 10,568,503
// upper-triangle pairs), the stimulus bootstrap (bootstrap_ref, 3 models; R = 1,000 at S = 500, the rsatoolbox
// baseline's size in /work/shared/spec/performance.md, and R = 100 at the full S to extrapolate) and the
// permutation test (1,000 permutations at S = 500). Median of repeats for the measures, one run for the
// statistics. Peer (numpy / scipy) in bench/peer_measures_numpy.py, run together by bench/run_cpu.sh.
// Usage: bench_measures [S repeats S_small R_small R_large P_small]
//   S = 4598, repeats = 3, S_small = 500, R_small = 1000, R_large = 100, P_small = 1000
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench_common.h"
#include "rsa_gpu/matrix.h"
#include "rsa_gpu/measures.h"
#include "rsa_gpu/stats.h"

using rsa_bench::Clock;

using rsa_bench::median_ms;

// Seeded RDMs: rsa::bench::random_rdms (bench_workloads.h), the generator of `rsa_gpu bench`.
using rsa::bench::random_rdms;

static double mean_finite(const std::vector<double>& x) {
    double s = 0.0;
    int64_t n = 0;
    for (double v : x)
        if (std::isfinite(v)) s += v, ++n;
    return n ? s / static_cast<double>(n) : NAN;
}

int main(int argc, char** argv) {
    const int64_t S = argc > 1 ? std::atoll(argv[1]) : 4598;
    const int repeats = argc > 2 ? std::atoi(argv[2]) : 3;
    const int64_t S_small = argc > 3 ? std::atoll(argv[3]) : 500;
    const int R_small = argc > 4 ? std::atoi(argv[4]) : 1000;
    const int R_large = argc > 5 ? std::atoi(argv[5]) : 100;
    const int P_small = argc > 6 ? std::atoi(argv[6]) : 1000;
    const int64_t pairs = S * (S - 1) / 2;

    std::printf("bench_measures (CPU twins, OpenBLAS, %d threads) S=%lld (%lld pairs), median of %d\n",
                openblas_get_num_threads(), static_cast<long long>(S), static_cast<long long>(pairs), repeats);
    std::printf("%-44s %12s %10s\n", "case", "time", "value");

    rsa::Matrix a;
    std::vector<rsa::Matrix> bm;
    random_rdms(S, 1, {0.6}, a, bm);
    struct Case {
        rsa::Measure m;
        const char* key;
        const char* label;
    };
    const Case cases[] = {{rsa::Measure::Pearson, "pearson", "Pearson"},
                          {rsa::Measure::Spearman, "spearman", "Spearman"},
                          {rsa::Measure::Kendall, "kendall", "Kendall tau-a"},
                          {rsa::Measure::Cosine, "cosine", "cosine"}};
    double t_case[4], v_case[4];
    for (int c = 0; c < 4; ++c) {
        rsa::CompareResult res;
        t_case[c] = median_ms(repeats, [&] { res = rsa::compare_upper_ref(cases[c].m, a.data.data(), bm[0].data.data(), S); });
        v_case[c] = res.value;
        std::printf("%-44s %9.1f ms %10.6f\n", cases[c].label, t_case[c], v_case[c]);
    }
    a = rsa::Matrix();
    bm.clear();

    // Bootstrap, 3 models of decreasing correlation with the reference.
    const std::vector<double> cs = {0.6, 0.4, 0.2};
    rsa::Matrix ref_s;
    std::vector<rsa::Matrix> mod_s;
    random_rdms(S_small, 2, cs, ref_s, mod_s);
    auto t0 = Clock::now();
    const rsa::BootstrapResult bs = rsa::bootstrap_ref(ref_s, rsa::views_of(mod_s), R_small, 0);
    const double t_bs_small = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    char label[128];
    std::snprintf(label, sizeof label, "bootstrap S=%lld R=%d, 3 models", static_cast<long long>(S_small), R_small);
    std::printf("%-44s %9.1f ms %10.6f  (mean r of model 1)\n", label, t_bs_small, mean_finite(bs.samples[0]));

    rsa::Matrix ref_l;
    std::vector<rsa::Matrix> mod_l;
    random_rdms(S, 3, cs, ref_l, mod_l);
    t0 = Clock::now();
    const rsa::BootstrapResult bl = rsa::bootstrap_ref(ref_l, rsa::views_of(mod_l), R_large, 0);
    const double t_bs_large = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    ref_l = rsa::Matrix();
    mod_l.clear();
    std::snprintf(label, sizeof label, "bootstrap S=%lld R=%d, 3 models", static_cast<long long>(S), R_large);
    std::printf("%-44s %9.1f ms %10.6f  (mean r of model 1)\n", label, t_bs_large, mean_finite(bl.samples[0]));
    std::printf("%-44s %9.1f s  (scaled linearly in R: an upper bound, setup scaled too)\n",
                "  -> extrapolated to R=10,000", t_bs_large * 10000.0 / R_large * 1e-3);

    t0 = Clock::now();
    const rsa::PermutationResult pr = rsa::permutation_ref(ref_s, mod_s[0], P_small, 0);
    const double t_perm = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    std::snprintf(label, sizeof label, "permutation S=%lld P=%d", static_cast<long long>(S_small), P_small);
    std::printf("%-44s %9.1f ms %10.6f  (r_obs; p = %.4f)\n", label, t_perm, pr.r_obs, pr.p_value);

    for (int c = 0; c < 4; ++c) std::printf("RESULT rsa_gpu_cpu_%s_ms %.1f\n", cases[c].key, t_case[c]);
    std::printf("RESULT rsa_gpu_cpu_bootstrap_small_ms %.1f\n", t_bs_small);
    std::printf("RESULT rsa_gpu_cpu_bootstrap_large_ms %.1f\n", t_bs_large);
    std::printf("RESULT rsa_gpu_cpu_permutation_small_ms %.1f\n", t_perm);
    return 0;
}

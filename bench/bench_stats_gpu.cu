// GPU benchmark of the statistics at the full trial-level size (S = 4,598): 10,000 bootstrap resamples of an
// RDM correlation (3 models), 10,000 permutations (1 model), and the RDM comparison measures (Pearson,
// Spearman, Kendall, cosine), wall clock after a warm-up, including the final download and host finish.
// Target (performance.md): 10,000 bootstrap resamples in under 1 s. PyTorch peer: bench/peer_stats_torch.py.
// Usage: bench_stats_gpu [S resamples]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "compare.cuh"
#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "measures.cuh"
#include "stats.cuh"

using namespace rsa;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
    const int64_t S = argc > 1 ? std::atoll(argv[1]) : 4598;
    const int R = argc > 2 ? std::atoi(argv[2]) : 10000;
    try {
        GpuContext& ctx = gpu_context(0);
        std::mt19937 gen(5);
        std::uniform_real_distribution<float> u(0.0f, 2.0f);
        std::vector<std::vector<float>> h(4, std::vector<float>(static_cast<size_t>(S * S)));
        for (int64_t i = 0; i < S; ++i)
            for (int64_t j = i; j < S; ++j) {
                const float base = u(gen);
                for (int m = 0; m < 4; ++m) {
                    const float v = i == j ? 0.0f : (m == 0 ? base : 0.5f * base + 0.5f * u(gen));
                    h[m][i * S + j] = h[m][j * S + i] = v;
                }
            }
        std::vector<DeviceBuffer<float>> d(4);
        for (int m = 0; m < 4; ++m) d[m].upload(h[m], ctx.stream);
        auto seconds = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
        std::printf("bench_stats_gpu on %s, S = %lld\n", ctx.card.c_str(), static_cast<long long>(S));
        bootstrap_launch(ctx.cublas, d[0].get(), {d[1].get()}, S, 100, 1, 0, ctx.stream);  // warm-up
        auto t0 = Clock::now();
        const BootstrapResult b = bootstrap_launch(ctx.cublas, d[0].get(), {d[1].get(), d[2].get(), d[3].get()}, S, R,
                                                   1, 0, ctx.stream);
        const double tb = seconds(t0);
        std::printf("bootstrap %d resamples x 3 models: %9.1f ms (interval model 1 [%.4f, %.4f])\n", R, tb * 1e3,
                    b.lo[0], b.hi[0]);
        std::printf("RESULT rsa_gpu_bootstrap_ms %.1f\n", tb * 1e3);
        permutation_launch(d[0].get(), d[1].get(), S, 10, 1, 0, ctx.stream);
        t0 = Clock::now();
        const PermutationResult p = permutation_launch(d[0].get(), d[1].get(), S, R, 1, 0, ctx.stream);
        std::printf("permutation %d: %9.1f ms (p = %.2g)\n", R, seconds(t0) * 1e3, p.p_value);
        for (Measure m : {Measure::Pearson, Measure::Spearman, Measure::Kendall, Measure::Cosine}) {
            compare_upper_launch(m, d[0].get(), d[1].get(), S, ctx.stream);
            t0 = Clock::now();
            const CompareResult c = compare_upper_launch(m, d[0].get(), d[1].get(), S, ctx.stream);
            std::printf("%-9s %lld pairs: %9.2f ms (value %.6f)\n", measure_name(m), static_cast<long long>(c.pairs),
                        seconds(t0) * 1e3, c.value);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_stats_gpu: %s\n", e.what());
        return 1;
    }
    return 0;
}

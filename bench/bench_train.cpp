// CPU benchmark of the tutorial's CNN training (CPU twin): images per second at batch 100 and 1,000 over the
// tutorial's 1,000 gratings, and the whole tutorial analysis end to end (training set, training, read-out at
// 181 orientations, RDMs of V1/pool/fc, two correlations) on the embedded V1 data. The peer is the original
// PyTorch code, bench/peer_tutorial_torch.py, run beside it by bench/run_cpu.sh. Usage: bench_train [epochs]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "bench_common.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/v1_data.h"

using namespace rsa;
using rsa_bench::Clock;
using rsa_bench::seconds_since;

int main(int argc, char** argv) {
    const int epochs = argc > 1 ? std::atoi(argv[1]) : 25;
    auto cpu = make_cpu_backend();
    std::printf("bench_train (CPU twin, OpenBLAS), %d epochs of 1,000 gratings\n", epochs);
    for (int batch : {100, 1000}) {
        TrainConfig cfg;
        cfg.epochs = epochs;
        cfg.batch = batch;
        std::vector<float> angles, labels;
        cnn_training_set(cfg, &angles, &labels);
        const Array images = cpu->gratings(angles, GratingParams{});
        std::vector<float> params = cnn_init_params(cfg.seed);
        const auto t0 = Clock::now();
        const TrainResult r = cpu->cnn_train(params, images, labels, cfg, nullptr);
        const double s = seconds_since(t0);
        std::printf("batch %5d: %8.3f s, %10.0f images/s (last loss %.2e)\n", batch, s,
                    static_cast<double>(cfg.train_size) * epochs / s, r.epoch_losses.back());
        if (batch == 100) std::printf("RESULT rsa_gpu_cpu_train_images_per_s %.0f\n", cfg.train_size * epochs / s);
    }
    // Whole analysis (compute only; V1 data generated beforehand, as the peer loads its file first).
    SyntheticV1Params vp;
    const V1Data v1 = v1_from_synthetic(cpu->synthetic_v1(vp), vp);
    const rsa_bench::TutorialTiming t = rsa_bench::run_tutorial_analysis(*cpu, v1, epochs);
    std::printf("whole tutorial analysis: %.3f s (pool r = %.4f, fc r = %.4f)\n", t.seconds, t.r_pool, t.r_fc);
    std::printf("RESULT rsa_gpu_cpu_tutorial_s %.3f\n", t.seconds);
    return 0;
}

// CPU benchmark of the tutorial's CNN training (CPU twin): images per second at batch 100 and 1,000 over the
// tutorial's 1,000 gratings, and the whole tutorial analysis end to end (training set, training, read-out at
// 181 orientations, RDMs of V1/pool/fc, two correlations) on the embedded V1 data. The peer is the original
// PyTorch code, bench/peer_tutorial_torch.py, run beside it by bench/run_cpu.sh. Usage: bench_train [epochs]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/v1_data.h"

using namespace rsa;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

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
        const Matrix images = cpu->gratings(angles, GratingParams{});
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
    const auto t0 = Clock::now();
    TrainConfig cfg;
    cfg.epochs = epochs;
    std::vector<float> angles, labels;
    cnn_training_set(cfg, &angles, &labels);
    std::vector<float> params = cnn_init_params(cfg.seed);
    cpu->cnn_train(params, cpu->gratings(angles, GratingParams{}), labels, cfg, nullptr);
    const CnnActivations act = cpu->cnn_forward(params, cpu->gratings(v1.orientation, GratingParams{}));
    const Matrix rv = cpu->rdm(v1.resp, RdmOptions{}, "v1");
    const double r_pool = cpu->compare_pearson(rv, cpu->rdm(cnn_layer_matrix(act, "pool"), RdmOptions{}, "pool")).r;
    const double r_fc = cpu->compare_pearson(rv, cpu->rdm(cnn_layer_matrix(act, "fc"), RdmOptions{}, "fc")).r;
    const double s = seconds_since(t0);
    std::printf("whole tutorial analysis: %.3f s (pool r = %.4f, fc r = %.4f)\n", s, r_pool, r_fc);
    std::printf("RESULT rsa_gpu_cpu_tutorial_s %.3f\n", s);
    return 0;
}

// GPU benchmark of the tutorial's CNN training (cuDNN + cuBLAS + CUDA graph): images per second at batch 100
// and 1,000 through both training paths (--cnn-kernels cudnn and exact), and the whole tutorial analysis on the
// device after context creation (run_job_stages: training, read-out at 181 orientations, RDMs, correlations; V1
// generation not counted), through the same code as `rsa_gpu bench --workloads train,tutorial` (bench_workloads.h).
// Peer: bench/peer_tutorial_torch.py on the same card (tools/device_check.sh runs both). Usage: bench_train_gpu
// [epochs]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "bench_common.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/v1_data.h"

using namespace rsa;

int main(int argc, char** argv) {
    const int epochs = argc > 1 ? std::atoi(argv[1]) : 25;
    try {
        auto gpu = make_gpu_backend(0);
        std::printf("bench_train_gpu on %s, %d epochs of 1,000 gratings\n", gpu->name().c_str(), epochs);
        for (CnnKernels kernels : {CnnKernels::cudnn, CnnKernels::exact})
            for (int batch : {100, 1000}) {
                for (int rep = 0; rep < 2; ++rep) {  // the first run includes setup (descriptors, graph capture)
                    const rsa::bench::TrainRun r = rsa::bench::train_once(*gpu, batch, epochs, kernels);
                    std::printf("%-5s batch %5d (%s): %8.4f s, %12.0f images/s (last loss %.2e)\n",
                                cnn_kernels_name(kernels), batch, rep ? "warm" : "cold", r.seconds, r.images_per_s,
                                r.last_loss);
                    if (rep == 1)
                        std::printf("RESULT rsa_gpu_train_%s_batch%d_images_per_s %.0f\n", cnn_kernels_name(kernels),
                                    batch, r.images_per_s);
                }
            }
        for (int rep = 0; rep < 2; ++rep) {
            const rsa::bench::TutorialRun t = rsa::bench::tutorial_once(*gpu, epochs, SyntheticV1Params{}.neurons);
            std::printf("whole tutorial analysis (%s): %.4f s (pool r = %.4f, fc r = %.4f)\n", rep ? "warm" : "cold",
                        t.seconds, t.r_pool, t.r_fc);
            if (rep == 1) std::printf("RESULT rsa_gpu_tutorial_s %.4f\n", t.seconds);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_train_gpu: %s\n", e.what());
        return 1;
    }
    return 0;
}

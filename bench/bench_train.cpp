// CPU benchmark of the tutorial's CNN training (CPU twin): images per second at batch 100 and 1,000 over the
// tutorial's 1,000 gratings, and the whole tutorial analysis end to end (run_job_stages: training set, training,
// read-out at 181 orientations, RDMs of V1/pool/fc/pixels, correlations; V1 generation not counted) on the embedded
// V1 data; the same code as `rsa_gpu bench --workloads train,tutorial` (bench_workloads.h). The peer is the original
// PyTorch code, bench/peer_tutorial_torch.py, run beside it by bench/run_cpu.sh. Usage: bench_train [epochs]
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
    auto cpu = make_cpu_backend();
    std::printf("bench_train (CPU twin, OpenBLAS), %d epochs of 1,000 gratings\n", epochs);
    for (int batch : {100, 1000}) {
        const rsa::bench::TrainRun r = rsa::bench::train_once(*cpu, batch, epochs, CnnKernels::cudnn);
        std::printf("batch %5d: %8.3f s, %10.0f images/s (last loss %.2e)\n", batch, r.seconds, r.images_per_s,
                    r.last_loss);
        if (batch == 100) std::printf("RESULT rsa_gpu_cpu_train_images_per_s %.0f\n", r.images_per_s);
    }
    // Whole analysis (compute only: the V1 generation stage is not counted, as the peer loads its file first).
    const rsa::bench::TutorialRun t = rsa::bench::tutorial_once(*cpu, epochs, SyntheticV1Params{}.neurons);
    std::printf("whole tutorial analysis: %.3f s (pool r = %.4f, fc r = %.4f)\n", t.seconds, t.r_pool, t.r_fc);
    std::printf("RESULT rsa_gpu_cpu_tutorial_s %.3f\n", t.seconds);
    return 0;
}

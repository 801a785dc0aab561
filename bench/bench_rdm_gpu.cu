// GPU benchmark of the RDM at the full trial-level size (S = 4,598 x N = 23,589): the GPU engine's one-block path
// on a device-resident input (rdm_resident_launch: row moments, z-score, cuBLAS SSYRK in exact FP32 with pedantic
// math, finish), and its SSYRK + finish alone, with CUDA events after a warm-up, median of repeats, input
// buffers rotated so each repeat reads a cold copy larger than L2. Prints ms, TFLOP/s and the fraction of
// the FP32 peak given on the command line (66.9 TFLOP/s for H100/H200). The PyTorch peer on the same card is
// bench/peer_rdm_torch.py (tools/device_check.sh runs both). Usage: bench_rdm_gpu [S N repeats peak_tflops]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda_check.cuh"
#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "rdm_scale.cuh"

using namespace rsa;

int main(int argc, char** argv) {
    const int64_t S = argc > 1 ? std::atoll(argv[1]) : 4598, N = argc > 2 ? std::atoll(argv[2]) : 23589;
    const int repeats = argc > 3 ? std::atoi(argv[3]) : 20;
    const double peak = argc > 4 ? std::atof(argv[4]) : 66.9;
    try {
        GpuContext& ctx = gpu_context(0);
        const int copies = 2;  // 2 x 434 MB inputs > 50 MB L2
        std::vector<DeviceBuffer<float>> x(copies);
        std::vector<float> host(static_cast<size_t>(S * N));
        for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>((i * 2654435761u) % 1000) * 1e-3f;
        for (auto& b : x) b.upload(host, ctx.stream);
        DeviceBuffer<float> z(host.size()), m(static_cast<size_t>(S * S));
        DeviceBuffer<double> stats(static_cast<size_t>(2 * S));
        cudaEvent_t e0, e1, e2;
        CUDA_CHECK(cudaEventCreate(&e0));
        CUDA_CHECK(cudaEventCreate(&e1));
        CUDA_CHECK(cudaEventCreate(&e2));
        std::vector<float> tz, ts, ta;
        for (int r = -2; r < repeats; ++r) {  // two warm-up runs
            // A fresh copy of a cold input each repeat (the engine z-scores its rows in place), not timed.
            CUDA_CHECK(cudaMemcpyAsync(z.get(), x[(r + 2) % copies].get(), host.size() * sizeof(float),
                                       cudaMemcpyDeviceToDevice, ctx.stream));
            CUDA_CHECK(cudaEventRecord(e0, ctx.stream));
            rdm_resident_launch(ctx.cublas, z.get(), S, N, stats.get(), m.get(), ctx.stream);
            CUDA_CHECK(cudaEventRecord(e1, ctx.stream));
            syrk_accumulate(ctx.cublas, z.get(), S, N, N, 1.0f / static_cast<float>(N), 0.0f, m.get(), S,
                            CUBLAS_FILL_MODE_UPPER, Precision::FP32, ctx.stream);
            finish_upper_launch(m.get(), S, ctx.stream);
            CUDA_CHECK(cudaEventRecord(e2, ctx.stream));
            CUDA_CHECK(cudaEventSynchronize(e2));
            float a = 0, b = 0;
            CUDA_CHECK(cudaEventElapsedTime(&a, e0, e1));
            CUDA_CHECK(cudaEventElapsedTime(&b, e1, e2));
            if (r >= 0) {
                tz.push_back(a - b);
                ts.push_back(b);
                ta.push_back(a);
            }
        }
        auto med = [](std::vector<float> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
        const double flops = static_cast<double>(S) * (S + 1) * N;
        std::printf("bench_rdm_gpu on %s: S=%lld N=%lld, median of %d\n", ctx.card.c_str(), (long long)S,
                    (long long)N, repeats);
        std::printf("%-22s %9.3f ms  %7.1f GB/s\n", "moments + z-score", med(tz), 3.0 * S * N * 4 / med(tz) * 1e-6);
        std::printf("%-22s %9.3f ms  %7.2f TFLOP/s  %5.1f%% of %.1f FP32 peak\n", "SSYRK + finish", med(ts),
                    flops / med(ts) * 1e-9, 100.0 * flops / med(ts) * 1e-9 / peak, peak);
        std::printf("%-22s %9.3f ms  %7.2f TFLOP/s  %5.1f%% of peak\n", "whole RDM (FP32)", med(ta),
                    flops / med(ta) * 1e-9, 100.0 * flops / med(ta) * 1e-9 / peak);
        std::printf("RESULT rsa_gpu_rdm_ms %.3f\n", med(ta));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_rdm_gpu: %s\n", e.what());
        return 1;
    }
    return 0;
}

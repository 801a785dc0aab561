// GPU benchmark of RDMs at scale, full trial-level size (S = 4,598 x N = 23,589), on structured synthetic data
// (rank 8 + noise, so the RDM spans a range of values): the GPU engine (rdm_run_gpu) on a device-resident input in
// FP32 (SSYRK, pedantic) and TF32 (GemmEx strips of kTf32Strip rows), next to a bench-only TF32 variant (SSYRK under
// CUBLAS_TF32_TENSOR_OP_MATH, not in the engine: kept here to show which is faster on a card), and the engine's
// one-shot and streamed plans from pinned host memory (copies overlapped). CUDA events after a warm-up, median of repeats. Reports ms, TFLOP/s
// (S(S+1)N FLOP), % of peak (66.9 FP32, 495 TF32), the TF32 error against an FP64 CPU reference on a slice
// (64 rows x 512 columns of the RDM) and the effect of TF32 on an RDM-vs-RDM Pearson correlation (against
// the RDM of the first half of the neurons). The table's last line says which TF32 variant is faster on the card.
// Usage: bench_rdm_scale_gpu [S N repeats]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda_check.cuh"
#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "rdm_scale.cuh"
#include "rsa_gpu/compare.h"
#include "rsa_gpu/rdm.h"

using namespace rsa;

namespace {

float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0f : v[v.size() / 2];
}

struct Row {
    std::string name;
    float ms;
    double peak;
};

}  // namespace

int main(int argc, char** argv) {
    const int64_t S = argc > 1 ? std::atoll(argv[1]) : 4598, N = argc > 2 ? std::atoll(argv[2]) : 23589;
    const int repeats = argc > 3 ? std::atoi(argv[3]) : 10;
    const double peak32 = 66.9, peak_tf32 = 495.0;
    float* hx = nullptr;  // pinned; freed on every path below
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    auto release = [&]() {
        if (e0) cudaEventDestroy(e0);
        if (e1) cudaEventDestroy(e1);
        if (hx) cudaFreeHost(hx);
        e0 = e1 = nullptr;
        hx = nullptr;
    };
    try {
        GpuContext& ctx = gpu_context(0);
        cudaStream_t st = ctx.stream;
        // Structured input in pinned memory.
        CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&hx), static_cast<size_t>(S * N) * sizeof(float)));
        {
            std::mt19937 gen(12345);
            std::uniform_real_distribution<float> u(-1.0f, 1.0f);
            const int R = 8;
            std::vector<float> a(static_cast<size_t>(S * R)), b(static_cast<size_t>(R * N));
            for (auto& v : a) v = u(gen);
            for (auto& v : b) v = u(gen);
            for (int64_t s = 0; s < S; ++s)
                for (int64_t n = 0; n < N; ++n) {
                    float v = 0.5f * u(gen) + 3.0f;
                    for (int r = 0; r < R; ++r) v += a[s * R + r] * b[r * N + n];
                    hx[s * N + n] = v;
                }
        }
        DeviceBuffer<float> d_x(static_cast<size_t>(S * N)), d_z(static_cast<size_t>(S * N)),
            d_m(static_cast<size_t>(S * S));
        DeviceBuffer<double> d_mean(static_cast<size_t>(S)), d_inv(static_cast<size_t>(S));
        CUDA_CHECK(cudaMemcpyAsync(d_x.get(), hx, static_cast<size_t>(S * N) * sizeof(float), cudaMemcpyHostToDevice, st));
        CUDA_CHECK(cudaEventCreate(&e0));
        CUDA_CHECK(cudaEventCreate(&e1));
        const double flops = static_cast<double>(S) * (S + 1) * N;

        // Row moments once (the shared layer's job in a real run), then the engine on the resident input.
        RowMoments moments;
        moments.mean.resize(static_cast<size_t>(S));
        moments.m2.resize(static_cast<size_t>(S));
        for (int64_t s = 0; s < S; ++s) row_mean_m2(hx + s * N, N, &moments.mean[s], &moments.m2[s]);
        const uint64_t huge = 1ull << 40;
        const MemoryPlan one = plan_rdm(S, N, 0, huge);
        RdmInput resident;
        resident.device = d_x.get();
        auto engine_rdm = [&](Precision p) { rdm_run_gpu(ctx, resident, S, N, one, p, moments, d_m.get(), nullptr, false); };
        // The bench-only variant: the engine's z-score (TF32-rounded), then SSYRK with the handle in TF32 math mode.
        std::vector<double> inv(static_cast<size_t>(S));
        for (int64_t s = 0; s < S; ++s) inv[s] = inv_sd_from_m2(moments.m2[s], static_cast<double>(N));
        d_mean.upload(moments.mean, st);
        d_inv.upload(inv, st);
        auto syrk_math_mode_rdm = [&]() {
            zscore_with_stats_launch(d_x.get(), N, S, N, d_mean.get(), d_inv.get(), Precision::TF32, d_z.get(), N, st);
            bind_cublas_stream(ctx.cublas, st);
            CUBLAS_CHECK(cublasSetMathMode(ctx.cublas, CUBLAS_TF32_TENSOR_OP_MATH));
            const float alpha = 1.0f / static_cast<float>(N), beta = 0.0f;
            const cublasStatus_t status = cublasSsyrk(ctx.cublas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T, static_cast<int>(S),
                                                      static_cast<int>(N), &alpha, d_z.get(), static_cast<int>(N),
                                                      &beta, d_m.get(), static_cast<int>(S));
            CUBLAS_CHECK(cublasSetMathMode(ctx.cublas, CUBLAS_PEDANTIC_MATH));
            CUBLAS_CHECK(status);
            finish_upper_launch(d_m.get(), S, st);
        };
        auto time_events = [&](const std::function<void()>& run) {
            std::vector<float> t;
            for (int r = -2; r < repeats; ++r) {
                CUDA_CHECK(cudaEventRecord(e0, st));
                run();
                CUDA_CHECK(cudaEventRecord(e1, st));
                CUDA_CHECK(cudaEventSynchronize(e1));
                float ms = 0;
                CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
                if (r >= 0) t.push_back(ms);
            }
            return median(t);
        };
        auto download = [&]() {
            std::vector<float> h(static_cast<size_t>(S * S));
            d_m.download(h.data(), h.size(), st);
            return h;
        };

        std::vector<Row> rows;
        rows.push_back({"fp32 engine (device input)", time_events([&] { engine_rdm(Precision::FP32); }), peak32});
        const std::vector<float> rdm32 = download();
        rows.push_back({"tf32 syrk math mode (bench only)", time_events(syrk_math_mode_rdm), peak_tf32});
        const std::vector<float> rdm_tf_syrk = download();
        const float syrk_ms = rows.back().ms;
        rows.push_back({"tf32 engine: gemmex strips " + std::to_string(kTf32Strip),
                        time_events([&] { engine_rdm(Precision::TF32); }), peak_tf32});
        const std::vector<float> rdm_tf_gemm = download();
        const float gemm_ms = rows.back().ms;

        // End to end from pinned host memory: one-shot plan and a forced streamed plan (~8 neuron blocks).
        RdmInput pinned;
        pinned.host = hx;
        auto time_plan = [&](const MemoryPlan& plan, Precision p) {
            std::vector<float> t;
            for (int r = -1; r < std::max(3, repeats / 3); ++r) {
                const auto a = std::chrono::steady_clock::now();
                rdm_run_gpu(ctx, pinned, S, N, plan, p, moments, d_m.get(), nullptr, false);
                const auto b = std::chrono::steady_clock::now();
                if (r >= 0) t.push_back(std::chrono::duration<float, std::milli>(b - a).count());
            }
            return median(t);
        };
        const uint64_t stream_cap = static_cast<uint64_t>(S) * S * 4 + S * kRowStatBytes +
                                    2ull * S * 4 * static_cast<uint64_t>((N + 7) / 8);
        const MemoryPlan streamed = plan_rdm(S, N, stream_cap, huge);
        rows.push_back({"fp32 one-shot from pinned host (e2e)", time_plan(one, Precision::FP32), peak32});
        rows.push_back({"fp32 streamed from pinned host (e2e)", time_plan(streamed, Precision::FP32), peak32});
        rows.push_back({"tf32 streamed from pinned host (e2e)", time_plan(streamed, Precision::TF32), peak_tf32});

        // TF32 error against FP64 on a slice: rows [0, 64) x columns [0, 512).
        const int64_t R = std::min<int64_t>(64, S), C = std::min<int64_t>(512, S);
        std::vector<double> zd(static_cast<size_t>(C * N));
        for (int64_t s = 0; s < C; ++s) {
            double sum = 0;
            for (int64_t n = 0; n < N; ++n) sum += hx[s * N + n];
            const double mean = sum / N;
            double ss = 0;
            for (int64_t n = 0; n < N; ++n) ss += (hx[s * N + n] - mean) * (hx[s * N + n] - mean);
            const double inv = 1.0 / std::sqrt(ss / N);
            for (int64_t n = 0; n < N; ++n) zd[s * N + n] = (hx[s * N + n] - mean) * inv;
        }
        auto slice_error = [&](const std::vector<float>& m) {
            double num = 0, den = 0, maxabs = 0;
            for (int64_t i = 0; i < R; ++i)
                for (int64_t j = 0; j < C; ++j) {
                    double d = 0;
                    for (int64_t n = 0; n < N; ++n) d += zd[i * N + n] * zd[j * N + n];
                    const double ref = 1.0 - d / N, e = m[i * S + j] - ref;
                    num += e * e;
                    den += ref * ref;
                    maxabs = std::max(maxabs, std::abs(e));
                }
            return std::pair<double, double>(std::sqrt(num / den), maxabs);
        };
        const auto err32 = slice_error(rdm32), err_syrk = slice_error(rdm_tf_syrk), err_gemm = slice_error(rdm_tf_gemm);

        // RDM-vs-RDM Pearson: each full RDM against the FP32 RDM of the first half of the neurons.
        std::vector<float> half_x(static_cast<size_t>(S * (N / 2)));
        for (int64_t s = 0; s < S; ++s) std::copy(hx + s * N, hx + s * N + N / 2, half_x.begin() + s * (N / 2));
        std::vector<float> half(static_cast<size_t>(S * S));
        rdm_ref(half_x.data(), S, N / 2, half.data());
        const double r32 = pearson_upper_ref(rdm32.data(), half.data(), S).r;
        const double r_syrk = pearson_upper_ref(rdm_tf_syrk.data(), half.data(), S).r;
        const double r_gemm = pearson_upper_ref(rdm_tf_gemm.data(), half.data(), S).r;
        const double r_tf_vs_32 = pearson_upper_ref(rdm_tf_gemm.data(), rdm32.data(), S).r;

        std::printf("bench_rdm_scale_gpu on %s: S=%lld N=%lld, median of %d (e2e: wall clock incl. copies)\n",
                    ctx.card.c_str(), static_cast<long long>(S), static_cast<long long>(N), repeats);
        std::printf("%s", describe(streamed).c_str());
        std::printf("%-40s %10s %10s %8s\n", "variant", "ms", "TFLOP/s", "% peak");
        for (const Row& r : rows) {
            const double tf = flops / r.ms * 1e-9;
            std::printf("%-40s %10.3f %10.2f %7.1f%% of %.1f\n", r.name.c_str(), r.ms, tf, 100.0 * tf / r.peak, r.peak);
        }
        std::printf("error vs FP64 on rows [0,%lld) x cols [0,%lld): rel L2 / max abs\n", static_cast<long long>(R),
                    static_cast<long long>(C));
        std::printf("  fp32            %.3e / %.3e\n", err32.first, err32.second);
        std::printf("  tf32 syrk       %.3e / %.3e\n", err_syrk.first, err_syrk.second);
        std::printf("  tf32 gemmex     %.3e / %.3e\n", err_gemm.first, err_gemm.second);
        std::printf("Pearson vs the half-neuron FP32 RDM: fp32 %.9f, tf32 syrk %.9f (delta %.2e), tf32 gemmex %.9f "
                    "(delta %.2e); Pearson(tf32, fp32) = %.9f\n",
                    r32, r_syrk, r_syrk - r32, r_gemm, r_gemm - r32, r_tf_vs_32);
        std::printf("faster TF32 variant on this card: %s (%.3f ms vs %.3f ms; the engine uses gemmex strips of %lld)\n",
                    syrk_ms < gemm_ms ? "syrk math mode" : "gemmex", syrk_ms, gemm_ms,
                    static_cast<long long>(kTf32Strip));
        std::printf("RESULT rsa_gpu_rdm_tf32_ms %.3f\n", gemm_ms);
        CUDA_CHECK(cudaStreamSynchronize(st));
        release();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_rdm_scale_gpu: %s\n", e.what());
        release();
        return 1;
    }
    return 0;
}

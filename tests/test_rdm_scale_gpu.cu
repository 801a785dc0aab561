// GPU RDMs at scale against their CPU twins, on fresh random inputs with poisoned outputs: one-shot vs
// streamed (forced tiny max_gpu_bytes: several uneven neuron blocks) vs tiled (memory-mapped .npy) vs the CPU
// twin, FP32 (relative L2 < 1e-5) and TF32 with both variants (< 1e-3 vs FP32; the GPU TF32 against the CPU
// TF32 twin, which rounds z the same way, much closer); pinned and pageable inputs; constant rows; the
// out-of-memory fallback from a one-shot attempt (and rdm_scaled's min_kind, which GpuBackend::rdm uses after its
// own one-shot path ran short); and a clear error when nothing fits.
#include <gtest/gtest.h>
#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "cuda_check.cuh"
#include "gpu_context.cuh"
#include "rdm_scale.cuh"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/rdm.h"
#include "test_util.h"

using namespace rsa;

namespace {

GpuContext& ctx() { return gpu_context(0); }

std::vector<float> structured(int64_t S, int64_t N) {
    const std::vector<float> a = rsa_test::random_uniform(static_cast<size_t>(S * 4), -1.0f, 1.0f);
    const std::vector<float> b = rsa_test::random_uniform(static_cast<size_t>(4 * N), -1.0f, 1.0f);
    std::vector<float> x = rsa_test::random_uniform(static_cast<size_t>(S * N), -0.5f, 0.5f);
    for (int64_t s = 0; s < S; ++s)
        for (int64_t n = 0; n < N; ++n) {
            float v = 0.0f;
            for (int r = 0; r < 4; ++r) v += a[s * 4 + r] * b[r * N + n];
            x[s * N + n] += v + 2.0f + 0.1f * static_cast<float>(s % 5);
        }
    return x;
}

std::vector<float> cpu_one_shot(const std::vector<float>& x, int64_t S, int64_t N, std::vector<int64_t>* constant = nullptr) {
    std::vector<float> z(x.size()), m(static_cast<size_t>(S * S));
    zscore_rows_ref(x.data(), S, N, z.data(), constant);
    rdm_from_zscored_ref(z.data(), S, N, m.data());
    return m;
}

std::vector<float> load_square(const std::string& path, int64_t S) {
    const NpyArray a = npy_load(path);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{S, S}));
    std::vector<float> v(a.values.size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(a.values[i]);
    return v;
}

// The result of a plan as a flat S x S vector (read back from the file for a tiled plan).
std::vector<float> result_values(const ScaledRdmResult& r, int64_t S) {
    return r.plan.tiled ? load_square(r.written_path, S) : r.rdm.data;
}

// Caps that force each plan kind for S x N (see plan_rdm).
uint64_t streamed_cap(int64_t S, int64_t K) { return S * S * 4 + S * kRowStatBytes + 2 * S * 4 * K; }
uint64_t tiled_cap(int64_t S, int64_t T, int64_t K) { return S * kRowStatBytes + 4 * T * K * 4 + 2 * T * T * 4; }

// A tiled plan with chosen tile rows and neuron block (plan_rdm prefers the largest tiles).
MemoryPlan forced_tiled(int64_t S, int64_t N, int64_t T, int64_t K) {
    MemoryPlan p = plan_rdm(S, N, 0, 1ull << 40, PlanKind::Tiled);
    p.row_tile = T;
    p.row_tiles = (S + T - 1) / T;
    p.neuron_block = K;
    p.neuron_blocks = (N + K - 1) / K;
    p.streamed = K < N;
    return p;
}

struct PinnedHost {
    float* p = nullptr;
    explicit PinnedHost(const std::vector<float>& v) {
        CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&p), v.size() * sizeof(float)));
        std::copy(v.begin(), v.end(), p);
    }
    ~PinnedHost() { cudaFreeHost(p); }
};

}  // namespace

TEST(RdmScaleGpu, PlansAgreeWithCpuTwinFp32AndTf32) {
    const int64_t S = 300, N = 2500;
    const std::vector<float> x = structured(S, N);
    const std::vector<float> ref = cpu_one_shot(x, S, N);
    const std::string dir = rsa_test::scratch_dir("rdm_scale_gpu");
    const uint64_t huge = 1ull << 40;
    const std::vector<MemoryPlan> plans = {plan_rdm(S, N, 0, huge), plan_rdm(S, N, streamed_cap(S, 700), huge),
                                           forced_tiled(S, N, 64, N),
                                           plan_rdm(S, N, tiled_cap(S, 37, 300), huge)};
    ASSERT_EQ(plans[0].kind, PlanKind::OneShot);
    ASSERT_EQ(plans[1].kind, PlanKind::Streamed);
    ASSERT_GE(plans[1].neuron_blocks, 3);
    ASSERT_EQ(plans[2].kind, PlanKind::Tiled);
    ASSERT_EQ(plans[3].kind, PlanKind::Tiled);
    ASSERT_GE(plans[3].neuron_blocks, 2);
    PinnedHost pinned(x);
    for (Precision prec : {Precision::FP32, Precision::TF32}) {
        for (Tf32Variant variant : {Tf32Variant::GemmExStrips, Tf32Variant::SyrkMathMode}) {
            if (prec == Precision::FP32 && variant == Tf32Variant::SyrkMathMode) continue;
            // The CPU twin of this precision: TF32 rounds z the same way, so the GPU differs by accumulation only.
            std::vector<float> twin(static_cast<size_t>(S * S));
            rdm_chunked_ref(x.data(), S, N, N, prec, twin.data(), nullptr);
            for (const MemoryPlan& p : plans) {
                for (bool use_pinned : {false, true}) {
                    ScaledRdmOptions o;
                    o.precision = prec;
                    o.tf32_variant = variant;
                    o.tf32_strip = 128;
                    o.poison = true;
                    o.output_path = p.tiled ? dir + "/rdm.npy" : "";
                    if (p.tiled) write_file_atomic(o.output_path, "poison");
                    const ScaledRdmResult r = rdm_run_plan(ctx(), use_pinned ? pinned.p : x.data(), S, N, p, o);
                    const std::vector<float> got = result_values(r, S);
                    const double vs_fp32 = rsa_test::rel_l2(got, ref), vs_twin = rsa_test::rel_l2(got, twin);
                    SCOPED_TRACE(describe(p) + precision_name(prec) + " " + tf32_variant_name(variant) +
                                 (use_pinned ? " pinned" : " pageable"));
                    EXPECT_LT(vs_fp32, prec == Precision::FP32 ? 1e-5 : 1e-3);
                    EXPECT_LT(vs_twin, prec == Precision::FP32 ? 1e-5 : 1e-4);
                    if (prec == Precision::TF32) EXPECT_GT(vs_fp32, 1e-7);  // tensor-core inputs really rounded
                    EXPECT_TRUE(r.constant_rows.empty());
                    for (int64_t i = 0; i < S; ++i)
                        for (int64_t j = 0; j < i; ++j) ASSERT_EQ(got[i * S + j], got[j * S + i]);
                }
            }
        }
    }
}

TEST(RdmScaleGpu, RdmScaledHonoursTheCap) {
    const int64_t S = 257, N = 1999;
    const std::vector<float> x = structured(S, N);
    const std::vector<float> ref = cpu_one_shot(x, S, N);
    const std::string dir = rsa_test::scratch_dir("rdm_scale_gpu_cap");
    const uint64_t caps[3] = {0, streamed_cap(S, 300), tiled_cap(S, 40, 500)};
    const PlanKind kinds[3] = {PlanKind::OneShot, PlanKind::Streamed, PlanKind::Tiled};
    for (int c = 0; c < 3; ++c) {
        const uint64_t cap = caps[c];
        ScaledRdmOptions o;
        o.max_gpu_bytes = cap;
        o.poison = true;
        o.output_path = dir + "/m.npy";
        const ScaledRdmResult r = rdm_scaled(ctx(), x.data(), S, N, o);
        EXPECT_LE(r.plan.device_bytes, cap ? cap : r.plan.budget_bytes);
        EXPECT_EQ(r.plan.kind, kinds[c]) << describe(r.plan);
        EXPECT_EQ(r.written_path, o.output_path);
        EXPECT_LT(rsa_test::rel_l2(load_square(o.output_path, S), ref), 1e-5) << describe(r.plan);
        if (!r.plan.tiled) EXPECT_LT(rsa_test::rel_l2(r.rdm.data, ref), 1e-5);
    }
    // A tiled plan with nowhere to write, and a budget nothing fits: clear RuntimeErrors.
    ScaledRdmOptions o;
    o.max_gpu_bytes = tiled_cap(S, 40, 500);
    EXPECT_THROW(rdm_scaled(ctx(), x.data(), S, N, o), RuntimeError);
    o.max_gpu_bytes = 100;
    try {
        rdm_scaled(ctx(), x.data(), S, N, o);
        FAIL() << "expected RuntimeError";
    } catch (const RuntimeError& e) {
        EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
    }
}

TEST(RdmScaleGpu, ConstantRowsNanAndReported) {
    const int64_t S = 100, N = 1500;
    std::vector<float> x = structured(S, N);
    for (int64_t n = 0; n < N; ++n) {
        x[3 * N + n] = 7.0f;
        x[64 * N + n] = -2.0f;
    }
    std::vector<int64_t> want;
    const std::vector<float> ref = cpu_one_shot(x, S, N, &want);
    const std::string dir = rsa_test::scratch_dir("rdm_scale_gpu_const");
    const uint64_t huge = 1ull << 40;
    for (const MemoryPlan& p : {plan_rdm(S, N, 0, huge), plan_rdm(S, N, streamed_cap(S, 400), huge),
                                forced_tiled(S, N, 30, 400), forced_tiled(S, N, 33, N)}) {
        ScaledRdmOptions o;
        o.poison = true;
        o.output_path = dir + "/c.npy";
        const ScaledRdmResult r = rdm_run_plan(ctx(), x.data(), S, N, p, o);
        EXPECT_EQ(r.constant_rows, want) << describe(p);
        EXPECT_LT(rsa_test::rel_l2(load_square(o.output_path, S), ref), 1e-5) << describe(p);  // NaN in the same places
    }
}

TEST(RdmScaleGpu, OneShotOutOfMemoryFallsBackToStreaming) {
    // Leave about 256 MB free, then ask for a one-shot RDM of a 320 MB input while pretending 1 TB is free: the
    // one-shot allocation fails and rdm_scaled re-plans against the real free memory.
    const int64_t S = 2000, N = 40000;
    ctx();  // the context (cuBLAS workspace) first
    std::vector<void*> hog;
    size_t free_bytes = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
    const size_t keep = 256u << 20, piece = 1u << 30;
    while (free_bytes > keep + (16u << 20)) {
        const size_t want = std::min(piece, free_bytes - keep);
        void* p = nullptr;
        if (cudaMalloc(&p, want) != cudaSuccess) {
            cudaGetLastError();
            break;
        }
        hog.push_back(p);
        CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
    }
    const std::vector<float> x = rsa_test::random_uniform(static_cast<size_t>(S * N), -1.0f, 1.0f);
    ScaledRdmOptions o;
    o.assume_device_free_bytes = 1ull << 40;
    o.poison = true;
    ScaledRdmResult r;
    std::string error;
    try {
        r = rdm_scaled(ctx(), x.data(), S, N, o);
    } catch (const std::exception& e) {
        error = e.what();
    }
    for (void* p : hog) CUDA_CHECK(cudaFree(p));
    ASSERT_TRUE(error.empty()) << error;
    EXPECT_TRUE(r.fell_back);
    EXPECT_EQ(r.plan.kind, PlanKind::Streamed) << describe(r.plan);
    const std::vector<float> ref = cpu_one_shot(x, S, N);
    EXPECT_LT(rsa_test::rel_l2(r.rdm.data, ref), 1e-5);
}

// GpuBackend::rdm's fallback after its own one-shot path ran out of memory: rdm_scaled with min_kind Streamed
// never tries one-shot, even when everything would fit.
TEST(RdmScaleGpu, MinKindSkipsOneShot) {
    const int64_t S = 300, N = 2000;
    const std::vector<float> x = structured(S, N);
    ScaledRdmOptions o;
    o.poison = true;
    const ScaledRdmResult r = rdm_scaled(ctx(), x.data(), S, N, o, PlanKind::Streamed);
    EXPECT_EQ(r.plan.kind, PlanKind::Streamed) << describe(r.plan);
    EXPECT_FALSE(r.fell_back);
    EXPECT_LT(rsa_test::rel_l2(r.rdm.data, cpu_one_shot(x, S, N)), 1e-5);
}

TEST(RdmScaleGpu, DeviceResidentPrecisionLaunchMatchesTwin) {
    const int64_t S = 513, N = 3001;
    const std::vector<float> x = structured(S, N);
    std::vector<float> z(x.size());
    zscore_rows_ref(x.data(), S, N, z.data(), nullptr);
    round_to_tf32(z.data(), z.size());
    std::vector<float> twin(static_cast<size_t>(S * S));
    rdm_from_zscored_ref(z.data(), S, N, twin.data());
    float *d_z = nullptr, *d_m = nullptr;
    CUDA_CHECK(cudaMalloc(&d_z, z.size() * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&d_m, twin.size() * sizeof(float)));
    // Everything on the context's stream: it is non-blocking, so a cudaMemcpy / cudaMemset on the legacy default
    // stream would not be ordered before the launches below (a pageable cudaMemcpy may return before its DMA
    // lands, and cudaMemset of device memory is asynchronous to the host).
    CUDA_CHECK(cudaMemcpyAsync(d_z, z.data(), z.size() * sizeof(float), cudaMemcpyHostToDevice, ctx().stream));
    for (Tf32Variant v : {Tf32Variant::SyrkMathMode, Tf32Variant::GemmExStrips}) {
        CUDA_CHECK(cudaMemsetAsync(d_m, 0xFF, twin.size() * sizeof(float), ctx().stream));
        rdm_from_zscored_precision_launch(ctx().cublas, d_z, S, N, d_m, Precision::TF32, v, 100, ctx().stream);
        std::vector<float> got(twin.size());
        CUDA_CHECK(cudaMemcpyAsync(got.data(), d_m, got.size() * sizeof(float), cudaMemcpyDeviceToHost, ctx().stream));
        CUDA_CHECK(cudaStreamSynchronize(ctx().stream));
        EXPECT_LT(rsa_test::rel_l2(got, twin), 1e-5) << tf32_variant_name(v);
        cublasMath_t mode;
        CUBLAS_CHECK(cublasGetMathMode(ctx().cublas, &mode));
        EXPECT_EQ(mode, CUBLAS_PEDANTIC_MATH);  // restored
    }
    CUDA_CHECK(cudaFree(d_z));
    CUDA_CHECK(cudaFree(d_m));
}

// The GPU engine of the RDM (rdm_run_gpu) against the CPU engine (rdm_run_ref) under the same plans, on fresh random
// inputs with poisoned buffers: one block, neuron blocks, tiles (whole rows and neuron blocks), for a pageable, a
// pinned and a device-resident input, FP32 (relative L2 < 1e-5) and TF32 (against the CPU TF32 twin, which rounds z
// the same way); through the shared layer (compute_rdm on the GPU backend): caps that force each plan, constant rows
// kept as NaN, the out-of-memory fallback from a one-shot attempt, and the result staying on the device.
#include <gtest/gtest.h>
#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "cuda_check.cuh"
#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "rdm_scale.cuh"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/rdm_engine.h"
#include "backend_calls.h"
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

// Tiles into an S x S host matrix (pre-poisoned with NaN: a tile never written reads NaN).
class MatrixSink final : public RdmTileSink {
public:
    explicit MatrixSink(int64_t S) : S_(S), m_(static_cast<size_t>(S * S), std::nanf("")) {}
    void write_tile(const float* tile, int64_t ld, int64_t r0, int64_t tr, int64_t c0, int64_t tc, bool mirror,
                    bool diagonal) override {
        for (int64_t a = 0; a < tr; ++a)
            for (int64_t b = diagonal ? a : 0; b < tc; ++b) {
                const float v = tile[a * ld + b];
                m_[(r0 + a) * S_ + c0 + b] = v;
                if (mirror || diagonal) m_[(c0 + b) * S_ + r0 + a] = v;
            }
    }
    const std::vector<float>& values() const { return m_; }

private:
    int64_t S_;
    std::vector<float> m_;
};

std::vector<float> cpu_run(const std::vector<float>& x, int64_t S, int64_t N, const MemoryPlan& p, Precision prec) {
    const RowMoments m = row_moments_ref(x.data(), S, N);
    if (p.tiled) {
        MatrixSink sink(S);
        rdm_run_ref(x.data(), S, N, p, prec, m, nullptr, &sink);
        return sink.values();
    }
    std::vector<float> out(static_cast<size_t>(S * S), std::nanf(""));
    rdm_run_ref(x.data(), S, N, p, prec, m, out.data(), nullptr);
    return out;
}

enum class Source { Pageable, Pinned, Device };
const char* source_name(Source s) {
    return s == Source::Pageable ? "pageable" : s == Source::Pinned ? "pinned" : "device-resident";
}

std::vector<float> gpu_run(const std::vector<float>& x, int64_t S, int64_t N, const MemoryPlan& p, Precision prec,
                           Source source) {
    const RowMoments m = row_moments_ref(x.data(), S, N);
    RdmInput in;
    PinnedBuffer<float> pinned;
    DeviceBuffer<float> d_x;
    if (source == Source::Pinned) {
        pinned = PinnedBuffer<float>(x.size(), "the pinned input");
        std::copy(x.begin(), x.end(), pinned.get());
        in.host = pinned.get();
    } else if (source == Source::Device) {
        d_x.upload(x, ctx().stream);
        in.device = d_x.get();
    } else {
        in.host = x.data();
    }
    if (p.tiled) {
        MatrixSink sink(S);
        rdm_run_gpu(ctx(), in, S, N, p, prec, m, nullptr, &sink, true);
        return sink.values();
    }
    DeviceBuffer<float> out(static_cast<size_t>(S * S), "the RDM");
    out.poison(ctx().stream);
    rdm_run_gpu(ctx(), in, S, N, p, prec, m, out.get(), nullptr, true);
    std::vector<float> got(static_cast<size_t>(S * S));
    out.download(got.data(), got.size(), ctx().stream);
    if (source == Source::Device) {  // the resident input is not written
        std::vector<float> back(x.size());
        d_x.download(back.data(), back.size(), ctx().stream);
        EXPECT_EQ(back, x) << "the device-resident input was modified";
    }
    return got;
}

}  // namespace

TEST(RdmScaleGpu, EnginesAgreeUnderEveryPlanFp32AndTf32) {
    const int64_t S = 300, N = 2500;
    const std::vector<float> x = structured(S, N);
    const std::vector<MemoryPlan> plans = {rsa_test::plan_of(S, N, N, 0), rsa_test::plan_of(S, N, 700, 0), rsa_test::plan_of(S, N, N, 64),
                                           rsa_test::plan_of(S, N, 300, 37)};
    for (Precision prec : {Precision::FP32, Precision::TF32})
        for (const MemoryPlan& p : plans) {
            const std::vector<float> twin = cpu_run(x, S, N, p, prec);
            for (Source src : {Source::Pageable, Source::Pinned, Source::Device}) {
                SCOPED_TRACE(describe(p) + precision_name(prec) + " " + source_name(src));
                const std::vector<float> got = gpu_run(x, S, N, p, prec, src);
                // TF32: the same rounded z on both sides (TF32 x TF32 products are exact in FP32); only the
                // accumulation order differs, as for FP32.
                EXPECT_LT(rsa_test::rel_l2(got, twin), prec == Precision::FP32 ? 1e-5 : 1e-4);
                for (int64_t i = 0; i < S; ++i)
                    for (int64_t j = 0; j < i; ++j) ASSERT_EQ(got[i * S + j], got[j * S + i]) << i << ", " << j;
            }
        }
    cublasMath_t mode;
    CUBLAS_CHECK(cublasGetMathMode(ctx().cublas, &mode));
    EXPECT_EQ(mode, CUBLAS_PEDANTIC_MATH);  // restored after the TF32 calls
}

// Through the shared layer on the GPU backend: caps force each plan (told through on_plan), the result equals the
// CPU backend's, and an in-memory result stays on the device until asked for.
TEST(RdmScaleGpu, ComputeRdmHonoursTheCap) {
    const int64_t S = 257, N = 3001;
    const std::vector<float> x = structured(S, N);
    Matrix xm(S, N);
    xm.data = x;
    auto gpu = make_gpu_backend(0);
    auto cpu = make_cpu_backend();
    const std::string dir = rsa_test::scratch_dir("rdm_scale_gpu_cap");
    const uint64_t huge = 1ull << 40;
    for (uint64_t cap : {uint64_t{0}, uint64_t{S * S * 4 + S * kRowStatBytes + 2 * S * 4 * 512},
                         uint64_t{S * kRowStatBytes + 4 * 32 * 256 * 4 + 2 * 32 * 32 * 4 + (1u << 10)}}) {
        const MemoryPlan expect = plan_rdm(S, N, cap, huge);
        RdmOptions o;
        o.max_gpu_bytes = cap;
        std::string told;
        o.on_plan = [&told](const std::string& t) { told += t; };
        if (expect.tiled) o.output_path = dir + "/gpu.npy";
        const RdmResult g = compute_rdm(*gpu, xm, o, "x");
        EXPECT_EQ(g.plan.kind, expect.kind) << describe(g.plan);
        if (cap) EXPECT_NE(told.find(plan_kind_name(expect.kind)), std::string::npos) << told;
        if (expect.tiled) o.output_path = dir + "/cpu.npy";
        const RdmResult c = compute_rdm(*cpu, xm, o, "x");
        std::vector<float> gv, cv;
        if (expect.tiled) {
            const NpyArray a = npy_load(dir + "/gpu.npy"), b = npy_load(dir + "/cpu.npy");
            gv.assign(a.values.begin(), a.values.end());
            cv.assign(b.values.begin(), b.values.end());
        } else {
            EXPECT_FALSE(g.rdm.has_host());  // on the device until asked for
            ASSERT_NE(g.rdm.device_copy(0), nullptr);
            gv = g.rdm.to_matrix().data;
            cv = c.rdm.to_matrix().data;
        }
        EXPECT_LT(rsa_test::rel_l2(gv, cv), 1e-5) << describe(g.plan);
    }
}

TEST(RdmScaleGpu, ConstantRowsKeptAsNanLikeTheCpu) {
    const int64_t S = 64, N = 700;
    std::vector<float> x = structured(S, N);
    for (int64_t n = 0; n < N; ++n) {
        x[4 * N + n] = 2.5f;                                      // exactly constant
        x[17 * N + n] = (n % 2) ? std::nextafter(1.5f, 4.0f) : 1.5f;  // constant up to rounding
    }
    Matrix xm(S, N);
    xm.data = x;
    auto gpu = make_gpu_backend(0);
    auto cpu = make_cpu_backend();
    RdmOptions o;
    o.constant_rows = ConstantRows::Nan;
    for (uint64_t cap : {uint64_t{0}, uint64_t{S * S * 4 + S * kRowStatBytes + 2 * S * 4 * 128}}) {
        o.max_gpu_bytes = cap;
        const RdmResult g = compute_rdm(*gpu, xm, o, "x"), c = compute_rdm(*cpu, xm, o, "x");
        EXPECT_EQ(g.nan_rows, (std::vector<int64_t>{4, 17}));
        EXPECT_EQ(g.nan_rows, c.nan_rows);
        const std::vector<float> gv = g.rdm.to_matrix().data, cv = c.rdm.to_matrix().data;
        for (size_t i = 0; i < gv.size(); ++i) ASSERT_EQ(std::isnan(gv[i]), std::isnan(cv[i])) << i;
        EXPECT_LT(rsa_test::rel_l2(gv, cv), 1e-5);
    }
    o.constant_rows = ConstantRows::Fail;
    o.max_gpu_bytes = 0;
    EXPECT_THROW(compute_rdm(*gpu, xm, o, "x"), InputError);
}

// The out-of-memory fallback of the shared layer: a backend that claims 1 TB free on its first memory query makes
// compute_rdm plan one-shot; the device has about 256 MB left, so the run's allocation fails and compute_rdm
// re-plans against the real free memory (streamed).
TEST(RdmScaleGpu, OneShotOutOfMemoryFallsBack) {
    const int64_t S = 2000, N = 40000;
    auto gpu = make_gpu_backend(0);
    class Lying final : public Backend {
    public:
        explicit Lying(Backend& b) : b_(b) {}
        std::string name() const override { return b_.name(); }
        bool is_gpu() const override { return true; }
        int device() const override { return b_.device(); }
        Array gratings(const std::vector<float>& a, const GratingParams& p) override { return b_.gratings(a, p); }
        RowMoments row_moments(const Array& x, bool keep) override { return b_.row_moments(x, keep); }
        WeightedMoments evaluate_moments(const std::vector<double>& d, int64_t K, const std::vector<double>& m,
                                         int64_t M, int64_t S, const std::vector<double>& c, int64_t R,
                                         bool centre) override {
            return b_.evaluate_moments(d, K, m, M, S, c, R, centre);
        }
        PlanMemory rdm_memory(int64_t S, int64_t N) override {
            PlanMemory m = b_.rdm_memory(S, N);
            if (calls_++ == 0) m.free_bytes = 1ull << 40;
            return m;
        }
        Array rdm_run(const Array& x, const MemoryPlan& p, Precision pr, const RowMoments& m,
                      const std::vector<int64_t>& nan_rows, RdmTileSink* sink) override {
            return b_.rdm_run(x, p, pr, m, nan_rows, sink);
        }
        UpperSpread rdm_spread(const Array& r) override { return b_.rdm_spread(r); }
        Array whiten(const Array& x, const Array& f) override { return b_.whiten(x, f); }
        Array cross_gram(const Array& a, const Array& b, int64_t folds) override { return b_.cross_gram(a, b, folds); }
        std::vector<std::vector<CompareResult>> compare(const Array& r, const std::vector<Array>& m,
                                                        const std::vector<Measure>& ms) override {
            return b_.compare(r, m, ms);
        }
        CkaResult cka(const Array& x, const Array& y) override { return b_.cka(x, y); }
        BootstrapResult bootstrap(const Array& r, const std::vector<Array>& m, int n, uint64_t s,
                                  int64_t first) override {
            return b_.bootstrap(r, m, n, s, first);
        }
        std::vector<PermutationResult> permutation(const Array& r, const std::vector<Array>& m, int n, uint64_t s,
                                                   int64_t first) override {
            return b_.permutation(r, m, n, s, first);
        }
        NoiseCeilingResult noise_ceiling(const Array& r, const std::vector<int64_t>& b, int sp, uint64_t s) override {
            return b_.noise_ceiling(r, b, sp, s);
        }
        SyntheticV1 synthetic_v1(const SyntheticV1Params& p) override { return b_.synthetic_v1(p); }
        SyntheticV1Trials synthetic_v1_trials(const SyntheticV1Params& p) override { return b_.synthetic_v1_trials(p); }
        TrainResult cnn_train(std::vector<float>& p, const Array& i, const std::vector<float>& l, const TrainConfig& c,
                              const EpochCallback& e) override {
            return b_.cnn_train(p, i, l, c, e);
        }
        CnnActivations cnn_forward(const std::vector<float>& p, const Array& i) override { return b_.cnn_forward(p, i); }

    private:
        Backend& b_;
        int calls_ = 0;
    } lying(*gpu);
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
    Matrix xm(S, N);
    xm.data = rsa_test::random_uniform(static_cast<size_t>(S * N), -1.0f, 1.0f);
    RdmResult r;
    std::string error, told;
    RdmOptions o;
    o.on_plan = [&told](const std::string& t) { told += t; };
    try {
        r = compute_rdm(lying, xm, o, "x");
    } catch (const std::exception& e) {
        error = e.what();
    }
    std::vector<float> got;
    if (error.empty()) got = r.rdm.to_matrix().data;
    for (void* p : hog) CUDA_CHECK(cudaFree(p));
    ASSERT_TRUE(error.empty()) << error;
    EXPECT_TRUE(r.fell_back);
    EXPECT_EQ(r.plan.kind, PlanKind::Streamed) << describe(r.plan);
    EXPECT_NE(told.find("fell back"), std::string::npos) << told;
    std::vector<float> ref(static_cast<size_t>(S * S));
    rdm_ref(xm.data.data(), S, N, ref.data());
    EXPECT_LT(rsa_test::rel_l2(got, ref), 1e-5);
}

// The noise ceiling's half RDMs: the engine's one-block path on device rows (rdm_resident_launch) against rdm_ref.
TEST(RdmScaleGpu, ResidentLaunchMatchesCpuEngine) {
    const int64_t S = 513, N = 3001;
    const std::vector<float> x = structured(S, N);
    std::vector<float> twin(static_cast<size_t>(S * S));
    rdm_ref(x.data(), S, N, twin.data());
    DeviceBuffer<float> d_x, d_m(twin.size(), "the RDM");
    DeviceBuffer<double> stats(static_cast<size_t>(2 * S), "row statistics");
    d_x.upload(x, ctx().stream);
    d_m.poison(ctx().stream);
    rdm_resident_launch(ctx().cublas, d_x.get(), S, N, stats.get(), d_m.get(), ctx().stream);
    std::vector<float> got(twin.size());
    d_m.download(got.data(), got.size(), ctx().stream);
    EXPECT_LT(rsa_test::rel_l2(got, twin), 1e-5);
}

// The CPU engine of the RDM under every plan kind (rdm.h rdm_run_ref, plans from rdm_plan.h): precision parsing and
// TF32 rounding, row moments, neuron blocks and tiles (written through MappedNpyWriter) against the one-block run,
// the TF32 twin against an FP64 reference, constant rows, the memory plan, and that a failed write leaves no file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <fstream>
#include <iterator>
#include <limits>

#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/rdm_plan.h"
#include "backend_calls.h"
#include "test_util.h"

using namespace rsa;

namespace {

// Rows with shared structure (rank 4 + noise + a row offset), so the RDM spans a range of values.
std::vector<float> structured(int64_t S, int64_t N, float offset = 0.0f) {
    const std::vector<float> a = rsa_test::random_uniform(static_cast<size_t>(S * 4), -1.0f, 1.0f);
    const std::vector<float> b = rsa_test::random_uniform(static_cast<size_t>(4 * N), -1.0f, 1.0f);
    std::vector<float> x = rsa_test::random_uniform(static_cast<size_t>(S * N), -0.5f, 0.5f);
    for (int64_t s = 0; s < S; ++s)
        for (int64_t n = 0; n < N; ++n) {
            float v = 0.0f;
            for (int r = 0; r < 4; ++r) v += a[s * 4 + r] * b[r * N + n];
            x[s * N + n] += v + offset + 0.1f * static_cast<float>(s % 7);
        }
    return x;
}

// The exactly constant rows (m2 == 0: NaN rows and columns of every plan's RDM).
std::vector<int64_t> zero_variance_rows(const std::vector<float>& x, int64_t S, int64_t N) {
    const RowMoments m = row_moments_ref(x.data(), S, N);
    std::vector<int64_t> rows;
    for (int64_t s = 0; s < S; ++s)
        if (!(m.m2[s] > 0.0)) rows.push_back(s);
    return rows;
}

std::vector<float> one_shot(const std::vector<float>& x, int64_t S, int64_t N, std::vector<int64_t>* constant = nullptr) {
    std::vector<float> m(static_cast<size_t>(S * S));
    rdm_ref(x.data(), S, N, m.data());
    if (constant) *constant = zero_variance_rows(x, S, N);
    return m;
}

// The engine in memory with neuron blocks of K.
void rdm_blocks(const std::vector<float>& x, int64_t S, int64_t N, int64_t K, Precision precision, float* out) {
    rdm_run_ref(x.data(), S, N, rsa_test::plan_of(S, N, K, 0), precision, row_moments_ref(x.data(), S, N), out, nullptr);
}

// Tiles into a MappedNpyWriter at `path`; after_tile (may be empty) is called after each tile with (done, total).
class WriterSink final : public RdmTileSink {
public:
    WriterSink(MappedNpyWriter& w, std::function<void(int64_t)> after) : w_(w), after_(std::move(after)) {}
    void write_tile(const float* tile, int64_t ld, int64_t r0, int64_t tr, int64_t c0, int64_t tc, bool mirror,
                    bool diagonal) override {
        w_.write_tile(tile, ld, r0, tr, c0, tc, mirror, diagonal);
        ++done_;
        if (after_) after_(done_);
    }
    int64_t done() const { return done_; }

private:
    MappedNpyWriter& w_;
    std::function<void(int64_t)> after_;
    int64_t done_ = 0;
};

int64_t rdm_tiles_to_file(const std::vector<float>& x, int64_t S, int64_t N, int64_t T, int64_t K,
                          Precision precision, const std::string& path, std::function<void(int64_t)> after = {}) {
    MappedNpyWriter w(path, S, S);
    WriterSink sink(w, std::move(after));
    rdm_run_ref(x.data(), S, N, rsa_test::plan_of(S, N, K, T), precision, row_moments_ref(x.data(), S, N), nullptr, &sink);
    w.commit();
    return sink.done();
}

// FP64 reference: two-pass statistics and the product in double.
std::vector<double> fp64_rdm(const std::vector<float>& x, int64_t S, int64_t N) {
    std::vector<double> z(x.size());
    for (int64_t s = 0; s < S; ++s) {
        long double sum = 0;
        for (int64_t n = 0; n < N; ++n) sum += x[s * N + n];
        const double mean = static_cast<double>(sum / N);
        long double ss = 0;
        for (int64_t n = 0; n < N; ++n) ss += (x[s * N + n] - mean) * static_cast<long double>(x[s * N + n] - mean);
        const double inv = 1.0 / std::sqrt(static_cast<double>(ss / N));
        for (int64_t n = 0; n < N; ++n) z[s * N + n] = (x[s * N + n] - mean) * inv;
    }
    std::vector<double> m(static_cast<size_t>(S * S));
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i; j < S; ++j) {
            double d = 0.0;
            for (int64_t n = 0; n < N; ++n) d += z[i * N + n] * z[j * N + n];
            m[i * S + j] = m[j * S + i] = 1.0 - d / static_cast<double>(N);
        }
    return m;
}

double rel_l2_64(const std::vector<float>& a, const std::vector<double>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < b.size(); ++i) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return std::sqrt(num / den);
}

std::vector<float> load_square(const std::string& path, int64_t S) {
    const NpyArray a = npy_load(path);
    EXPECT_EQ(a.descr, "<f4");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{S, S}));
    std::vector<float> v(a.values.size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(a.values[i]);
    return v;
}

}  // namespace

TEST(RdmScale, ParsePrecision) {
    EXPECT_EQ(parse_precision("fp32"), Precision::FP32);
    EXPECT_EQ(parse_precision("tf32"), Precision::TF32);
    EXPECT_STREQ(precision_name(Precision::TF32), "tf32");
    for (const char* bad : {"", "fp16", "FP64", "tf32 "}) EXPECT_THROW(parse_precision(bad), InputError) << bad;
}

TEST(RdmScale, Tf32RoundsToNearestEven) {
    const float ulp = std::ldexp(1.0f, -10);  // TF32 spacing at 1
    EXPECT_EQ(round_to_tf32(1.0f), 1.0f);
    EXPECT_EQ(round_to_tf32(1.0f + ulp / 2), 1.0f);               // tie, even stays
    EXPECT_EQ(round_to_tf32(1.0f + 3 * ulp / 2), 1.0f + 2 * ulp);  // tie, odd rounds up
    EXPECT_EQ(round_to_tf32(1.0f + ulp / 2 + std::ldexp(1.0f, -20)), 1.0f + ulp);
    EXPECT_EQ(round_to_tf32(-(1.0f + 3 * ulp / 2)), -(1.0f + 2 * ulp));
    EXPECT_TRUE(std::isnan(round_to_tf32(std::nanf(""))));
    EXPECT_EQ(round_to_tf32(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
    EXPECT_EQ(round_to_tf32(std::numeric_limits<float>::max()), std::numeric_limits<float>::infinity());
    const std::vector<float> v = rsa_test::random_uniform(100000, -1e3f, 1e3f);
    for (float x : v) {
        const float r = round_to_tf32(x);
        uint32_t u;
        std::memcpy(&u, &r, 4);
        ASSERT_EQ(u & 0x1fffu, 0u);
        ASSERT_LE(std::abs(r - x), std::ldexp(std::abs(x), -11) * 1.0000001f);
    }
}

TEST(RdmScale, RowMomentsAccurateWithOffset) {
    const int64_t S = 5, N = 10007;
    const std::vector<float> x = structured(S, N, 1.0e4f);  // a large common offset
    {
        const RowMoments st = row_moments_ref(x.data(), S, N);
        const int64_t block = N;
        for (int64_t s = 0; s < S; ++s) {
            long double sum = 0, ss = 0;
            for (int64_t n = 0; n < N; ++n) sum += x[s * N + n];
            const long double mean = sum / N;
            for (int64_t n = 0; n < N; ++n) ss += (x[s * N + n] - mean) * (x[s * N + n] - mean);
            const double inv = static_cast<double>(1.0L / std::sqrt(ss / N));
            EXPECT_NEAR(st.mean[s], static_cast<double>(mean), 1e-12 * 1e4) << block;
            EXPECT_NEAR(inv_sd_from_m2(st.m2[s], static_cast<double>(N)), inv, 1e-10 * inv) << block;
        }
        EXPECT_TRUE(zero_variance_rows(x, S, N).empty());
    }
}

TEST(RdmScale, ChunkedMatchesOneShotTwin) {
    for (auto [S, N, K] : {std::tuple<int64_t, int64_t, int64_t>{50, 1000, 300}, {37, 999, 64}, {3, 7, 2},
                           {64, 2049, 2048}, {20, 500, 500}}) {
        const std::vector<float> x = structured(S, N);
        const std::vector<float> ref = one_shot(x, S, N);
        std::vector<float> m(static_cast<size_t>(S * S), std::nanf(""));
        rdm_blocks(x, S, N, K, Precision::FP32, m.data());
        EXPECT_LT(rsa_test::rel_l2(m, ref), 1e-5) << S << " x " << N << " block " << K;
        for (int64_t i = 0; i < S; ++i)
            for (int64_t j = 0; j < i; ++j) ASSERT_EQ(m[i * S + j], m[j * S + i]);
    }
}

TEST(RdmScale, TiledFileMatchesOneShotTwin) {
    const std::string dir = rsa_test::scratch_dir("rdm_scale_tiled");
    for (auto [S, N, T, K] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{50, 1000, 16, 1000}, {50, 1000, 16, 300},
                              {37, 999, 37, 999}, {37, 999, 10, 64}, {3, 7, 2, 3}, {65, 300, 64, 300}}) {
        const std::vector<float> x = structured(S, N);
        const std::vector<float> ref = one_shot(x, S, N);
        const std::string path = dir + "/rdm.npy";
        const int64_t calls = rdm_tiles_to_file(x, S, N, T, K, Precision::FP32, path);
        const int64_t tiles = (S + T - 1) / T;
        EXPECT_EQ(calls, tiles * (tiles + 1) / 2);
        const std::vector<float> m = load_square(path, S);
        EXPECT_LT(rsa_test::rel_l2(m, ref), 1e-5) << S << " x " << N << " tile " << T << " block " << K;
        for (int64_t i = 0; i < S; ++i)
            for (int64_t j = 0; j < i; ++j) ASSERT_EQ(m[i * S + j], m[j * S + i]);
        EXPECT_EQ(rsa_test::list_dir(dir), std::vector<std::string>{"rdm.npy"});  // no temporary left
    }
}

TEST(RdmScale, HeaderIsNpyBytesF32) {
    for (auto [r, c] : {std::pair<int64_t, int64_t>{3, 3}, {4598, 4598}, {1, 100000}}) {
        const std::string h = npy_header_f32(r, c);
        EXPECT_EQ(h.size() % 64, 0u);
        std::vector<float> one(static_cast<size_t>(r == 4598 ? 0 : r * c));
        const std::vector<char> ref = npy_bytes_f32(one.data(), {r == 4598 ? 0 : r, c});
        if (r != 4598) {
            EXPECT_EQ(std::string(ref.data(), h.size()), h);
        }
    }
    // 4,598 x 4,598: the header through a real file.
    const std::string dir = rsa_test::scratch_dir("rdm_scale_header");
    {
        MappedNpyWriter w(dir + "/big.npy", 4598, 4598);
        std::fill(w.data(), w.data() + 4598 * 4598, 0.25f);
        w.commit();
    }
    const NpyArray a = npy_load(dir + "/big.npy");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{4598, 4598}));
    EXPECT_EQ(a.values[4598 * 4598 - 1], 0.25);
}

TEST(RdmScale, Tf32TwinAndFp32VsFp64) {
    const int64_t S = 60, N = 3001;
    const std::vector<float> x = structured(S, N, 3.0f);
    const std::vector<double> ref = fp64_rdm(x, S, N);
    std::vector<float> fp32(static_cast<size_t>(S * S)), tf32(fp32.size()), tf32_tiled;
    rdm_blocks(x, S, N, 1000, Precision::FP32, fp32.data());
    rdm_blocks(x, S, N, 1000, Precision::TF32, tf32.data());
    const double e32 = rel_l2_64(fp32, ref), e_tf = rel_l2_64(tf32, ref);
    std::printf("relative L2 vs FP64: fp32 %.3g, tf32 %.3g\n", e32, e_tf);
    EXPECT_LT(e32, 1e-6);
    EXPECT_LT(e_tf, 2e-3);
    EXPECT_GT(e_tf, 10 * e32);  // TF32 really was used
    const std::string dir = rsa_test::scratch_dir("rdm_scale_tf32");
    rdm_tiles_to_file(x, S, N, 16, 512, Precision::TF32, dir + "/t.npy");
    tf32_tiled = load_square(dir + "/t.npy", S);
    EXPECT_LT(rsa_test::rel_l2(tf32_tiled, tf32), 1e-5);  // same rounded inputs, other accumulation order
}

TEST(RdmScale, ConstantRowsAreNanAndReported) {
    const int64_t S = 30, N = 700;
    std::vector<float> x = structured(S, N);
    for (int64_t n = 0; n < N; ++n) {
        x[4 * N + n] = 2.5f;
        x[17 * N + n] = -1.0f;
    }
    std::vector<int64_t> want;
    const std::vector<float> ref = one_shot(x, S, N, &want);
    ASSERT_EQ(want, (std::vector<int64_t>{4, 17}));
    std::vector<float> m(static_cast<size_t>(S * S));
    rdm_blocks(x, S, N, 128, Precision::FP32, m.data());
    EXPECT_LT(rsa_test::rel_l2(m, ref), 1e-5);  // NaN in exactly the same places
    for (int64_t j = 0; j < S; ++j) {
        EXPECT_TRUE(std::isnan(m[4 * S + j]));
        EXPECT_TRUE(std::isnan(m[j * S + 17]));
    }
    const std::string dir = rsa_test::scratch_dir("rdm_scale_const");
    rdm_tiles_to_file(x, S, N, 8, 128, Precision::TF32, dir + "/c.npy");
    const std::vector<float> t = load_square(dir + "/c.npy", S);
    for (int64_t i = 0; i < S * S; ++i) ASSERT_EQ(std::isnan(t[i]), std::isnan(ref[i])) << i;
}

TEST(RdmScale, PlanPicksOneShotStreamedTiled) {
    const uint64_t huge = 1ull << 40;
    const int64_t S = 4598, N = 23589;
    MemoryPlan p = plan_rdm(S, N, 0, huge);
    EXPECT_EQ(p.kind, PlanKind::OneShot);
    EXPECT_FALSE(p.streamed);
    EXPECT_EQ(p.input_place, Place::Device);
    // 200 MB cap: the 434 MB input cannot be resident, the 85 MB output can.
    p = plan_rdm(S, N, 200'000'000, huge);
    EXPECT_EQ(p.kind, PlanKind::Streamed);
    EXPECT_GE(p.neuron_blocks, 2);
    EXPECT_LE(p.device_bytes, 200'000'000u);
    EXPECT_EQ(p.output_place, Place::Device);
    EXPECT_EQ(p.input_place, Place::Host);
    // 50 MB: the output does not fit either.
    p = plan_rdm(S, N, 50'000'000, huge);
    EXPECT_EQ(p.kind, PlanKind::Tiled);
    EXPECT_TRUE(p.tiled);
    EXPECT_EQ(p.output_place, Place::Disk);
    EXPECT_LE(p.device_bytes, 50'000'000u);
    EXPECT_GE(p.row_tiles, 2);
    const std::string d = describe(p);
    EXPECT_NE(d.find("disk"), std::string::npos) << d;
    EXPECT_NE(d.find("input:"), std::string::npos) << d;
    EXPECT_NE(d.find("workspace:"), std::string::npos) << d;
    std::printf("%s", d.c_str());
    // The device's free memory bounds the plan as the cap does (less a margin).
    p = plan_rdm(S, N, 0, 400'000'000);
    EXPECT_EQ(p.kind, PlanKind::Streamed);
    EXPECT_LE(p.device_bytes, 400'000'000u - (64u << 20));
    // min_kind skips one-shot (the out-of-memory fallback).
    EXPECT_EQ(plan_rdm(S, N, 0, huge, PlanKind::Streamed).kind, PlanKind::Streamed);
    EXPECT_EQ(plan_rdm(S, N, 0, huge, PlanKind::Tiled).kind, PlanKind::Tiled);
    // Nothing fits: a clear RuntimeError.
    try {
        plan_rdm(S, N, 1000, huge);
        FAIL() << "expected RuntimeError";
    } catch (const RuntimeError& e) {
        EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
    }
}

TEST(RdmScale, TinyPlansRunOnTheCpuTwin) {
    const std::string dir = rsa_test::scratch_dir("rdm_scale_plans");
    const uint64_t huge = 1ull << 40;
    struct Case { int64_t S, N; uint64_t cap; PlanKind kind; };
    const auto cap_for = [](int64_t S, int64_t N, int which) -> uint64_t {
        const uint64_t stats = S * kRowStatBytes, out = S * S * 4;
        return which == 0 ? out + S * N * 4 + stats : out + stats + 2 * S * 4 * 300;
    };
    for (const Case c : {Case{45, 1003, cap_for(45, 1003, 0), PlanKind::OneShot},
                         Case{45, 1003, cap_for(45, 1003, 1), PlanKind::Streamed},
                         Case{300, 700, 187000, PlanKind::Tiled}, Case{300, 700, 60000, PlanKind::Tiled}}) {
        const int64_t S = c.S, N = c.N;
        const std::vector<float> x = structured(S, N);
        const std::vector<float> ref = one_shot(x, S, N);
        const MemoryPlan p = plan_rdm(S, N, c.cap, huge);
        ASSERT_EQ(p.kind, c.kind) << describe(p);
        EXPECT_LE(p.device_bytes, c.cap);
        if (c.kind != PlanKind::OneShot) {
            EXPECT_GE(p.neuron_blocks, 2) << describe(p);
            EXPECT_NE(N % p.neuron_block, 0) << describe(p);  // uneven last block
        }
        if (c.kind == PlanKind::Tiled) {
            EXPECT_GE(p.row_tiles, 3) << describe(p);
            EXPECT_NE(S % p.row_tile, 0) << describe(p);  // uneven last tile
        }
        const std::string path = dir + "/plan.npy";
        const RowMoments moments = row_moments_ref(x.data(), S, N);
        std::vector<float> got(static_cast<size_t>(S * S));
        if (p.tiled) {
            MappedNpyWriter w(path, S, S);
            WriterSink sink(w, {});
            rdm_run_ref(x.data(), S, N, p, Precision::FP32, moments, nullptr, &sink);
            w.commit();
            got = load_square(path, S);
        } else {
            rdm_run_ref(x.data(), S, N, p, Precision::FP32, moments, got.data(), nullptr);
        }
        EXPECT_LT(rsa_test::rel_l2(got, ref), 1e-5) << describe(p);
    }
    // A tiled plan without a sink, an in-memory plan without an output: RuntimeError, no work.
    const std::vector<float> x = structured(300, 700);
    const RowMoments moments = row_moments_ref(x.data(), 300, 700);
    EXPECT_THROW(rdm_run_ref(x.data(), 300, 700, plan_rdm(300, 700, 60000, huge), Precision::FP32, moments, nullptr,
                             nullptr),
                 RuntimeError);
    EXPECT_THROW(rdm_run_ref(x.data(), 300, 700, plan_rdm(300, 700, 0, huge), Precision::FP32, moments, nullptr, nullptr),
                 RuntimeError);
}

TEST(RdmScale, FailedWriteLeavesNoFile) {
    const int64_t S = 40, N = 200;
    const std::vector<float> x = structured(S, N);
    const std::string dir = rsa_test::scratch_dir("rdm_scale_fail");
    // A folder that does not exist: RuntimeError naming the path, nothing created.
    try {
        rdm_tiles_to_file(x, S, N, 8, N, Precision::FP32, dir + "/missing/rdm.npy");
        FAIL() << "expected RuntimeError";
    } catch (const RuntimeError& e) {
        EXPECT_NE(std::string(e.what()).find("missing/rdm.npy"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(rsa_test::list_dir(dir).empty());
    // A failure after some tiles were written: the temporary file is removed and an existing file is kept.
    write_file_atomic(dir + "/rdm.npy", "old");
    EXPECT_THROW(rdm_tiles_to_file(x, S, N, 8, N, Precision::FP32, dir + "/rdm.npy",
                                   [](int64_t done) {
                                       if (done == 3) throw RuntimeError("interrupted");
                                   }),
                 RuntimeError);
    EXPECT_EQ(rsa_test::list_dir(dir), std::vector<std::string>{"rdm.npy"});
    std::ifstream in(dir + "/rdm.npy", std::ios::binary);
    const std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(kept, "old");
}

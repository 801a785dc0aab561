// The GPU engine of the RDM (rdm_scale.cuh): row-moment, z-score, finish, mirror and NaN-row kernels, the
// precision-aware SYRK and GEMM accumulation, a chunk streamer (pinned double buffers within a quarter of the host's
// physical memory, copy stream, events), and the one run of a plan: in memory (device-resident input, one host copy,
// or streamed neuron blocks) or tiled (tiles read back through pinned buffers to the sink). Device memory is
// DeviceBuffer (OutOfMemoryError on allocation failure), pinned staging memory PinnedBuffer; block size, grids and
// block sums from the kit (common.cuh). CPU twin: rdm_run_ref (host/rdm_ref.cpp).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "common.cuh"
#include "cuda_check.cuh"
#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "rdm_scale.cuh"
#include "rsa_gpu/rdm.h"

namespace rsa {

namespace {

// ---------------------------------------------------------------- kernels
__device__ __forceinline__ float tf32_rne(float v) {
    uint32_t u = __float_as_uint(v);
    if ((u & 0x7f800000u) == 0x7f800000u) return v;  // Inf, NaN
    u += 0x0fffu + ((u >> 13) & 1u);
    return __uint_as_float(u & 0xffffe000u);
}

// One block per row: mean and centred sum of squares, two passes in double (as row_mean_m2, with the kit's
// block_sum for the per-thread partial sums).
__global__ void row_moments_kernel(const float* __restrict__ x, int64_t cols, int64_t ld, double* __restrict__ mean,
                                   double* __restrict__ m2) {
    const int64_t row = blockIdx.x;
    const float* xr = x + row * ld;
    double sum = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += xr[j];
    const double m = block_sum(sum) / static_cast<double>(cols);  // every thread: the same value
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        const double d = xr[j] - m;
        ss += d * d;
    }
    ss = block_sum(ss);
    if (threadIdx.x == 0) {
        mean[row] = m;
        m2[row] = ss;
    }
}

__global__ void inv_sd_kernel(const double* __restrict__ m2, int64_t S, double N, double* __restrict__ inv_sd) {
    for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < S;
         s += static_cast<int64_t>(gridDim.x) * blockDim.x)
        inv_sd[s] = inv_sd_from_m2(m2[s], N);
}

// Column-major upper entry (r, c), r <= c, at c * S + r: finished and mirrored (the matrix is symmetric, so the
// result is the same in row- and column-major order).
// norms: null for the correlation distance, else each row's squared norm / N (the euclidean distance).
__device__ __forceinline__ float finish_entry(float g, const double* norms, int64_t r, int64_t c) {
    return norms ? euclidean_entry(g, norms[r], norms[c], r == c) : rdm_entry(g);
}

__global__ void finish_upper_kernel(float* __restrict__ m, int64_t S, const double* __restrict__ norms) {
    const int64_t total = S * S;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t c = idx / S, r = idx - c * S;
        if (r > c) continue;
        const float v = finish_entry(m[c * S + r], norms, r, c);
        m[c * S + r] = v;
        m[r * S + c] = v;
    }
}

__global__ void finish_tile_kernel(float* __restrict__ t, int64_t ti, int64_t tj, int diagonal,
                                   const double* __restrict__ norms, int64_t i0, int64_t j0) {
    const int64_t total = ti * tj;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t a = idx / tj, b = idx - a * tj;
        if (diagonal && b < a) continue;
        t[idx] = finish_entry(t[idx], norms, i0 + a, j0 + b);
    }
}

__global__ void nan_rows_cols_kernel(float* __restrict__ m, int64_t S, const int64_t* __restrict__ rows,
                                     int64_t count) {
    const float nan = __int_as_float(0x7fc00000);
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < count * S;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t k = idx / S, i = idx - k * S, r = rows[k];
        m[r * S + i] = nan;
        m[i * S + r] = nan;
    }
}

// x and z may alias (in place): each element is read and written by the same thread.
__global__ void zscore_stats_kernel(const float* x, int64_t ldx, int64_t rows, int64_t cols,
                                    const double* __restrict__ mean, const double* __restrict__ inv_sd, int tf32,
                                    float* z, int64_t ldz) {
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const double m = mean[r], is = inv_sd[r];
        for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < cols;
             c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
            float v = zscore_value(x[r * ldx + c], m, is);
            if (tf32) v = tf32_rne(v);
            z[r * ldz + c] = v;
        }
    }
}

// ---------------------------------------------------------------- RAII helpers
// Sets the cuBLAS math mode for a scope and restores the previous one (without throwing) on exit.
class MathModeGuard {
public:
    MathModeGuard(cublasHandle_t h, cublasMath_t mode) : h_(h) {
        CUBLAS_CHECK(cublasGetMathMode(h_, &old_));
        CUBLAS_CHECK(cublasSetMathMode(h_, mode));
        active_ = true;
    }
    ~MathModeGuard() {
        if (active_) cublasSetMathMode(h_, old_);
    }
    MathModeGuard(const MathModeGuard&) = delete;
    MathModeGuard& operator=(const MathModeGuard&) = delete;

private:
    cublasHandle_t h_;
    cublasMath_t old_ = CUBLAS_PEDANTIC_MATH;
    bool active_ = false;
};

// Page-locked memory cannot be swapped out, so all staging buffers together pin at most a quarter of the host's
// physical memory (sysconf(_SC_PHYS_PAGES) x page size); the device budget bounds each buffer already (a block of
// the plan). No cap when the host does not say.
uint64_t pinned_cap_bytes() {
    static const uint64_t cap = [] {
        const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
        if (pages <= 0 || page <= 0) return std::numeric_limits<uint64_t>::max();
        return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 4;
    }();
    return cap;
}
std::atomic<uint64_t> g_pinned_bytes{0};  // held by live HostStage objects

bool reserve_pinned(uint64_t bytes) {
    uint64_t current = g_pinned_bytes.load();
    do {
        if (bytes > pinned_cap_bytes() || current > pinned_cap_bytes() - bytes) return false;
    } while (!g_pinned_bytes.compare_exchange_weak(current, current + bytes));
    return true;
}

// Pinned host memory (PinnedBuffer) within pinned_cap_bytes(); beyond the cap, or when pinning fails, pageable
// memory (copies then stage through the driver: slower, still correct). OutOfMemoryError when not even pageable
// memory is left.
class HostStage {
public:
    HostStage() = default;
    explicit HostStage(size_t count) {
        if (!count) return;
        const size_t bytes = count * sizeof(float);
        if (reserve_pinned(bytes)) {
            try {
                pinned_ = PinnedBuffer<float>(count, "a staging buffer");
                pinned_bytes_ = bytes;
                return;
            } catch (const RuntimeError&) {  // out of pinned memory (or pinning refused): pageable below
                cudaGetLastError();
                g_pinned_bytes -= bytes;
            }
        }
        pageable_.reset(new (std::nothrow) float[count]);
        if (!pageable_)
            throw OutOfMemoryError("out of host memory allocating " + std::to_string(bytes) +
                                   " bytes for a staging buffer");
    }
    ~HostStage() { unreserve(); }
    HostStage(HostStage&& o) noexcept
        : pinned_(std::move(o.pinned_)), pageable_(std::move(o.pageable_)), pinned_bytes_(o.pinned_bytes_) {
        o.pinned_bytes_ = 0;
    }
    HostStage& operator=(HostStage&& o) noexcept {
        std::swap(pinned_, o.pinned_);
        std::swap(pageable_, o.pageable_);
        std::swap(pinned_bytes_, o.pinned_bytes_);
        return *this;
    }
    float* get() const { return pinned_.get() ? pinned_.get() : pageable_.get(); }

private:
    void unreserve() noexcept {
        g_pinned_bytes -= pinned_bytes_;
        pinned_bytes_ = 0;
    }
    PinnedBuffer<float> pinned_;
    std::unique_ptr<float[]> pageable_;
    uint64_t pinned_bytes_ = 0;  // reserved in g_pinned_bytes for pinned_
};

// Waits for the compute stream when a runner leaves (normally or by an exception) before its buffers go.
struct StreamDrain {
    cudaStream_t stream;
    ~StreamDrain() { cudaStreamSynchronize(stream); }
};

bool is_pinned(const void* p) {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return a.type == cudaMemoryTypeHost;
}

// ---------------------------------------------------------------- chunk streamer
// A chunk: rows [r0, r0 + rows) x columns [k0, k0 + kb) of the host matrix x (row-major, N columns).
struct Chunk {
    int64_t r0, rows, k0, kb;
};

// Copies chunks of x to the device through two device buffers on its own copy stream: feed() packs the
// chunk into a pinned staging buffer (unless x itself is pinned: then a strided cudaMemcpy2DAsync reads it
// directly), copies it, makes the compute stream wait for the copy, and calls work(d_chunk) to enqueue the
// chunk's kernels on the compute stream; the buffer is reused two chunks later, after an event says the
// compute stream is done with it. So the copy (and packing) of chunk k+1 overlaps the work on chunk k.
class ChunkStreamer {
public:
    ChunkStreamer(GpuContext& ctx, const float* x, int64_t N, size_t max_chunk, int buffers, bool poison)
        : ctx_(ctx), x_(x), N_(N), direct_(is_pinned(x)) {
        buffers_ = std::max(1, std::min(2, buffers));
        for (int b = 0; b < buffers_; ++b) {
            d_[b].resize(max_chunk, "an input block");
            if (poison) d_[b].poison(ctx_.stream);
            if (!direct_) h_[b] = HostStage(max_chunk);
        }
        CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
        for (int b = 0; b < 2; ++b) {
            CUDA_CHECK(cudaEventCreateWithFlags(&copied_[b], cudaEventDisableTiming));
            CUDA_CHECK(cudaEventCreateWithFlags(&consumed_[b], cudaEventDisableTiming));
        }
        if (poison) CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    }
    ~ChunkStreamer() {
        if (copy_) cudaStreamSynchronize(copy_);
        cudaStreamSynchronize(ctx_.stream);
        for (int b = 0; b < 2; ++b) {
            if (copied_[b]) cudaEventDestroy(copied_[b]);
            if (consumed_[b]) cudaEventDestroy(consumed_[b]);
        }
        if (copy_) cudaStreamDestroy(copy_);
    }
    ChunkStreamer(const ChunkStreamer&) = delete;
    ChunkStreamer& operator=(const ChunkStreamer&) = delete;

    void feed(const Chunk& c, const std::function<void(float*)>& work) {
        const int b = static_cast<int>(count_ % buffers_);
        const size_t width = static_cast<size_t>(c.kb) * sizeof(float);
        const float* src;
        size_t spitch;
        if (direct_) {
            src = x_ + c.r0 * N_ + c.k0;
            spitch = static_cast<size_t>(N_) * sizeof(float);
        } else {
            if (used_[b]) CUDA_CHECK(cudaEventSynchronize(copied_[b]));  // the staging buffer's last copy is done
            float* h = h_[b].get();
            for (int64_t r = 0; r < c.rows; ++r) std::memcpy(h + r * c.kb, x_ + (c.r0 + r) * N_ + c.k0, width);
            src = h;
            spitch = width;
        }
        if (used_[b]) CUDA_CHECK(cudaStreamWaitEvent(copy_, consumed_[b], 0));
        CUDA_CHECK(cudaMemcpy2DAsync(d_[b].get(), width, src, spitch, width, static_cast<size_t>(c.rows),
                                     cudaMemcpyHostToDevice, copy_));
        CUDA_CHECK(cudaEventRecord(copied_[b], copy_));
        CUDA_CHECK(cudaStreamWaitEvent(ctx_.stream, copied_[b], 0));
        work(d_[b].get());
        CUDA_CHECK(cudaEventRecord(consumed_[b], ctx_.stream));
        used_[b] = true;
        ++count_;
    }

private:
    GpuContext& ctx_;
    const float* x_;
    int64_t N_;
    bool direct_;
    int buffers_ = 2;
    DeviceBuffer<float> d_[2];
    HostStage h_[2];
    cudaStream_t copy_ = nullptr;
    cudaEvent_t copied_[2] = {nullptr, nullptr}, consumed_[2] = {nullptr, nullptr};
    bool used_[2] = {false, false};
    int64_t count_ = 0;
};

// ---------------------------------------------------------------- runners
// The row statistics of a run on the device (from the host's row moments, by the plan's kind): mean and 1/SD per
// row (correlation: z-score), or 0 and 1 (euclidean: the rows as they are) and each row's squared norm / N.
struct RowStatsOnDevice {
    DeviceBuffer<double> mean, inv_sd, norms;
    RowStatsOnDevice(const RowMoments& m, int64_t S, int64_t N, RdmKind kind, cudaStream_t stream)
        : mean(static_cast<size_t>(S), "row means"), inv_sd(static_cast<size_t>(S), "row SDs") {
        std::vector<double> mu(static_cast<size_t>(S)), inv(static_cast<size_t>(S));
        const double dn = static_cast<double>(N);
        for (int64_t s = 0; s < S; ++s) {
            mu[s] = kind_row_mean(kind, m.mean[s]);
            inv[s] = kind_row_inv_sd(kind, m.m2[s], dn);
        }
        mean.upload(mu, stream);  // a pageable source is staged before the call returns: the vectors may go
        inv_sd.upload(inv, stream);
        if (kind == RdmKind::Euclidean) {
            std::vector<double> nrm(static_cast<size_t>(S));
            for (int64_t s = 0; s < S; ++s) nrm[s] = norm_over_n_from_moments(m.mean[s], m.m2[s], dn);
            norms.resize(static_cast<size_t>(S), "row norms");
            norms.upload(nrm, stream);
        }
    }
    const double* norms_or_null() const { return norms.get(); }
};

// The neuron blocks of a row range as device pointers: resident input (offsets; z into the caller's buffer), the
// whole host input copied once (z in place), or host blocks streamed through a ChunkStreamer (z in place).
class BlockSource {
public:
    BlockSource(GpuContext& ctx, const RdmInput& in, int64_t S, int64_t N, int64_t max_rows, int64_t K, bool poison)
        : ctx_(ctx), in_(in), N_(N) {
        if (in.device) return;
        if (K >= N && max_rows >= S) {  // one block of every row: one copy of the whole input
            whole_.resize(static_cast<size_t>(S * N), "the RDM input");
            if (poison) whole_.poison(ctx.stream);
            CUDA_CHECK(cudaMemcpyAsync(whole_.get(), in.host, static_cast<size_t>(S * N) * sizeof(float),
                                       cudaMemcpyHostToDevice, ctx.stream));
            return;
        }
        const int64_t blocks = RSA_CEIL_DIV(N, K) * RSA_CEIL_DIV(S, max_rows);
        streamer_ = std::make_unique<ChunkStreamer>(ctx, in.host, N, static_cast<size_t>(max_rows * K),
                                                    blocks > 1 ? 2 : 1, poison);
    }
    // z of rows [r0, r0 + rows) x columns [k0, k0 + kb) with the row statistics: into `z` (ld kb) when given,
    // else in place (the whole copy or the streamer's buffer; never a resident input); work(z block) then enqueues
    // what uses it, before the streamer reuses its buffer.
    void z_block(int64_t r0, int64_t rows, int64_t k0, int64_t kb, const RowStatsOnDevice& st, Precision precision,
                 float* z, const std::function<void(const float*)>& work) {
        cudaStream_t s = ctx_.stream;
        const double* mean = st.mean.get() + r0;
        const double* inv = st.inv_sd.get() + r0;
        if (in_.device || whole_.get()) {
            if (!z && in_.device) throw RuntimeError("rdm_run_gpu: a resident input needs a z buffer");
            const float* src = (in_.device ? in_.device : whole_.get()) + r0 * N_ + k0;
            float* dst = z ? z : whole_.get() + r0 * N_ + k0;
            work_ld_ = z ? kb : N_;
            zscore_with_stats_launch(src, N_, rows, kb, mean, inv, precision, dst, work_ld_, s);
            work(dst);
            return;
        }
        streamer_->feed({r0, rows, k0, kb}, [&](float* d) {
            float* dst = z ? z : d;
            work_ld_ = kb;
            zscore_with_stats_launch(d, kb, rows, kb, mean, inv, precision, dst, kb, s);
            work(dst);
        });
    }
    int64_t ld() const { return work_ld_; }  // leading dimension of the last z block handed to work
    // Whether z blocks need a caller's buffer (a resident input is never written).
    bool needs_z_buffer() const { return in_.device != nullptr; }

private:
    GpuContext& ctx_;
    RdmInput in_;
    int64_t N_;
    DeviceBuffer<float> whole_;
    std::unique_ptr<ChunkStreamer> streamer_;
    int64_t work_ld_ = 0;
};

void run_in_memory(GpuContext& ctx, const RdmInput& in, int64_t S, int64_t N, const MemoryPlan& p, Precision precision,
                   const RowMoments& moments, float* d_out, bool poison) {
    cudaStream_t st = ctx.stream;
    StreamDrain drain{st};
    const int64_t K = std::min(std::max<int64_t>(p.neuron_block, 1), N);
    RowStatsOnDevice stats(moments, S, N, p.rdm_kind, st);
    DeviceBuffer<float> z;
    BlockSource source(ctx, in, S, N, S, K, poison);
    if (source.needs_z_buffer()) {
        z.resize(static_cast<size_t>(S * K), "a z-scored block");
        if (poison) z.poison(st);
    }
    const float scale = 1.0f / static_cast<float>(N);
    for (int64_t k0 = 0; k0 < N; k0 += K) {
        const int64_t kb = std::min(K, N - k0);
        source.z_block(0, S, k0, kb, stats, precision, source.needs_z_buffer() ? z.get() : nullptr, [&](const float* zb) {
            syrk_accumulate(ctx.cublas, zb, S, kb, source.ld(), scale, k0 == 0 ? 0.0f : 1.0f, d_out, S,
                            CUBLAS_FILL_MODE_UPPER, precision, st);
        });
    }
    finish_upper_launch(d_out, S, st, stats.norms_or_null());
    CUDA_CHECK(cudaStreamSynchronize(st));
}

void run_tiled(GpuContext& ctx, const RdmInput& in, int64_t S, int64_t N, const MemoryPlan& p, Precision precision,
               const RowMoments& moments, RdmTileSink* sink, bool poison) {
    if (!sink) throw RuntimeError("rdm_run_gpu: a tiled plan needs a tile sink");
    cudaStream_t st = ctx.stream;
    const int64_t T = std::min(std::max<int64_t>(p.row_tile, 1), S), K = std::min(std::max<int64_t>(p.neuron_block, 1), N);
    const int64_t nk = RSA_CEIL_DIV(N, K);
    RowStatsOnDevice stats(moments, S, N, p.rdm_kind, st);
    DeviceBuffer<float> zi(static_cast<size_t>(T * K), "a z row block"), zj(static_cast<size_t>(T * K), "a z row block");
    DeviceBuffer<float> tiles[2] = {DeviceBuffer<float>(static_cast<size_t>(T * T), "an output tile"),
                                    DeviceBuffer<float>(static_cast<size_t>(T * T), "an output tile")};
    HostStage htile[2] = {HostStage(static_cast<size_t>(T * T)), HostStage(static_cast<size_t>(T * T))};
    cudaEvent_t ready[2] = {nullptr, nullptr};
    struct EventsGuard {
        cudaEvent_t* e;
        ~EventsGuard() {
            for (int b = 0; b < 2; ++b)
                if (e[b]) cudaEventDestroy(e[b]);
        }
    } events_guard{ready};
    for (int b = 0; b < 2; ++b) CUDA_CHECK(cudaEventCreateWithFlags(&ready[b], cudaEventDisableTiming));
    StreamDrain drain{st};
    if (poison) {
        zi.poison(st);
        zj.poison(st);
        tiles[0].poison(st);
        tiles[1].poison(st);
    }
    // Every z block goes into zi / zj (ld kb), from the resident input or the streamer's buffers.
    BlockSource source(ctx, in, S, N, T, K, poison);
    auto load_z = [&](int64_t r0, int64_t rows, int64_t k0, int64_t kb, float* target) {
        source.z_block(r0, rows, k0, kb, stats, precision, target, [](const float*) {});
    };

    // Tile t is read back into htile[t % 2] while tile t + 1 is computed, then handed to the sink.
    struct Pending {
        bool has = false;
        int b = 0;
        int64_t i0 = 0, ti = 0, j0 = 0, tj = 0;
    } pending;
    auto write_pending = [&]() {
        if (!pending.has) return;
        CUDA_CHECK(cudaEventSynchronize(ready[pending.b]));
        const bool diag = pending.i0 == pending.j0;
        sink->write_tile(htile[pending.b].get(), pending.tj, pending.i0, pending.ti, pending.j0, pending.tj, !diag, diag);
        pending.has = false;
    };
    const float scale = 1.0f / static_cast<float>(N);
    int64_t t = 0;
    for (int64_t i0 = 0; i0 < S; i0 += T) {
        const int64_t ti = std::min(T, S - i0);
        if (!plan_computes_row(p, i0 / T)) continue;  // a distributed rank's plan: none of its tiles in this row
        if (nk == 1) load_z(i0, ti, 0, N, zi.get());  // z of row block i stays valid for the whole tile row
        for (int64_t j0 = i0; j0 < S; j0 += T, ++t) {
            if (!plan_computes_tile(p, i0 / T, j0 / T)) continue;
            const int64_t tj = std::min(T, S - j0);
            const bool diag = i0 == j0;
            const int b = static_cast<int>(t % 2);
            float* tile = tiles[b].get();
            for (int64_t k0 = 0; k0 < N; k0 += K) {
                const int64_t kb = std::min(K, N - k0);
                const float beta = k0 == 0 ? 0.0f : 1.0f;
                if (nk > 1) load_z(i0, ti, k0, kb, zi.get());
                if (diag) {
                    // Row-major tile = column-major transpose: the column-major LOWER triangle is the row-major
                    // upper one, which the sink reads for a diagonal tile.
                    syrk_accumulate(ctx.cublas, zi.get(), ti, kb, kb, scale, beta, tile, ti, CUBLAS_FILL_MODE_LOWER,
                                    precision, st);
                } else {
                    load_z(j0, tj, k0, kb, zj.get());
                    gemm_tile_accumulate(ctx.cublas, zi.get(), ti, zj.get(), tj, kb, kb, scale, beta, tile, precision,
                                         st);
                }
            }
            finish_tile_launch(tile, ti, tj, diag, st, stats.norms_or_null(), i0, j0);
            CUDA_CHECK(cudaMemcpyAsync(htile[b].get(), tile, static_cast<size_t>(ti * tj) * sizeof(float),
                                       cudaMemcpyDeviceToHost, st));
            CUDA_CHECK(cudaEventRecord(ready[b], st));
            write_pending();  // the previous tile, while this one computes
            pending = Pending{true, b, i0, ti, j0, tj};
        }
    }
    write_pending();
    CUDA_CHECK(cudaStreamSynchronize(st));
}

}  // namespace

// ---------------------------------------------------------------- launchers
void row_moments_launch(const float* d_x, int64_t rows, int64_t cols, int64_t ld, double* d_mean, double* d_m2,
                        cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return;
    if (rows > kMaxGridX) throw InputError("row moments: " + std::to_string(rows) + " rows exceed CUDA's grid");
    row_moments_kernel<<<static_cast<unsigned>(rows), kBlock, 0, stream>>>(d_x, cols, ld, d_mean, d_m2);
    RSA_CHECK_LAUNCH();
}

void finish_upper_launch(float* d_m, int64_t S, cudaStream_t stream, const double* d_norms) {
    if (S <= 0) return;
    finish_upper_kernel<<<grid_1d(S * S), kBlock, 0, stream>>>(d_m, S, d_norms);
    RSA_CHECK_LAUNCH();
}

void finish_tile_launch(float* d_tile, int64_t ti, int64_t tj, bool diagonal, cudaStream_t stream,
                        const double* d_norms, int64_t i0, int64_t j0) {
    if (ti <= 0 || tj <= 0) return;
    finish_tile_kernel<<<grid_1d(ti * tj), kBlock, 0, stream>>>(d_tile, ti, tj, diagonal ? 1 : 0, d_norms, i0, j0);
    RSA_CHECK_LAUNCH();
}

void nan_rows_cols_launch(float* d_m, int64_t S, const int64_t* d_rows, int64_t count, cudaStream_t stream) {
    if (S <= 0 || count <= 0) return;
    nan_rows_cols_kernel<<<grid_1d(count * S), kBlock, 0, stream>>>(d_m, S, d_rows, count);
    RSA_CHECK_LAUNCH();
}

void zscore_with_stats_launch(const float* d_x, int64_t ldx, int64_t rows, int64_t cols, const double* d_mean,
                              const double* d_inv_sd, Precision precision, float* d_z, int64_t ldz,
                              cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return;
    // Columns grid-strided over at most 64 blocks in x, rows over y.
    zscore_stats_kernel<<<grid_2d(cols, rows, 64), kBlock, 0, stream>>>(d_x, ldx, rows, cols, d_mean, d_inv_sd,
                                                     precision == Precision::TF32 ? 1 : 0, d_z, ldz);
    RSA_CHECK_LAUNCH();
}

void syrk_accumulate(cublasHandle_t cublas, const float* d_z, int64_t rows, int64_t cols, int64_t ldz, float alpha,
                     float beta, float* d_c, int64_t ldc, cublasFillMode_t fill, Precision precision,
                     cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return;
    bind_cublas_stream(cublas, stream);
    if (precision == Precision::FP32) {
        CUBLAS_CHECK(cublasSsyrk(cublas, fill, CUBLAS_OP_T, static_cast<int>(rows), static_cast<int>(cols), &alpha,
                                 d_z, static_cast<int>(ldz), &beta, d_c, static_cast<int>(ldc)));
        return;
    }
    // GemmEx strips: upper = rows [i0, i1) x columns [i0, rows); lower = rows [i0, rows) x columns [i0, i1)
    // (column-major C). The compute type asks for TF32; the math mode is lifted from pedantic for the calls.
    MathModeGuard guard(cublas, CUBLAS_TF32_TENSOR_OP_MATH);
    for (int64_t i0 = 0; i0 < rows; i0 += kTf32Strip) {
        const int64_t i1 = std::min(rows, i0 + kTf32Strip);
        const int64_t m = fill == CUBLAS_FILL_MODE_UPPER ? i1 - i0 : rows - i0;
        const int64_t n = fill == CUBLAS_FILL_MODE_UPPER ? rows - i0 : i1 - i0;
        const float* a = d_z + i0 * ldz;
        CUBLAS_CHECK(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m), static_cast<int>(n),
                                  static_cast<int>(cols), &alpha, a, CUDA_R_32F, static_cast<int>(ldz), a, CUDA_R_32F,
                                  static_cast<int>(ldz), &beta, d_c + i0 * ldc + i0, CUDA_R_32F, static_cast<int>(ldc),
                                  CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
    }
}

void gemm_tile_accumulate(cublasHandle_t cublas, const float* d_zi, int64_t ti, const float* d_zj, int64_t tj,
                          int64_t cols, int64_t ldz, float alpha, float beta, float* d_tile, Precision precision,
                          cudaStream_t stream) {
    if (ti <= 0 || tj <= 0 || cols <= 0) return;
    bind_cublas_stream(cublas, stream);
    // Row-major tile (ti x tj, ld tj) = column-major tj x ti: C = Zj Zi^T with Z column-major cols x rows.
    if (precision == Precision::FP32) {
        CUBLAS_CHECK(cublasSgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(tj), static_cast<int>(ti),
                                 static_cast<int>(cols), &alpha, d_zj, static_cast<int>(ldz), d_zi,
                                 static_cast<int>(ldz), &beta, d_tile, static_cast<int>(tj)));
        return;
    }
    MathModeGuard guard(cublas, CUBLAS_TF32_TENSOR_OP_MATH);
    CUBLAS_CHECK(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(tj), static_cast<int>(ti),
                              static_cast<int>(cols), &alpha, d_zj, CUDA_R_32F, static_cast<int>(ldz), d_zi, CUDA_R_32F,
                              static_cast<int>(ldz), &beta, d_tile, CUDA_R_32F, static_cast<int>(tj),
                              CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
}

void rdm_resident_launch(cublasHandle_t cublas, float* d_x, int64_t S, int64_t N, double* d_stats, float* d_out,
                         cudaStream_t stream) {
    if (S <= 0 || N <= 0) return;
    double* mean = d_stats;
    double* inv = d_stats + S;
    row_moments_launch(d_x, S, N, N, mean, inv, stream);  // m2 into the 1/SD slots, converted in place below
    inv_sd_kernel<<<grid_1d(S), kBlock, 0, stream>>>(inv, S, static_cast<double>(N), inv);
    RSA_CHECK_LAUNCH();
    zscore_with_stats_launch(d_x, N, S, N, mean, inv, Precision::FP32, d_x, N, stream);
    syrk_accumulate(cublas, d_x, S, N, N, 1.0f / static_cast<float>(N), 0.0f, d_out, S, CUBLAS_FILL_MODE_UPPER,
                    Precision::FP32, stream);
    finish_upper_launch(d_out, S, stream);
}

// ---------------------------------------------------------------- the engine
void rdm_run_gpu(GpuContext& ctx, const RdmInput& in, int64_t S, int64_t N, const MemoryPlan& plan,
                 Precision precision, const RowMoments& moments, float* d_out, RdmTileSink* sink, bool poison) {
    if (plan.stimuli != S || plan.neurons != N)
        throw RuntimeError("rdm_run_gpu: the plan is for " + std::to_string(plan.stimuli) + " x " +
                           std::to_string(plan.neurons) + ", the input is " + std::to_string(S) + " x " +
                           std::to_string(N));
    if (!in.device && !in.host) throw RuntimeError("rdm_run_gpu: no input");
    if (static_cast<int64_t>(moments.mean.size()) != S || static_cast<int64_t>(moments.m2.size()) != S)
        throw RuntimeError("rdm_run_gpu: row moments for " + std::to_string(moments.mean.size()) + " rows, input has " +
                           std::to_string(S));
    CUDA_CHECK(cudaSetDevice(ctx.device));
    if (plan.kind == PlanKind::Tiled) {
        run_tiled(ctx, in, S, N, plan, precision, moments, sink, poison);
        return;
    }
    if (!d_out) throw RuntimeError("rdm_run_gpu: no output buffer for an in-memory plan");
    run_in_memory(ctx, in, S, N, plan, precision, moments, d_out, poison);
}

}  // namespace rsa

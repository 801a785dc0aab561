// RDMs at scale on the GPU (see rdm_scale.cuh): statistics / z-score / fill / mirror kernels, the precision-
// aware SYRK and GEMM accumulation, a chunk streamer (pinned double buffers within a quarter of the host's physical
// memory, copy stream, events), and the one-shot, streamed and tiled runners behind rdm_scaled. Device memory is
// DeviceBuffer (OutOfMemoryError on allocation failure, on which rdm_scaled falls back), pinned staging memory
// PinnedBuffer; block size, grids and block sums from the kit (common.cuh). CPU twins: host/rdm_chunked.cpp.
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
#include "rdm.cuh"
#include "rdm_scale.cuh"
#include "rsa_gpu/npy.h"

namespace rsa {

namespace {

// ---------------------------------------------------------------- kernels
__device__ __forceinline__ float tf32_rne(float v) {
    uint32_t u = __float_as_uint(v);
    if ((u & 0x7f800000u) == 0x7f800000u) return v;  // Inf, NaN
    u += 0x0fffu + ((u >> 13) & 1u);
    return __uint_as_float(u & 0xffffe000u);
}

__global__ void stats_reset_kernel(double* __restrict__ mean, double* __restrict__ m2, int64_t n) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        mean[i] = 0.0;
        m2[i] = 0.0;
    }
}

// One block per row: the chunk's mean and sum of squared deviations (two passes, double), merged into the
// running (mean, m2) of the row with Chan's formula (same as rsa::chan_merge).
__global__ void stats_chunk_kernel(const float* __restrict__ x, int64_t cols, int64_t ld, double n_before,
                                   double* __restrict__ mean, double* __restrict__ m2) {
    const int64_t row = blockIdx.x;
    const float* xr = x + row * ld;
    double sum = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += xr[j];
    const double bmean = block_sum(sum) / static_cast<double>(cols);  // every thread: the same value
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        const double d = xr[j] - bmean;
        ss += d * d;
    }
    ss = block_sum(ss);
    if (threadIdx.x == 0) {
        const double nb = static_cast<double>(cols), n = n_before + nb, delta = bmean - mean[row];
        mean[row] += delta * (nb / n);
        m2[row] += ss + delta * delta * (n_before * nb / n);
    }
}

__global__ void stats_finalize_kernel(double* __restrict__ m2_inv, int64_t S, double N, int* __restrict__ constant) {
    for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < S;
         s += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const double var = m2_inv[s] / N;
        const int c = !(var > 0.0);
        m2_inv[s] = c ? __longlong_as_double(0x7ff8000000000000LL) : 1.0 / sqrt(var);
        if (constant) constant[s] = c;
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
            float v = static_cast<float>((x[r * ldx + c] - m) * is);
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
struct Stats {
    DeviceBuffer<double> mean, inv_sd;  // inv_sd holds m2 until finalised
    DeviceBuffer<int> constant;
    Stats(int64_t S, bool poison, cudaStream_t stream)
        : mean(static_cast<size_t>(S), "row means"), inv_sd(static_cast<size_t>(S), "row SDs"),
          constant(static_cast<size_t>(S), "constant-row flags") {
        if (poison) {  // the reset below must write every mean and m2: poison them first
            mean.poison(stream);
            inv_sd.poison(stream);
            constant.poison(stream);
        }
        row_stats_reset_launch(mean.get(), inv_sd.get(), S, stream);
    }
    std::vector<int64_t> constant_rows(int64_t S, cudaStream_t stream) const {
        std::vector<int> flags(static_cast<size_t>(S));
        CUDA_CHECK(cudaMemcpyAsync(flags.data(), constant.get(), flags.size() * sizeof(int), cudaMemcpyDeviceToHost,
                                   stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        std::vector<int64_t> rows;
        for (int64_t s = 0; s < S; ++s)
            if (flags[static_cast<size_t>(s)]) rows.push_back(s);
        return rows;
    }
};

void download_matrix(const float* d, int64_t S, bool poison, cudaStream_t stream, Matrix* out) {
    *out = Matrix(S, S, poison ? std::nanf("") : 0.0f);
    CUDA_CHECK(cudaMemcpyAsync(out->data.data(), d, out->data.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
}

void run_one_shot(GpuContext& ctx, const float* x, int64_t S, int64_t N, const ScaledRdmOptions& o,
                  ScaledRdmResult* res) {
    cudaStream_t st = ctx.stream;
    DeviceBuffer<float> d_x(static_cast<size_t>(S * N), "the input"), d_out(static_cast<size_t>(S * S), "the output");
    Stats stats(S, o.poison, st);
    StreamDrain drain{st};
    if (o.poison) {
        d_x.poison(st);
        d_out.poison(st);
    }
    CUDA_CHECK(cudaMemcpyAsync(d_x.get(), x, static_cast<size_t>(S * N) * sizeof(float), cudaMemcpyHostToDevice, st));
    row_stats_chunk_launch(d_x.get(), S, N, N, 0, stats.mean.get(), stats.inv_sd.get(), st);
    row_stats_finalize_launch(stats.inv_sd.get(), S, N, stats.constant.get(), st);
    zscore_with_stats_launch(d_x.get(), N, S, N, stats.mean.get(), stats.inv_sd.get(), o.precision, d_x.get(), N, st);
    rdm_from_zscored_precision_launch(ctx.cublas, d_x.get(), S, N, d_out.get(), o.precision, o.tf32_variant,
                                      o.tf32_strip, st);
    download_matrix(d_out.get(), S, o.poison, st, &res->rdm);
    res->constant_rows = stats.constant_rows(S, st);
}

void run_streamed(GpuContext& ctx, const float* x, int64_t S, int64_t N, const MemoryPlan& p,
                  const ScaledRdmOptions& o, ScaledRdmResult* res) {
    cudaStream_t st = ctx.stream;
    const int64_t K = std::min(p.neuron_block, N);
    const int64_t blocks = RSA_CEIL_DIV(N, K);
    DeviceBuffer<float> d_out(static_cast<size_t>(S * S), "the output");
    Stats stats(S, o.poison, st);
    StreamDrain drain{st};
    if (o.poison) d_out.poison(st);
    {
        ChunkStreamer stream(ctx, x, N, static_cast<size_t>(S * K), blocks > 1 ? 2 : 1, o.poison);
        // Pass 1: row statistics over all neuron blocks.
        for (int64_t k0 = 0; k0 < N; k0 += K) {
            const int64_t kb = std::min(K, N - k0);
            stream.feed({0, S, k0, kb}, [&](float* d) {
                row_stats_chunk_launch(d, S, kb, kb, k0, stats.mean.get(), stats.inv_sd.get(), st);
            });
        }
        row_stats_finalize_launch(stats.inv_sd.get(), S, N, stats.constant.get(), st);
        fill_value_launch(d_out.get(), S * S, 1.0f, st);
        // Pass 2: z-score each block in place with the global statistics, accumulate -1/N Z_b Z_b^T.
        const float alpha = -1.0f / static_cast<float>(N);
        for (int64_t k0 = 0; k0 < N; k0 += K) {
            const int64_t kb = std::min(K, N - k0);
            stream.feed({0, S, k0, kb}, [&](float* d) {
                zscore_with_stats_launch(d, kb, S, kb, stats.mean.get(), stats.inv_sd.get(), o.precision, d, kb, st);
                syrk_accumulate(ctx.cublas, d, S, kb, kb, alpha, d_out.get(), S, CUBLAS_FILL_MODE_UPPER, o.precision,
                                o.tf32_variant, o.tf32_strip, st);
            });
        }
        mirror_upper_launch(d_out.get(), S, st);
    }
    download_matrix(d_out.get(), S, o.poison, st, &res->rdm);
    res->constant_rows = stats.constant_rows(S, st);
}

void run_tiled(GpuContext& ctx, const float* x, int64_t S, int64_t N, const MemoryPlan& p, const ScaledRdmOptions& o,
               ScaledRdmResult* res) {
    if (o.output_path.empty())
        throw RuntimeError("the " + std::to_string(S) + " x " + std::to_string(S) + " RDM (" +
                           format_bytes(p.output_bytes) +
                           ") does not fit on the device, so it is computed in tiles and written to disk, but no "
                           "output path was given");
    cudaStream_t st = ctx.stream;
    const int64_t T = std::min(p.row_tile, S), K = std::min(p.neuron_block, N);
    const int64_t nk = RSA_CEIL_DIV(N, K);
    Stats stats(S, o.poison, st);
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
    if (o.poison) {
        zi.poison(st);
        zj.poison(st);
        tiles[0].poison(st);
        tiles[1].poison(st);
    }
    MappedNpyWriter out(o.output_path, S, S);
    ChunkStreamer stream(ctx, x, N, static_cast<size_t>(T * K), 2, o.poison);

    // Pass 1: statistics, chunk by chunk (row tile x neuron block), merged in column order per row.
    for (int64_t i0 = 0; i0 < S; i0 += T) {
        const int64_t ti = std::min(T, S - i0);
        for (int64_t k0 = 0; k0 < N; k0 += K) {
            const int64_t kb = std::min(K, N - k0);
            stream.feed({i0, ti, k0, kb}, [&](float* d) {
                row_stats_chunk_launch(d, ti, kb, kb, k0, stats.mean.get() + i0, stats.inv_sd.get() + i0, st);
            });
        }
    }
    row_stats_finalize_launch(stats.inv_sd.get(), S, N, stats.constant.get(), st);

    // Pass 2: tiles j0 >= i0. Tile t is read back into htile[t % 2] while tile t + 1 is computed, then written
    // (with its transpose) into the mapped file.
    struct Pending {
        bool has = false;
        int b = 0;
        int64_t i0 = 0, ti = 0, j0 = 0, tj = 0;
    } pending;
    auto write_pending = [&]() {
        if (!pending.has) return;
        CUDA_CHECK(cudaEventSynchronize(ready[pending.b]));
        const bool diag = pending.i0 == pending.j0;
        out.write_tile(htile[pending.b].get(), pending.tj, pending.i0, pending.ti, pending.j0, pending.tj, !diag, diag);
        pending.has = false;
    };
    const float alpha = -1.0f / static_cast<float>(N);
    auto load_z = [&](int64_t r0, int64_t rows, int64_t k0, int64_t kb, float* target) {
        stream.feed({r0, rows, k0, kb}, [&](float* d) {
            zscore_with_stats_launch(d, kb, rows, kb, stats.mean.get() + r0, stats.inv_sd.get() + r0, o.precision,
                                     target, kb, st);
        });
    };
    int64_t t = 0;
    for (int64_t i0 = 0; i0 < S; i0 += T) {
        const int64_t ti = std::min(T, S - i0);
        if (nk == 1) load_z(i0, ti, 0, N, zi.get());  // z of row block i stays valid for the whole tile row
        for (int64_t j0 = i0; j0 < S; j0 += T, ++t) {
            const int64_t tj = std::min(T, S - j0);
            const bool diag = i0 == j0;
            const int b = static_cast<int>(t % 2);
            float* tile = tiles[b].get();
            fill_value_launch(tile, ti * tj, 1.0f, st);
            for (int64_t k0 = 0; k0 < N; k0 += K) {
                const int64_t kb = std::min(K, N - k0);
                if (nk > 1) load_z(i0, ti, k0, kb, zi.get());
                if (diag) {
                    // Row-major tile = column-major transpose: the column-major LOWER triangle is the row-major
                    // upper one, which write_tile reads for a diagonal tile.
                    syrk_accumulate(ctx.cublas, zi.get(), ti, kb, kb, alpha, tile, ti, CUBLAS_FILL_MODE_LOWER,
                                    o.precision, o.tf32_variant, o.tf32_strip, st);
                } else {
                    load_z(j0, tj, k0, kb, zj.get());
                    gemm_tile_accumulate(ctx.cublas, zi.get(), ti, zj.get(), tj, kb, kb, alpha, tile, o.precision, st);
                }
            }
            CUDA_CHECK(cudaMemcpyAsync(htile[b].get(), tile, static_cast<size_t>(ti * tj) * sizeof(float),
                                       cudaMemcpyDeviceToHost, st));
            CUDA_CHECK(cudaEventRecord(ready[b], st));
            write_pending();  // the previous tile, while this one computes
            pending = Pending{true, b, i0, ti, j0, tj};
        }
    }
    write_pending();
    res->constant_rows = stats.constant_rows(S, st);
    out.commit();
    res->written_path = o.output_path;
}

}  // namespace

// ---------------------------------------------------------------- launchers
void row_stats_reset_launch(double* d_mean, double* d_m2, int64_t S, cudaStream_t stream) {
    if (S <= 0) return;
    stats_reset_kernel<<<grid_1d(S), kBlock, 0, stream>>>(d_mean, d_m2, S);
    RSA_CHECK_LAUNCH();
}

void row_stats_chunk_launch(const float* d_x, int64_t rows, int64_t cols, int64_t ld, int64_t n_before,
                            double* d_mean, double* d_m2, cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return;
    stats_chunk_kernel<<<static_cast<unsigned>(rows), kBlock, 0, stream>>>(d_x, cols, ld, static_cast<double>(n_before),
                                                                          d_mean, d_m2);
    RSA_CHECK_LAUNCH();
}

void row_stats_finalize_launch(double* d_m2_to_inv_sd, int64_t S, int64_t N, int* d_constant, cudaStream_t stream) {
    if (S <= 0) return;
    stats_finalize_kernel<<<grid_1d(S), kBlock, 0, stream>>>(d_m2_to_inv_sd, S, static_cast<double>(N), d_constant);
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
                     float* d_c, int64_t ldc, cublasFillMode_t fill, Precision precision, Tf32Variant variant,
                     int64_t strip, cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return;
    bind_cublas_stream(cublas, stream);
    const float beta = 1.0f;
    if (precision == Precision::FP32) {
        CUBLAS_CHECK(cublasSsyrk(cublas, fill, CUBLAS_OP_T, static_cast<int>(rows), static_cast<int>(cols), &alpha,
                                 d_z, static_cast<int>(ldz), &beta, d_c, static_cast<int>(ldc)));
        return;
    }
    if (variant == Tf32Variant::SyrkMathMode) {
        MathModeGuard guard(cublas, CUBLAS_TF32_TENSOR_OP_MATH);
        CUBLAS_CHECK(cublasSsyrk(cublas, fill, CUBLAS_OP_T, static_cast<int>(rows), static_cast<int>(cols), &alpha,
                                 d_z, static_cast<int>(ldz), &beta, d_c, static_cast<int>(ldc)));
        return;
    }
    // GemmEx strips: upper = rows [i0, i1) x columns [i0, rows); lower = rows [i0, rows) x columns [i0, i1)
    // (column-major C). The compute type asks for TF32; the math mode is lifted from pedantic for the calls.
    MathModeGuard guard(cublas, CUBLAS_TF32_TENSOR_OP_MATH);
    const int64_t w = strip > 0 ? strip : rows;
    for (int64_t i0 = 0; i0 < rows; i0 += w) {
        const int64_t i1 = std::min(rows, i0 + w);
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
                          int64_t cols, int64_t ldz, float alpha, float* d_tile, Precision precision,
                          cudaStream_t stream) {
    if (ti <= 0 || tj <= 0 || cols <= 0) return;
    bind_cublas_stream(cublas, stream);
    const float beta = 1.0f;
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

void rdm_from_zscored_precision_launch(cublasHandle_t cublas, const float* d_z, int64_t S, int64_t N, float* d_rdm,
                                       Precision precision, Tf32Variant variant, int64_t strip, cudaStream_t stream) {
    fill_value_launch(d_rdm, S * S, 1.0f, stream);
    syrk_accumulate(cublas, d_z, S, N, N, -1.0f / static_cast<float>(N), d_rdm, S, CUBLAS_FILL_MODE_UPPER, precision,
                    variant, strip, stream);
    mirror_upper_launch(d_rdm, S, stream);
}

// ---------------------------------------------------------------- entry points
ScaledRdmResult rdm_run_plan(GpuContext& ctx, const float* x, int64_t S, int64_t N, const MemoryPlan& plan,
                             const ScaledRdmOptions& options) {
    if (plan.stimuli != S || plan.neurons != N)
        throw RuntimeError("rdm_run_plan: the plan is for " + std::to_string(plan.stimuli) + " x " +
                           std::to_string(plan.neurons) + ", the input is " + std::to_string(S) + " x " +
                           std::to_string(N));
    CUDA_CHECK(cudaSetDevice(ctx.device));
    ScaledRdmResult res;
    res.plan = plan;
    switch (plan.kind) {
        case PlanKind::OneShot: run_one_shot(ctx, x, S, N, options, &res); break;
        case PlanKind::Streamed: run_streamed(ctx, x, S, N, plan, options, &res); break;
        case PlanKind::Tiled: run_tiled(ctx, x, S, N, plan, options, &res); break;
    }
    if (plan.kind != PlanKind::Tiled && !options.output_path.empty()) {
        npy_save(options.output_path, res.rdm);
        res.written_path = options.output_path;
    }
    return res;
}

ScaledRdmResult rdm_scaled(GpuContext& ctx, const float* x, int64_t S, int64_t N, const ScaledRdmOptions& options,
                           PlanKind min_kind) {
    CUDA_CHECK(cudaSetDevice(ctx.device));
    auto device_free = [&]() -> uint64_t {
        if (options.assume_device_free_bytes) return options.assume_device_free_bytes;
        size_t free_bytes = 0, total = 0;
        CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
        return free_bytes;
    };
    MemoryPlan plan = plan_rdm(S, N, options.max_gpu_bytes, device_free(), min_kind);
    bool fell_back = false;
    std::string history;
    for (;;) {
        try {
            ScaledRdmResult res = rdm_run_plan(ctx, x, S, N, plan, options);
            res.fell_back = fell_back;
            return res;
        } catch (const OutOfMemoryError& e) {
            history += std::string(history.empty() ? "" : "; ") + plan_kind_name(plan.kind) + ": " + e.what();
            if (plan.kind == PlanKind::Tiled)
                throw RuntimeError("the RDM of " + std::to_string(S) + " x " + std::to_string(N) +
                                   " does not fit in device memory under any plan (" + history + ")");
            // Re-plan against what is really free now, skipping the kind that failed.
            size_t free_bytes = 0, total = 0;
            CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
            const PlanKind next = plan.kind == PlanKind::OneShot ? PlanKind::Streamed : PlanKind::Tiled;
            try {
                plan = plan_rdm(S, N, options.max_gpu_bytes, free_bytes, next);
            } catch (const RuntimeError& e2) {
                throw RuntimeError(std::string(e2.what()) + " (after: " + history + ")");
            }
            fell_back = true;
        }
    }
}

}  // namespace rsa

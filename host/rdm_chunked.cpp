// CPU side of RDMs at scale (see rdm_scale.h): precision parsing and TF32 rounding, the memory plan and its
// description, blocked row statistics (Chan merging in double), the streamed and tiled CPU twins (OpenBLAS
// SSYRK / SGEMM with beta = 1), and the memory-mapped .npy writer used by both the CPU and GPU tiled paths.
#include <cblas.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <limits>
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/progress.h"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/rdm_scale.h"

namespace rsa {

// ---------------------------------------------------------------- precision
Precision parse_precision(const std::string& text) {
    if (text == "fp32") return Precision::FP32;
    if (text == "tf32") return Precision::TF32;
    throw InputError("unknown precision '" + text + "': expected fp32 or tf32");
}

const char* precision_name(Precision p) { return p == Precision::TF32 ? "tf32" : "fp32"; }

Tf32Variant parse_tf32_variant(const std::string& text) {
    if (text == "syrk") return Tf32Variant::SyrkMathMode;
    if (text == "gemmex") return Tf32Variant::GemmExStrips;
    throw InputError("unknown TF32 variant '" + text + "': expected syrk or gemmex");
}

const char* tf32_variant_name(Tf32Variant v) { return v == Tf32Variant::SyrkMathMode ? "syrk" : "gemmex"; }

float round_to_tf32(float x) {
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;  // Inf and NaN unchanged
    const uint32_t lsb = (u >> 13) & 1u;            // round to nearest, ties to even on bit 13
    u += 0x0fffu + lsb;
    u &= 0xffffe000u;
    float r;
    std::memcpy(&r, &u, sizeof r);
    return r;
}

void round_to_tf32(float* x, size_t n) {
    for (size_t i = 0; i < n; ++i) x[i] = round_to_tf32(x[i]);
}

// ---------------------------------------------------------------- memory plan
const char* plan_kind_name(PlanKind k) {
    switch (k) {
        case PlanKind::OneShot: return "one-shot";
        case PlanKind::Streamed: return "streamed";
        case PlanKind::Tiled: return "tiled";
    }
    return "?";
}

const char* place_name(Place p) {
    switch (p) {
        case Place::Device: return "device";
        case Place::Host: return "host memory";
        case Place::PinnedHost: return "pinned host memory";
        case Place::Disk: return "disk";
    }
    return "?";
}

std::string format_bytes(uint64_t bytes) {
    char buf[64];
    const double b = static_cast<double>(bytes);
    if (b >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
    else if (b >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
    else if (b >= 1e3) std::snprintf(buf, sizeof buf, "%.1f KB", b / 1e3);
    else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
    return buf;
}

namespace {

constexpr uint64_t kF = sizeof(float);

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Round a block width down to a multiple of 32 columns (aligned copies) when that keeps it >= 64.
int64_t align_block(int64_t k, int64_t n) {
    k = std::min(k, n);
    if (k >= 64 && k < n) k = k / 32 * 32;
    return k;
}

}  // namespace

MemoryPlan plan_rdm(int64_t S, int64_t N, uint64_t max_gpu_bytes, uint64_t device_free_bytes, PlanKind min_kind) {
    if (S <= 0 || N <= 0) throw InputError("plan_rdm: empty input (" + std::to_string(S) + " x " + std::to_string(N) + ")");
    const uint64_t margin = std::max<uint64_t>(64ull << 20, device_free_bytes / 50);
    uint64_t budget = device_free_bytes > margin ? device_free_bytes - margin : 0;
    if (max_gpu_bytes > 0) budget = std::min(budget, max_gpu_bytes);
    const uint64_t s = static_cast<uint64_t>(S), n = static_cast<uint64_t>(N);
    const uint64_t stats = s * kRowStatBytes, output = s * s * kF, input = s * n * kF;

    MemoryPlan p;
    p.stimuli = S;
    p.neurons = N;
    p.input_bytes = input;
    p.output_bytes = output;
    p.budget_bytes = budget;

    // One-shot: the input copied once, z-scored in place, SYRK into the output, all on the device.
    if (min_kind == PlanKind::OneShot && input + output + stats <= budget) {
        p.kind = PlanKind::OneShot;
        p.neuron_block = N;
        p.row_tile = S;
        p.input_place = Place::Device;
        p.workspace_bytes = stats;  // z overwrites the input copy
        p.output_place = Place::Device;
        p.device_bytes = input + output + stats;
        return p;
    }
    // Streamed: two device blocks of S x K (copy of block k+1 overlaps z-score + SYRK of block k, each
    // z-scored in place) and two pinned staging blocks on the host; the output stays on the device.
    const int64_t min_stream_block = std::min<int64_t>(N, 64);
    if (min_kind != PlanKind::Tiled && output + stats + 2 * s * kF <= budget) {
        const int64_t k = align_block(static_cast<int64_t>((budget - output - stats) / (2 * s * kF)), N);
        if (k >= min_stream_block) {
            p.kind = PlanKind::Streamed;
            p.streamed = true;
            p.neuron_block = k;
            p.neuron_blocks = ceil_div(N, k);
            p.row_tile = S;
            p.input_place = Place::Host;
            p.workspace_bytes = 2 * s * static_cast<uint64_t>(k) * kF + stats;
            p.staging_bytes = 2 * s * static_cast<uint64_t>(k) * kF;
            p.output_place = Place::Device;
            p.device_bytes = output + p.workspace_bytes;
            return p;
        }
    }
    // Tiled: output tiles of T x T (two device buffers, read back through two pinned buffers) written to a
    // memory-mapped file; per tile the z-scored row blocks (T x K, two) from two raw copy buffers (T x K).
    // Prefer the largest T (the input is re-read about S / T times), then the widest K.
    auto device_for = [&](uint64_t t, uint64_t k) { return stats + 4 * t * k * kF + 2 * t * t * kF; };
    int64_t best_t = 0, best_k = 0;
    const int64_t wanted_k = std::min<int64_t>(N, 256);
    for (int pass = 0; pass < 2 && best_t == 0; ++pass) {
        for (int64_t t = std::min<int64_t>(S, 8192); t >= 1; t /= 2) {
            const uint64_t tt = static_cast<uint64_t>(t);
            if (device_for(tt, 1) > budget) continue;
            const int64_t kmax = static_cast<int64_t>((budget - stats - 2 * tt * tt * kF) / (4 * tt * kF));
            if (kmax >= (pass == 0 ? wanted_k : 1)) {
                best_t = t;
                best_k = align_block(kmax, N);
                break;
            }
        }
    }
    if (best_t == 0) {
        std::ostringstream os;
        os << "the RDM of " << S << " x " << N << " does not fit the device budget of " << format_bytes(budget)
           << " even as 1 x 1 tiles (row statistics alone need " << format_bytes(stats)
           << "); raise --max-gpu-mem or free device memory";
        throw RuntimeError(os.str());
    }
    p.kind = PlanKind::Tiled;
    p.streamed = best_k < N;
    p.tiled = true;
    p.neuron_block = best_k;
    p.neuron_blocks = ceil_div(N, best_k);
    p.row_tile = best_t;
    p.row_tiles = ceil_div(S, best_t);
    p.input_place = Place::Host;
    p.workspace_bytes = device_for(static_cast<uint64_t>(best_t), static_cast<uint64_t>(best_k));
    p.staging_bytes = (2 * static_cast<uint64_t>(best_t) * best_k + 2 * static_cast<uint64_t>(best_t) * best_t) * kF;
    p.output_place = Place::Disk;
    p.device_bytes = device_for(static_cast<uint64_t>(best_t), static_cast<uint64_t>(best_k));
    return p;
}

std::string describe(const MemoryPlan& p) {
    std::ostringstream os;
    const int64_t last_block = p.neurons - (p.neuron_blocks - 1) * p.neuron_block;
    const int64_t last_tile = p.stimuli - (p.row_tiles - 1) * p.row_tile;
    os << "plan:      " << plan_kind_name(p.kind) << " RDM of " << p.stimuli << " stimuli x " << p.neurons
       << " neurons";
    if (p.kind == PlanKind::Streamed || p.neuron_blocks > 1)
        os << ", " << p.neuron_blocks << " neuron block" << (p.neuron_blocks == 1 ? "" : "s") << " of "
           << p.neuron_block << " (last " << last_block << ")";
    if (p.tiled)
        os << ", " << p.row_tiles << " x " << p.row_tiles << " row tiles of " << p.row_tile << " (last "
           << last_tile << "), upper " << p.row_tiles * (p.row_tiles + 1) / 2 << " computed";
    os << "\n";
    os << "input:     " << format_bytes(p.input_bytes) << " fp32 in " << place_name(p.input_place);
    if (p.input_place != Place::Device)
        os << ", copied to the device in blocks through " << format_bytes(p.staging_bytes) << " of "
           << place_name(Place::PinnedHost);
    else
        os << " (z-scored in place)";
    os << "\n";
    os << "workspace: " << format_bytes(p.workspace_bytes) << " on the " << place_name(p.workspace_place)
       << " (" << (p.kind == PlanKind::OneShot ? "row statistics" : p.tiled ? "copy and z blocks, two output tiles, row statistics"
                                                                           : "two input blocks, row statistics")
       << ")\n";
    os << "output:    " << format_bytes(p.output_bytes) << " (" << p.stimuli << " x " << p.stimuli << " fp32) ";
    if (p.output_place == Place::Disk)
        os << "on disk (memory-mapped .npy, written tile by tile)";
    else
        os << "on the device, then copied to host memory";
    os << "\n";
    os << "device:    " << format_bytes(p.device_bytes) << " of a " << format_bytes(p.budget_bytes) << " budget\n";
    return os.str();
}

// ---------------------------------------------------------------- row statistics and z-score
RowStats row_stats_blocked_ref(const float* x, int64_t S, int64_t N, int64_t block) {
    if (block <= 0) block = N;
    RowStats st;
    st.mean.assign(static_cast<size_t>(S), 0.0);
    st.inv_sd.assign(static_cast<size_t>(S), 0.0);
    std::vector<double> m2(static_cast<size_t>(S), 0.0);
    for (int64_t k0 = 0; k0 < N; k0 += block) {
        const int64_t kb = std::min(block, N - k0);
        for (int64_t s = 0; s < S; ++s) {
            double bmean = 0.0, ss = 0.0;
            row_mean_m2(x + s * N + k0, kb, &bmean, &ss);
            chan_merge(static_cast<double>(k0), st.mean[s], m2[s], static_cast<double>(kb), bmean, ss);
        }
    }
    for (int64_t s = 0; s < S; ++s) {
        const double var = m2[s] / static_cast<double>(N);
        if (!(var > 0.0)) {
            st.inv_sd[s] = std::numeric_limits<double>::quiet_NaN();
            st.constant_rows.push_back(s);
        } else {
            st.inv_sd[s] = 1.0 / std::sqrt(var);
        }
    }
    return st;
}

void zscore_block_ref(const float* x, int64_t ldx, int64_t rows, int64_t cols, const double* mean,
                      const double* inv_sd, Precision precision, float* z, int64_t ldz) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * ldx;
        float* zr = z + r * ldz;
        const double m = mean[r], is = inv_sd[r];
        for (int64_t c = 0; c < cols; ++c) zr[c] = static_cast<float>((xr[c] - m) * is);
        if (precision == Precision::TF32) round_to_tf32(zr, static_cast<size_t>(cols));
    }
}

// ---------------------------------------------------------------- CPU twins
void rdm_chunked_ref(const float* x, int64_t S, int64_t N, int64_t neuron_block, Precision precision, float* rdm,
                     std::vector<int64_t>* constant_rows) {
    const int64_t K = neuron_block > 0 ? std::min(neuron_block, N) : N;
    const RowStats st = row_stats_blocked_ref(x, S, N, K);
    if (constant_rows) *constant_rows = st.constant_rows;
    std::fill(rdm, rdm + S * S, 1.0f);
    std::vector<float> z(static_cast<size_t>(S * K));
    const float alpha = -1.0f / static_cast<float>(N);
    for (int64_t k0 = 0; k0 < N; k0 += K) {
        check_interrupt("the RDM");
        const int64_t kb = std::min(K, N - k0);
        zscore_block_ref(x + k0, N, S, kb, st.mean.data(), st.inv_sd.data(), precision, z.data(), kb);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(S), static_cast<int>(kb), alpha,
                    z.data(), static_cast<int>(kb), 1.0f, rdm, static_cast<int>(S));
    }
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < i; ++j) rdm[i * S + j] = rdm[j * S + i];
}

void rdm_tiled_ref(const float* x, int64_t S, int64_t N, int64_t row_tile, int64_t neuron_block,
                   Precision precision, const std::string& path, std::vector<int64_t>* constant_rows,
                   const TileProgress& progress) {
    const int64_t T = row_tile > 0 ? std::min(row_tile, S) : S;
    const int64_t K = neuron_block > 0 ? std::min(neuron_block, N) : N;
    const RowStats st = row_stats_blocked_ref(x, S, N, K);
    if (constant_rows) *constant_rows = st.constant_rows;
    MappedNpyWriter out(path, S, S);
    std::vector<float> zi(static_cast<size_t>(T * K)), zj(static_cast<size_t>(T * K)), tile(static_cast<size_t>(T * T));
    const float alpha = -1.0f / static_cast<float>(N);
    const int64_t tiles = ceil_div(S, T), total = tiles * (tiles + 1) / 2;
    const bool one_block = K == N;
    int64_t done = 0;
    for (int64_t i0 = 0; i0 < S; i0 += T) {
        const int64_t ti = std::min(T, S - i0);
        if (one_block)  // z of row block i stays valid for every tile of this row
            zscore_block_ref(x + i0 * N, N, ti, N, st.mean.data() + i0, st.inv_sd.data() + i0, precision,
                             zi.data(), N);
        for (int64_t j0 = i0; j0 < S; j0 += T) {
            const int64_t tj = std::min(T, S - j0);
            const bool diag = i0 == j0;
            std::fill(tile.begin(), tile.begin() + ti * tj, 1.0f);
            for (int64_t k0 = 0; k0 < N; k0 += K) {
                const int64_t kb = std::min(K, N - k0);
                if (!one_block)
                    zscore_block_ref(x + i0 * N + k0, N, ti, kb, st.mean.data() + i0, st.inv_sd.data() + i0,
                                     precision, zi.data(), kb);
                if (diag) {
                    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(ti), static_cast<int>(kb),
                                alpha, zi.data(), static_cast<int>(kb), 1.0f, tile.data(), static_cast<int>(tj));
                } else {
                    zscore_block_ref(x + j0 * N + k0, N, tj, kb, st.mean.data() + j0, st.inv_sd.data() + j0,
                                     precision, zj.data(), kb);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(ti), static_cast<int>(tj),
                                static_cast<int>(kb), alpha, zi.data(), static_cast<int>(kb), zj.data(),
                                static_cast<int>(kb), 1.0f, tile.data(), static_cast<int>(tj));
                }
            }
            out.write_tile(tile.data(), tj, i0, ti, j0, tj, !diag, diag);
            ++done;
            if (progress) progress(done, total);
        }
    }
    out.commit();
}

void rdm_scaled_ref(const float* x, int64_t S, int64_t N, const MemoryPlan& plan, Precision precision,
                    const std::string& path, Matrix* rdm, std::vector<int64_t>* constant_rows) {
    if (plan.stimuli != S || plan.neurons != N)
        throw RuntimeError("rdm_scaled_ref: the plan is for " + std::to_string(plan.stimuli) + " x " +
                           std::to_string(plan.neurons) + ", the input is " + std::to_string(S) + " x " +
                           std::to_string(N));
    if (plan.kind == PlanKind::Tiled) {
        if (path.empty())
            throw RuntimeError("the " + std::to_string(S) + " x " + std::to_string(S) +
                               " RDM is tiled to disk under this memory plan, but no output path was given");
        if (rdm) *rdm = Matrix();
        std::unique_ptr<Progress> bar;  // created at the first report, when the tile count is known
        rdm_tiled_ref(x, S, N, plan.row_tile, plan.neuron_block, precision, path, constant_rows,
                      [&bar](int64_t done, int64_t total) {
                          if (!bar) bar = std::make_unique<Progress>("RDM tiles", total);
                          bar->update(done);
                      });
        return;
    }
    Matrix m(S, S);
    rdm_chunked_ref(x, S, N, plan.kind == PlanKind::OneShot ? N : plan.neuron_block, precision, m.data.data(),
                    constant_rows);
    if (!path.empty()) npy_save(path, m);
    if (rdm) *rdm = std::move(m);
}

// ---------------------------------------------------------------- memory-mapped .npy
std::string npy_header_f32(int64_t rows, int64_t cols) {
    std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
    const size_t preamble = 6 + 2 + 2;
    const size_t total = (preamble + dict.size() + 1 + 63) / 64 * 64;
    dict.append(total - preamble - dict.size() - 1, ' ');
    dict += '\n';
    std::string h("\x93NUMPY", 6);
    h += static_cast<char>(1);
    h += static_cast<char>(0);
    h += static_cast<char>(dict.size() & 0xff);
    h += static_cast<char>((dict.size() >> 8) & 0xff);
    return h + dict;
}

namespace {
std::string mapped_temp_name(const std::string& path) {
    static std::atomic<unsigned> counter{0};
    return path + ".tmp." + std::to_string(::getpid()) + ".m" + std::to_string(counter++);
}
}  // namespace

MappedNpyWriter::MappedNpyWriter(const std::string& path, int64_t rows, int64_t cols)
    : path_(path), tmp_(mapped_temp_name(path)), rows_(rows), cols_(cols) {
    auto fail = [&](const std::string& why) {
        abort();
        throw RuntimeError(path_ + ": cannot write: " + why);
    };
    if (rows < 0 || cols < 0) fail("negative shape");
    const std::string header = npy_header_f32(rows, cols);
    const uint64_t data_bytes = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) * sizeof(float);
    map_bytes_ = header.size() + data_bytes;
    fd_ = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(std::strerror(errno));
    reg_ = StagingRegistration(tmp_, false);
    if (::ftruncate(fd_, static_cast<off_t>(map_bytes_)) != 0) fail(std::strerror(errno));
    // Reserve the blocks now: a sparse file on a full disk would fail later as SIGBUS on a mapped store.
    const int fa = ::posix_fallocate(fd_, 0, static_cast<off_t>(map_bytes_));
    if (fa != 0 && fa != EOPNOTSUPP && fa != EINVAL) fail(std::string("reserving ") + format_bytes(map_bytes_) + ": " + std::strerror(fa));
    if (::pwrite(fd_, header.data(), header.size(), 0) != static_cast<ssize_t>(header.size()))
        fail(std::strerror(errno ? errno : EIO));
    map_ = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (map_ == MAP_FAILED) {
        map_ = nullptr;
        fail(std::string("mmap: ") + std::strerror(errno));
    }
    data_ = reinterpret_cast<float*>(static_cast<char*>(map_) + header.size());  // header is 64-byte padded
}

MappedNpyWriter::~MappedNpyWriter() {
    if (!committed_) abort();
}

void MappedNpyWriter::abort() noexcept {
    if (map_) ::munmap(map_, map_bytes_);
    map_ = nullptr;
    data_ = nullptr;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
    reg_.release();
}

void MappedNpyWriter::write_tile(const float* tile, int64_t ld, int64_t r0, int64_t tr, int64_t c0, int64_t tc,
                                 bool mirror, bool diagonal) {
    if (!data_) throw RuntimeError(path_ + ": write after commit or failure");
    check_interrupt("the RDM");  // a safe point between tiles (the caller's exception path removes the file)
    if (r0 < 0 || c0 < 0 || r0 + tr > rows_ || c0 + tc > cols_ || (mirror && (c0 + tc > rows_ || r0 + tr > cols_)))
        throw RuntimeError(path_ + ": tile outside the matrix");
    const int64_t C = cols_;
    if (diagonal) {
        for (int64_t a = 0; a < tr; ++a)
            for (int64_t b = a; b < tc; ++b) {
                const float v = tile[a * ld + b];
                data_[(r0 + a) * C + c0 + b] = v;
                data_[(c0 + b) * C + r0 + a] = v;
            }
        return;
    }
    for (int64_t a = 0; a < tr; ++a) std::memcpy(data_ + (r0 + a) * C + c0, tile + a * ld, static_cast<size_t>(tc) * sizeof(float));
    if (!mirror) return;
    constexpr int64_t B = 32;  // blocked transpose
    for (int64_t a0 = 0; a0 < tr; a0 += B)
        for (int64_t b0 = 0; b0 < tc; b0 += B) {
            const int64_t a1 = std::min(tr, a0 + B), b1 = std::min(tc, b0 + B);
            for (int64_t b = b0; b < b1; ++b) {
                float* dst = data_ + (c0 + b) * C + r0;
                for (int64_t a = a0; a < a1; ++a) dst[a] = tile[a * ld + b];
            }
        }
}

void MappedNpyWriter::commit() {
    if (committed_) return;
    auto fail = [&](const std::string& why) {
        abort();
        throw RuntimeError(path_ + ": cannot write: " + why);
    };
    if (!map_ || fd_ < 0) fail("the file is not open");
    if (::msync(map_, map_bytes_, MS_SYNC) != 0) fail(std::string("msync: ") + std::strerror(errno));
    if (::munmap(map_, map_bytes_) != 0) {
        map_ = nullptr;
        fail(std::string("munmap: ") + std::strerror(errno));
    }
    map_ = nullptr;
    data_ = nullptr;
    if (::fsync(fd_) != 0) fail(std::string("fsync: ") + std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail(std::string("close: ") + std::strerror(errno));
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail(std::strerror(errno));
    committed_ = true;
    reg_.release();
}

}  // namespace rsa

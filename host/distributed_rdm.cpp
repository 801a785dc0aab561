// The distributed RDM (distributed_rdm.h): the tile assignment (Morton order, cost cuts), the plan of both modes, the
// positioned reads of the input .npy, the shared output .npy that every rank writes its tiles into (pwrite), and the
// agreed phases of a run: header, row statistics and checks, tiles (or the neuron-split partials and their sum), the
// finish on rank 0.
#include "rsa_gpu/distributed_rdm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>

#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/rdm_engine.h"
#include "rsa_gpu/rdm_plan.h"

namespace rsa {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The Morton (Z-order) key of tile (bi, bj): their bits interleaved.
uint64_t morton_key(uint64_t bi, uint64_t bj) {
    uint64_t key = 0;
    for (int b = 0; b < 32; ++b) key |= ((bi >> b) & 1u) << (2 * b + 1) | ((bj >> b) & 1u) << (2 * b);
    return key;
}

std::string errno_text() { return std::strerror(errno); }

// ---------------------------------------------------------------- positioned reads of the input
// The S x N matrix of a float32 or float64 little-endian C-order .npy, read by row ranges or column blocks without
// reading the rest of the file.
class NpyRowReader {
public:
    explicit NpyRowReader(const std::string& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) throw InputError(path + ": cannot open: " + errno_text());
        struct stat st{};
        if (::fstat(fd_, &st) != 0) throw InputError(path + ": cannot stat: " + errno_text());
        const uint64_t size = static_cast<uint64_t>(st.st_size);
        std::vector<char> head(static_cast<size_t>(std::min<uint64_t>(size, kNpyMaxHeaderBytes)));
        read_at(head.data(), head.size(), 0);
        const NpyHeader h = npy_parse_header(head.data(), head.size(), path);
        if (h.shape.size() != 2)
            throw InputError(path + ": a response matrix must be 2-D (stimuli x units), got " +
                             std::to_string(h.shape.size()) + "-D");
        if (h.fortran_order)
            throw InputError(path + ": a distributed run reads row blocks in place and needs C order; save it with "
                                    "numpy.save(path, numpy.ascontiguousarray(x))");
        if (h.descr == "<f4") item_ = 4;
        else if (h.descr == "<f8") item_ = 8;
        else
            throw InputError(path + ": a distributed run reads float32 or float64 (little-endian) matrices in place, "
                                    "not '" + h.descr + "'; convert it with numpy (x.astype(numpy.float32))");
        rows_ = h.shape[0];
        cols_ = h.shape[1];
        offset_ = h.header_bytes;
        if (size < h.header_bytes + h.data_bytes)
            throw InputError(path + ": truncated: its header declares " + std::to_string(rows_) + " x " +
                             std::to_string(cols_) + " (" + std::to_string(h.data_bytes) + " bytes of data), the file "
                             "holds " + std::to_string(size - std::min(size, h.header_bytes)));
    }
    ~NpyRowReader() {
        if (fd_ >= 0) ::close(fd_);
    }
    NpyRowReader(const NpyRowReader&) = delete;
    NpyRowReader& operator=(const NpyRowReader&) = delete;
    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }

    // Rows [r0, r0 + count), columns [c0, c0 + width) into dst (count x width, row-major), as float32.
    void read(int64_t r0, int64_t count, int64_t c0, int64_t width, float* dst) {
        if (count <= 0 || width <= 0) return;
        const bool whole_rows = c0 == 0 && width == cols_;
        std::vector<double> conv;
        if (item_ == 8) conv.resize(static_cast<size_t>(whole_rows ? count * width : width));
        if (whole_rows) {
            const uint64_t bytes = static_cast<uint64_t>(count * width) * item_;
            void* target = item_ == 4 ? static_cast<void*>(dst) : static_cast<void*>(conv.data());
            read_at(target, bytes, offset_ + static_cast<uint64_t>(r0 * cols_) * item_);
            if (item_ == 8)
                for (int64_t i = 0; i < count * width; ++i) dst[i] = static_cast<float>(conv[static_cast<size_t>(i)]);
            return;
        }
        for (int64_t r = 0; r < count; ++r) {
            const uint64_t at = offset_ + static_cast<uint64_t>((r0 + r) * cols_ + c0) * item_;
            float* row = dst + r * width;
            if (item_ == 4) {
                read_at(row, static_cast<uint64_t>(width) * 4, at);
            } else {
                read_at(conv.data(), static_cast<uint64_t>(width) * 8, at);
                for (int64_t c = 0; c < width; ++c) row[c] = static_cast<float>(conv[static_cast<size_t>(c)]);
            }
            if ((r & 1023) == 1023) check_interrupt("reading the responses");
        }
    }

private:
    void read_at(void* dst, uint64_t bytes, uint64_t at) {
        char* p = static_cast<char*>(dst);
        while (bytes > 0) {
            const ssize_t n = ::pread(fd_, p, std::min<uint64_t>(bytes, uint64_t{1} << 30), static_cast<off_t>(at));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw RuntimeError(path_ + ": read failed: " + errno_text());
            if (n == 0) throw InputError(path_ + ": the file ended early (truncated)");
            p += n;
            at += static_cast<uint64_t>(n);
            bytes -= static_cast<uint64_t>(n);
        }
    }

    std::string path_;
    int fd_ = -1;
    int64_t rows_ = 0, cols_ = 0;
    uint64_t offset_ = 0, item_ = 4;
};

// ---------------------------------------------------------------- the shared output
// The S x S float32 .npy every rank writes its tiles into at their offsets (pwrite; disjoint bytes per rank). Rank 0
// creates it at full size (create()) before the others open it.
class SharedNpyOutput {
public:
    static void create(const std::string& path, int64_t S) {
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) throw RuntimeError(path + ": cannot create: " + errno_text());
        const std::string header = npy_header_f32(S, S);
        const uint64_t total = header.size() + static_cast<uint64_t>(S) * static_cast<uint64_t>(S) * sizeof(float);
        const bool ok = ::pwrite(fd, header.data(), header.size(), 0) == static_cast<ssize_t>(header.size()) &&
                        ::ftruncate(fd, static_cast<off_t>(total)) == 0;
        const std::string why = ok ? "" : errno_text();
        ::close(fd);
        if (!ok) throw RuntimeError(path + ": cannot size the output (" + std::to_string(total) + " bytes): " + why);
    }

    SharedNpyOutput(const std::string& path, int64_t S) : path_(path), S_(S) {
        fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        if (fd_ < 0) throw RuntimeError(path + ": cannot open the shared output: " + errno_text());
        offset_ = npy_header_f32(S, S).size();
    }
    ~SharedNpyOutput() {
        if (fd_ >= 0) ::close(fd_);
    }
    SharedNpyOutput(const SharedNpyOutput&) = delete;
    SharedNpyOutput& operator=(const SharedNpyOutput&) = delete;

    // A tile and its mirror (npy.h place_rdm_tile: the one placement of every S x S writer), a pwrite per row run.
    void write_tile(const float* tile, int64_t ld, int64_t r0, int64_t tr, int64_t c0, int64_t tc, bool mirror,
                    bool diagonal) {
        place_rdm_tile(tile, ld, r0, tr, c0, tc, mirror, diagonal,
                       [&](const float* data, int64_t count, int64_t row, int64_t col) { write_at(data, count, row, col); });
    }

    // Rows and columns `rows` set NaN (a handful of rows: one pwrite per row and per entry of its column).
    void nan_rows_and_columns(const std::vector<int64_t>& rows) {
        if (rows.empty()) return;
        const std::vector<float> nan_row(static_cast<size_t>(S_), std::numeric_limits<float>::quiet_NaN());
        for (int64_t r : rows) {
            write_at(nan_row.data(), S_, r, 0);
            for (int64_t i = 0; i < S_; ++i) write_at(nan_row.data(), 1, i, r);
        }
    }

    void sync() {
        if (::fsync(fd_) != 0) throw RuntimeError(path_ + ": fsync failed: " + errno_text());
    }

private:
    void write_at(const float* data, int64_t count, int64_t row, int64_t col) {
        const char* p = reinterpret_cast<const char*>(data);
        uint64_t bytes = static_cast<uint64_t>(count) * sizeof(float);
        uint64_t at = offset_ + (static_cast<uint64_t>(row) * static_cast<uint64_t>(S_) + static_cast<uint64_t>(col)) *
                                    sizeof(float);
        while (bytes > 0) {
            const ssize_t n = ::pwrite(fd_, p, bytes, static_cast<off_t>(at));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw RuntimeError(path_ + ": write failed: " + errno_text());
            p += n;
            at += static_cast<uint64_t>(n);
            bytes -= static_cast<uint64_t>(n);
        }
    }

    std::string path_;
    int fd_ = -1;
    int64_t S_ = 0;
    uint64_t offset_ = 0;
};

// The killed-rank test's hook (distributed_rdm.h): the chosen rank writes its pid and waits to be killed.
void stall_if_asked(int rank) {
    const char* r = std::getenv("RSA_GPU_TEST_STALL_RANK");
    const char* f = std::getenv("RSA_GPU_TEST_STALL_FILE");
    if (!r || !f || std::atoi(r) != rank) return;
    const std::string tmp = std::string(f) + ".tmp";
    if (FILE* out = std::fopen(tmp.c_str(), "w")) {
        std::fprintf(out, "%ld\n", static_cast<long>(::getpid()));
        std::fclose(out);
        std::rename(tmp.c_str(), f);
    }
    for (;;) ::pause();
}

// A sub-problem's tiles into the shared output at their global rows: sub row block b is global row block blocks[b].
class SubproblemSink final : public RdmTileSink {
public:
    SubproblemSink(SharedNpyOutput& out, const std::vector<int64_t>& blocks, int64_t T, int rank)
        : out_(out), blocks_(blocks), T_(T), rank_(rank) {}
    void write_tile(const float* tile, int64_t ld, int64_t r0, int64_t tr, int64_t c0, int64_t tc, bool mirror,
                    bool diagonal) override {
        const int64_t gr = blocks_[static_cast<size_t>(r0 / T_)] * T_ + r0 % T_;
        const int64_t gc = blocks_[static_cast<size_t>(c0 / T_)] * T_ + c0 % T_;
        out_.write_tile(tile, ld, gr, tr, gc, tc, mirror, diagonal);
        check_interrupt("the RDM tiles");
        if (++written_ == 1) stall_if_asked(rank_);
    }

private:
    SharedNpyOutput& out_;
    const std::vector<int64_t>& blocks_;
    int64_t T_;
    int rank_;
    int64_t written_ = 0;
};

// Rows of a row block.
int64_t block_rows(int64_t b, int64_t T, int64_t S) { return std::min(T, S - b * T); }

// The row ranges [first, end) of the distinct row blocks of `tiles`, ascending, adjacent blocks merged.
std::vector<std::pair<int64_t, int64_t>> needed_ranges(const std::vector<std::pair<int64_t, int64_t>>& tiles, int64_t T,
                                                       int64_t S) {
    std::set<int64_t> blocks;
    for (const auto& t : tiles) {
        blocks.insert(t.first);
        blocks.insert(t.second);
    }
    std::vector<std::pair<int64_t, int64_t>> out;
    for (int64_t b : blocks) {
        const int64_t a = b * T, e = std::min(S, a + T);
        if (!out.empty() && out.back().second == a) out.back().second = e;
        else out.emplace_back(a, e);
    }
    return out;
}

// A rank's tiles grouped by tile row (band) and cut so that a group's rows fit `cap` bytes of input: (bi, [bj...]).
std::vector<std::pair<int64_t, std::vector<int64_t>>> band_groups(const std::vector<std::pair<int64_t, int64_t>>& tiles,
                                                                 int64_t T, int64_t N, uint64_t cap) {
    std::map<int64_t, std::vector<int64_t>> bands;
    for (const auto& t : tiles) bands[t.first].push_back(t.second);
    const uint64_t block_bytes = static_cast<uint64_t>(T) * static_cast<uint64_t>(N) * sizeof(float);
    const int64_t per_group = std::max<int64_t>(1, static_cast<int64_t>(cap / std::max<uint64_t>(block_bytes, 1)) - 1);
    std::vector<std::pair<int64_t, std::vector<int64_t>>> groups;
    for (auto& [bi, bjs] : bands) {
        std::sort(bjs.begin(), bjs.end());
        for (size_t at = 0; at < bjs.size(); at += static_cast<size_t>(per_group))
            groups.emplace_back(bi, std::vector<int64_t>(bjs.begin() + static_cast<std::ptrdiff_t>(at),
                                                         bjs.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                                           bjs.size(), at + static_cast<size_t>(per_group)))));
    }
    return groups;
}

// The part of a rank's memory one band group's input may take.
uint64_t group_input_cap(uint64_t rank_memory) { return std::max<uint64_t>(rank_memory / 4, 64ull << 20); }

// A band group's row blocks: its band bi first, then its other column blocks, ascending.
std::vector<int64_t> group_blocks(int64_t bi, const std::vector<int64_t>& bjs) {
    std::vector<int64_t> blocks{bi};
    for (int64_t bj : bjs)
        if (bj != bi) blocks.push_back(bj);
    return blocks;
}

// A rank's band groups in the order it computes them: first the groups whose row blocks all lie within the rank's
// own rows (read from the file by the rank itself: nothing to wait for while the exchange runs), then the rest in
// band order. Every rank computes every rank's order (a rank sends each peer its rows in the order the peer needs
// them).
std::vector<std::pair<int64_t, std::vector<int64_t>>> compute_order(const DistributedRdmPlan& plan, int rank,
                                                                   uint64_t cap) {
    const int64_t S = plan.stimuli, T = plan.row_tile;
    const SampleRange own = rank_range(S, rank, plan.ranks);
    auto groups = band_groups(plan.tiles[static_cast<size_t>(rank)], T, plan.neurons, cap);
    const auto local = [&](const std::pair<int64_t, std::vector<int64_t>>& g) {
        for (int64_t b : group_blocks(g.first, g.second))
            if (b * T < own.first || b * T + block_rows(b, T, S) > own.first + own.count) return false;
        return true;
    };
    std::stable_partition(groups.begin(), groups.end(), local);
    return groups;
}

// The row blocks of a rank's groups in the order of their first use.
std::vector<int64_t> need_order(const std::vector<std::pair<int64_t, std::vector<int64_t>>>& groups) {
    std::vector<int64_t> order;
    std::set<int64_t> seen;
    for (const auto& [bi, bjs] : groups)
        for (int64_t b : group_blocks(bi, bjs))
            if (seen.insert(b).second) order.push_back(b);
    return order;
}

// The exchange-delay test hook (tests/mpi/mpi_rdm_test.sh): RSA_GPU_TEST_EXCHANGE_DELAY_MS holds the exchange back
// this long on every rank, so that the tiles must wait for their row blocks.
void delay_exchange_if_asked() {
    const char* ms = std::getenv("RSA_GPU_TEST_EXCHANGE_DELAY_MS");
    if (ms && std::atoi(ms) > 0) std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(ms)));
}

// The row exchange running while the tiles are computed (issue 13: the exchange overlapped with the products): a
// thread of its own runs Comm::exchange_rows (the only communicator calls until finish(): the main thread computes
// tiles), and wait_for(b) returns as soon as every row of block b has arrived. When the communicator cannot run it
// in the background (or no thread can be made) the exchange runs to its end in the constructor. The destructor waits
// for the exchange to end (every rank posted its transfers, so it ends even when this rank's tiles failed) before
// the rows it reads and writes go.
class BackgroundRowExchange {
public:
    BackgroundRowExchange(Comm& comm, std::vector<Comm::RowTransfer> sends, std::vector<Comm::RowTransfer> receives,
                          std::vector<int64_t> receive_block, int64_t cols)
        : comm_(comm), sends_(std::move(sends)), receives_(std::move(receives)),
          receive_block_(std::move(receive_block)), cols_(cols) {
        for (int64_t b : receive_block_) ++pending_[b];
        if (comm_.exchange_in_background()) {
            try {
                thread_ = std::thread([this] { run(); });
                return;
            } catch (const std::system_error&) {  // no thread to be had: the exchange in this thread
            }
        }
        run();
    }
    ~BackgroundRowExchange() {
        if (thread_.joinable()) thread_.join();
    }
    BackgroundRowExchange(const BackgroundRowExchange&) = delete;
    BackgroundRowExchange& operator=(const BackgroundRowExchange&) = delete;

    // Waits until block b's rows have all arrived; the exchange's own error if it failed.
    void wait_for(int64_t b) {
        std::unique_lock<std::mutex> lock(mu_);
        for (;;) {
            if (error_) std::rethrow_exception(error_);
            const auto it = pending_.find(b);
            if (it == pending_.end() || it->second == 0) return;
            if (finished_) throw RuntimeError("the row exchange ended without row block " + std::to_string(b));
            cv_.wait_for(lock, std::chrono::milliseconds(100));
            lock.unlock();
            check_interrupt("the row exchange");
            lock.lock();
        }
    }
    // Waits for the whole exchange (this rank's sends included); its error if it failed.
    void finish() {
        if (thread_.joinable()) thread_.join();
        if (error_) std::rethrow_exception(error_);
    }

private:
    void run() {
        std::exception_ptr error;
        try {
            delay_exchange_if_asked();
            comm_.exchange_rows(sends_, receives_, cols_, [this](size_t i) {
                std::lock_guard<std::mutex> lock(mu_);
                --pending_[receive_block_[i]];
                cv_.notify_all();
            });
        } catch (...) {
            error = std::current_exception();
        }
        std::lock_guard<std::mutex> lock(mu_);
        error_ = error;
        finished_ = true;
        cv_.notify_all();
    }

    Comm& comm_;
    std::vector<Comm::RowTransfer> sends_, receives_;
    std::vector<int64_t> receive_block_;  // per receive: the row block it fills
    int64_t cols_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::map<int64_t, int64_t> pending_;  // row block -> receives not yet arrived
    bool finished_ = false;
    std::exception_ptr error_;
    std::thread thread_;
};


// The first non-finite value of row `row` (its column), read from the file: the message every rank gives alike.
[[noreturn]] void throw_non_finite(NpyRowReader& in, int64_t row, const std::string& what) {
    std::vector<float> r(static_cast<size_t>(in.cols()));
    in.read(row, 1, 0, in.cols(), r.data());
    for (int64_t c = 0; c < in.cols(); ++c)
        if (!std::isfinite(r[static_cast<size_t>(c)])) throw_non_finite_response(what, r[static_cast<size_t>(c)], row, c);
    throw InputError(what + ": row " + std::to_string(row) + " has values too large for its statistics");
}

// The device memory this rank may plan with: the backend's free memory, divided among the ranks of this node that
// share its GPU (more ranks than GPUs: --device auto gives local rank r GPU r modulo the GPUs).
uint64_t rank_device_memory(Comm& comm, Backend& backend, uint64_t free_bytes) {
    if (!backend.is_gpu()) return free_bytes;
    const int gpus = std::max(usable_gpu_count(), 1);
    const int sharing = (comm.local_size() + gpus - 1) / gpus;
    return free_bytes / static_cast<uint64_t>(std::max(sharing, 1));
}

// This rank's share of the RDM from its units x_c (S x Nc of N): its RDM d_c on the backend's device and the weight
// Nc / N. Correlation: d_c from x_c z-scored with the global row statistics (m2 scaled so that m2' / Nc = m2 / N), so
// that (Nc / N) (1 - d_c) is its part of Z Z^T / N; Euclidean: d_c from x_c's own row moments, (Nc / N) d_c its part
// of the squared distances (they add over units).
struct ColumnsPart {
    Array rdm;            // S x S (empty when the rank has no units)
    double weight = 0.0;  // Nc / N
    int64_t stimuli = 0;
};

ColumnsPart columns_part(Comm& comm, Backend& backend, Matrix&& x_c, const RowMoments& global, int64_t N,
                         const RdmOptions& options, const std::string& what) {
    ColumnsPart part;
    const int64_t S = x_c.rows, Nc = x_c.cols;
    part.stimuli = S;
    if (Nc == 0) return part;
    const Array x(std::move(x_c));
    RowMoments m;
    if (options.kind == RdmKind::Correlation) {
        m = global;
        for (double& v : m.m2) v *= static_cast<double>(Nc) / static_cast<double>(N);
    } else {
        m = backend.row_moments(x, false);
    }
    MemoryPlan plan = plan_rdm(S, Nc, options.max_gpu_bytes,
                               rank_device_memory(comm, backend, backend.rdm_memory(S, Nc).free_bytes));
    if (plan.kind == PlanKind::Tiled)
        throw InputError(what + ": a rank's share of the " + std::to_string(S) + " x " + std::to_string(S) +
                         " RDM (the units split over the ranks) does not fit its memory; use --distribute rows");
    plan.rdm_kind = options.kind;
    part.rdm = backend.rdm_run(x, plan, options.precision, m, {}, nullptr);
    part.weight = static_cast<double>(Nc) / static_cast<double>(N);
    return part;
}

// The sum of every rank's weighted part in float64: on the devices with NCCL when `device` is given (every rank's
// part on its GPU), else through host memory over MPI (1 - d_c is exact in double, so the sum carries only each d_c's
// rounding). root >= 0: the sum on that rank only (the host path); -1: on every rank.
std::vector<double> sum_parts(Comm& comm, DeviceCollective* device, const ColumnsPart& part, RdmKind kind, int root) {
    const bool complement = kind == RdmKind::Correlation;
    if (device) return device->allreduce_weighted(part.rdm, part.weight, complement);
    std::vector<double> partial;
    agreed(comm, "the partial RDM", [&] {
        partial = checked_alloc<double>(static_cast<size_t>(part.stimuli * part.stimuli), "the partial RDM (float64)");
        if (part.rdm.empty()) return;
        const float* h = part.rdm.host();
        for (size_t i = 0; i < partial.size(); ++i) {
            const double v = static_cast<double>(h[i]);
            partial[i] = part.weight * (complement ? 1.0 - v : v);
        }
    });
    if (root < 0) comm.allreduce_sum(partial.data(), partial.size());
    else comm.reduce_sum(partial.data(), partial.size(), root);
    return partial;
}

// The device collective for the neuron-split sums (every rank calls it: it agrees), or null (CPU ranks, no NCCL, a
// rank without units: N < ranks); `how` says which path sums the parts.
std::unique_ptr<DeviceCollective> parts_collective(Comm& comm, Backend& backend, int64_t N, std::string* how) {
    std::string why;
    std::unique_ptr<DeviceCollective> dc = make_device_collective(comm, backend, &why);
    if (dc && N < comm.size()) {
        dc.reset();
        why = "fewer units than ranks";
    }
    *how = dc ? "partials summed on the GPUs with " + dc->name() : "partials summed over MPI in host memory (" + why + ")";
    return dc;
}

// The RDM from the summed partials (float32).
std::vector<float> finish_partials(const std::vector<double>& sum, RdmKind kind) {
    std::vector<float> d = checked_alloc<float>(sum.size(), "the RDM");
    for (size_t i = 0; i < d.size(); ++i)
        d[i] = static_cast<float>(kind == RdmKind::Correlation ? 1.0 - sum[i] : sum[i]);
    return d;
}

}  // namespace

DistributeMode parse_distribute_mode(const std::string& text) {
    if (text == "auto") return DistributeMode::Auto;
    if (text == "rows") return DistributeMode::Rows;
    if (text == "neurons") return DistributeMode::Neurons;
    throw InputError("--distribute: expected auto, rows or neurons, got '" + text + "'");
}

const char* distribute_mode_name(DistributeMode mode) {
    switch (mode) {
        case DistributeMode::Auto: return "auto";
        case DistributeMode::Rows: return "rows";
        case DistributeMode::Neurons: return "neurons";
    }
    return "?";
}

std::vector<std::vector<std::pair<int64_t, int64_t>>> assign_upper_tiles(int64_t side, int ranks) {
    std::vector<std::pair<uint64_t, std::pair<int64_t, int64_t>>> order;
    for (int64_t bi = 0; bi < side; ++bi)
        for (int64_t bj = bi; bj < side; ++bj)
            order.push_back({morton_key(static_cast<uint64_t>(bi), static_cast<uint64_t>(bj)), {bi, bj}});
    std::sort(order.begin(), order.end());
    const double total = static_cast<double>(side) * static_cast<double>(side - 1) / 2.0 + 0.5 * static_cast<double>(side);
    std::vector<std::vector<std::pair<int64_t, int64_t>>> out(static_cast<size_t>(std::max(ranks, 1)));
    double done = 0.0;
    int rank = 0;
    for (const auto& o : order) {
        const double cost = o.second.first == o.second.second ? 0.5 : 1.0;
        // The tile goes to the rank whose share of the total its middle falls in.
        const double middle = done + cost / 2.0;
        while (rank + 1 < ranks && middle > total * static_cast<double>(rank + 1) / ranks) ++rank;
        out[static_cast<size_t>(rank)].push_back(o.second);
        done += cost;
    }
    return out;
}

DistributedRdmPlan plan_distributed_rdm(int64_t S, int64_t N, int ranks, DistributeMode mode,
                                        uint64_t rank_memory, int64_t row_tile_limit, uint64_t host_memory) {
    DistributedRdmPlan p;
    p.ranks = std::max(ranks, 1);
    p.stimuli = S;
    p.neurons = N;
    const uint64_t out_bytes = static_cast<uint64_t>(S) * static_cast<uint64_t>(S) * sizeof(float);
    if (mode == DistributeMode::Auto)
        mode = out_bytes <= rank_memory / 8 && N >= 4 * S ? DistributeMode::Neurons : DistributeMode::Rows;
    p.mode = mode;
    p.shares.resize(static_cast<size_t>(p.ranks));
    const double dN = static_cast<double>(N);
    if (mode == DistributeMode::Neurons) {
        if (4 * out_bytes > rank_memory)
            throw InputError("--distribute neurons: every rank holds the whole " + std::to_string(S) + " x " +
                             std::to_string(S) + " RDM (" + format_bytes(out_bytes) + ") and its partial sum, more "
                             "than a rank's memory (" + format_bytes(rank_memory) + "): use --distribute rows");
        for (int r = 0; r < p.ranks; ++r) {
            const SampleRange cols = rank_range(N, r, p.ranks);
            RankShare& s = p.shares[static_cast<size_t>(r)];
            s.first_column = cols.first;
            s.columns = cols.count;
            s.multiply_adds = static_cast<double>(S) * static_cast<double>(S + 1) / 2.0 * static_cast<double>(cols.count);
            s.bytes_read = static_cast<uint64_t>(S) * static_cast<uint64_t>(cols.count) * sizeof(float);
            s.bytes_written = r == 0 ? out_bytes : 0;
            s.memory_bytes = s.bytes_read + 3 * out_bytes;  // the float RDM and the float64 partial
        }
        return p;
    }
    // Row-split: at least 4 tiles per rank (balance), tiles no larger than the engine allows, and a band group of two
    // row blocks within a rank's share of memory.
    int64_t side = 1;
    while (side * (side + 1) / 2 < 4 * static_cast<int64_t>(p.ranks) && side < S) ++side;
    int64_t T = ceil_div(S, side);
    if (row_tile_limit > 0) T = std::min(T, row_tile_limit);
    const uint64_t cap = group_input_cap(rank_memory);
    while (T > 1 && 2 * static_cast<uint64_t>(T) * static_cast<uint64_t>(N) * sizeof(float) > cap) T = ceil_div(T, 2);
    p.row_tile = std::max<int64_t>(T, 1);
    p.row_tiles = ceil_div(S, p.row_tile);
    p.tiles = assign_upper_tiles(p.row_tiles, p.ranks);
    for (int r = 0; r < p.ranks; ++r) {
        RankShare& s = p.shares[static_cast<size_t>(r)];
        const auto& tiles = p.tiles[static_cast<size_t>(r)];
        s.tiles = static_cast<int64_t>(tiles.size());
        std::set<int64_t> blocks;
        for (const auto& [bi, bj] : tiles) {
            const double ti = static_cast<double>(block_rows(bi, p.row_tile, S));
            const double tj = static_cast<double>(block_rows(bj, p.row_tile, S));
            s.multiply_adds += bi == bj ? ti * (ti + 1) / 2.0 * dN : ti * tj * dN;
            s.bytes_written += static_cast<uint64_t>(bi == bj ? ti * ti : 2 * ti * tj) * sizeof(float);
            blocks.insert(bi);
            blocks.insert(bj);
        }
        s.row_blocks = static_cast<int64_t>(blocks.size());
        for (int64_t b : blocks) s.needed_rows += block_rows(b, p.row_tile, S);
    }
    // The exchange when every rank's own rows and row blocks fit half the host memory.
    const uint64_t row_bytes = static_cast<uint64_t>(N) * sizeof(float);
    p.exchange = true;
    for (int r = 0; r < p.ranks; ++r) {
        const uint64_t own = static_cast<uint64_t>(rank_range(S, r, p.ranks).count);
        if ((own + static_cast<uint64_t>(p.shares[static_cast<size_t>(r)].needed_rows)) * row_bytes > host_memory / 2)
            p.exchange = false;
    }
    for (int r = 0; r < p.ranks; ++r) {
        RankShare& s = p.shares[static_cast<size_t>(r)];
        const SampleRange own = rank_range(S, r, p.ranks);
        uint64_t largest = 0, group_rows = 0;
        for (const auto& [bi, bjs] : band_groups(p.tiles[static_cast<size_t>(r)], p.row_tile, N, cap)) {
            uint64_t rows = static_cast<uint64_t>(block_rows(bi, p.row_tile, S));
            for (int64_t bj : bjs)
                if (bj != bi) rows += static_cast<uint64_t>(block_rows(bj, p.row_tile, S));
            group_rows += rows;
            largest = std::max(largest, rows);
        }
        const uint64_t tiles_bytes = 2 * static_cast<uint64_t>(p.row_tile) * static_cast<uint64_t>(p.row_tile) * sizeof(float);
        if (p.exchange) {
            // Its own rows from the file; the rest of its blocks from their owners.
            int64_t mine_needed = 0;
            for (const auto& [a, b] : needed_ranges(p.tiles[static_cast<size_t>(r)], p.row_tile, S))
                mine_needed += std::max<int64_t>(0, std::min(b, own.first + own.count) - std::max(a, own.first));
            s.bytes_read = static_cast<uint64_t>(own.count) * row_bytes;
            s.bytes_received = static_cast<uint64_t>(s.needed_rows - mine_needed) * row_bytes;
            s.memory_bytes = (static_cast<uint64_t>(own.count + s.needed_rows) + largest) * row_bytes + tiles_bytes;
        } else {
            // Every band group re-reads its blocks; the statistics read the rank's share of the rows once more.
            s.bytes_read = (static_cast<uint64_t>(own.count) + group_rows) * row_bytes;
            s.memory_bytes = largest * row_bytes + tiles_bytes;
        }
    }
    return p;
}

std::string DistributedRdmPlan::summary(const std::string& comm_name) const {
    std::ostringstream os;
    os << "distributed: " << ranks << " rank" << (ranks == 1 ? "" : "s") << " (" << comm_name << "), ";
    if (mode == DistributeMode::Neurons) {
        const RankShare& a = shares.front();
        const RankShare& b = shares.back();
        os << "neuron-split of the " << stimuli << " x " << neurons << " input: " << b.columns;
        if (a.columns != b.columns) os << "-" << a.columns;
        os << " units per rank, partial RDMs summed";
    } else {
        int64_t lo = std::numeric_limits<int64_t>::max(), hi = 0;
        for (const auto& s : shares) {
            lo = std::min(lo, s.tiles);
            hi = std::max(hi, s.tiles);
        }
        os << "row-split of the " << stimuli << " x " << stimuli << " RDM: " << row_tiles * (row_tiles + 1) / 2
           << " tiles of " << row_tile << " rows (" << row_tiles << " x " << row_tiles << " upper triangle), " << lo;
        if (hi != lo) os << "-" << hi;
        os << " tiles per rank" << (exchange ? ", rows exchanged between ranks" : ", row blocks read by each rank");
    }
    return os.str();
}

std::string DistributedRdmPlan::rank_lines() const {
    std::ostringstream os;
    for (size_t r = 0; r < shares.size(); ++r) {
        const RankShare& s = shares[r];
        os << "  rank " << r << ": ";
        if (mode == DistributeMode::Neurons) os << "units " << s.first_column << ".." << s.first_column + s.columns;
        else os << s.tiles << " tiles over " << s.row_blocks << " row blocks";
        os << ", " << s.multiply_adds << " multiply-adds, reads " << format_bytes(s.bytes_read);
        if (exchange) os << ", receives " << format_bytes(s.bytes_received);
        os << ", writes "
           << format_bytes(s.bytes_written) << ", holds up to " << format_bytes(s.memory_bytes) << "\n";
    }
    return os.str();
}

DistributedRdmResult distributed_rdm_file(Comm& comm, Backend& backend, const std::string& input,
                                          const std::string& output, const RdmOptions& options, DistributeMode mode,
                                          const std::string& what) {
    const int rank = comm.rank(), ranks = comm.size();
    DistributedRdmResult res;
    std::unique_ptr<NpyRowReader> in;
    int64_t S = 0, N = 0;

    // 1. The header and the plan, on every rank alike (the memory: the smallest of the ranks').
    agreed(comm, "planning the RDM", [&] {
        in = std::make_unique<NpyRowReader>(input);
        S = in->rows();
        N = in->cols();
        if (S == 0 || N == 0 || S < 3) check_rdm_input(MatrixView(nullptr, S, N), what);
    });
    int64_t limits[3] = {0, 0, 0};
    agreed(comm, "planning the RDM", [&] {
        const uint64_t memory = backend.is_gpu() ? rank_device_memory(comm, backend, backend.rdm_memory(1, 1).free_bytes)
                                                 : host_memory_budget();
        int64_t tile_limit = 0;
        if (backend.is_gpu()) {
            try {
                tile_limit = plan_rdm(S, N, options.max_gpu_bytes, memory, PlanKind::Tiled).row_tile;
            } catch (const RuntimeError& e) {
                throw InputError(what + ": " + e.what());
            }
        }
        limits[0] = -static_cast<int64_t>(std::min<uint64_t>(memory, static_cast<uint64_t>(INT64_MAX)));
        limits[1] = tile_limit > 0 ? -tile_limit : std::numeric_limits<int64_t>::min();
        limits[2] = -static_cast<int64_t>(std::min<uint64_t>(host_memory_budget(), static_cast<uint64_t>(INT64_MAX)));
    });
    comm.allreduce_max(limits, 3);  // the smallest memories and tile limit of all ranks: one plan everywhere
    const uint64_t rank_memory = static_cast<uint64_t>(-limits[0]);
    const int64_t tile_limit = limits[1] == std::numeric_limits<int64_t>::min() ? 0 : -limits[1];
    const uint64_t host_memory = static_cast<uint64_t>(-limits[2]);
    agreed(comm, "planning the RDM", [&] {
        res.plan = plan_distributed_rdm(S, N, ranks, mode, rank_memory, tile_limit, host_memory);
        if (rank == 0 && options.on_plan) {
            std::string text = res.plan.summary(comm.name());
            if (res.plan.mode == DistributeMode::Rows && res.plan.exchange)
                text += comm.exchange_in_background() ? " as the tiles run"
                                                      : " before the tiles (MPI gave no MPI_THREAD_SERIALIZED)";
            uint64_t biggest = 0;
            for (const auto& s : res.plan.shares) biggest = std::max(biggest, s.memory_bytes);
            if (biggest > (256ull << 20) || options.max_gpu_bytes) text += "\n" + res.plan.rank_lines();
            options.on_plan(text);
        }
    });
    const DistributedRdmPlan& plan = res.plan;
    const RankShare& mine = plan.shares[static_cast<size_t>(rank)];
    const double dN = static_cast<double>(N);

    // 2. Row statistics: every rank's share, gathered (rows) or summed (neurons); the checks on every rank alike.
    RowMoments moments;
    Matrix columns;  // neuron-split: this rank's units of every row
    Matrix own;      // row-split with the exchange: this rank's share of the rows
    const SampleRange own_rows = rank_range(S, rank, ranks);
    if (plan.mode == DistributeMode::Rows) {
        std::vector<double> mean, m2;
        agreed(comm, "the row statistics", [&] {
            const uint64_t row_bytes = static_cast<uint64_t>(N) * sizeof(float);
            if (plan.exchange) {  // kept for the exchange
                own = checked_matrix(own_rows.count, N, "this rank's share of the response rows");
                in->read(own_rows.first, own_rows.count, 0, N, own.data.data());
                const RowMoments m = backend.row_moments(Array(own), false);
                mean = m.mean;
                m2 = m.m2;
                return;
            }
            const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>((256ull << 20) / row_bytes));
            for (int64_t r0 = own_rows.first; r0 < own_rows.first + own_rows.count; r0 += chunk) {
                const int64_t n = std::min(chunk, own_rows.first + own_rows.count - r0);
                Matrix block = checked_matrix(n, N, "a block of response rows");
                in->read(r0, n, 0, N, block.data.data());
                const RowMoments m = backend.row_moments(Array(std::move(block)), false);
                mean.insert(mean.end(), m.mean.begin(), m.mean.end());
                m2.insert(m2.end(), m.m2.begin(), m.m2.end());
                check_interrupt("the row statistics");
            }
        });
        moments.mean = comm.allgather(mean);
        moments.m2 = comm.allgather(m2);
    } else {
        std::vector<double> sum(static_cast<size_t>(S), 0.0), ss(static_cast<size_t>(S), 0.0);
        agreed(comm, "the row statistics", [&] {
            columns = checked_matrix(S, mine.columns, "this rank's units of every row");
            in->read(0, S, mine.first_column, mine.columns, columns.data.data());
            for (int64_t s = 0; s < S; ++s) {
                const float* r = columns.row(s);
                for (int64_t c = 0; c < mine.columns; ++c) sum[static_cast<size_t>(s)] += r[c];
            }
        });
        comm.allreduce_sum(sum.data(), sum.size());
        moments.mean.resize(static_cast<size_t>(S));
        for (int64_t s = 0; s < S; ++s) moments.mean[static_cast<size_t>(s)] = sum[static_cast<size_t>(s)] / dN;
        for (int64_t s = 0; s < S; ++s) {
            const float* r = columns.row(s);
            const double m = moments.mean[static_cast<size_t>(s)];
            for (int64_t c = 0; c < mine.columns; ++c) {
                const double d = r[c] - m;
                ss[static_cast<size_t>(s)] += d * d;
            }
        }
        comm.allreduce_sum(ss.data(), ss.size());
        moments.m2 = ss;
    }
    agreed(comm, "checking the responses", [&] {
        if (static_cast<int64_t>(moments.mean.size()) != S || static_cast<int64_t>(moments.m2.size()) != S)
            throw RuntimeError("the gathered row statistics have " + std::to_string(moments.mean.size()) +
                               " rows, not " + std::to_string(S));
        for (int64_t s = 0; s < S; ++s)
            if (!std::isfinite(moments.mean[static_cast<size_t>(s)]) || !std::isfinite(moments.m2[static_cast<size_t>(s)]))
                throw_non_finite(*in, s, what);
        if (options.kind == RdmKind::Correlation) res.nan_rows = degenerate_rows(moments, N);
        if (!res.nan_rows.empty() && options.constant_rows == ConstantRows::Fail) throw_constant_rows(res.nan_rows, what);
        if (rank == 0 && plan.mode == DistributeMode::Rows) SharedNpyOutput::create(output, S);
    });

    // 3. The work.
    if (plan.mode == DistributeMode::Rows) {
        // The exchange: every rank's row blocks from their owners, each peer's in the order that peer uses them,
        // running in the background while the tiles are computed (a band group waits only for its own blocks).
        const int64_t T = plan.row_tile;
        const uint64_t cap = group_input_cap(rank_memory);
        const auto groups = compute_order(plan, rank, cap);
        Matrix store;                                // this rank's needed rows, ascending
        std::map<int64_t, int64_t> store_row;        // row block -> its first row in `store`
        std::vector<Comm::RowTransfer> sends, receives;
        std::vector<int64_t> receive_block;          // per receive: the row block it fills
        if (plan.exchange) {
            agreed(comm, "exchanging the row blocks", [&] {
                int64_t rows = 0;
                for (const auto& [a, e] : needed_ranges(plan.tiles[static_cast<size_t>(rank)], T, S)) {
                    for (int64_t b = a / T; b * T < e; ++b) store_row[b] = rows + b * T - a;
                    rows += e - a;
                }
                store = checked_matrix(rows, N, "the row blocks of this rank's tiles");
                // Both sides list the transfers from the same plan in the same order: peer p's blocks in p's order of
                // use, each cut at the owners' row ranges.
                for (int p = 0; p < ranks; ++p) {
                    const std::vector<int64_t> order =
                        p == rank ? need_order(groups) : need_order(compute_order(plan, p, cap));
                    for (int64_t b : order) {
                        const int64_t a = b * T, e = a + block_rows(b, T, S);
                        for (int o = 0; o < ranks; ++o) {
                            const SampleRange r = rank_range(S, o, ranks);
                            const int64_t lo = std::max(a, r.first), hi = std::min(e, r.first + r.count);
                            if (hi <= lo) continue;
                            if (p == rank) {
                                receives.push_back({o, store.row(store_row.at(b) + lo - a), hi - lo});
                                receive_block.push_back(b);
                            }
                            if (o == rank) sends.push_back({p, own.row(lo - own_rows.first), hi - lo});
                        }
                    }
                }
            });
        }
        agreed(comm, "computing the RDM tiles", [&] {
            std::unique_ptr<BackgroundRowExchange> exchange;
            if (plan.exchange)
                exchange = std::make_unique<BackgroundRowExchange>(comm, std::move(sends), std::move(receives),
                                                                   std::move(receive_block), N);
            SharedNpyOutput out(output, S);
            for (const auto& [bi, bjs] : groups) {
                // The sub-problem: row block bi, then the other blocks of the group, ascending (a short last block last).
                const std::vector<int64_t> blocks = group_blocks(bi, bjs);
                int64_t rows = 0;
                for (int64_t b : blocks) rows += block_rows(b, T, S);
                // Consecutive blocks lie one after another in the store: the group borrows them there (no copy).
                bool consecutive = exchange != nullptr;
                for (size_t k = 1; k < blocks.size(); ++k) consecutive = consecutive && blocks[k] == blocks[k - 1] + 1;
                Matrix copy;
                if (!consecutive) copy = checked_matrix(rows, N, "the row blocks of a band of RDM tiles");
                RowMoments sub;
                int64_t at = 0;
                for (int64_t b : blocks) {
                    const int64_t n = block_rows(b, T, S);
                    if (exchange) {
                        exchange->wait_for(b);
                        if (!consecutive)
                            std::copy(store.row(store_row.at(b)), store.row(store_row.at(b)) + n * N, copy.row(at));
                    } else {
                        in->read(b * T, n, 0, N, copy.row(at));
                    }
                    sub.mean.insert(sub.mean.end(), moments.mean.begin() + b * T, moments.mean.begin() + b * T + n);
                    sub.m2.insert(sub.m2.end(), moments.m2.begin() + b * T, moments.m2.begin() + b * T + n);
                    at += n;
                }
                const Array x = consecutive ? Array::borrow(store.row(store_row.at(blocks.front())), rows, N) : Array(copy);
                check_interrupt("the RDM tiles");
                MemoryPlan p = plan_rdm(rows, N, options.max_gpu_bytes,
                                        rank_device_memory(comm, backend, backend.rdm_memory(rows, N).free_bytes),
                                        PlanKind::Tiled);
                p.rdm_kind = options.kind;
                p.row_tile = T;
                p.row_tiles = static_cast<int64_t>(blocks.size());
                p.tile_mask.assign(static_cast<size_t>(p.row_tiles * p.row_tiles), 0);
                for (int64_t bj : bjs) {
                    const int64_t k = bj == bi ? 0 : static_cast<int64_t>(std::find(blocks.begin(), blocks.end(), bj) -
                                                                          blocks.begin());
                    p.tile_mask[static_cast<size_t>(k)] = 1;  // tile (0, k) of the sub-problem: (bi, bj)
                }
                SubproblemSink sink(out, blocks, T, rank);
                backend.rdm_run(x, p, options.precision, sub, {}, &sink);
            }
            if (exchange) exchange->finish();  // this rank's sends too, before its rows go
            out.sync();
        });
        own = Matrix();
    } else {
        std::string how;
        const std::unique_ptr<DeviceCollective> device = parts_collective(comm, backend, N, &how);
        if (rank == 0 && options.on_plan) options.on_plan("  " + how);
        ColumnsPart part;
        agreed(comm, "computing the partial RDMs", [&] {
            part = columns_part(comm, backend, std::move(columns), moments, N, options, what);
        });
        const std::vector<double> sum = sum_parts(comm, device.get(), part, options.kind, 0);
        agreed(comm, "writing the RDM", [&] {
            if (rank != 0) return;
            const std::vector<float> d = finish_partials(sum, options.kind);
            npy_save_f32(output, d.data(), {S, S});
        });
    }

    // 4. Rank 0 finishes the file: constant rows NaN, synced.
    agreed(comm, "finishing the RDM", [&] {
        if (rank != 0 || res.nan_rows.empty()) return;
        SharedNpyOutput out(output, S);
        out.nan_rows_and_columns(res.nan_rows);
        out.sync();
    });
    return res;
}

Array distributed_rdm_in_memory(Comm& comm, Backend& backend, const Array& x, const RowMoments& moments,
                                const RdmOptions& options, const std::string& what) {
    const int64_t S = x.rows(), N = x.cols();
    std::string how;
    const std::unique_ptr<DeviceCollective> device = parts_collective(comm, backend, N, &how);
    ColumnsPart part;
    agreed(comm, "computing the partial RDMs", [&] {
        const SampleRange cols = rank_range(N, comm.rank(), comm.size());
        Matrix x_c = checked_matrix(S, cols.count, "this rank's units of every row");
        const float* h = x.host();
        for (int64_t s = 0; s < S; ++s)
            std::copy(h + s * N + cols.first, h + s * N + cols.first + cols.count, x_c.row(s));
        part = columns_part(comm, backend, std::move(x_c), moments, N, options, what);
    });
    const std::vector<double> partial = sum_parts(comm, device.get(), part, options.kind, -1);
    Matrix out(S, S);
    out.data = finish_partials(partial, options.kind);
    return Array(std::move(out));
}

}  // namespace rsa

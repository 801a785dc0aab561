// Memory-mapped .npy output (npy.h): the v1.0 header of a float32 C-order matrix and MappedNpyWriter, which creates
// the file at full size under a temporary name, maps it, takes tiles (with their transposes) and renames it into
// place on commit; the RDM engine's tiled plans write through it.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/rdm_plan.h"

namespace rsa {

void place_rdm_tile(const float* tile, int64_t ld, int64_t r0, int64_t tr, int64_t c0, int64_t tc, bool mirror,
                    bool diagonal, const RdmRunWriter& put) {
    constexpr int64_t kStrip = 32;  // rows of a transposed strip
    std::vector<float> strip;
    if (diagonal) {  // row a: the upper triangle's row a from column b = a on, its column a before (the mirror)
        strip.resize(static_cast<size_t>(kStrip * tc));
        for (int64_t a0 = 0; a0 < tr; a0 += kStrip) {
            const int64_t a1 = std::min(tr, a0 + kStrip);
            for (int64_t b = 0; b < a1; ++b)  // row b of the tile gives columns b of rows a > b (read along row b)
                for (int64_t a = std::max(a0, b + 1); a < a1; ++a) strip[static_cast<size_t>((a - a0) * tc + b)] = tile[b * ld + a];
            for (int64_t a = a0; a < a1; ++a)
                std::memcpy(strip.data() + (a - a0) * tc + a, tile + a * ld + a, static_cast<size_t>(tc - a) * sizeof(float));
            for (int64_t a = a0; a < a1; ++a) put(strip.data() + (a - a0) * tc, tc, r0 + a, c0);
        }
        return;
    }
    for (int64_t a = 0; a < tr; ++a) put(tile + a * ld, tc, r0 + a, c0);
    if (!mirror) return;
    strip.resize(static_cast<size_t>(kStrip * tr));
    for (int64_t b0 = 0; b0 < tc; b0 += kStrip) {  // rows c0 + b of the mirror: column b of the tile
        const int64_t b1 = std::min(tc, b0 + kStrip);
        for (int64_t a = 0; a < tr; ++a)
            for (int64_t b = b0; b < b1; ++b) strip[static_cast<size_t>((b - b0) * tr + a)] = tile[a * ld + b];
        for (int64_t b = b0; b < b1; ++b) put(strip.data() + (b - b0) * tr, tr, c0 + b, r0);
    }
}

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
    place_rdm_tile(tile, ld, r0, tr, c0, tc, mirror, diagonal, [&](const float* data, int64_t count, int64_t row, int64_t col) {
        std::memcpy(data_ + row * C + col, data, static_cast<size_t>(count) * sizeof(float));
    });
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

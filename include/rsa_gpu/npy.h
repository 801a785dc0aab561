// .npy and .npz files (numpy's formats): read float32/float64/int8..int64/uint8..uint64/bool arrays in C or
// Fortran order, little-endian (others rejected with a clear error); npz members stored or deflated (libzip).
// Reading trusts no size written in a file: every size in the zip directory, a zip64 field or an .npy header is
// checked against the file's real size, deflate's largest ratio and the member's own .npy header before
// anything is allocated; members are inflated only when asked for, never past what they declare. Every
// failure is an InputError naming the file and member (an allocation of a validated size that still fails is
// an OutOfMemoryError). Response matrices and RDMs are read straight into float32 (npy_load_matrix,
// NpzReader::read_matrix): the body goes from the file (or the inflater) into its destination in large blocks,
// converted and checked in one pass, never widened to double. Writing is atomic: a temporary name in the same
// folder, then rename, so no half-written file is left behind; the header and the data go out in one writev.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/matrix.h"

namespace rsa {

struct NpyArray {
    std::string descr;               // numpy dtype string as read, e.g. "<f4"
    std::vector<int64_t> shape;
    std::vector<double> values;      // converted to double, C (row-major) order whatever the file's order
    int64_t count() const;           // product of shape (1 for a 0-d array)
};

// The header of an .npy image: what the data that follows it must hold.
struct NpyHeader {
    std::string descr;               // numpy dtype string as read, e.g. "<f4" (a supported one)
    bool fortran_order = false;
    std::vector<int64_t> shape;
    uint64_t header_bytes = 0;       // magic, version, length field and the header text
    uint64_t data_bytes = 0;         // product of shape times the item size
    int64_t count() const;           // product of shape (1 for a 0-d array)
};

// No limit beyond what the file itself declares (and what was validated against its real size).
constexpr uint64_t kNpzNoLimit = std::numeric_limits<uint64_t>::max();
// The longest .npy header a member may have (numpy's own headers are a few hundred bytes).
constexpr uint64_t kNpyMaxHeaderBytes = uint64_t{1} << 20;
// Deflate's largest expansion (258 bytes for 2 bits); a deflated member declaring more than this times its
// compressed size (plus kDeflateSlackBytes) is refused before it is opened.
constexpr uint64_t kDeflateMaxRatio = 1032;
constexpr uint64_t kDeflateSlackBytes = 1024;

// Parse a whole .npy image (bytes); `source` names it in errors (e.g. "file.npz:resp").
NpyArray npy_parse(const std::vector<char>& bytes, const std::string& source);
// Parse only the header from the image's first `size` bytes (enough to hold the header; the data need not be
// there). InputError naming `source` when the header is incomplete, corrupt or of an unsupported dtype.
NpyHeader npy_parse_header(const char* bytes, size_t size, const std::string& source);
// The whole file as doubles (kept for callers that need them: tests, golden files). Response matrices and RDMs
// go through npy_load_matrix / npy_load_vector instead.
NpyArray npy_load(const std::string& path);

// What a loader accepts of an array read as a float32 matrix (the defaults are npy_to_matrix's rules).
struct MatrixRules {
    bool finite = true;      // NaN, Inf and float64 values beyond the float32 range are InputErrors naming the first
                             // one in C order by row and column; when false they are kept (beyond range: +-Inf)
    bool non_empty = true;   // an array with no values is an InputError
    std::string not_2d;      // the error after "<source>: " for an array that is not 2-D; empty: "expected a 2-D
                             // array, got shape (...)"
};

// A 2-D .npy straight into a row-major float32 Matrix, with the checks and messages of
// npy_to_matrix(npy_load(path), path) and none of its copies: the header is parsed and its size checked against
// the file's real size before the matrix is allocated, then the body is read in large blocks directly into the
// matrix (float32, C order) or converted into it in one pass (other dtypes; Fortran order is transposed), the
// NaN/Inf check riding along. Files that are not regular (a pipe) are read whole first.
Matrix npy_load_matrix(const std::string& path, const MatrixRules& rules = {});
// A 1-D (or one-row / one-column) .npy as float32, as npy_to_vector(npy_load(path), path) without the copies.
std::vector<float> npy_load_vector(const std::string& path);

// One member of an .npz as its zip directory describes it (sizes validated against the file when opened).
struct NpzMember {
    std::string name;                // member name in the archive, e.g. "resp.npy"
    std::string key;                 // name without ".npy"
    bool deflated = false;           // stored otherwise
    uint64_t compressed_size = 0;    // bytes in the file
    uint64_t size = 0;               // bytes it declares once inflated (== compressed_size when stored)
};

// An .npz opened once: the constructor reads and checks the zip directory (no member is inflated); header()
// inflates only a member's first bytes; read() inflates one member into a buffer that grows with what actually
// decompresses, up to the size it declares, and fails when the data is longer or shorter than that.
// Duplicate member names, members that overlap or lie outside the file, stored members whose sizes disagree,
// deflated members declaring more than deflate can expand, encrypted members and compression methods other
// than stored/deflate are InputErrors naming the file and member.
class NpzReader {
public:
    explicit NpzReader(const std::string& path);
    ~NpzReader();
    NpzReader(NpzReader&&) noexcept;
    NpzReader& operator=(NpzReader&&) noexcept;
    NpzReader(const NpzReader&) = delete;
    NpzReader& operator=(const NpzReader&) = delete;

    const std::string& path() const;
    const std::vector<NpzMember>& members() const;    // the array members (*.npy), in archive order
    std::vector<std::string> keys() const;            // their keys, in archive order
    bool has(const std::string& key) const;           // key with or without ".npy"
    // The .npy header of a member, checked against the size the member declares (which must equal
    // header + shape * itemsize). InputError naming the file, key and keys present when it is missing.
    NpyHeader header(const std::string& key);
    // The whole member; InputError when its declared size exceeds max_bytes (checked before inflating).
    NpyArray read(const std::string& key, uint64_t max_bytes = kNpzNoLimit);
    // A member as a float32 matrix / vector, with the rules and messages of npy_to_matrix / npy_to_vector (source
    // "<path>:<key>"), its shape checked from the header before the body is inflated, and the body inflated
    // straight into the float destination (float32 C order: no copy; other dtypes converted chunk by chunk). A
    // stored member's destination is allocated once (its size is validated against the file); a deflated one's
    // grows with what actually inflates, never past what it declares.
    Matrix read_matrix(const std::string& key, const MatrixRules& rules = {});
    std::vector<float> read_vector(const std::string& key);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// All members of an .npz (keys without the .npy suffix).
std::map<std::string, NpyArray> npz_load(const std::string& path);
// The keys of an .npz's array members (without reading them).
std::vector<std::string> npz_keys(const std::string& path);
// One member; InputError naming the file, the key and the keys present when it is missing, or when the
// member declares more than max_bytes.
NpyArray npz_load_key(const std::string& path, const std::string& key, uint64_t max_bytes = kNpzNoLimit);

// Serialise a float32 / float64 array of the given shape to .npy bytes (C order).
std::vector<char> npy_bytes_f32(const float* data, const std::vector<int64_t>& shape);
std::vector<char> npy_bytes_f64(const double* data, const std::vector<int64_t>& shape);

// Atomic writers (temporary file + fsync + rename): the header and the caller's data in one writev, no copy of
// the array. RuntimeError naming the path when it cannot be written.
void npy_save(const std::string& path, const MatrixView& m);
void npy_save_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);  // C order
void npy_save(const std::string& path, const std::vector<float>& v);  // 1-D
void npy_save_f64(const std::string& path, const std::vector<double>& v, const std::vector<int64_t>& shape);
// npz of float32 members (stored, or deflated when compress is true), atomic.
void npz_save(const std::string& path, const std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>& members,
              bool compress = false);

// Write bytes to path atomically (used for JSON/CSV as well).
void write_file_atomic(const std::string& path, const std::string& bytes);

// Helpers for the loaders: a 2-D float matrix or a 1-D float vector out of an array, InputError naming
// `source` when the shape does not fit or a value is NaN/Inf.
Matrix npy_to_matrix(const NpyArray& a, const std::string& source, const MatrixRules& rules = {});
std::vector<float> npy_to_vector(const NpyArray& a, const std::string& source);

// dst (cols x rows, row-major) = the transpose of src (rows x cols, row-major), in cache-sized tiles.
void transpose_f32(const float* src, int64_t rows, int64_t cols, float* dst);

// ---------------------------------------------------------------- placing RDM tiles (host/npy_mapped.cpp)
// The one placement of a tile of a symmetric S x S RDM into its file, for every writer of such files (the memory-mapped
// writer below, the distributed RDM's shared output): the tile (tr x tc, leading dimension ld) goes to rows
// [r0, r0 + tr) x cols [c0, c0 + tc); with `mirror` its transpose also to rows [c0, ...) x cols [r0, ...); a
// `diagonal` tile (r0 == c0, tr == tc) has only its upper triangle read, written both ways, so the file is exactly
// symmetric. `put(data, count, row, col)` writes `count` contiguous floats at (row, col); the transposed rows are
// made in strips of a few rows (little scratch memory whatever the tile's size).
using RdmRunWriter = std::function<void(const float* data, int64_t count, int64_t row, int64_t col)>;
void place_rdm_tile(const float* tile, int64_t ld, int64_t r0, int64_t tr, int64_t c0, int64_t tc, bool mirror,
                    bool diagonal, const RdmRunWriter& put);

// ---------------------------------------------------------------- memory-mapped .npy output (host/npy_mapped.cpp)
// An S x S float32 .npy created at full size under a temporary name in the same folder, memory-mapped for
// writing; commit() msyncs, unmaps, closes and renames it to `path`. Destroyed without commit() (an
// exception), the temporary file is removed. RuntimeError naming the path on any failure. The temporary file is
// registered as a staging path (removed by a second SIGINT/SIGTERM, see interrupt.h), and write_tile() is a safe
// point: after SIGINT/SIGTERM it throws Interrupted (the temporary file is then removed as for any exception).
class MappedNpyWriter {
public:
    MappedNpyWriter(const std::string& path, int64_t rows, int64_t cols);
    ~MappedNpyWriter();
    MappedNpyWriter(const MappedNpyWriter&) = delete;
    MappedNpyWriter& operator=(const MappedNpyWriter&) = delete;
    float* data() { return data_; }  // rows x cols, C order
    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }
    // Copy a row-major tile (tr x tc, leading dimension ld) to rows [r0, r0 + tr) x cols [c0, c0 + tc); with
    // mirror also its transpose to rows [c0, ...) x cols [r0, ...). diagonal: the tile sits on the diagonal
    // (r0 == c0, tr == tc): only its upper triangle is read and mirrored, so the file is exactly symmetric.
    void write_tile(const float* tile, int64_t ld, int64_t r0, int64_t tr, int64_t c0, int64_t tc, bool mirror,
                    bool diagonal);
    void commit();
    const std::string& path() const { return path_; }

private:
    void abort() noexcept;
    std::string path_, tmp_;
    int fd_ = -1;
    void* map_ = nullptr;
    size_t map_bytes_ = 0;
    float* data_ = nullptr;
    int64_t rows_ = 0, cols_ = 0;
    bool committed_ = false;
    StagingRegistration reg_;
};

// The .npy v1.0 header (magic through the padded dict) for a float32 C-order (rows, cols) array, byte for
// byte what npy_bytes_f32 writes before the data.
std::string npy_header_f32(int64_t rows, int64_t cols);

}  // namespace rsa

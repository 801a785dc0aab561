// RDM sets (rdm_set.h): read from .npy, .npz and rsatoolbox's HDF5 layout (told apart by their first bytes), checked
// (square, S >= 3, symmetric, zero diagonal, finite, one S per file, unique names), and written atomically as .npy or
// HDF5 (host/rdm_hdf5.cpp). Writing goes to a staging name beside the target, then a rename that never replaces a
// file unless asked to.
#include "rsa_gpu/rdm_set.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>

#include "rdm_hdf5.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/npy.h"

namespace rsa {

namespace {

constexpr double kSymmetryTolerance = 1e-5;

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    if (shape.size() == 1) s += ",";
    return s + ")";
}

std::string file_stem(const std::string& path) {
    std::string base = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
    const size_t dot = base.find_last_of('.');
    if (dot != std::string::npos && dot > 0) base.resize(dot);
    return base;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    if (s.size() < suffix.size()) return false;
    return std::equal(suffix.rbegin(), suffix.rend(), s.rbegin(),
                      [](char want, char got) { return std::tolower(static_cast<unsigned char>(got)) == want; });
}

enum class FileKind { Npy, Npz, Hdf5 };

FileKind sniff(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        throw InputError(path + ": cannot open: " + (err == ENOENT ? "no such file" : std::strerror(err)));
    }
    char head[8] = {};
    const ssize_t n = ::pread(fd, head, sizeof head, 0);
    ::close(fd);
    if (n >= 6 && std::memcmp(head, "\x93NUMPY", 6) == 0) return FileKind::Npy;
    if (n >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return FileKind::Npz;
    if (n >= 4 && std::memcmp(head, "PK\x05\x06", 4) == 0) return FileKind::Npz;  // an empty zip
    if (hdf5::has_signature(path)) return FileKind::Hdf5;
    throw InputError(path + ": not an RDM file: neither .npy, .npz nor HDF5 (by its first bytes)");
}

// RDM `k` of `count` S x S matrices (C order, doubles) into set.upper, checked: finite, symmetric, zero diagonal.
// `source` and `name` name it in errors, `shape` is the array's shape as stored.
void append_square(RdmSet& set, const double* m, int64_t S, const std::string& source, const std::string& name,
                   const std::vector<int64_t>& shape) {
    const std::string where = source + ": RDM '" + name + "' (array of shape " + shape_text(shape) + ")";
    for (int64_t i = 0; i < S; ++i) {
        for (int64_t j = 0; j < S; ++j) {
            const double a = m[i * S + j];
            if (!std::isfinite(a))
                throw InputError(where + ": value at [" + std::to_string(i) + ", " + std::to_string(j) + "] is " +
                                 (std::isnan(a) ? "NaN" : "infinite") + "; RDMs must be finite");
        }
    }
    for (int64_t i = 0; i < S; ++i) {
        const double d = m[i * S + i];
        if (std::fabs(d) > kSymmetryTolerance)
            throw InputError(where + ": diagonal value at [" + std::to_string(i) + ", " + std::to_string(i) +
                             "] is " + std::to_string(d) + ", not 0");
        for (int64_t j = i + 1; j < S; ++j) {
            const double a = m[i * S + j], b = m[j * S + i];
            if (std::fabs(a - b) > kSymmetryTolerance * std::max(1.0, std::fabs(a)))
                throw InputError(where + ": not symmetric: [" + std::to_string(i) + ", " + std::to_string(j) +
                                 "] = " + std::to_string(a) + " but [" + std::to_string(j) + ", " + std::to_string(i) +
                                 "] = " + std::to_string(b));
            set.upper.push_back(a);
        }
    }
    set.names.push_back(name);
    ++set.count;
}

// The shape of one array holding RDMs: S x S (one) or K x S x S (several); InputError otherwise or for S < 3.
void square_shape(const std::vector<int64_t>& shape, const std::string& source, int64_t& K, int64_t& S) {
    if (shape.size() == 2 || shape.size() == 3) {
        K = shape.size() == 3 ? shape[0] : 1;
        S = shape[shape.size() - 1];
        if (shape[shape.size() - 2] == S && K >= 1) {
            if (S < 3)
                throw InputError(source + ": shape " + shape_text(shape) + ": " + std::to_string(S) +
                                 " patterns; an RDM needs at least 3");
            return;
        }
    }
    throw InputError(source + ": shape " + shape_text(shape) +
                     ": expected one RDM (S x S) or several (K x S x S), square");
}

void set_patterns(RdmSet& set, int64_t S, const std::string& source, const std::vector<int64_t>& shape) {
    if (set.patterns != 0 && set.patterns != S)
        throw InputError(source + ": shape " + shape_text(shape) + " has " + std::to_string(S) +
                         " patterns but the file's earlier RDMs have " + std::to_string(set.patterns) +
                         "; all RDMs of one file must be over the same patterns");
    set.patterns = S;
}

void append_array(RdmSet& set, const NpyArray& a, const std::string& source, const std::string& base) {
    int64_t K = 0, S = 0;
    square_shape(a.shape, source, K, S);
    set_patterns(set, S, source, a.shape);
    set.upper.reserve(set.upper.size() + static_cast<size_t>(K * (S * (S - 1) / 2)));
    for (int64_t k = 0; k < K; ++k) {
        const std::string name = a.shape.size() == 3 ? base + "[" + std::to_string(k) + "]" : base;
        append_square(set, a.values.data() + k * S * S, S, source, name, a.shape);
    }
}

RdmSet read_npy(const std::string& path) {
    RdmSet set;
    const NpyArray a = npy_load(path);
    append_array(set, a, path, file_stem(path));
    return set;
}

RdmSet read_npz(const std::string& path) {
    RdmSet set;
    NpzReader npz(path);
    const std::vector<std::string> keys = npz.keys();
    if (keys.empty()) throw InputError(path + ": no arrays in the .npz; expected one RDM (S x S) per key");
    // Every member's shape from its header first: a wrong shape is refused before anything is inflated.
    for (const std::string& key : keys) {
        const NpyHeader h = npz.header(key);
        int64_t K = 0, S = 0;
        square_shape(h.shape, path + ":" + key, K, S);
        set_patterns(set, S, path + ":" + key, h.shape);
    }
    for (const std::string& key : keys) {
        const NpyArray a = npz.read(key);
        append_array(set, a, path + ":" + key, key);
        check_interrupt("reading an RDM file");
    }
    return set;
}

RdmSet read_hdf5(const std::string& path) {
    RdmSet set = hdf5::read_rdm_set(path);
    const int64_t P = set.pairs();
    for (int64_t k = 0; k < set.count; ++k) {
        for (int64_t p = 0; p < P; ++p) {
            const double v = set.upper[static_cast<size_t>(k * P + p)];
            if (!std::isfinite(v))
                throw InputError(path + ": dataset 'dissimilarities' (shape (" + std::to_string(set.count) + ", " +
                                 std::to_string(P) + ")): value at [" + std::to_string(k) + ", " + std::to_string(p) +
                                 "] is " + (std::isnan(v) ? "NaN" : "infinite") + "; RDMs must be finite");
        }
    }
    if (set.names.empty()) {
        const std::string stem = file_stem(path);
        for (int64_t k = 0; k < set.count; ++k)
            set.names.push_back(set.count == 1 ? stem : stem + "[" + std::to_string(k) + "]");
    }
    return set;
}

void check_unique_names(const RdmSet& set, const std::string& path) {
    std::set<std::string> seen;
    for (const std::string& n : set.names)
        if (!seen.insert(n).second)
            throw InputError(path + ": two RDMs are named '" + n + "'; names must be unique within a file");
}

// ---- atomic writing

std::string staging_name(const std::string& path) {
    static std::atomic<unsigned> counter{0};
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    return dir + "." + base + ".partial-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

void fsync_path(const std::string& path, bool folder, const std::string& target) {
    const int fd = ::open(path.c_str(), (folder ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
        const int err = errno;
        if (fd >= 0) ::close(fd);
        if (!folder) throw RuntimeError(target + ": cannot write: fsync: " + std::strerror(err));
        return;  // a folder that cannot be fsynced (some file systems) still holds the renamed file
    }
    ::close(fd);
}

// Moves the finished staging file to `path`: without overwrite never over an existing file (renameat2's
// RENAME_NOREPLACE, or link + unlink where the file system lacks it).
void commit_staged(const std::string& staged, const std::string& path, bool overwrite) {
    fsync_path(staged, false, path);
    int rc = 0;
    if (overwrite) {
        rc = ::rename(staged.c_str(), path.c_str());
    } else {
        rc = ::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE);
        if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
            rc = ::link(staged.c_str(), path.c_str());
            if (rc == 0) ::unlink(staged.c_str());
        }
    }
    if (rc != 0) {
        const int err = errno;
        if (err == EEXIST)
            throw InputError(path + ": exists already (appeared while it was written); nothing replaced");
        throw RuntimeError(path + ": cannot write: rename: " + std::strerror(err));
    }
    const size_t slash = path.find_last_of('/');
    fsync_path(slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash)), true, path);
}

// Runs write(staging) for a file beside `path` and commits it; the staging file is removed on any failure.
template <class Write>
void write_staged(const std::string& path, bool overwrite, Write&& write) {
    struct stat st {};
    if (!overwrite && ::lstat(path.c_str(), &st) == 0)
        throw InputError(path + ": exists already; not replaced (ask for overwrite, --force on the command line)");
    const std::string staged = staging_name(path);
    StagingRegistration reg(staged, false);
    try {
        write(staged);
        commit_staged(staged, path, overwrite);
    } catch (...) {
        ::unlink(staged.c_str());
        throw;
    }
}

void check_set(const RdmSet& set, const std::string& path) {
    if (set.count < 1 || set.patterns < 3)
        throw InputError(path + ": an RDM set needs at least one RDM of at least 3 patterns (got " +
                         std::to_string(set.count) + " of " + std::to_string(set.patterns) + ")");
    if (set.upper.size() != static_cast<size_t>(set.count * set.pairs()))
        throw InputError(path + ": the RDM set holds " + std::to_string(set.upper.size()) + " values for " +
                         std::to_string(set.count) + " RDMs of " + std::to_string(set.pairs()) + " pairs");
    if (!set.names.empty() && set.names.size() != static_cast<size_t>(set.count))
        throw InputError(path + ": the RDM set has " + std::to_string(set.names.size()) + " names for " +
                         std::to_string(set.count) + " RDMs");
}

}  // namespace

bool is_hdf5_path(const std::string& path) { return ends_with(path, ".h5") || ends_with(path, ".hdf5"); }

RdmSet rdm_set_from_array(const double* values, const std::vector<int64_t>& shape, const std::string& source,
                          const std::string& name) {
    RdmSet set;
    int64_t K = 0, S = 0;
    square_shape(shape, source, K, S);
    set.patterns = S;
    set.upper.reserve(static_cast<size_t>(K * (S * (S - 1) / 2)));
    for (int64_t k = 0; k < K; ++k)
        append_square(set, values + k * S * S, S, source, shape.size() == 3 ? name + "[" + std::to_string(k) + "]" : name,
                      shape);
    return set;
}

RdmSet read_rdm_set(const std::string& path) {
    RdmSet set;
    switch (sniff(path)) {
        case FileKind::Npy: set = read_npy(path); break;
        case FileKind::Npz: set = read_npz(path); break;
        case FileKind::Hdf5: set = read_hdf5(path); break;
    }
    check_unique_names(set, path);
    return set;
}

void write_rdm_set(const std::string& path, const RdmSet& set, bool overwrite) {
    check_set(set, path);
    const int64_t S = set.patterns;
    if (is_hdf5_path(path)) {
        write_staged(path, overwrite, [&](const std::string& staged) {
            hdf5::write_rdm_set(staged, set, [&](int64_t k, int64_t first, int64_t n, double* dst) {
                std::copy_n(set.rdm(k) + first, n, dst);
            });
        });
        return;
    }
    std::vector<double> full = checked_alloc<double>(static_cast<size_t>(set.count * S * S), path + ": the RDMs");
    for (int64_t k = 0; k < set.count; ++k) {
        double* m = full.data() + k * S * S;
        const double* u = set.rdm(k);
        for (int64_t i = 0; i < S; ++i)
            for (int64_t j = i + 1; j < S; ++j) m[i * S + j] = m[j * S + i] = *u++;
    }
    const std::vector<int64_t> shape = set.count == 1 ? std::vector<int64_t>{S, S} : std::vector<int64_t>{set.count, S, S};
    write_staged(path, overwrite, [&](const std::string& staged) { npy_save_f64(staged, full, shape); });
}

void write_square_rdm_hdf5(const std::string& path, const float* rdm, int64_t patterns, const std::string& name,
                           const std::string& measure, bool overwrite) {
    RdmSet meta;
    meta.count = 1;
    meta.patterns = patterns;
    meta.names = {name};
    meta.dissimilarity_measure = measure;
    if (patterns < 3) throw InputError(path + ": an RDM needs at least 3 patterns (got " + std::to_string(patterns) + ")");
    const int64_t S = patterns;
    write_staged(path, overwrite, [&](const std::string& staged) {
        // Pair index p -> (i, j) walked forward from the block's first pair: row i holds pairs of j = i+1 .. S-1.
        hdf5::write_rdm_set(staged, meta, [&](int64_t, int64_t first, int64_t n, double* dst) {
            int64_t i = 0, row_start = 0;  // row_start: the pair index of (i, i+1)
            while (row_start + (S - 1 - i) <= first) row_start += S - 1 - i++;
            int64_t j = i + 1 + (first - row_start);
            for (int64_t t = 0; t < n; ++t) {
                dst[t] = rdm[i * S + j];
                if (++j == S) {
                    ++i;
                    j = i + 1;
                }
            }
        });
    });
}

void write_square_rdm_hdf5_from_npy(const std::string& path, const std::string& npy_path, const std::string& name,
                                    const std::string& measure, bool overwrite) {
    const int fd = ::open(npy_path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
        const int err = errno;
        if (fd >= 0) ::close(fd);
        throw RuntimeError(npy_path + ": cannot open: " + std::strerror(err));
    }
    const size_t bytes = static_cast<size_t>(st.st_size);
    void* map = bytes ? ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    const int err = errno;
    ::close(fd);
    if (map == MAP_FAILED) throw RuntimeError(npy_path + ": cannot map: " + std::strerror(err));
    struct Unmap {
        void* p;
        size_t n;
        ~Unmap() { ::munmap(p, n); }
    } unmap{map, bytes};
    const char* base = static_cast<const char*>(map);
    NpyHeader h;
    try {
        h = npy_parse_header(base, bytes, npy_path);
    } catch (const InputError& e) {
        throw RuntimeError(e.what());
    }
    if (h.descr != "<f4" || h.fortran_order || h.shape.size() != 2 || h.shape[0] != h.shape[1] ||
        h.header_bytes + h.data_bytes > bytes)
        throw RuntimeError(npy_path + ": not an S x S float32 C-order .npy of the size it declares");
    ::madvise(map, bytes, MADV_SEQUENTIAL);
    write_square_rdm_hdf5(path, reinterpret_cast<const float*>(base + h.header_bytes), h.shape[0], name, measure,
                          overwrite);
}

}  // namespace rsa

// .npy and .npz files (numpy's formats): read float32/float64/int8..int64/uint8..uint64/bool arrays in C or
// Fortran order, little-endian (others rejected with a clear error); npz members stored or deflated (libzip).
// Writing is atomic: a temporary name in the same folder, then rename, so no half-written file is left behind.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "rsa_gpu/matrix.h"

namespace rsa {

struct NpyArray {
    std::string descr;               // numpy dtype string as read, e.g. "<f4"
    std::vector<int64_t> shape;
    std::vector<double> values;      // converted to double, C (row-major) order whatever the file's order
    int64_t count() const;           // product of shape (1 for a 0-d array)
};

// Parse a whole .npy image (bytes); `source` names it in errors (e.g. "file.npz:resp").
NpyArray npy_parse(const std::vector<char>& bytes, const std::string& source);
NpyArray npy_load(const std::string& path);

// All members of an .npz (keys without the .npy suffix).
std::map<std::string, NpyArray> npz_load(const std::string& path);
// The keys of an .npz's array members (without reading them).
std::vector<std::string> npz_keys(const std::string& path);
// One member; InputError naming the file, the key and the keys present when it is missing.
NpyArray npz_load_key(const std::string& path, const std::string& key);

// Serialise a float32 / float64 array of the given shape to .npy bytes (C order).
std::vector<char> npy_bytes_f32(const float* data, const std::vector<int64_t>& shape);
std::vector<char> npy_bytes_f64(const double* data, const std::vector<int64_t>& shape);

// Atomic writers (temporary file + rename). RuntimeError naming the path when it cannot be written.
void npy_save(const std::string& path, const Matrix& m);
void npy_save(const std::string& path, const std::vector<float>& v);  // 1-D
void npy_save_f64(const std::string& path, const std::vector<double>& v, const std::vector<int64_t>& shape);
// npz of float32 members (stored, or deflated when compress is true), atomic.
void npz_save(const std::string& path, const std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>& members,
              bool compress = false);

// Write bytes to path atomically (used for JSON/CSV as well).
void write_file_atomic(const std::string& path, const std::string& bytes);

// Helpers for the loaders: a 2-D float matrix or a 1-D float vector out of an array, InputError naming
// `source` when the shape does not fit or a value is NaN/Inf.
Matrix npy_to_matrix(const NpyArray& a, const std::string& source);
std::vector<float> npy_to_vector(const NpyArray& a, const std::string& source);

}  // namespace rsa

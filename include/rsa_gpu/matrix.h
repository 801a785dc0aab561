// Matrix: a dense row-major float32 matrix on the host (rows x cols) that owns its data; MatrixView: a read-only
// window on one (or on memory someone else owns: a numpy array, a memory-mapped file), what the CPU twins read.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace rsa {

struct Matrix {
    int64_t rows = 0;
    int64_t cols = 0;
    std::vector<float> data;  // rows * cols, row-major

    Matrix() = default;
    Matrix(int64_t r, int64_t c, float fill = 0.0f) : rows(r), cols(c), data(static_cast<size_t>(r * c), fill) {}
    float* row(int64_t i) { return data.data() + i * cols; }
    const float* row(int64_t i) const { return data.data() + i * cols; }
    float& at(int64_t i, int64_t j) { return data[static_cast<size_t>(i * cols + j)]; }
    float at(int64_t i, int64_t j) const { return data[static_cast<size_t>(i * cols + j)]; }
    int64_t size() const { return rows * cols; }
};

struct MatrixView {
    const float* ptr = nullptr;  // rows * cols, row-major
    int64_t rows = 0;
    int64_t cols = 0;

    MatrixView() = default;
    MatrixView(const float* p, int64_t r, int64_t c) : ptr(p), rows(r), cols(c) {}
    MatrixView(const Matrix& m) : ptr(m.data.data()), rows(m.rows), cols(m.cols) {}  // NOLINT: implicit on purpose
    const float* row(int64_t i) const { return ptr + i * cols; }
    float at(int64_t i, int64_t j) const { return ptr[i * cols + j]; }
    int64_t size() const { return rows * cols; }
};

// Views of a list of matrices (which must outlive them).
inline std::vector<MatrixView> views_of(const std::vector<Matrix>& ms) {
    return std::vector<MatrixView>(ms.begin(), ms.end());
}

}  // namespace rsa

// The CPU twins of the dissimilarity operations (dissimilarity.h): Backend::whiten (Y = X F, or X scaled by a
// diagonal F) and Backend::cross_gram (K = sum_f A_f B_f^T), OpenBLAS SGEMM in FP32 as the GPU's cuBLAS calls.
#include <cblas.h>

#include <string>

#include "rsa_gpu/dissimilarity.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"

namespace rsa {

void check_whiten_shapes(int64_t S, int64_t N, int64_t factor_rows, int64_t factor_cols) {
    if (S <= 0 || N <= 0 || factor_cols != N || (factor_rows != N && factor_rows != 1))
        throw RuntimeError("whiten: a " + std::to_string(S) + " x " + std::to_string(N) + " input needs an " +
                           std::to_string(N) + " x " + std::to_string(N) + " or 1 x " + std::to_string(N) +
                           " factor, got " + std::to_string(factor_rows) + " x " + std::to_string(factor_cols));
}

void check_cross_gram_shapes(int64_t train_rows, int64_t train_cols, int64_t test_rows, int64_t test_cols,
                             int64_t folds) {
    if (folds < 1 || train_rows != test_rows || train_cols != test_cols || train_cols <= 0 || train_rows <= 0 ||
        train_rows % folds != 0)
        throw RuntimeError("cross_gram: train " + std::to_string(train_rows) + " x " + std::to_string(train_cols) +
                           " and test " + std::to_string(test_rows) + " x " + std::to_string(test_cols) +
                           " must be the same (folds * C) x N with folds = " + std::to_string(folds));
}

Matrix whiten_ref(const MatrixView& x, const MatrixView& factor) {
    const int64_t S = x.rows, N = x.cols;
    check_whiten_shapes(S, N, factor.rows, factor.cols);
    Matrix y = checked_matrix(S, N, "the whitened responses");
    if (factor.rows == 1) {  // a diagonal factor: column scales
        for (int64_t s = 0; s < S; ++s)
            for (int64_t n = 0; n < N; ++n) y.at(s, n) = x.at(s, n) * factor.ptr[n];
        return y;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(S), static_cast<int>(N),
                static_cast<int>(N), 1.0f, x.ptr, static_cast<int>(N), factor.ptr, static_cast<int>(N), 0.0f,
                y.data.data(), static_cast<int>(N));
    return y;
}

Matrix cross_gram_ref(const MatrixView& train, const MatrixView& test, int64_t folds) {
    check_cross_gram_shapes(train.rows, train.cols, test.rows, test.cols, folds);
    const int64_t C = train.rows / folds, N = train.cols;
    Matrix k = checked_matrix(C, C, "the crossnobis kernel");
    for (int64_t f = 0; f < folds; ++f)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(C), static_cast<int>(C),
                    static_cast<int>(N), 1.0f, train.row(f * C), static_cast<int>(N), test.row(f * C),
                    static_cast<int>(N), f == 0 ? 0.0f : 1.0f, k.data.data(), static_cast<int>(C));
    return k;
}

}  // namespace rsa

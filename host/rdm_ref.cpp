// CPU twins of the RDM path: row z-score (double accumulation, population SD) and M = 1 - Z Z^T / N with
// cblas_ssyrk (OpenBLAS), mirrored to a full symmetric matrix; plus the input checks shared by both twins.
#include <cblas.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/rdm.h"

namespace rsa {

void zscore_rows_ref(const float* x, int64_t rows, int64_t cols, float* z, std::vector<int64_t>* constant_rows) {
    for (int64_t s = 0; s < rows; ++s) {
        const float* xr = x + s * cols;
        float* zr = z + s * cols;
        double sum = 0.0;
        for (int64_t j = 0; j < cols; ++j) sum += xr[j];
        const double mean = sum / static_cast<double>(cols);
        double ss = 0.0;
        for (int64_t j = 0; j < cols; ++j) {
            const double d = xr[j] - mean;
            ss += d * d;
        }
        const double var = ss / static_cast<double>(cols);
        if (!(var > 0.0)) {
            if (constant_rows) constant_rows->push_back(s);
            for (int64_t j = 0; j < cols; ++j) zr[j] = std::numeric_limits<float>::quiet_NaN();
            continue;
        }
        const double inv_sd = 1.0 / std::sqrt(var);
        for (int64_t j = 0; j < cols; ++j) zr[j] = static_cast<float>((xr[j] - mean) * inv_sd);
    }
}

void rdm_from_zscored_ref(const float* z, int64_t rows, int64_t cols, float* rdm) {
    // Fill with 1, then rdm(upper) = -1/N Z Z^T + 1 * rdm.
    for (int64_t i = 0; i < rows * rows; ++i) rdm[i] = 1.0f;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols),
                -1.0f / static_cast<float>(cols), z, static_cast<int>(cols), 1.0f, rdm, static_cast<int>(rows));
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < i; ++j) rdm[i * rows + j] = rdm[j * rows + i];
}

void throw_constant_rows(const std::vector<int64_t>& rows, const std::string& what) {
    std::ostringstream os;
    os << what << ": " << rows.size() << " stimulus row" << (rows.size() == 1 ? " has" : "s have")
       << " zero variance across units, so their correlation is undefined: row" << (rows.size() == 1 ? " " : "s ");
    for (size_t i = 0; i < rows.size() && i < 20; ++i) os << (i ? ", " : "") << rows[i];
    if (rows.size() > 20) os << ", ... (" << rows.size() - 20 << " more)";
    os << " (0-based). Use --constant-rows nan to keep them as NaN and skip them in comparisons.";
    throw InputError(os.str());
}

void check_rdm_input(const Matrix& x, const std::string& what) {
    if (x.rows == 0 || x.cols == 0) {
        std::ostringstream os;
        os << what << ": empty response matrix (" << x.rows << " x " << x.cols << ")";
        throw InputError(os.str());
    }
    if (x.rows < 3) {
        std::ostringstream os;
        os << what << ": an RDM comparison needs at least 3 stimuli (rows), got " << x.rows;
        throw InputError(os.str());
    }
    for (int64_t i = 0; i < x.rows; ++i)
        for (int64_t j = 0; j < x.cols; ++j)
            if (!std::isfinite(x.at(i, j))) {
                std::ostringstream os;
                os << what << ": non-finite value " << x.at(i, j) << " at row " << i << ", column " << j;
                throw InputError(os.str());
            }
}

}  // namespace rsa

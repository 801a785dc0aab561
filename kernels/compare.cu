// Pearson moments of two RDMs' strict upper triangles on the device, and Pearson correlation from them, with the
// kit's row sums (common.cuh): pass 1 per-row sums and counts (one block per row, double), totals in a fixed order;
// the means divided on the device; pass 2 per-row centred sums around them, totals likewise. Deterministic. Every
// comparison measure (kernels/measures.cu) takes these moments first: the degeneracy test (compare_degenerate)
// needs them.
#include <cmath>

#include "common.cuh"
#include "compare.cuh"
#include "cuda_check.cuh"

namespace rsa {

namespace {

// ---------------------------------------------------------------- row functors
// acc: sum of a, sum of b, used pairs, skipped pairs (NaN on either side).
struct PearsonRowSums : UpperRows {
    const float* a;
    const float* b;
    int64_t S;
    __device__ void operator()(int64_t i, int64_t j, double (&acc)[4]) const {
        const float x = a[i * S + j], y = b[i * S + j];
        if (isnan(x) || isnan(y)) {
            acc[3] += 1.0;
            return;
        }
        acc[0] += x;
        acc[1] += y;
        acc[2] += 1.0;
    }
};

// acc: centred sums sxx, syy, sxy around means[0], means[1] over the used pairs.
struct PearsonRowCentred : UpperRows {
    const float* a;
    const float* b;
    int64_t S;
    const double* means;
    __device__ void operator()(int64_t i, int64_t j, double (&acc)[3]) const {
        const float x = a[i * S + j], y = b[i * S + j];
        if (isnan(x) || isnan(y)) return;
        const double dx = x - means[0], dy = y - means[1];
        acc[0] += dx * dx;
        acc[1] += dy * dy;
        acc[2] += dx * dy;
    }
};

// The workspace: 4 x S row partials, 8 totals (0-3 pass 1, 4-6 pass 2), 2 means.
struct PearsonLayout {
    double* parts;
    double* totals;
    double* means;
    explicit PearsonLayout(Workspace& w, int64_t S)
        : parts(w.take<double>(4 * static_cast<size_t>(S))), totals(w.take<double>(8)), means(w.take<double>(2)) {}
};

}  // namespace

// ---------------------------------------------------------------- launchers
size_t pearson_workspace_bytes(int64_t S) {
    Workspace w;  // counting only
    const PearsonLayout layout(w, std::max<int64_t>(S, 0));
    static_cast<void>(layout);
    return w.bytes();
}

UpperMoments upper_moments_launch(const float* d_a, const float* d_b, int64_t S, void* d_work, cudaStream_t stream) {
    UpperMoments m;
    if (S < 2) return m;  // no upper-triangle pair (and no zero-block launch)
    Workspace w(d_work);
    const PearsonLayout l(w, S);
    row_sums_launch<4>(S, S, PearsonRowSums{{}, d_a, d_b, S}, l.parts, l.totals, stream);
    // means = (sum a, sum b) / used pairs, divided on the device (a count of 0 gives NaN, unused then)
    divide_kernel<double><<<1, 1, 0, stream>>>(l.totals, 2, l.totals + 2, 0.0, l.means);
    RSA_CHECK_LAUNCH();
    row_sums_launch<3>(S, S, PearsonRowCentred{{}, d_a, d_b, S, l.means}, l.parts, l.totals + 4, stream);
    double host[7];
    read_back(host, l.totals, 7, stream);  // the launcher's one synchronisation
    m.pairs = static_cast<int64_t>(host[2]);
    m.skipped = static_cast<int64_t>(host[3]);
    if (m.pairs == 0) return m;  // means and sums stay 0, as upper_moments leaves them
    m.mean_a = host[0] / host[2];
    m.mean_b = host[1] / host[2];
    m.sxx = host[4];
    m.syy = host[5];
    m.sxy = host[6];
    return m;
}

PearsonResult pearson_upper_launch(const float* d_a, const float* d_b, int64_t S, void* d_work, cudaStream_t stream) {
    const UpperMoments m = upper_moments_launch(d_a, d_b, S, d_work, stream);
    PearsonResult res;
    res.pairs = m.pairs;
    res.skipped = m.skipped;
    res.r = compare_degenerate(m.pairs, m.mean_a, m.sxx, m.mean_b, m.syy) ? std::nan("")
                                                                          : pearson_from_centred(m.sxx, m.syy, m.sxy);
    return res;
}

}  // namespace rsa

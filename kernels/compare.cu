// Pearson moments of two RDMs' strict upper triangles on the device, and Pearson correlation from them. Pass 1:
// per-row sums and counts (one block per row, double); pass 2: per-row centred sums around the global means. Row
// partials are reduced by one block in a fixed order, so the result is deterministic. Every comparison measure
// (kernels/measures.cu) takes these moments first: the degeneracy test (compare_degenerate) needs them.
#include <cub/block/block_reduce.cuh>

#include <cmath>

#include "compare.cuh"
#include "cuda_check.cuh"

namespace rsa {

// ---------------------------------------------------------------- CUDA kernels
constexpr int kCompareBlock = 256;

__global__ void pearson_row_sums_kernel(const float* __restrict__ a, const float* __restrict__ b, int64_t S,
                                        double* __restrict__ row_sa, double* __restrict__ row_sb,
                                        double* __restrict__ row_n, double* __restrict__ row_skipped) {
    using BlockReduce = cub::BlockReduce<double, kCompareBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    const int64_t i = blockIdx.x;
    double sa = 0.0, sb = 0.0, n = 0.0, skipped = 0.0;
    for (int64_t j = i + 1 + threadIdx.x; j < S; j += blockDim.x) {
        const float x = a[i * S + j], y = b[i * S + j];
        if (isnan(x) || isnan(y)) {
            skipped += 1.0;
            continue;
        }
        sa += x;
        sb += y;
        n += 1.0;
    }
    sa = BlockReduce(temp).Sum(sa);
    __syncthreads();
    sb = BlockReduce(temp).Sum(sb);
    __syncthreads();
    n = BlockReduce(temp).Sum(n);
    __syncthreads();
    skipped = BlockReduce(temp).Sum(skipped);
    if (threadIdx.x == 0) {
        row_sa[i] = sa;
        row_sb[i] = sb;
        row_n[i] = n;
        row_skipped[i] = skipped;
    }
}

// totals[k] = sum over rows of parts[k * S + row], k < count; one block, fixed order.
__global__ void reduce_row_partials_kernel(const double* __restrict__ parts, int64_t S, int count,
                                           double* __restrict__ totals) {
    using BlockReduce = cub::BlockReduce<double, kCompareBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    for (int k = 0; k < count; ++k) {
        double s = 0.0;
        for (int64_t r = threadIdx.x; r < S; r += blockDim.x) s += parts[k * S + r];
        s = BlockReduce(temp).Sum(s);
        if (threadIdx.x == 0) totals[k] = s;
        __syncthreads();
    }
}

__global__ void pearson_row_centred_kernel(const float* __restrict__ a, const float* __restrict__ b, int64_t S,
                                           const double* __restrict__ totals, double* __restrict__ row_sxx,
                                           double* __restrict__ row_syy, double* __restrict__ row_sxy) {
    using BlockReduce = cub::BlockReduce<double, kCompareBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    const double n = totals[2];
    const double ma = totals[0] / n, mb = totals[1] / n;
    const int64_t i = blockIdx.x;
    double sxx = 0.0, syy = 0.0, sxy = 0.0;
    for (int64_t j = i + 1 + threadIdx.x; j < S; j += blockDim.x) {
        const float x = a[i * S + j], y = b[i * S + j];
        if (isnan(x) || isnan(y)) continue;
        const double dx = x - ma, dy = y - mb;
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    sxx = BlockReduce(temp).Sum(sxx);
    __syncthreads();
    syy = BlockReduce(temp).Sum(syy);
    __syncthreads();
    sxy = BlockReduce(temp).Sum(sxy);
    if (threadIdx.x == 0) {
        row_sxx[i] = sxx;
        row_syy[i] = syy;
        row_sxy[i] = sxy;
    }
}

// ---------------------------------------------------------------- launcher
size_t pearson_workspace_bytes(int64_t S) { return (4 * static_cast<size_t>(S) + 8) * sizeof(double); }

UpperMoments upper_moments_launch(const float* d_a, const float* d_b, int64_t S, void* d_work, cudaStream_t stream) {
    UpperMoments m;
    if (S < 2) return m;  // no upper-triangle pair (and no zero-block launch)
    double* parts = static_cast<double*>(d_work);  // 4 x S row partials
    double* totals = parts + 4 * S;                // 8 totals: sa, sb, n, skipped, sxx, syy, sxy
    pearson_row_sums_kernel<<<static_cast<unsigned>(S), kCompareBlock, 0, stream>>>(d_a, d_b, S, parts, parts + S,
                                                                                    parts + 2 * S, parts + 3 * S);
    RSA_CHECK_LAUNCH();
    reduce_row_partials_kernel<<<1, kCompareBlock, 0, stream>>>(parts, S, 4, totals);
    RSA_CHECK_LAUNCH();
    pearson_row_centred_kernel<<<static_cast<unsigned>(S), kCompareBlock, 0, stream>>>(d_a, d_b, S, totals, parts,
                                                                                       parts + S, parts + 2 * S);
    RSA_CHECK_LAUNCH();
    reduce_row_partials_kernel<<<1, kCompareBlock, 0, stream>>>(parts, S, 3, totals + 4);
    RSA_CHECK_LAUNCH();
    double host[7];
    CUDA_CHECK(cudaMemcpyAsync(host, totals, sizeof(host), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
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

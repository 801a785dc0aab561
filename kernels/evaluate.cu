// Launchers and kernels of the evaluation engine's weighted sums (kernels/evaluate.cuh): pair weights per resample
// and the DGEMMs of weights x RDM vectors, the same blocking as the CPU twin (64 resamples x 8192 pairs).
#include <algorithm>

#include "common.cuh"
#include "cuda_check.cuh"
#include "device_buffer.cuh"
#include "evaluate.cuh"

namespace rsa {

namespace {

// W[r, p] = counts[r, a_p] * counts[r, b_p] for pairs p0 .. p0 + pb of the strict upper triangle; rows r < rc.
__global__ void eval_pair_weights_kernel(const double* counts, int64_t S, const int32_t* pa, const int32_t* pb_idx,
                                         int64_t p0, int64_t pbn, int64_t rc, double* W) {
    for (int64_t r = blockIdx.y; r < rc; r += gridDim.y) {
        const double* c = counts + r * S;
        for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < pbn;
             p += static_cast<int64_t>(gridDim.x) * blockDim.x)
            W[r * pbn + p] = c[pa[p0 + p]] * c[pb_idx[p0 + p]];
    }
}

// Wk[r, p] = W[r, p] * x[p0 + p]
__global__ void eval_scale_columns_kernel(const double* W, const double* x, int64_t p0, int64_t pbn, int64_t rc,
                                          double* Wk) {
    for (int64_t r = blockIdx.y; r < rc; r += gridDim.y)
        for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < pbn;
             p += static_cast<int64_t>(gridDim.x) * blockDim.x)
            Wk[r * pbn + p] = W[r * pbn + p] * x[p0 + p];
}

// n[r] += sum_p W[r, p] (one block per resample, fixed-order block sum)
__global__ void eval_row_sums_kernel(const double* W, int64_t pbn, int64_t rc, double* n) {
    for (int64_t r = blockIdx.x; r < rc; r += gridDim.x) {
        double s = 0.0;
        for (int64_t p = threadIdx.x; p < pbn; p += blockDim.x) s += W[r * pbn + p];
        s = block_sum(s);
        if (threadIdx.x == 0) n[r] += s;
    }
}

}  // namespace

WeightedMoments evaluate_moments_launch(cublasHandle_t cublas, const std::vector<double>& data, int64_t K,
                                        const std::vector<double>& models, int64_t M, int64_t S,
                                        const std::vector<double>& counts, int64_t R, bool centre,
                                        cudaStream_t stream) {
    const int64_t P = S * (S - 1) / 2;
    if (K < 1 || M < 1 || S < 3 || static_cast<int64_t>(data.size()) != K * P ||
        static_cast<int64_t>(models.size()) != M * P || static_cast<int64_t>(counts.size()) != R * S)
        throw InputError("evaluate_moments: shapes do not match (K x P data, M x P models, R x S counts)");
    WeightedMoments w = weighted_moments_zeros(K, M, R);
    // the centred inputs (as the twin) and the squared models, on the host once
    std::vector<double> X, Y, Y2(static_cast<size_t>(M * P));
    weighted_moments_inputs(data, models, P, centre, X, Y);
    for (int64_t i = 0; i < M * P; ++i) Y2[i] = Y[i] * Y[i];
    std::vector<int32_t> pa(static_cast<size_t>(P)), pb(static_cast<size_t>(P));
    for (int64_t a = 0, p = 0; a < S; ++a)
        for (int64_t b = a + 1; b < S; ++b, ++p) {
            pa[p] = static_cast<int32_t>(a);
            pb[p] = static_cast<int32_t>(b);
        }
    DeviceBuffer<double> dX, dY, dY2, dcounts, dW, dWk, dn, dsx, dG, dsy, dsyy, dC;
    DeviceBuffer<int32_t> dpa, dpb;
    dX.upload(X, stream);
    dY.upload(Y, stream);
    dY2.upload(Y2, stream);
    dpa.upload(pa, stream);
    dpb.upload(pb, stream);
    const int64_t Rc = kEvalResampleChunk, Pb = std::min(kEvalPairBlock, P);
    dW.resize(static_cast<size_t>(Rc * Pb), "the evaluation's pair weights");
    dWk.resize(static_cast<size_t>(Rc * Pb), "the evaluation's weighted products");
    dn.resize(static_cast<size_t>(Rc));
    dsx.resize(static_cast<size_t>(Rc * K));
    dG.resize(static_cast<size_t>(Rc * K * K), "the evaluation's data Gram matrices");
    dsy.resize(static_cast<size_t>(Rc * M));
    dsyy.resize(static_cast<size_t>(Rc * M));
    dC.resize(static_cast<size_t>(Rc * K * M), "the evaluation's data-model products");
    CUBLAS_CHECK(cublasSetStream(cublas, stream));
    const double one = 1.0;
    for (int64_t r0 = 0; r0 < R; r0 += Rc) {
        const int64_t rc = std::min(Rc, R - r0);
        dcounts.upload(counts.data() + r0 * S, static_cast<size_t>(rc * S), stream);
        CUDA_CHECK(cudaMemsetAsync(dn.get(), 0, sizeof(double) * rc, stream));
        CUDA_CHECK(cudaMemsetAsync(dsx.get(), 0, sizeof(double) * rc * K, stream));
        CUDA_CHECK(cudaMemsetAsync(dG.get(), 0, sizeof(double) * rc * K * K, stream));
        CUDA_CHECK(cudaMemsetAsync(dsy.get(), 0, sizeof(double) * rc * M, stream));
        CUDA_CHECK(cudaMemsetAsync(dsyy.get(), 0, sizeof(double) * rc * M, stream));
        CUDA_CHECK(cudaMemsetAsync(dC.get(), 0, sizeof(double) * rc * K * M, stream));
        for (int64_t p0 = 0; p0 < P; p0 += Pb) {
            const int64_t pbn = std::min(Pb, P - p0);
            const dim3 grid = grid_2d(pbn, rc, 64);
            eval_pair_weights_kernel<<<grid, kBlock, 0, stream>>>(dcounts.get(), S, dpa.get(), dpb.get(), p0, pbn, rc,
                                                                  dW.get());
            RSA_CHECK_LAUNCH();
            eval_row_sums_kernel<<<grid_1d(rc * kBlock), kBlock, 0, stream>>>(dW.get(), pbn, rc, dn.get());
            RSA_CHECK_LAUNCH();
            // out (rc x cols, row-major, ldc) += A (rc x pbn) * B^T, B: cols x pbn rows of a P-long matrix.
            // Column-major view: out^T (cols x rc) = B (cols x pbn, ld P) * A^T (pbn x rc, ld pbn).
            auto gemm = [&](const double* A, const double* B, int64_t cols, double* out, int64_t ldc) {
                CUBLAS_CHECK(cublasDgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(cols),
                                         static_cast<int>(rc), static_cast<int>(pbn), &one, B + p0,
                                         static_cast<int>(P), A, static_cast<int>(pbn), &one, out,
                                         static_cast<int>(ldc)));
            };
            gemm(dW.get(), dX.get(), K, dsx.get(), K);
            gemm(dW.get(), dY.get(), M, dsy.get(), M);
            gemm(dW.get(), dY2.get(), M, dsyy.get(), M);
            for (int64_t k = 0; k < K; ++k) {
                eval_scale_columns_kernel<<<grid, kBlock, 0, stream>>>(dW.get(), dX.get() + k * P, p0, pbn, rc,
                                                                       dWk.get());
                RSA_CHECK_LAUNCH();
                gemm(dWk.get(), dX.get(), K, dG.get() + k * K, K * K);
                gemm(dWk.get(), dY.get(), M, dC.get() + k * M, K * M);
            }
        }
        dn.download(&w.n[r0], static_cast<size_t>(rc), stream);
        dsx.download(&w.sx[r0 * K], static_cast<size_t>(rc * K), stream);
        dG.download(&w.G[r0 * K * K], static_cast<size_t>(rc * K * K), stream);
        dsy.download(&w.sy[r0 * M], static_cast<size_t>(rc * M), stream);
        dsyy.download(&w.syy[r0 * M], static_cast<size_t>(rc * M), stream);
        dC.download(&w.C[r0 * K * M], static_cast<size_t>(rc * K * M), stream);
    }
    return w;
}

}  // namespace rsa

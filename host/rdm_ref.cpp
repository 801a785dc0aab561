// The CPU engine of the RDM (rdm.h): row moments (two passes in double, rows over the cores), the z-score of a
// block with given statistics, and the one run of a plan: per output tile and neuron block z-score, accumulate
// Z_i Z_j^T / N with OpenBLAS (SSYRK on diagonal tiles, SGEMM off it), finish with rdm_entry (correlation) or
// euclidean_entry (euclidean: rows copied, not z-scored), mirror or hand the tile to the sink.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/rdm.h"

namespace rsa {

namespace {

// Runs body(first, last) over [0, n) split across the cores when the work (n x per_item values) is large.
template <typename F>
void parallel_rows(int64_t n, int64_t per_item, F body) {
    const int64_t threads = n * per_item < (1 << 20) ? 1 : std::max<int64_t>(1, std::thread::hardware_concurrency());
    if (threads == 1) {
        body(0, n);
        return;
    }
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < threads; ++t) pool.emplace_back([&, t] { body(n * t / threads, n * (t + 1) / threads); });
    for (auto& th : pool) th.join();
}

}  // namespace

RowMoments row_moments_ref(const float* x, int64_t S, int64_t N) {
    RowMoments m;
    m.mean.resize(static_cast<size_t>(S));
    m.m2.resize(static_cast<size_t>(S));
    parallel_rows(S, N, [&](int64_t a, int64_t b) {
        for (int64_t s = a; s < b; ++s) row_mean_m2(x + s * N, N, &m.mean[s], &m.m2[s]);
    });
    return m;
}

void zscore_block_ref(const float* x, int64_t ldx, int64_t rows, int64_t cols, const double* mean,
                      const double* inv_sd, Precision precision, float* z, int64_t ldz) {
    parallel_rows(rows, cols, [&](int64_t a, int64_t b) {
        for (int64_t r = a; r < b; ++r) {
            const float* xr = x + r * ldx;
            float* zr = z + r * ldz;
            const double m = mean[r], is = inv_sd[r];
            for (int64_t c = 0; c < cols; ++c) zr[c] = zscore_value(xr[c], m, is);
            if (precision == Precision::TF32) round_to_tf32(zr, static_cast<size_t>(cols));
        }
    });
}

void rdm_run_ref(const float* x, int64_t S, int64_t N, const MemoryPlan& plan, Precision precision,
                 const RowMoments& moments, float* out, RdmTileSink* sink) {
    if (plan.stimuli != S || plan.neurons != N)
        throw RuntimeError("rdm_run_ref: the plan is for " + std::to_string(plan.stimuli) + " x " +
                           std::to_string(plan.neurons) + ", the input is " + std::to_string(S) + " x " +
                           std::to_string(N));
    const bool tiled = plan.kind == PlanKind::Tiled;
    if (tiled ? !sink : !out) throw RuntimeError("rdm_run_ref: no destination for the RDM");
    const int64_t T = tiled ? std::min(std::max<int64_t>(plan.row_tile, 1), S) : S;
    const int64_t K = plan.neuron_block > 0 ? std::min(plan.neuron_block, N) : N;
    // Row statistics of the kind: z-score (correlation) or the rows as they are with their squared norms (euclidean).
    const RdmKind kind = plan.rdm_kind;
    const double dn = static_cast<double>(N);
    std::vector<double> row_mean(static_cast<size_t>(S)), inv_sd(static_cast<size_t>(S)), norm(static_cast<size_t>(S));
    for (int64_t s = 0; s < S; ++s) {
        row_mean[s] = kind_row_mean(kind, moments.mean[s]);
        inv_sd[s] = kind_row_inv_sd(kind, moments.m2[s], dn);
        norm[s] = norm_over_n_from_moments(moments.mean[s], moments.m2[s], dn);
    }
    const double* mean = row_mean.data();

    std::vector<float> zi = checked_alloc<float>(static_cast<size_t>(T * K), "a z-scored block");
    std::vector<float> zj, tile_buf;
    if (tiled) {
        zj = checked_alloc<float>(static_cast<size_t>(T * K), "a z-scored block");
        tile_buf = checked_alloc<float>(static_cast<size_t>(T * T), "an RDM tile");
    }
    const float scale = 1.0f / static_cast<float>(N);
    const bool one_block = K == N;
    for (int64_t i0 = 0; i0 < S; i0 += T) {
        const int64_t ti = std::min(T, S - i0);
        if (tiled && !plan_computes_row(plan, i0 / T)) continue;
        if (one_block) zscore_block_ref(x + i0 * N, N, ti, N, mean + i0, inv_sd.data() + i0, precision, zi.data(), N);
        for (int64_t j0 = i0; j0 < S; j0 += T) {
            if (tiled && !plan_computes_tile(plan, i0 / T, j0 / T)) continue;
            const int64_t tj = std::min(T, S - j0);
            const bool diag = i0 == j0;
            float* tile = tiled ? tile_buf.data() : out + i0 * S + j0;
            const int64_t ld = tiled ? tj : S;
            for (int64_t k0 = 0; k0 < N; k0 += K) {
                check_interrupt("the RDM");
                const int64_t kb = std::min(K, N - k0);
                const float beta = k0 == 0 ? 0.0f : 1.0f;
                if (!one_block)
                    zscore_block_ref(x + i0 * N + k0, N, ti, kb, mean + i0, inv_sd.data() + i0, precision, zi.data(),
                                     kb);
                if (diag) {
                    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(ti), static_cast<int>(kb),
                                scale, zi.data(), static_cast<int>(kb), beta, tile, static_cast<int>(ld));
                } else {
                    zscore_block_ref(x + j0 * N + k0, N, tj, kb, mean + j0, inv_sd.data() + j0, precision, zj.data(),
                                     kb);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(ti), static_cast<int>(tj),
                                static_cast<int>(kb), scale, zi.data(), static_cast<int>(kb), zj.data(),
                                static_cast<int>(kb), beta, tile, static_cast<int>(ld));
                }
            }
            // Finish: the correlation or euclidean distance (a diagonal tile's upper triangle is what is read).
            for (int64_t a = 0; a < ti; ++a)
                for (int64_t b = diag ? a : 0; b < tj; ++b)
                    tile[a * ld + b] = kind == RdmKind::Correlation
                                           ? rdm_entry(tile[a * ld + b])
                                           : euclidean_entry(tile[a * ld + b], norm[i0 + a], norm[j0 + b],
                                                             i0 + a == j0 + b);
            if (tiled) sink->write_tile(tile, tj, i0, ti, j0, tj, !diag, diag);
        }
    }
    if (tiled) return;
    // Mirror the upper triangle, blocked.
    const int64_t B = 64;
    for (int64_t i0 = 0; i0 < S; i0 += B)
        for (int64_t j0 = i0; j0 < S; j0 += B)
            for (int64_t i = i0; i < std::min(i0 + B, S); ++i)
                for (int64_t j = std::max(j0, i + 1); j < std::min(j0 + B, S); ++j) out[j * S + i] = out[i * S + j];
}

void rdm_ref(const float* x, int64_t S, int64_t N, float* out) {
    MemoryPlan plan;
    plan.kind = PlanKind::OneShot;
    plan.stimuli = S;
    plan.neurons = N;
    plan.neuron_block = N;
    plan.row_tile = S;
    rdm_run_ref(x, S, N, plan, Precision::FP32, row_moments_ref(x, S, N), out, nullptr);
}

void zscore_rows_ref(const float* x, int64_t rows, int64_t cols, float* z, std::vector<int64_t>* constant_rows) {
    const RowMoments m = row_moments_ref(x, rows, cols);
    std::vector<double> inv_sd(static_cast<size_t>(rows));
    for (int64_t s = 0; s < rows; ++s) {
        inv_sd[s] = inv_sd_from_m2(m.m2[s], static_cast<double>(cols));
        if (constant_rows && std::isnan(inv_sd[s])) constant_rows->push_back(s);
    }
    zscore_block_ref(x, cols, rows, cols, m.mean.data(), inv_sd.data(), Precision::FP32, z, cols);
}

void nan_rows_and_columns(float* rdm, int64_t S, const std::vector<int64_t>& rows) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t r : rows) {
        if (r < 0 || r >= S) continue;
        std::fill(rdm + r * S, rdm + (r + 1) * S, nan);
        for (int64_t i = 0; i < S; ++i) rdm[i * S + r] = nan;
    }
}

}  // namespace rsa

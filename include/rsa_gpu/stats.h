// Inference on RDM comparisons: stimulus bootstrap (percentile intervals), permutation test of stimulus labels,
// and the split-half noise ceiling (Spearman-Brown). CPU twins here (host/stats_ref.cpp); GPU launchers in
// kernels/stats.cuh. Every random draw comes from philox (include/rsa_gpu/philox.h) through the inline draw
// functions below, so both twins draw the same stream for the same seed. Also the main job's default counts
// (default_stat_counts: a cost model and budgets, so a default run scales with S).
//
// Random streams (philox stream ids, fixed; index layout in brackets):
//   kStatsStreamBootstrap   = 101  [r * S + k]        draw k of resample r: stimulus floor(S * u), clamped to S-1
//   kStatsStreamPermutation = 102  [p * S + i]        Fisher-Yates step i (i = S-1 .. 1) of permutation p
//   kStatsStreamSplit       = 103  [s * T + t]        split s: Fisher-Yates step i (i = n-1 .. 1) of a bin's n
//                                                     trials uses t = the bin's i-th trial in ascending order
//
// Input conventions: RDMs are S x S row-major and only their strict upper triangles (i < j) are read; an entry
// (i, j) with i > j is taken from (j, i), so a non-symmetric input behaves as its symmetrised upper triangle.
// Bootstrap and permutation test require no NaN in those triangles (InputError otherwise: a resampled or
// permuted pair set would no longer be a fixed function of the draw).
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "rsa_gpu/matrix.h"
#include "rsa_gpu/philox.h"

namespace rsa {

constexpr uint32_t kStatsStreamBootstrap = 101;
constexpr uint32_t kStatsStreamPermutation = 102;
constexpr uint32_t kStatsStreamSplit = 103;

constexpr int kDefaultBootstrapResamples = 10000;
constexpr int kDefaultPermutations = 10000;

// ------------------------------------------------------------------ default counts of the main job
// The resamples and permutations the main job runs when not asked explicitly (--bootstrap / --permutations -1),
// scaled with S so a default run never takes hours. Cost model, in multiply-adds (one pair visit of the
// permutation test counted as one):
//   bootstrap    R x S^2 x (2 + 3 L)   (the quadratic form w^T F w of each of the 2 + 3 L centred S x S forms of
//                                       L model RDMs, per resample)
//   permutations P x L x S (S - 1) / 2 (the cross product over the strict upper triangle, per permutation and
//                                       model: about P L S^2 / 2)
// Budgets per statistic (about 15 to 30 s each at these rates):
//   GPU: bootstrap 3e14 (FP32 GEMM at >= 1e13 multiply-adds/s, an A100's rate; H100/H200 are faster), permutations
//        6e11 (gathers of a double S x S copy at an assumed ~2e10 pairs/s; the GPU rates are not measured yet);
//   CPU: bootstrap 1.5e11 (OpenBLAS dgemm at ~1e10/s measured on 2 cores, bench/RESULTS.md), permutations 1.5e10
//        (~1e9 pairs/s measured at S = 500, less once B no longer fits the caches).
// Each count is its default (10,000) while that fits the budget, else the largest multiple of 100 that fits, and
// 0 (skipped) when fewer than kMinDefaultStatCount fit. The tutorial's size (S = 181, 3 models) and S <= 1,000 with
// 3 models on the CPU keep 10,000 each; on a GPU with 3 models the bootstrap keeps 10,000 up to S ~ 52,000 and is
// skipped beyond S ~ 165,000; the permutations keep 10,000 up to S ~ 6,300 and are skipped beyond S ~ 20,000.
constexpr int kMinDefaultStatCount = 1000;
constexpr double kBootstrapBudgetGpu = 3e14, kPermutationBudgetGpu = 6e11;
constexpr double kBootstrapBudgetCpu = 1.5e11, kPermutationBudgetCpu = 1.5e10;

struct StatCounts {
    int bootstrap = 0;                  // resamples (0: skipped)
    int permutations = 0;               // permutations per model (0: skipped)
    double bootstrap_cost = 0.0;        // multiply-adds of `bootstrap` resamples (cost model above)
    double permutation_cost = 0.0;      // multiply-adds of `permutations` permutations of every model
    std::string bootstrap_note;         // empty at the full default; else one line: reduced or skipped, and how to
    std::string permutation_note;       // ask explicitly (--bootstrap N / --permutations N)
};
// S stimuli, `models` model RDMs compared with the reference (at least 1 is assumed), gpu: the backend's kind.
StatCounts default_stat_counts(int64_t S, int64_t models, bool gpu);
// The cost model's multiply-adds of one resample / of one permutation of every model.
double bootstrap_cost_per_resample(int64_t S, int64_t models);
double permutation_cost_per_permutation(int64_t S, int64_t models);

// ------------------------------------------------------------------ draws shared by host and device
// Stimulus drawn at position k of bootstrap resample r (0 <= k < S): floor(S * u), u in (0, 1); S * u can
// round up to S for u next to 1, hence the clamp.
RSA_HD int64_t bootstrap_draw(uint64_t seed, int64_t S, int64_t r, int64_t k) {
    const double u = philox_uniform01(seed, kStatsStreamBootstrap, static_cast<uint64_t>(r * S + k));
    const int64_t idx = static_cast<int64_t>(floor(static_cast<double>(S) * u));
    return idx < S ? idx : S - 1;
}

// Fisher-Yates swap partner of step i (1 <= i < n) with uniform u: j = floor((i + 1) * u), clamped to i.
RSA_HD int64_t fisher_yates_partner(double u, int64_t i) {
    const int64_t j = static_cast<int64_t>(floor(static_cast<double>(i + 1) * u));
    return j < i ? j : i;
}

// Permutation p of 0..S-1 into perm[0..S): start from the identity, for i = S-1 down to 1 swap perm[i] with
// perm[fisher_yates_partner(philox_uniform01(seed, 102, p * S + i), i)]. The RDM B is then read as
// B[perm[i], perm[j]].
RSA_HD void permutation_draw(uint64_t seed, int64_t S, int64_t p, int* perm) {
    for (int64_t i = 0; i < S; ++i) perm[i] = static_cast<int>(i);
    for (int64_t i = S - 1; i >= 1; --i) {
        const int64_t j =
            fisher_yates_partner(philox_uniform01(seed, kStatsStreamPermutation, static_cast<uint64_t>(p * S + i)), i);
        const int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

// ------------------------------------------------------------------ helpers shared by both twins
// numpy.percentile(x, q, method='linear') of the non-NaN values of x (q in [0, 100]); NaN when none is left.
double percentile_linear(std::vector<double> x, double q);

// Pearson correlation of a bootstrap resample from its sums over the n weighted pairs (n = number of
// position pairs with distinct stimuli; sa, saa, sb, sbb, sab: sums of a, a^2, b, b^2, a*b over them, with a
// and b already centred by the plain upper-triangle means); distinct: number of different stimuli drawn.
// NaN when distinct < 3 (one distinct pair at most: no variance) or a centred variance is not above 1e-12 of
// its raw second moment (constant values; rounding would otherwise decide the sign).
double bootstrap_r_from_sums(double n, double distinct, double sa, double saa, double sb, double sbb, double sab);

// One-sided permutation p-value with the +1 correction: (1 + #{null >= r_obs}) / (1 + null.size()).
// A NaN null sample never counts as >= r_obs.
double permutation_p_value(double r_obs, const std::vector<double>& null);

// Rounds f[0..n) to multiples of one power of two q, the smallest with weight_sum * max|f| < 2^51 q: then every sum
// of products w_k f_k with integer weights w_k >= 0 summing to at most weight_sum, and each of its partial sums, is an
// integer multiple of q below 2^52 q, exact in double, so its value does not depend on the order of the additions.
// The CPU twins' bootstrap products (W F in dgemm / dtrmm, weights = resample counts summing to S) go through it: a
// BLAS call's rounding otherwise depends on a resample's row position in the call (edge kernels, threads), and a
// resample must give the same number in any chunk or rank range (distributed_stats.h). The rounding moves each value
// by at most q / 2 <= weight_sum * max|f| * 2^-52 (S = 1,000: ~2e-13 of the largest value). NaN and infinite values
// are not expected (the callers check their inputs); all zeros stay.
void round_for_exact_sums(double* f, int64_t n, double weight_sum);

// Throws InputError (naming `what`, row and column) when the strict upper triangle of m holds a NaN.
void check_no_nan_upper(const MatrixView& m, const std::string& what);

// ------------------------------------------------------------------ bootstrap over stimuli
// For each resample r: S stimuli drawn with replacement (bootstrap_draw), counts w_i = times stimulus i was
// drawn. The resampled correlation is Pearson over all position pairs p < q whose stimuli differ (a stimulus
// never pairs with its own copy) of A[idx_p, idx_q] vs B[idx_p, idx_q]; an unordered pair {i, j} of distinct
// stimuli enters w_i * w_j times, so every sum is the quadratic form sum_{i<j} w_i w_j f_ij = w^T F w / 2
// (F symmetric, zero diagonal; A and B centred by their plain upper-triangle means first), and
// n = (S^2 - sum_i w_i^2) / 2.
struct BootstrapResult {
    std::vector<std::vector<double>> samples;  // [model][resample]: resampled correlations (NaN if degenerate)
    std::vector<double> lo, hi;                // [model]: 2.5th and 97.5th percentiles of the non-NaN samples
    std::vector<int64_t> nan_samples;          // [model]: degenerate resamples (excluded from lo / hi)
};

// Progress of a long twin: (work done, total), called now and then; the caller draws it (the twins print nothing).
using StatsProgress = std::function<void(int64_t done, int64_t total)>;

// ref, models: S x S RDMs (check_rdm_pair, no NaN in the upper triangles). resamples >= 1.
// Quadratic forms in double (OpenBLAS dgemm over resample chunks).
// first: the index of the first resample (>= 0): samples[l][i] is resample first + i, the draws of
// bootstrap_draw(seed, S, first + i, k), so a range [first, first + resamples) equals that slice of a run from 0 bit
// for bit (distributed_stats.h gathers the ranges of the ranks); lo, hi and nan_samples summarise the range only.
BootstrapResult bootstrap_ref(const MatrixView& ref, const std::vector<MatrixView>& models,
                              int resamples = kDefaultBootstrapResamples, uint64_t seed = 0, int64_t first = 0,
                              const StatsProgress& progress = {});

// The same sums for given counts (counts: resamples x S, row r = the counts of resample r, each row summing to
// the number of draws). Returns [model][resample]. For tests and the golden file (indices written out).
std::vector<std::vector<double>> bootstrap_from_counts_ref(const MatrixView& ref, const std::vector<MatrixView>& models,
                                                           const std::vector<double>& counts, int64_t resamples);

// Brute force for one resample: explicit enumeration of position pairs p < q with idx_p != idx_q, two-pass
// Pearson in double; NaN when fewer than 3 different stimuli were drawn (tests only; O(S^2)).
double bootstrap_r_bruteforce(const MatrixView& ref, const MatrixView& model, const std::vector<int64_t>& idx);

// Summary of the samples (percentiles, NaN counts), shared by both twins.
void bootstrap_summarise(BootstrapResult& res);

// ------------------------------------------------------------------ permutation test
// r_perm = Pearson over the strict upper triangle of A[i, j] vs B[perm[i], perm[j]]. The mean and the sum of
// squares of B's triangle do not change under relabelling, so r = sum_{i<j} A0_ij B0_{perm i, perm j} /
// sqrt(sum A0^2 * sum B0^2) with A0, B0 centred by their triangle means (double), B0 read symmetrically.
struct PermutationResult {
    double r_obs = 0.0;         // the identity permutation, through the same formula
    double p_value = 1.0;       // (1 + #{null >= r_obs}) / (1 + P)
    std::vector<double> null;   // [P] r for permutations p = first .. first + P - 1 (permutation_draw)
};

// ref, model: S x S (check_rdm_pair, no NaN). Permutes the labels of `model`. permutations >= 1. first: the index of
// the first permutation (>= 0; null[i] is permutation first + i, p_value over this range's null only).
PermutationResult permutation_ref(const MatrixView& ref, const MatrixView& model, int permutations = kDefaultPermutations,
                                  uint64_t seed = 0, int64_t first = 0, const StatsProgress& progress = {});

// r for one given permutation (perm: S labels), the twin's formula. For tests and the golden file.
double permutation_r_ref(const MatrixView& ref, const MatrixView& model, const std::vector<int>& perm);

// ------------------------------------------------------------------ split-half noise ceiling
// resp: T x N, one row per trial (N units); bins: T stimulus / bin ids (any int64 values). Bins with fewer
// than 2 trials are dropped; the kept bins are sorted by id. Split s: each kept bin's trials (ascending trial
// index) are shuffled (Fisher-Yates, stream 103, [s * T + t], t = the bin's i-th trial before shuffling),
// the first floor(n/2) go to half 0 and the rest to half 1. Each half is averaged per bin (double sums, float
// result), the two halves' RDMs are computed (row z-score + 1 - Z Z^T / N) and r_half = Pearson of their upper
// triangles (NaN pairs, from constant half-rows, skipped). The ceiling is Spearman-Brown of the mean r_half
// over the splits: 2 r / (1 + r).
struct NoiseCeilingResult {
    double ceiling = 0.0;             // 2 r / (1 + r), r = mean of r_half
    double r_half_mean = 0.0;
    std::vector<double> r_half;       // [split]
    int64_t bins_kept = 0;
    int64_t bins_dropped = 0;         // bins with fewer than 2 trials
    std::vector<int64_t> kept_ids;    // ids of the kept bins, ascending (rows of the half RDMs)
};

// The split plan of one split, shared by both twins: half[t] in {0, 1} for trials of kept bins, -1 for trials
// of dropped bins. kept_ids / dropped as in NoiseCeilingResult.
struct SplitPlan {
    std::vector<int64_t> kept_ids;
    int64_t bins_dropped = 0;
    std::vector<int> half;            // [T]
    std::vector<int64_t> bin_row;     // [T]: row of the trial's bin among the kept bins, -1 when dropped
};
SplitPlan split_halves_plan(const std::vector<int64_t>& bins, int split, uint64_t seed);

double spearman_brown(double r);

// resp: T x N; InputError when bins.size() != T, fewer than 3 bins are kept, or resp is not finite.
NoiseCeilingResult noise_ceiling_ref(const MatrixView& resp, const std::vector<int64_t>& bins, int splits = 1,
                                     uint64_t seed = 0);

// r_half for one given split: half[t] in {0, 1} (or -1 to leave trial t out), bin_row[t] the trial's row
// (0 .. rows-1). Averages per (row, half), RDMs, Pearson. For tests and the golden file.
double split_half_r_ref(const MatrixView& resp, const std::vector<int64_t>& bin_row, const std::vector<int>& half,
                        int64_t rows);

// Validation shared by both twins (InputError): bins.size() == trials, units >= 1, splits >= 1. (The CPU twin
// also checks that resp is finite; the GPU launcher counts non-finite values on the device.)
void check_noise_ceiling_input(int64_t trials, int64_t units, const std::vector<int64_t>& bins, int splits);

}  // namespace rsa

// Model evaluation and inference of rsatoolbox (inference/evaluate.py, noise_ceiling.py, result.py,
// util/inference_util.py, rdm/compare.py): data RDMs (subjects, sessions) against fixed model RDMs with one of
// rsatoolbox's comparison methods, the point estimates, the noise ceiling (boot_noise_ceiling), bootstrap over
// patterns, RDMs or both, rsatoolbox's t-tests (against 0, against the lower noise bound, pairwise) with its variance
// corrections, a multiple-comparison correction and a permutation test of stimulus labels. float64 throughout; the
// CPU twin is host/evaluate_ref.cpp (comparisons in host/rdm_compare_methods.cpp).
//
// RDMs are vectors in rsatoolbox's order (rdm_set.h: the strict upper triangle, row by row). A pattern resample is a
// sorted list of S drawn patterns (rsatoolbox's subsample_pattern sorts); its RDM has one entry per position pair
// p < q, NaN (left out of every comparison) where both positions hold the same pattern.
//
// Random streams (philox, stats.h's scheme): pattern draw k of resample r is bootstrap_draw(seed, S, r, k)
// (stream 101); RDM draw k of resample r is floor(K u), u = philox_uniform01(seed, kEvalStreamRdmBootstrap, r K + k),
// clamped to K - 1; permutation p is permutation_draw(seed, S, p) (stream 102).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "rsa_gpu/distributed.h"
#include "rsa_gpu/evaluate_plan.h"
#include "rsa_gpu/philox.h"

namespace rsa {

constexpr uint32_t kEvalStreamRdmBootstrap = 104;

// The blocking of the weighted-sums engines (Backend::evaluate_moments), one place for the engines and the memory
// plan that counts their buffers (evaluate_plan.h): the CPU twin (host/evaluate_weighted_ref.cpp) forms its product
// matrices a chunk of at most kEvalTwinProductBytes at a time and its dtrmm rows kEvalTwinResampleRows resamples at a
// time; the GPU (kernels/evaluate.cu) takes kEvalResampleChunk resamples x kEvalPairBlock pairs per DGEMM.
constexpr int64_t kEvalTwinProductBytes = int64_t{256} << 20;
constexpr int64_t kEvalTwinResampleRows = 128;
constexpr int64_t kEvalResampleChunk = 64;
constexpr int64_t kEvalPairBlock = 8192;

// rsatoolbox's names: corr, cosine, spearman, rho-a, tau-a, corr_cov, cosine_cov (declared in evaluate_plan.h).
enum class EvalMethod { Corr, Cosine, Spearman, RhoA, TauA, CorrCov, CosineCov };
EvalMethod parse_eval_method(const std::string& name);  // InputError listing the valid names otherwise
const char* eval_method_name(EvalMethod m);

// fixed: eval_fixed; pattern: eval_bootstrap_pattern; rdm: eval_bootstrap_rdm; both: eval_bootstrap.
enum class EvalInference { Fixed, Pattern, Rdm, Both };
EvalInference parse_eval_inference(const std::string& name);
const char* eval_inference_name(EvalInference i);

// rsatoolbox's test_type of Result.test_zero / test_noise / test_pairwise (util/inference_util.py):
// TTest ('t-test'): the t-tests with the variances of extract_variances and Result.dof (every inference);
// Bootstrap ('bootstrap'): from the N bootstrap samples (invalid resamples' NaN rows count in N, as rsatoolbox's
//   arrays): p_zero = (1 + #{e <= 0}) / N, p_noise = (1 + #{lower_r - e_r <= 0}) / N with each sample's lower noise
//   bound (rsatoolbox 0.3.2's nc_tests reshapes those bounds to (2, 1) and fails for N != 2: this is the formula it
//   means), pairwise bootstrap_pair_tests (2 min(q, 1 - q) scaled (N - 1) / N, plus 1 / N); bootstrap inference only
//   (with 'fixed' there are no samples: InputError);
// Ranksum ('ranksum'): scipy.stats.wilcoxon (two-sided, zeros dropped) of each model's per-data-RDM evaluations,
//   against 0, against the lower noise bound, and of model pairs' differences; inference 'fixed' only (rsatoolbox's
//   ranksum tests take the 3-D evaluations of eval_fixed and assert on bootstrap samples: InputError).
enum class EvalTest { TTest, Bootstrap, Ranksum };
EvalTest parse_eval_test(const std::string& name);  // InputError listing the valid names otherwise
const char* eval_test_name(EvalTest t);
// The rule above: InputError when `test` cannot run with `inference`, naming the options as the caller calls them
// (the command: "--test", "--inference"; Python: "test_type", "inference").
void check_eval_test(EvalTest test, EvalInference inference, const std::string& test_option,
                     const std::string& inference_option);

// The confidence interval of Result.get_ci(ci, test_type) (inference/result.py), which follows the test type:
// Percentile ('bootstrap'): per model, np.quantile (method 'linear') at (1 - ci) / 2 and 1 - (1 - ci) / 2 of its raw
//   evaluations over all N bootstrap samples (not relative to the noise ceiling), framed by a -inf and a +inf row as
//   rsatoolbox frames them: with too few samples for the level a bound is -inf / +inf or NaN (numpy's interpolation
//   between an infinity and a sample; 95%: finite from N = 40), and a NaN row (an invalid pattern resample) makes
//   both bounds NaN, as np.quantile does;
// T (every other test type, 't-test' and 'ranksum'): get_means() -/+ get_sem() t_{dof}((1 - ci) / 2).
enum class EvalInterval { T, Percentile };
EvalInterval eval_interval(EvalTest t);
const char* eval_interval_name(EvalInterval i);  // "t", "percentile" (the JSON's ci_type)

// Multiple-comparison correction of the reported p-values: Benjamini-Hochberg adjusted p-values, Bonferroni
// (min(1, m p)) or none. Pairwise p-values are corrected over the M (M - 1) / 2 pairs, p_zero and p_noise over M.
enum class Correction { Fdr, Bonferroni, None };
Correction parse_correction(const std::string& name);
const char* correction_name(Correction c);

// RDM draw k of resample r (0 <= k < K).
RSA_HD int64_t rdm_bootstrap_draw(uint64_t seed, int64_t K, int64_t r, int64_t k) {
    const double u = philox_uniform01(seed, kEvalStreamRdmBootstrap, static_cast<uint64_t>(r * K + k));
    const int64_t idx = static_cast<int64_t>(floor(static_cast<double>(K) * u));
    return idx < K ? idx : K - 1;
}

// ------------------------------------------------------------------ comparisons (rdm/compare.py)
// A set of n RDM vectors of one length (a resampled or full RDM with its NaN entries removed), row-major n x len,
// with the pattern structure the covariance-weighted methods need: conditions = number of positions, and for each
// kept entry its position pair (i < j). Full RDMs: every pair kept, in rsatoolbox's order.
struct RdmStructure {
    int64_t conditions = 0;
    std::vector<int32_t> pair_i, pair_j;  // [kept entries]
    bool all_pairs = true;                // every pair of positions kept (no NaN): rsatoolbox's closed form
    int64_t entries() const { return static_cast<int64_t>(pair_i.size()); }
};
RdmStructure full_structure(int64_t conditions);
// The positions of a sorted pattern resample `drawn` (S values): entry (p, q) kept when drawn[p] != drawn[q];
// `source` receives, per kept entry, the index of the pair (drawn[p], drawn[q]) in the full vector of S' patterns.
RdmStructure resample_structure(const std::vector<int64_t>& drawn, int64_t full_conditions, std::vector<int64_t>* source);

// compare(rdm1, rdm2, method) of rsatoolbox: result[a * n2 + b] for row a of v1 (n1 x len) and row b of v2.
std::vector<double> compare_rdm_vectors(EvalMethod method, const std::vector<double>& v1, int64_t n1,
                                        const std::vector<double>& v2, int64_t n2, const RdmStructure& structure);

// rsatoolbox's pool_rdm for `method` of n vectors (NaN-free): the pooled vector.
std::vector<double> pool_rdm_vectors(EvalMethod method, const std::vector<double>& v, int64_t n, int64_t len);

struct NoiseCeiling {
    double lower = 0.0, upper = 0.0;
};
// boot_noise_ceiling: rows of v (n x len) grouped by `group` (rsatoolbox's rdm 'index' descriptor; a bootstrap sample
// repeats indices): leave each group out (lower: pooled others vs each row of the group; upper: all pooled vs it),
// means over the group's rows, then over groups; one group: lower = upper = all pooled vs every row.
NoiseCeiling boot_noise_ceiling_ref(EvalMethod method, const std::vector<double>& v, int64_t n,
                                    const std::vector<int64_t>& group, const RdmStructure& structure);

// ------------------------------------------------------------------ evaluation and inference
struct EvaluateOptions {
    EvalMethod method = EvalMethod::Corr;
    EvalInference inference = EvalInference::Fixed;
    EvalTest test = EvalTest::TTest;
    int bootstrap = 1000;       // resamples (bootstrap modes)
    int permutations = 0;       // permutation test of stimulus labels (0: none)
    uint64_t seed = 0;
    Correction correction = Correction::Fdr;
    double ci = 0.95;
    // corr and cosine bootstraps through weighted sums (below) instead of expanded resampled vectors; the same
    // numbers up to rounding (tests compare both paths).
    bool weighted_sums = true;
    // Cap on the memory the batches may plan for (0: none; --max-gpu-mem, Python max_gpu_mem): the budget is the
    // smaller of this and the backend's (evaluate_plan.h).
    uint64_t max_memory_bytes = 0;
    // Told the plan of a range's resamples before they run (the command prints it on stderr).
    std::function<void(const EvaluatePlan&)> on_plan;
};

struct EvaluateResult {
    EvalMethod method = EvalMethod::Corr;
    EvalInference inference = EvalInference::Fixed;
    EvalTest test = EvalTest::TTest;
    EvalInterval interval = EvalInterval::T;  // eval_interval(test): how ci_low / ci_high were made
    Correction correction = Correction::Fdr;
    int64_t n_model = 0, n_rdm = 0, n_pattern = 0;
    int dof = 0;                         // rsatoolbox's Result.dof
    bool has_variance = false;           // false: eval_fixed with one data RDM (no SE, CI or tests)
    // [model x data RDM]: compare(model, data) on the full data (eval_fixed's evaluations).
    std::vector<double> per_rdm;
    std::vector<double> point;           // [model] mean over data RDMs on the full data
    NoiseCeiling point_ceiling;          // boot_noise_ceiling on the full data
    // rsatoolbox's Result: get_means() (fixed: point; bootstrap: mean of the valid samples), get_sem(),
    // get_ci(ci, test) (`interval`: t or percentile), the noise ceiling nanmean(noise_ceiling[0 / 1]).
    std::vector<double> mean, se, ci_low, ci_high;
    NoiseCeiling ceiling;
    std::vector<double> p_zero, p_noise;              // test_zero, test_noise (uncorrected)
    std::vector<double> pairwise;                     // [M x M] test_pairwise (uncorrected; diagonal 1)
    std::vector<double> p_zero_corrected, p_noise_corrected, pairwise_corrected;  // per `correction`
    std::vector<double> p_perm;                       // [model] permutation test (empty when not run)
    // Bootstrap samples: [resample x model] evaluations and [resample] noise ceilings (NaN for a resample with fewer
    // than 3 different patterns), and how many resamples were valid.
    std::vector<double> samples, sample_lower, sample_upper;
    int64_t valid_samples = 0;
    EvaluatePlan plan;  // the batches of the bootstrap (a distributed run: rank 0's range)
};

// Progress of a long evaluation: (done, total).
using EvaluateProgress = std::function<void(int64_t done, int64_t total)>;

// data: K x P, models: M x P (P = S (S - 1) / 2, NaN-free, rsatoolbox's vector order). InputError for K, M < 1,
// S < 3, mismatched lengths, non-finite values, bootstrap < 1 in a bootstrap mode, an RDM bootstrap with K < 2.
EvaluateResult evaluate_ref(const std::vector<double>& data, int64_t K, const std::vector<double>& models, int64_t M,
                            int64_t S, const EvaluateOptions& options, const EvaluateProgress& progress = {});

// The same on a backend (the command's path): the corr / cosine bootstrap's weighted sums through
// backend.evaluate_moments (batched on a GPU), everything else on the host twin.
class Backend;
EvaluateResult evaluate_rdms(Backend& backend, const std::vector<double>& data, int64_t K,
                             const std::vector<double>& models, int64_t M, int64_t S, const EvaluateOptions& options,
                             const EvaluateProgress& progress = {});

// The two stages of every evaluation (evaluate_ref and evaluate_rdms are evaluate_summary(evaluate_samples(whole
// run)); a distributed run gives each rank a range and gathers the samples in rank order, distributed_stats.h):
// evaluate_samples computes the raw samples of bootstrap resamples [resamples.first, + count) and permutations
// [permutations.first, + count) (draws by absolute index, so a range is that slice of the whole run bit for bit);
// evaluate_summary computes the point estimates and the inference (means, SE, intervals, tests, p_perm) from the
// samples of the whole run.
struct EvaluateSamples {
    std::vector<double> evaluations;       // [resample x model] (a row of NaN: fewer than 3 different patterns)
    std::vector<double> lower, upper;      // [resample] the resample's noise ceiling
    std::vector<double> permutation_null;  // [permutation x model] mean over data RDMs of compare(permuted model, row)
    EvaluatePlan plan;                     // the batches these samples ran in
};
// The bootstrap resamples an evaluation runs: options.bootstrap, 0 for inference fixed.
int64_t evaluate_bootstrap_count(const EvaluateOptions& options);
// InputError as evaluate_ref, and when a range is not within 0 .. evaluate_bootstrap_count / options.permutations.
// progress: (done, total) over this range's resamples and permutations.
EvaluateSamples evaluate_samples(Backend& backend, const std::vector<double>& data, int64_t K,
                                 const std::vector<double>& models, int64_t M, int64_t S,
                                 const EvaluateOptions& options, SampleRange resamples, SampleRange permutations,
                                 const EvaluateProgress& progress = {});
// `samples`: the whole run's (evaluate_bootstrap_count resamples, options.permutations permutations, in order);
// RuntimeError when the sizes do not match.
EvaluateResult evaluate_summary(const std::vector<double>& data, int64_t K, const std::vector<double>& models,
                                int64_t M, int64_t S, const EvaluateOptions& options, EvaluateSamples samples);

// The result as one JSON object (what `rsa_gpu evaluate --json` prints and the Python API returns): method, inference,
// test, correction, n_rdm, n_pattern, n_model, dof, bootstrap, valid_samples, permutations, seed, ci (the level),
// ci_type ("t" or "percentile": eval_interval_name), models (per model:
// name, evaluation, se, ci_low, ci_high, p_zero, p_noise (corrected), their uncorrected values, point, p_perm),
// noise_ceiling {lower, upper, point_lower, point_upper}, pairwise (corrected) and pairwise_uncorrected. `names`: one
// per model.
nlohmann::json evaluate_json(const EvaluateResult& r, const std::vector<std::string>& names,
                             const EvaluateOptions& options);

// The inference of rsatoolbox's Result from evaluations (fills mean .. pairwise_corrected and interval of `res`;
// p-values and intervals by res.test): fixed: per_rdm (M x K) and point_ceiling; bootstrap: samples (N x M),
// sample_lower / sample_upper. The one place of the tests and intervals; also the entry point the golden tests feed
// rsatoolbox's own samples through.
void evaluate_inference(EvaluateResult& res, double ci);

// Building blocks of the twin: a method's per-vector transform ("prepared": centred, ranked or whitened) computed
// once per vector, then compare_prepared per pair (cosine of prepared vectors, 0 for a zero-length one; rho-a's
// scaled dot product; tau-a on the raw values). CovCentring: the Cholesky factor of the weighted double-centring
// system of a structure with left-out pairs (empty when every pair is kept).
struct CovCentring {
    int64_t conditions = 0;
    std::vector<double> factor;
};
CovCentring make_cov_centring(const RdmStructure& s);
int64_t prepared_length(EvalMethod method, const RdmStructure& s);
std::vector<double> prepare_vectors(EvalMethod method, const double* v, int64_t n, const RdmStructure& s,
                                    const CovCentring& cc);
double compare_prepared(EvalMethod method, const double* a, const double* b, int64_t len);
// boot_noise_ceiling_ref with the rows already prepared.
NoiseCeiling noise_ceiling_prepared(EvalMethod method, const std::vector<double>& v, int64_t n,
                                    const std::vector<int64_t>& group, const RdmStructure& s, const CovCentring& cc,
                                    const std::vector<double>& prepared);

// ------------------------------------------------------------------ corr and cosine bootstraps by weighted sums
// A pattern resample with counts w (w_a = times pattern a was drawn) keeps each pair {a, b}, a != b, w_a w_b times, so
// every sum over its expanded vector is a weighted sum over the P pairs of the full RDMs with weights u_ab = w_a w_b.
// Per resample r: n = sum u, sx_k = sum u x_k, G_kt = sum u x_k x_t (data rows k, t), sy_m, syy_m = sum u y_m^2,
// C_km = sum u x_k y_m (models m). corr and cosine of every model with every data RDM, and the noise ceiling
// (pool_rdm's z-scored or RMS-scaled mean, compared with each row: sum_i R_{i t} / sqrt(sum_{i j} R_{i j}) with R
// the rows' correlation or cosine matrix), follow from these. The GPU evaluates the same sums as GEMMs over many
// resamples and models in one launch.
struct WeightedMoments {
    int64_t resamples = 0, K = 0, M = 0;
    std::vector<double> n, sx, G, sy, syy, C;  // [r], [r K], [r K K], [r M], [r M], [r K M]
};
// counts: resamples x S (pattern counts of each resample); data K x P, models M x P. Centred by each vector's plain
// mean first (all methods that use these sums are shift-invariant in their centred form; cosine is not, so the
// shift is only applied for corr: `centre`).
WeightedMoments weighted_moments_ref(const std::vector<double>& data, int64_t K, const std::vector<double>& models,
                                     int64_t M, int64_t S, const std::vector<double>& counts, int64_t resamples,
                                     bool centre);
// The pieces both twins of weighted_moments share: the result's arrays sized (zeros) for R resamples; the inputs as
// the sums read them (copies; centred when `centre`, per row of P values).
WeightedMoments weighted_moments_zeros(int64_t K, int64_t M, int64_t resamples);
void weighted_moments_inputs(const std::vector<double>& data, const std::vector<double>& models, int64_t P,
                             bool centre, std::vector<double>& X, std::vector<double>& Y);
// From the moments of resample r: evaluations[m] = mean over `rows` (data rows of the resample, repeats allowed) of
// corr / cosine(model m, row); the noise ceiling with groups = rows.
void finish_weighted(EvalMethod method, const WeightedMoments& w, int64_t r, const std::vector<int64_t>& rows,
                     double* evaluations, NoiseCeiling* ceiling);

// scipy.stats.wilcoxon(d).pvalue with its defaults (zero_method 'wilcox', no continuity correction, two-sided,
// method 'auto'): NaN when d is empty or holds a NaN; the exact null distribution for n <= 50 values without ties
// or zeros; the exact sign-flip permutation distribution for n <= 13 with ties or zeros; else the normal
// approximation with the tie correction (n counts the zeros, as scipy's switch does).
double wilcoxon_signed_rank_p(const std::vector<double>& d);

// np.quantile(values, q) with numpy's default method 'linear', computed as numpy does (virtual index (n - 1) q, its
// floor and the next value, numpy's _lerp: a + (b - a) g, or b - (b - a)(1 - g) for g >= 0.5), so that infinities
// interpolate as numpy's do; NaN when `values` is empty or holds a NaN. The percentile interval's quantile.
double numpy_quantile_linear(std::vector<double> values, double q);

// Helpers (exposed for tests): Student's t distribution, the corrections, rank and tau-a in float64.
double student_t_cdf(double t, double dof);
double student_t_ppf(double p, double dof);
std::vector<double> correct_p_values(const std::vector<double>& p, Correction c);
std::vector<double> rank_average_double(const double* v, int64_t n);
double kendall_tau_a_double(const double* x, const double* y, int64_t n);

}  // namespace rsa

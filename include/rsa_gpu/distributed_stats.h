// Distributed statistics (issue 13): the bootstrap resamples and permutations of the main job's statistics and of
// `rsa_gpu evaluate` divided among the ranks of a communicator. Each rank runs its rank_range of the counted work
// (draws by absolute resample / permutation index: Backend::bootstrap / permutation with `first`,
// evaluate_samples), every rank's raw samples are gathered to every rank with Comm::allgather in rank order (the
// single-process order), and the summaries (percentile intervals, p-values, SE, t-tests) are computed from the
// gathered samples with the single-process functions: a run on K ranks gives the numbers of a run on one process
// with the same seed. On world()'s single process each function is the plain call. Each rank's share runs inside
// agreed(): a failure on any rank becomes the same error on every rank.
#pragma once
#include <cstdint>
#include <vector>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/distributed.h"
#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/stats.h"

namespace rsa {

// Backend::bootstrap of `resamples` resamples (>= 1) over the ranks: samples of every resample on every rank, lo, hi
// and nan_samples from them (bootstrap_summarise).
BootstrapResult distributed_bootstrap(Comm& comm, Backend& backend, const Array& ref, const std::vector<Array>& models,
                                      int resamples, uint64_t seed);

// Backend::permutation of `permutations` permutations (>= 1) over the ranks: per model the whole null, r_obs and the
// p-value from it (permutation_p_value).
std::vector<PermutationResult> distributed_permutation(Comm& comm, Backend& backend, const Array& ref,
                                                       const std::vector<Array>& models, int permutations,
                                                       uint64_t seed);

// evaluate_rdms over the ranks: evaluate_samples of each rank's ranges of the resamples and the permutations,
// gathered, then evaluate_summary. progress: this rank's share.
EvaluateResult distributed_evaluate(Comm& comm, Backend& backend, const std::vector<double>& data, int64_t K,
                                    const std::vector<double>& models, int64_t M, int64_t S,
                                    const EvaluateOptions& options, const EvaluateProgress& progress = {});

}  // namespace rsa

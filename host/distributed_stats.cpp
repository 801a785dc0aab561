// Distributed statistics (distributed_stats.h): each rank's range of the bootstrap resamples and permutations, the
// raw samples gathered in rank order on every rank, the summaries from the gathered samples.
#include "rsa_gpu/distributed_stats.h"

#include <utility>

#include "rsa_gpu/error.h"

namespace rsa {

namespace {

// Every rank's `mine` concatenated in rank order (allgather; the copy itself on a single process).
std::vector<double> gathered(Comm& comm, const std::vector<double>& mine) {
    return comm.size() == 1 ? mine : comm.allgather(mine);
}

void check_gathered(size_t got, int64_t expected, const char* what) {
    if (static_cast<int64_t>(got) != expected)
        throw RuntimeError(std::string("distributed statistics: gathered ") + std::to_string(got) + " " + what +
                           ", expected " + std::to_string(expected));
}

}  // namespace

BootstrapResult distributed_bootstrap(Comm& comm, Backend& backend, const Array& ref, const std::vector<Array>& models,
                                      int resamples, uint64_t seed) {
    if (resamples < 1) throw InputError("bootstrap: the number of resamples must be at least 1");
    if (models.empty()) throw InputError("bootstrap: no model RDMs given");
    const SampleRange mine = rank_range(resamples, comm.rank(), comm.size());
    BootstrapResult part;
    agreed(comm, "the bootstrap", [&] {
        if (mine.count > 0) part = backend.bootstrap(ref, models, static_cast<int>(mine.count), seed, mine.first);
        else part.samples.assign(models.size(), {});
    });
    BootstrapResult res;
    for (const std::vector<double>& s : part.samples) {
        res.samples.push_back(gathered(comm, s));
        check_gathered(res.samples.back().size(), resamples, "bootstrap samples");
    }
    check_gathered(res.samples.size(), static_cast<int64_t>(models.size()), "models");
    bootstrap_summarise(res);
    return res;
}

std::vector<PermutationResult> distributed_permutation(Comm& comm, Backend& backend, const Array& ref,
                                                       const std::vector<Array>& models, int permutations,
                                                       uint64_t seed) {
    if (permutations < 1) throw InputError("permutation test: the number of permutations must be at least 1");
    const SampleRange mine = rank_range(permutations, comm.rank(), comm.size());
    std::vector<PermutationResult> part;
    agreed(comm, "the permutation test", [&] {
        if (mine.count > 0) part = backend.permutation(ref, models, static_cast<int>(mine.count), seed, mine.first);
        else part.assign(models.size(), PermutationResult{});
    });
    check_gathered(part.size(), static_cast<int64_t>(models.size()), "models");
    // r_obs is the same on every rank (the identity permutation of the same RDMs); rank 0 always runs a range
    // (rank_range gives it at least one permutation), so its value is the one every rank keeps.
    std::vector<double> r_obs;
    for (const PermutationResult& p : part) r_obs.push_back(p.r_obs);
    if (comm.size() > 1) comm.broadcast(r_obs.data(), r_obs.size() * sizeof(double), 0);
    std::vector<PermutationResult> out(part.size());
    for (size_t l = 0; l < part.size(); ++l) {
        out[l].r_obs = r_obs[l];
        out[l].null = gathered(comm, part[l].null);
        check_gathered(out[l].null.size(), permutations, "permutations");
        out[l].p_value = permutation_p_value(out[l].r_obs, out[l].null);
    }
    return out;
}

EvaluateResult distributed_evaluate(Comm& comm, Backend& backend, const std::vector<double>& data, int64_t K,
                                    const std::vector<double>& models, int64_t M, int64_t S,
                                    const EvaluateOptions& options, const EvaluateProgress& progress) {
    const SampleRange boot = rank_range(evaluate_bootstrap_count(options), comm.rank(), comm.size());
    const SampleRange perms = rank_range(options.permutations, comm.rank(), comm.size());
    EvaluateSamples part;
    agreed(comm, "the evaluation's resamples and permutations",
           [&] { part = evaluate_samples(backend, data, K, models, M, S, options, boot, perms, progress); });
    EvaluateSamples all;
    all.evaluations = gathered(comm, part.evaluations);
    all.lower = gathered(comm, part.lower);
    all.upper = gathered(comm, part.upper);
    all.permutation_null = gathered(comm, part.permutation_null);
    all.plan = part.plan;  // this rank's (rank 0 prints it)
    return evaluate_summary(data, K, models, M, S, options, std::move(all));
}

}  // namespace rsa

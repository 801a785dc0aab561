// Distributed statistics (distributed_stats.h) on the CPU: rank_range's split, the single-process communicator
// (each function is the plain call, bit for bit), and K in-process "ranks" (threads, each with its own CPU backend,
// joined by a small thread communicator whose collectives meet at a barrier): the main job's bootstrap and
// permutation test and `rsa_gpu evaluate`'s resamples and permutations give on K = 2, 3, 5 ranks exactly the numbers
// of one process, also when a rank gets no work; a failure on one rank is every rank's error (agreed).
#include <gtest/gtest.h>

#include <condition_variable>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/distributed.h"
#include "rsa_gpu/distributed_stats.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using namespace rsa;
using rsa_test::random_rdm;

namespace {

// The shared state of K thread ranks: every collective writes its rank's slot, meets the others at a barrier, reads,
// and meets them again (so the slots can be reused by the next collective).
struct ThreadGroup {
    explicit ThreadGroup(int k) : K(k), doubles(static_cast<size_t>(k)), ints(static_cast<size_t>(k)) {}
    void sync() {
        std::unique_lock<std::mutex> lock(mu);
        const int64_t gen = generation;
        if (++arrived == K) {
            arrived = 0;
            ++generation;
            cv.notify_all();
        } else {
            cv.wait(lock, [&] { return generation != gen; });
        }
    }
    const int K;
    std::mutex mu;
    std::condition_variable cv;
    int arrived = 0;
    int64_t generation = 0;
    std::vector<std::vector<double>> doubles;
    std::vector<std::vector<int64_t>> ints;
    std::vector<char> bytes;
};

class ThreadComm final : public Comm {
public:
    ThreadComm(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return g_.K; }
    std::string name() const override { return "threads"; }
    bool launched() const override { return true; }
    int local_rank() const override { return rank_; }
    int local_size() const override { return g_.K; }
    void barrier() override { g_.sync(); }
    void broadcast(void* data, uint64_t bytes, int root) override {
        if (rank_ == root) g_.bytes.assign(static_cast<char*>(data), static_cast<char*>(data) + bytes);
        g_.sync();
        if (rank_ != root) std::memcpy(data, g_.bytes.data(), bytes);
        g_.sync();
    }
    void allreduce_sum(double* data, uint64_t count) override {
        g_.doubles[static_cast<size_t>(rank_)].assign(data, data + count);
        g_.sync();
        for (uint64_t i = 0; i < count; ++i) {
            double s = 0.0;
            for (const auto& v : g_.doubles) s += v[i];
            data[i] = s;
        }
        g_.sync();
    }
    void allreduce_max(int64_t* data, uint64_t count) override {
        g_.ints[static_cast<size_t>(rank_)].assign(data, data + count);
        g_.sync();
        for (uint64_t i = 0; i < count; ++i)
            for (const auto& v : g_.ints) data[i] = std::max(data[i], v[i]);
        g_.sync();
    }
    void reduce_sum(double*, uint64_t, int) override { throw RuntimeError("ThreadComm: reduce_sum is not used here"); }
    void exchange_rows(const std::vector<RowTransfer>&, const std::vector<RowTransfer>&, int64_t,
                       const std::function<void(size_t)>&) override {
        throw rsa::RuntimeError("ThreadComm: exchange_rows is not used here");
    }
    std::vector<double> gather(const std::vector<double>& mine, int root) override {
        std::vector<double> all = allgather(mine);
        return rank_ == root ? all : std::vector<double>();
    }
    std::vector<double> allgather(const std::vector<double>& mine) override {
        g_.doubles[static_cast<size_t>(rank_)] = mine;
        g_.sync();
        std::vector<double> out;
        for (const auto& v : g_.doubles) out.insert(out.end(), v.begin(), v.end());
        g_.sync();
        return out;
    }
    [[noreturn]] void abort(int) override { std::abort(); }

private:
    ThreadGroup& g_;
    int rank_;
};

// Runs `body(comm, backend)` on K thread ranks; returns each rank's result (or its error message, "" if none).
template <typename T>
std::vector<T> on_ranks(int K, const std::function<T(Comm&, Backend&)>& body, std::vector<std::string>* errors = nullptr) {
    ThreadGroup group(K);
    std::vector<T> out(static_cast<size_t>(K));
    std::vector<std::string> err(static_cast<size_t>(K));
    std::vector<std::thread> threads;
    for (int r = 0; r < K; ++r)
        threads.emplace_back([&, r] {
            ThreadComm comm(group, r);
            auto backend = make_cpu_backend();
            try {
                out[static_cast<size_t>(r)] = body(comm, *backend);
            } catch (const std::exception& e) {
                err[static_cast<size_t>(r)] = e.what();
            }
        });
    for (auto& t : threads) t.join();
    if (errors) *errors = err;
    else
        for (int r = 0; r < K; ++r) EXPECT_EQ(err[static_cast<size_t>(r)], "") << "rank " << r;
    return out;
}

// Bit-for-bit equality of doubles, NaN equal to NaN.
bool same(const std::vector<double>& a, const std::vector<double>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

using EvalFixture = rsa_test::EvaluateFixture;
const EvalFixture& eval_fixture() { return rsa_test::evaluate_fixture(); }

void expect_same_evaluation(const EvaluateResult& a, const EvaluateResult& b, const std::string& what) {
    EXPECT_TRUE(same(a.samples, b.samples)) << what;
    EXPECT_TRUE(same(a.sample_lower, b.sample_lower)) << what;
    EXPECT_TRUE(same(a.sample_upper, b.sample_upper)) << what;
    EXPECT_TRUE(same(a.mean, b.mean)) << what;
    EXPECT_TRUE(same(a.se, b.se)) << what;
    EXPECT_TRUE(same(a.ci_low, b.ci_low)) << what;
    EXPECT_TRUE(same(a.ci_high, b.ci_high)) << what;
    EXPECT_TRUE(same(a.p_zero_corrected, b.p_zero_corrected)) << what;
    EXPECT_TRUE(same(a.p_noise_corrected, b.p_noise_corrected)) << what;
    EXPECT_TRUE(same(a.pairwise_corrected, b.pairwise_corrected)) << what;
    EXPECT_TRUE(same(a.p_perm, b.p_perm)) << what;
    EXPECT_EQ(a.valid_samples, b.valid_samples) << what;
    EXPECT_EQ(a.ceiling.lower, b.ceiling.lower) << what;
    EXPECT_EQ(a.ceiling.upper, b.ceiling.upper) << what;
}

}  // namespace

TEST(DistributedStats, RankRangesCoverTheRunInOrder) {
    for (int64_t total : {0, 1, 2, 7, 100, 10001})
        for (int ranks : {1, 2, 3, 5, 8}) {
            int64_t next = 0;
            for (int r = 0; r < ranks; ++r) {
                const SampleRange s = rank_range(total, r, ranks);
                EXPECT_EQ(s.first, next) << total << " " << ranks << " " << r;
                EXPECT_GE(s.count, total / ranks);
                EXPECT_LE(s.count, total / ranks + 1);
                next += s.count;
            }
            EXPECT_EQ(next, total);
            if (total > 0) EXPECT_GT(rank_range(total, 0, ranks).count, 0);  // rank 0 always has work
        }
}

TEST(DistributedStats, SingleProcessIsThePlainCall) {
    const int64_t S = 30;
    const Matrix a = random_rdm(S), b = random_rdm(S, &a, 0.5f), c = random_rdm(S, &a, 0.2f);
    auto cpu = make_cpu_backend();
    auto comm = make_single_comm();
    const std::vector<Array> models = {Array(b), Array(c)};
    const BootstrapResult plain = cpu->bootstrap(Array(a), models, 120, 17, 0);
    const BootstrapResult dist = distributed_bootstrap(*comm, *cpu, Array(a), models, 120, 17);
    ASSERT_EQ(plain.samples.size(), dist.samples.size());
    for (size_t l = 0; l < plain.samples.size(); ++l) EXPECT_TRUE(same(plain.samples[l], dist.samples[l]));
    EXPECT_TRUE(same(plain.lo, dist.lo));
    EXPECT_TRUE(same(plain.hi, dist.hi));
    EXPECT_EQ(plain.nan_samples, dist.nan_samples);
    const auto pplain = cpu->permutation(Array(a), models, 90, 17, 0);
    const auto pdist = distributed_permutation(*comm, *cpu, Array(a), models, 90, 17);
    ASSERT_EQ(pplain.size(), pdist.size());
    for (size_t l = 0; l < pplain.size(); ++l) {
        EXPECT_EQ(pplain[l].r_obs, pdist[l].r_obs);
        EXPECT_EQ(pplain[l].p_value, pdist[l].p_value);
        EXPECT_TRUE(same(pplain[l].null, pdist[l].null));
    }
    const EvalFixture& f = eval_fixture();
    EvaluateOptions o;
    o.inference = EvalInference::Pattern;
    o.bootstrap = 150;
    o.permutations = 40;
    o.seed = 3;
    expect_same_evaluation(evaluate_rdms(*cpu, f.data, f.K, f.models, f.M, f.S, o),
                           distributed_evaluate(*comm, *cpu, f.data, f.K, f.models, f.M, f.S, o), "single");
    EXPECT_THROW(distributed_bootstrap(*comm, *cpu, Array(a), models, 0, 1), InputError);
    EXPECT_THROW(distributed_permutation(*comm, *cpu, Array(a), models, 0, 1), InputError);
}

TEST(DistributedStats, RanksGiveTheSingleProcessNumbers) {
    const int64_t S = 25;
    const Matrix a = random_rdm(S), b = random_rdm(S, &a, 0.5f), c = random_rdm(S, &a, 0.2f);
    auto cpu = make_cpu_backend();
    const std::vector<Array> models = {Array(b), Array(c)};
    for (int total : {2, 101}) {  // 2 on 3 or 5 ranks: ranks without work
        const BootstrapResult plain = cpu->bootstrap(Array(a), models, total, 5, 0);
        const auto pplain = cpu->permutation(Array(a), models, total, 5, 0);
        for (int K : {2, 3, 5}) {
            SCOPED_TRACE("total " + std::to_string(total) + ", " + std::to_string(K) + " ranks");
            const auto boot = on_ranks<BootstrapResult>(K, [&](Comm& comm, Backend& be) {
                return distributed_bootstrap(comm, be, Array(a), {Array(b), Array(c)}, total, 5);
            });
            const auto perm = on_ranks<std::vector<PermutationResult>>(K, [&](Comm& comm, Backend& be) {
                return distributed_permutation(comm, be, Array(a), {Array(b), Array(c)}, total, 5);
            });
            for (int r = 0; r < K; ++r) {  // every rank holds the whole result
                const BootstrapResult& d = boot[static_cast<size_t>(r)];
                ASSERT_EQ(d.samples.size(), plain.samples.size());
                for (size_t l = 0; l < plain.samples.size(); ++l) EXPECT_TRUE(same(plain.samples[l], d.samples[l]));
                EXPECT_TRUE(same(plain.lo, d.lo));
                EXPECT_TRUE(same(plain.hi, d.hi));
                EXPECT_EQ(plain.nan_samples, d.nan_samples);
                const auto& p = perm[static_cast<size_t>(r)];
                ASSERT_EQ(p.size(), pplain.size());
                for (size_t l = 0; l < p.size(); ++l) {
                    EXPECT_EQ(p[l].r_obs, pplain[l].r_obs);
                    EXPECT_EQ(p[l].p_value, pplain[l].p_value);
                    EXPECT_TRUE(same(p[l].null, pplain[l].null));
                }
            }
        }
    }
}

TEST(DistributedStats, EvaluateOnRanksGivesTheSingleProcessNumbers) {
    const EvalFixture& f = eval_fixture();
    auto cpu = make_cpu_backend();
    struct Mode {
        const char *method, *inference;
        int bootstrap, permutations;
    };
    for (const Mode& m : {Mode{"corr", "pattern", 130, 37}, Mode{"corr", "both", 90, 0}, Mode{"spearman", "rdm", 40, 5},
                          Mode{"cosine", "fixed", 2, 11}, Mode{"tau-a", "pattern", 7, 2}}) {
        EvaluateOptions o;
        o.method = parse_eval_method(m.method);
        o.inference = parse_eval_inference(m.inference);
        o.bootstrap = m.bootstrap;
        o.permutations = m.permutations;
        o.seed = 11;
        const EvaluateResult plain = evaluate_rdms(*cpu, f.data, f.K, f.models, f.M, f.S, o);
        for (int K : {2, 3}) {
            const std::string what = std::string(m.method) + " " + m.inference + ", " + std::to_string(K) + " ranks";
            const auto got = on_ranks<EvaluateResult>(K, [&](Comm& comm, Backend& be) {
                return distributed_evaluate(comm, be, f.data, f.K, f.models, f.M, f.S, o);
            });
            for (int r = 0; r < K; ++r) expect_same_evaluation(plain, got[static_cast<size_t>(r)], what);
        }
    }
}

TEST(DistributedStats, OneRanksFailureIsEveryRanksError) {
    // A NaN in the model: every rank with work fails on the input check; a rank without work (5 ranks, 2 resamples)
    // gets the same error through agreed().
    const int64_t S = 12;
    const Matrix a = random_rdm(S);
    Matrix bad = random_rdm(S, &a, 0.5f);
    bad.at(2, 7) = std::nanf("");
    std::vector<std::string> errors;
    on_ranks<int>(5, [&](Comm& comm, Backend& be) {
        distributed_bootstrap(comm, be, Array(a), {Array(bad)}, 2, 1);
        return 0;
    }, &errors);
    for (int r = 0; r < 5; ++r) {
        EXPECT_NE(errors[static_cast<size_t>(r)].find("rank 0: "), std::string::npos) << errors[static_cast<size_t>(r)];
        EXPECT_NE(errors[static_cast<size_t>(r)].find("NaN"), std::string::npos) << errors[static_cast<size_t>(r)];
    }
    // Evaluate: a range outside the run is an InputError naming it.
    const EvalFixture& f = eval_fixture();
    auto cpu = make_cpu_backend();
    EvaluateOptions o;
    o.inference = EvalInference::Pattern;
    o.bootstrap = 10;
    EXPECT_THROW(evaluate_samples(*cpu, f.data, f.K, f.models, f.M, f.S, o, SampleRange{5, 6}, SampleRange{}),
                 InputError);
    EXPECT_THROW(evaluate_summary(f.data, f.K, f.models, f.M, f.S, o, EvaluateSamples{}), RuntimeError);
}

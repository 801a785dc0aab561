// RDM statistics, CPU twins: pinned against brute-force python values (tools/make_stats_golden.py:
// resampled correlations by explicit pair enumeration, permutation correlations, split-half ceiling, numpy
// percentiles, the philox draw formulas), the quadratic-form path against pair enumeration in C++, p-value
// bounds, reproducibility by seed, interval coverage, input errors; the main job's default counts
// (default_stat_counts) against its cost model and budgets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/stats.h"
#include "test_util.h"

using namespace rsa;
using rsa_test::random_rdm;

namespace {

nlohmann::json golden() {
    std::ifstream in(rsa_test::data_path("stats/stats_golden.json"));
    EXPECT_TRUE(in.good()) << "missing stats/stats_golden.json (run /usr/bin/python3 tools/make_stats_golden.py)";
    return nlohmann::json::parse(in);
}

Matrix square_from(const std::vector<double>& v, int64_t S) {
    Matrix m(S, S);
    for (int64_t i = 0; i < S * S; ++i) m.data[static_cast<size_t>(i)] = static_cast<float>(v[static_cast<size_t>(i)]);
    return m;
}


std::vector<int64_t> drawn_indices(uint64_t seed, int64_t S, int64_t r) {
    std::vector<int64_t> idx(static_cast<size_t>(S));
    for (int64_t k = 0; k < S; ++k) idx[static_cast<size_t>(k)] = bootstrap_draw(seed, S, r, k);
    return idx;
}

}  // namespace

TEST(StatsGolden, BootstrapResamplesMatchPairEnumeration) {
    const auto g = golden()["bootstrap"];
    const int64_t S = g["S"].get<int64_t>();
    const Matrix ref = square_from(g["ref"].get<std::vector<double>>(), S);
    std::vector<Matrix> models;
    for (const auto& m : g["models"]) models.push_back(square_from(m.get<std::vector<double>>(), S));
    const auto indices = g["indices"].get<std::vector<std::vector<int64_t>>>();
    const auto want = g["r"].get<std::vector<std::vector<double>>>();
    const int64_t R = static_cast<int64_t>(indices.size());
    std::vector<double> counts(static_cast<size_t>(R * S), 0.0);
    for (int64_t r = 0; r < R; ++r)
        for (int64_t i : indices[static_cast<size_t>(r)]) counts[static_cast<size_t>(r * S + i)] += 1.0;
    const auto got = bootstrap_from_counts_ref(ref, views_of(models), counts, R);
    ASSERT_EQ(got.size(), models.size());
    for (size_t l = 0; l < models.size(); ++l)
        for (int64_t r = 0; r < R; ++r) {
            const double w = want[l][static_cast<size_t>(r)];
            EXPECT_NEAR(got[l][static_cast<size_t>(r)], w, 1e-10) << "model " << l << " resample " << r;
            EXPECT_NEAR(bootstrap_r_bruteforce(ref, models[l], indices[static_cast<size_t>(r)]), w, 1e-10);
        }
    // The identity resample is the plain upper-triangle Pearson.
    const auto full = g["r_full"].get<std::vector<double>>();
    for (size_t l = 0; l < models.size(); ++l) {
        EXPECT_NEAR(got[l][0], full[l], 1e-10);
        EXPECT_NEAR(pearson_upper_ref(ref.data.data(), models[l].data.data(), S).r, full[l], 1e-10);
    }
}

TEST(StatsGolden, PermutationCorrelations) {
    const auto g = golden();
    const int64_t S = g["bootstrap"]["S"].get<int64_t>();
    const Matrix ref = square_from(g["bootstrap"]["ref"].get<std::vector<double>>(), S);
    const Matrix model = square_from(g["bootstrap"]["models"][0].get<std::vector<double>>(), S);
    const auto perms = g["permutation"]["perms"].get<std::vector<std::vector<int>>>();
    const auto want = g["permutation"]["r"].get<std::vector<double>>();
    for (size_t p = 0; p < perms.size(); ++p) EXPECT_NEAR(permutation_r_ref(ref, model, perms[p]), want[p], 1e-10) << p;
}

TEST(StatsGolden, PercentileLinearMatchesNumpy) {
    const auto g = golden()["percentile"];
    const auto vals = g["values"].get<std::vector<double>>();
    const auto qs = g["q"].get<std::vector<double>>();
    const auto want = g["p"].get<std::vector<double>>();
    for (size_t i = 0; i < qs.size(); ++i) EXPECT_NEAR(percentile_linear(vals, qs[i]), want[i], 1e-12) << qs[i];
    std::vector<double> with_nan = vals;
    with_nan.push_back(std::nan(""));
    EXPECT_EQ(percentile_linear(with_nan, 97.5), percentile_linear(vals, 97.5));  // NaN samples left out
    EXPECT_TRUE(std::isnan(percentile_linear({std::nan("")}, 50.0)));
    EXPECT_EQ(percentile_linear({3.0}, 2.5), 3.0);
}

TEST(StatsGolden, PhiloxDrawsMatchDocumentedFormulas) {
    const auto g = golden()["draws"];
    const uint64_t seed = std::stoull(g["seed"].get<std::string>());
    const int64_t S = g["S"].get<int64_t>();
    const auto boot = g["bootstrap"].get<std::vector<std::vector<int64_t>>>();
    for (size_t r = 0; r < boot.size(); ++r) EXPECT_EQ(drawn_indices(seed, S, static_cast<int64_t>(r)), boot[r]);
    const auto perms = g["permutation"].get<std::vector<std::vector<int>>>();
    for (size_t p = 0; p < perms.size(); ++p) {
        std::vector<int> perm(static_cast<size_t>(S));
        permutation_draw(seed, S, static_cast<int64_t>(p), perm.data());
        EXPECT_EQ(perm, perms[p]);
    }
}

TEST(StatsGolden, SplitHalfCeilingForGivenHalves) {
    const auto g = golden()["noise_ceiling"];
    const int64_t T = g["T"].get<int64_t>(), N = g["N"].get<int64_t>();
    Matrix resp(T, N);
    const auto v = g["resp"].get<std::vector<double>>();
    for (size_t i = 0; i < v.size(); ++i) resp.data[i] = static_cast<float>(v[i]);
    const auto bins = g["bins"].get<std::vector<int64_t>>();
    const auto half = g["half"].get<std::vector<int>>();
    const auto bin_row = g["bin_row"].get<std::vector<int64_t>>();
    const auto kept = g["kept"].get<std::vector<int64_t>>();
    const uint64_t seed = g["seed"].get<uint64_t>();
    // The split plan (stream 103) is the one python drew.
    const SplitPlan plan = split_halves_plan(bins, 0, seed);
    EXPECT_EQ(plan.half, half);
    EXPECT_EQ(plan.bin_row, bin_row);
    EXPECT_EQ(plan.kept_ids, kept);
    EXPECT_EQ(plan.bins_dropped, g["dropped"].get<int64_t>());
    const double r = split_half_r_ref(resp, bin_row, half, static_cast<int64_t>(kept.size()));
    EXPECT_NEAR(r, g["r_half"].get<double>(), 1e-5);
    const NoiseCeilingResult nc = noise_ceiling_ref(resp, bins, 1, seed);
    EXPECT_NEAR(nc.ceiling, g["ceiling"].get<double>(), 1e-5);
    EXPECT_EQ(nc.bins_dropped, 2);
    EXPECT_EQ(nc.bins_kept, static_cast<int64_t>(kept.size()));
    EXPECT_EQ(nc.r_half.size(), 1u);
}

TEST(Stats, QuadraticFormsEqualPairEnumeration) {
    for (int64_t S : {5, 30, 77}) {
        const Matrix a = random_rdm(S);
        const std::vector<Matrix> models = {random_rdm(S, &a, 0.5f), random_rdm(S)};
        const int R = 25;
        const uint64_t seed = 99 + static_cast<uint64_t>(S);
        const BootstrapResult res = bootstrap_ref(a, views_of(models), R, seed);
        ASSERT_EQ(res.samples.size(), 2u);
        int degenerate = 0;
        for (size_t l = 0; l < models.size(); ++l) {
            ASSERT_EQ(res.samples[l].size(), static_cast<size_t>(R));
            for (int r = 0; r < R; ++r) {
                const double brute = bootstrap_r_bruteforce(a, models[l], drawn_indices(seed, S, r));
                const double got = res.samples[l][static_cast<size_t>(r)];
                if (std::isnan(brute) || std::isnan(got)) {  // degenerate resamples (S = 5): both NaN
                    EXPECT_TRUE(std::isnan(brute) && std::isnan(got)) << S << " " << l << " " << r;
                    ++degenerate;
                    continue;
                }
                EXPECT_NEAR(got, brute, 1e-10) << S << " " << l << " " << r;
            }
        }
        if (S > 5) {
            EXPECT_EQ(degenerate, 0);
        }
    }
}

TEST(Stats, BootstrapIntervalContainsObservedForRelatedPair) {
    const int64_t S = 40;
    const Matrix a = random_rdm(S), b = random_rdm(S, &a, 0.8f);
    const double r_obs = pearson_upper_ref(a.data.data(), b.data.data(), S).r;
    const BootstrapResult res = bootstrap_ref(a, {b}, 500, 7);
    EXPECT_LE(res.lo[0], r_obs);
    EXPECT_GE(res.hi[0], r_obs);
    EXPECT_LT(res.lo[0], res.hi[0]);
    EXPECT_GT(res.lo[0], 0.5);
    EXPECT_EQ(res.nan_samples[0], 0);
    EXPECT_EQ(res.lo[0], percentile_linear(res.samples[0], 2.5));
    EXPECT_EQ(res.hi[0], percentile_linear(res.samples[0], 97.5));
}

TEST(Stats, ReproducibleBySeed) {
    const int64_t S = 20;
    const Matrix a = random_rdm(S), b = random_rdm(S, &a, 0.3f);
    const BootstrapResult b1 = bootstrap_ref(a, {b}, 50, 11), b2 = bootstrap_ref(a, {b}, 50, 11),
                          b3 = bootstrap_ref(a, {b}, 50, 12);
    EXPECT_EQ(b1.samples, b2.samples);
    EXPECT_NE(b1.samples, b3.samples);
    const PermutationResult p1 = permutation_ref(a, b, 60, 5), p2 = permutation_ref(a, b, 60, 5),
                            p3 = permutation_ref(a, b, 60, 6);
    EXPECT_EQ(p1.null, p2.null);
    EXPECT_EQ(p1.p_value, p2.p_value);
    EXPECT_NE(p1.null, p3.null);
    // Permutation p of a run is permutation p of a longer run (counter-based draws).
    const PermutationResult p4 = permutation_ref(a, b, 80, 5);
    for (size_t i = 0; i < p1.null.size(); ++i) EXPECT_EQ(p1.null[i], p4.null[i]);
}

// A range [first, first + count) of resamples / permutations (a rank's share of a distributed run) is that slice of
// the whole run bit for bit, for splits of several sizes (uneven, one resample, a split inside a dgemm chunk).
TEST(Stats, RangesAreSlicesOfTheWholeRun) {
    const int64_t S = 23;
    const int R = 97;
    const Matrix a = random_rdm(S), b = random_rdm(S, &a, 0.4f), c = random_rdm(S, &a, 0.7f);
    const std::vector<Matrix> models = {b, c};
    const uint64_t seed = 31;
    const BootstrapResult whole = bootstrap_ref(a, views_of(models), R, seed);
    const PermutationResult pwhole = permutation_ref(a, b, R, seed);
    for (const std::vector<int>& split : {std::vector<int>{50, 47}, {1, 32, 33, 31}, {96, 1}, {10, 0, 87}}) {
        std::vector<std::vector<double>> joined(models.size());
        std::vector<double> pjoined;
        int64_t first = 0;
        for (int count : split) {
            if (count == 0) continue;
            const BootstrapResult part = bootstrap_ref(a, views_of(models), count, seed, first);
            const PermutationResult ppart = permutation_ref(a, b, count, seed, first);
            ASSERT_EQ(part.samples.size(), models.size());
            for (size_t l = 0; l < models.size(); ++l)
                joined[l].insert(joined[l].end(), part.samples[l].begin(), part.samples[l].end());
            pjoined.insert(pjoined.end(), ppart.null.begin(), ppart.null.end());
            EXPECT_EQ(ppart.r_obs, pwhole.r_obs);
            first += count;
        }
        for (size_t l = 0; l < models.size(); ++l)
            for (int r = 0; r < R; ++r)  // bit for bit (NaN never occurs at S = 23 with these draws)
                ASSERT_EQ(joined[l].at(static_cast<size_t>(r)), whole.samples[l][static_cast<size_t>(r)])
                    << "model " << l << " resample " << r << " split of " << split.size();
        EXPECT_EQ(pjoined, pwhole.null) << "split of " << split.size();
        BootstrapResult summary;
        summary.samples = joined;
        bootstrap_summarise(summary);
        EXPECT_EQ(summary.lo, whole.lo);
        EXPECT_EQ(summary.hi, whole.hi);
        EXPECT_EQ(summary.nan_samples, whole.nan_samples);
        EXPECT_EQ(permutation_p_value(pwhole.r_obs, pjoined), pwhole.p_value);
    }
    EXPECT_THROW(bootstrap_ref(a, views_of(models), 5, seed, -1), InputError);
    EXPECT_THROW(permutation_ref(a, b, 5, seed, -1), InputError);
}

TEST(Stats, PermutationPValueBoundsAndObserved) {
    const int64_t S = 30;
    const int P = 300;
    const Matrix a = random_rdm(S), related = random_rdm(S, &a, 0.7f), unrelated = random_rdm(S);
    const PermutationResult strong = permutation_ref(a, related, P, 3);
    EXPECT_NEAR(strong.r_obs, pearson_upper_ref(a.data.data(), related.data.data(), S).r, 1e-12);
    EXPECT_DOUBLE_EQ(strong.p_value, 1.0 / (P + 1));
    const PermutationResult weak = permutation_ref(a, unrelated, P, 3);
    EXPECT_GE(weak.p_value, 1.0 / (P + 1));
    EXPECT_LE(weak.p_value, 1.0);
    // Each null sample is the Pearson correlation of the relabelled triangle.
    std::vector<int> perm(static_cast<size_t>(S));
    for (int p : {0, 17, P - 1}) {
        permutation_draw(3, S, p, perm.data());
        Matrix bp(S, S);
        for (int64_t i = 0; i < S; ++i)
            for (int64_t j = 0; j < S; ++j) bp.at(i, j) = unrelated.at(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
        EXPECT_NEAR(weak.null[static_cast<size_t>(p)], pearson_upper_ref(a.data.data(), bp.data.data(), S).r, 1e-12);
    }
    EXPECT_DOUBLE_EQ(permutation_p_value(0.5, {0.1, 0.5, 0.7, std::nan("")}), 3.0 / 5.0);
    EXPECT_DOUBLE_EQ(permutation_p_value(0.9, {0.1, 0.5}), 1.0 / 3.0);
    EXPECT_DOUBLE_EQ(permutation_p_value(-2.0, {0.1, 0.5}), 1.0);
}

TEST(Stats, PermutationDrawIsAPermutation) {
    for (int64_t S : {2, 3, 50, 1001}) {
        std::vector<int> perm(static_cast<size_t>(S));
        permutation_draw(1, S, 4, perm.data());
        std::vector<int> sorted = perm;
        std::sort(sorted.begin(), sorted.end());
        for (int64_t i = 0; i < S; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
    }
}

TEST(Stats, NaNInputsAreInputErrors) {
    const int64_t S = 10;
    Matrix a = random_rdm(S), b = random_rdm(S);
    Matrix bn = b;
    bn.at(2, 7) = std::nanf("");
    EXPECT_THROW(bootstrap_ref(a, {bn}, 10, 1), InputError);
    EXPECT_THROW(bootstrap_ref(bn, {a}, 10, 1), InputError);
    EXPECT_THROW(permutation_ref(a, bn, 10, 1), InputError);
    EXPECT_THROW(bootstrap_ref(a, {}, 10, 1), InputError);
    EXPECT_THROW(bootstrap_ref(a, {Matrix(9, 9)}, 10, 1), InputError);
    EXPECT_THROW(bootstrap_ref(a, {b}, 0, 1), InputError);
    EXPECT_THROW(permutation_ref(a, b, 0, 1), InputError);
    Matrix lower_nan = b;
    lower_nan.at(7, 2) = std::nanf("");  // below the diagonal: never read
    EXPECT_NO_THROW(bootstrap_ref(a, {lower_nan}, 3, 1));
}

TEST(Stats, NoiseCeilingDropsSingletonsAndAveragesSplits) {
    const int64_t T = 90, N = 25, bins_n = 12;
    const std::vector<float> noise = rsa_test::random_uniform(static_cast<size_t>(T * N), -1.0f, 1.0f);
    const std::vector<float> signal = rsa_test::random_uniform(static_cast<size_t>(bins_n * N), -2.0f, 2.0f);
    Matrix resp(T, N);
    std::vector<int64_t> bins(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
        bins[static_cast<size_t>(t)] = t < 3 ? 1000 + t : (t * 7) % bins_n;  // 3 singleton bins
        for (int64_t n = 0; n < N; ++n)
            resp.at(t, n) = noise[static_cast<size_t>(t * N + n)] +
                            (t < 3 ? 0.0f : signal[static_cast<size_t>(bins[static_cast<size_t>(t)] * N + n)]);
    }
    const NoiseCeilingResult one = noise_ceiling_ref(resp, bins, 1, 21);
    EXPECT_EQ(one.bins_dropped, 3);
    EXPECT_EQ(one.bins_kept, bins_n);
    EXPECT_GT(one.r_half[0], 0.5);
    EXPECT_NEAR(one.ceiling, 2 * one.r_half[0] / (1 + one.r_half[0]), 1e-15);
    const NoiseCeilingResult three = noise_ceiling_ref(resp, bins, 3, 21);
    ASSERT_EQ(three.r_half.size(), 3u);
    EXPECT_EQ(three.r_half[0], one.r_half[0]);  // split 0 is the same draw
    EXPECT_NEAR(three.r_half_mean, (three.r_half[0] + three.r_half[1] + three.r_half[2]) / 3, 1e-15);
    EXPECT_NEAR(three.ceiling, spearman_brown(three.r_half_mean), 1e-15);
    EXPECT_EQ(noise_ceiling_ref(resp, bins, 3, 21).r_half, three.r_half);
    // Halves of each kept bin differ by at most one trial.
    const SplitPlan plan = split_halves_plan(bins, 1, 21);
    std::vector<int64_t> c0(static_cast<size_t>(bins_n)), c1(static_cast<size_t>(bins_n));
    for (int64_t t = 0; t < T; ++t) {
        const int64_t row = plan.bin_row[static_cast<size_t>(t)];
        if (row < 0) continue;
        (plan.half[static_cast<size_t>(t)] == 0 ? c0 : c1)[static_cast<size_t>(row)]++;
    }
    for (int64_t r = 0; r < bins_n; ++r) {
        EXPECT_GE(c0[static_cast<size_t>(r)], 1);
        EXPECT_TRUE(c1[static_cast<size_t>(r)] == c0[static_cast<size_t>(r)] ||
                    c1[static_cast<size_t>(r)] == c0[static_cast<size_t>(r)] + 1);
    }
    EXPECT_THROW(noise_ceiling_ref(resp, std::vector<int64_t>(5, 0), 1, 0), InputError);
    EXPECT_THROW(noise_ceiling_ref(resp, bins, 0, 0), InputError);
    std::vector<int64_t> few(static_cast<size_t>(T), 0);
    few[0] = 1;
    few[1] = 1;  // 2 kept bins only
    EXPECT_THROW(noise_ceiling_ref(resp, few, 1, 0), InputError);
}

// ---- default counts of the main job (default_stat_counts: the cost model and budgets of stats.h) ----

TEST(StatsDefaults, TutorialSizeKeepsTenThousandEach) {
    for (bool gpu : {false, true})
        for (int64_t models : {1, 3, 6}) {
            const StatCounts c = default_stat_counts(181, models, gpu);
            EXPECT_EQ(c.bootstrap, 10000) << "gpu " << gpu << " models " << models;
            EXPECT_EQ(c.permutations, 10000) << "gpu " << gpu << " models " << models;
            EXPECT_TRUE(c.bootstrap_note.empty()) << c.bootstrap_note;
            EXPECT_TRUE(c.permutation_note.empty()) << c.permutation_note;
        }
    // The former CPU rule's edge (S <= 1,000 with the main job's three model RDMs) is kept.
    const StatCounts c = default_stat_counts(1000, 3, false);
    EXPECT_EQ(c.bootstrap, 10000);
    EXPECT_EQ(c.permutations, 10000);
}

TEST(StatsDefaults, CostModel) {
    EXPECT_DOUBLE_EQ(bootstrap_cost_per_resample(100, 3), 100.0 * 100.0 * 11.0);
    EXPECT_DOUBLE_EQ(permutation_cost_per_permutation(100, 3), 3.0 * 100.0 * 99.0 / 2.0);
    const StatCounts c = default_stat_counts(500, 2, true);
    EXPECT_DOUBLE_EQ(c.bootstrap_cost, 10000 * bootstrap_cost_per_resample(500, 2));
    EXPECT_DOUBLE_EQ(c.permutation_cost, 10000 * permutation_cost_per_permutation(500, 2));
}

TEST(StatsDefaults, ScaleDownWithSizeWithinBudget) {
    for (bool gpu : {false, true}) {
        const double boot_budget = gpu ? kBootstrapBudgetGpu : kBootstrapBudgetCpu;
        const double perm_budget = gpu ? kPermutationBudgetGpu : kPermutationBudgetCpu;
        int last_boot = 10000, last_perm = 10000;
        for (int64_t S = 3; S <= 1000000; S = S * 5 / 4 + 1) {
            SCOPED_TRACE("S " + std::to_string(S) + (gpu ? " gpu" : " cpu"));
            const StatCounts c = default_stat_counts(S, 3, gpu);
            // Never more than the default, never growing with S, within the budget, a multiple of 100, and either
            // skipped or at least the minimum.
            EXPECT_LE(c.bootstrap, last_boot);
            EXPECT_LE(c.permutations, last_perm);
            last_boot = c.bootstrap;
            last_perm = c.permutations;
            EXPECT_LE(c.bootstrap_cost, boot_budget);
            EXPECT_LE(c.permutation_cost, perm_budget);
            EXPECT_EQ(c.bootstrap % 100, 0);
            EXPECT_EQ(c.permutations % 100, 0);
            EXPECT_TRUE(c.bootstrap == 0 || c.bootstrap >= kMinDefaultStatCount);
            EXPECT_TRUE(c.permutations == 0 || c.permutations >= kMinDefaultStatCount);
            // A count below the default always says why and how to ask.
            EXPECT_EQ(c.bootstrap < 10000, !c.bootstrap_note.empty());
            EXPECT_EQ(c.permutations < 10000, !c.permutation_note.empty());
            if (c.bootstrap < 10000) EXPECT_NE(c.bootstrap_note.find("--bootstrap N"), std::string::npos);
            if (c.permutations < 10000) EXPECT_NE(c.permutation_note.find("--permutations N"), std::string::npos);
        }
        // Far beyond the budgets both are skipped.
        EXPECT_EQ(last_boot, 0);
        EXPECT_EQ(last_perm, 0);
    }
}

TEST(StatsDefaults, LargeInputs) {
    // CPU: reduced a little above 1,000 stimuli, skipped at the trial-level 4,598.
    const StatCounts cpu_mid = default_stat_counts(1500, 3, false);
    EXPECT_GT(cpu_mid.bootstrap, 0);
    EXPECT_LT(cpu_mid.bootstrap, 10000);
    EXPECT_GT(cpu_mid.permutations, 0);
    EXPECT_LT(cpu_mid.permutations, 10000);
    const StatCounts cpu_big = default_stat_counts(4598, 3, false);
    EXPECT_EQ(cpu_big.bootstrap, 0);
    EXPECT_EQ(cpu_big.permutations, 0);
    EXPECT_NE(cpu_big.bootstrap_note.find("skipped"), std::string::npos) << cpu_big.bootstrap_note;
    // GPU: the trial-level size keeps 10,000 each; S = 50,000 with three models keeps the bootstrap at 10,000 and
    // skips the permutations (10,000 of them would visit 3.7e13 pairs); 200,000 stimuli skip both.
    const StatCounts gpu_trials = default_stat_counts(4598, 3, true);
    EXPECT_EQ(gpu_trials.bootstrap, 10000);
    EXPECT_EQ(gpu_trials.permutations, 10000);
    const StatCounts gpu_50k = default_stat_counts(50000, 3, true);
    EXPECT_EQ(gpu_50k.bootstrap, 10000);
    EXPECT_EQ(gpu_50k.permutations, 0);
    const StatCounts gpu_10k = default_stat_counts(10000, 3, true);
    EXPECT_EQ(gpu_10k.permutations, 4000);  // floor(6e11 / (3 x 10,000 x 9,999 / 2)) = 4,000
    const StatCounts gpu_huge = default_stat_counts(200000, 3, true);
    EXPECT_EQ(gpu_huge.bootstrap, 0);
    EXPECT_EQ(gpu_huge.permutations, 0);
}

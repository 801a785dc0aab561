// Stages 3 to 5 of the main job (analysis_stages.h): the RDMs, every representation's comparison with V1, and the
// statistics of the Pearson rows (bootstrap interval, permutation p-value, noise ceiling). The resamples and
// permutations are divided among the ranks of world() (distributed_stats.h); every rank gets the whole result.
#include <cmath>

#include "rsa_gpu/analysis_stages.h"
#include "rsa_gpu/distributed_stats.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/measures.h"

namespace rsa {

std::vector<Array> RdmStage::rep_rdms() const {
    std::vector<Array> out;
    for (const RdmResult& r : reps) out.push_back(r.rdm);
    return out;
}

bool RdmStage::has_nan() const {
    bool any = v1.has_nan();
    for (const RdmResult& r : reps) any = any || r.has_nan();
    return any;
}

RdmStage compute_rdms(Backend& backend, const RdmOptions& options, const Array& v1_resp,
                      const std::vector<Representation>& reps, StageTimings& timings, const Matrix* v1_rdm) {
    const auto t0 = StageClock::now();
    RdmStage rdms;
    if (v1_rdm) {
        rdms.v1.rdm = Array(Matrix(*v1_rdm));
        rdms.v1.plan.stimuli = v1_rdm->rows;
        rdms.v1.plan.neurons = v1_resp.cols();
    } else {
        rdms.v1 = compute_rdm(backend, v1_resp, options, "V1 responses");
    }
    for (const auto& r : reps) {
        check_interrupt("the RDMs");
        rdms.reps.push_back(compute_rdm(backend, r.resp, options, "'" + r.name + "' representation"));
    }
    timings["rdm_ms"] = ms_since(t0);
    return rdms;
}

std::vector<CorrelationRow> compare_with_v1(Backend& backend, const AnalysisConfig& cfg, const Array& v1_resp,
                                            const std::vector<Representation>& reps, const RdmStage& rdms,
                                            StageTimings& timings) {
    const auto t0 = StageClock::now();
    std::vector<CorrelationRow> rows;
    check_interrupt("the comparisons");
    const auto table = backend.compare(rdms.v1.rdm, rdms.rep_rdms(), cfg.measures);  // [representation][measure]
    for (size_t i = 0; i < reps.size(); ++i)
        for (size_t k = 0; k < cfg.measures.size(); ++k) {
            const CompareResult& c = table[i][k];
            CorrelationRow row;
            row.layer = reps[i].name;
            row.measure = measure_name(cfg.measures[k]);
            row.value = c.value;
            row.pairs = c.pairs;
            row.skipped_pairs = c.skipped;
            row.representation = i;
            rows.push_back(row);
        }
    if (cfg.cka)
        for (size_t i = 0; i < reps.size(); ++i) {
            check_interrupt("the comparisons");
            const CkaResult c = backend.cka(v1_resp, reps[i].resp);
            for (bool debiased : {false, true}) {
                CorrelationRow row;
                row.layer = reps[i].name;
                row.measure = debiased ? "cka_debiased" : "cka";
                row.value = debiased ? c.debiased : c.plain;
                row.pairs = v1_resp.rows();
                row.representation = i;
                rows.push_back(row);
            }
        }
    timings["compare_ms"] = ms_since(t0);
    return rows;
}

std::optional<StatisticsDescription> add_statistics(Backend& backend, const AnalysisConfig& cfg,
                                                    const RdmStage& rdms, const NoiseCeilingResult* ceiling,
                                                    std::vector<CorrelationRow>& rows, StageTimings& timings,
                                                    const Say& say) {
    // Counts left at -1 follow default_stat_counts (stats.h: 10,000 each while the cost model's budget allows,
    // fewer for large S, skipped beyond); its notes say what was reduced or skipped and how to ask explicitly.
    const StatCounts defaults =
        default_stat_counts(rdms.v1.rdm.rows(), static_cast<int64_t>(rdms.reps.size()), backend.is_gpu());
    const int resamples = cfg.bootstrap >= 0 ? cfg.bootstrap : defaults.bootstrap;
    const int perms = cfg.permutations >= 0 ? cfg.permutations : defaults.permutations;
    if (cfg.bootstrap < 0 && !defaults.bootstrap_note.empty()) say(defaults.bootstrap_note);
    if (cfg.permutations < 0 && !defaults.permutation_note.empty()) say(defaults.permutation_note);
    if (rdms.has_nan() && (resamples > 0 || perms > 0)) {
        say("statistics: skipped because an RDM holds NaN (constant rows kept with --constant-rows nan)");
        return std::nullopt;
    }
    StatisticsDescription stats;
    stats.seed = cfg.stats_seed;
    stats.bootstrap_resamples = resamples;
    stats.permutations = perms;
    if (resamples > 0 || perms > 0)
        say("statistics: " + std::to_string(resamples) + " bootstrap resamples over stimuli, " +
            std::to_string(perms) + " permutations per representation (seed " + std::to_string(cfg.stats_seed) + ")");
    const auto is_pearson = [](const CorrelationRow& r) { return r.measure == measure_name(Measure::Pearson); };
    if (resamples > 0) {
        const auto t0 = StageClock::now();
        const BootstrapResult b =
            distributed_bootstrap(world(), backend, rdms.v1.rdm, rdms.rep_rdms(), resamples, cfg.stats_seed);
        for (auto& r : rows)
            if (is_pearson(r)) r.ci_low = b.lo[r.representation], r.ci_high = b.hi[r.representation];
        timings["bootstrap_ms"] = ms_since(t0);
    }
    if (perms > 0) {
        const auto t0 = StageClock::now();
        const std::vector<PermutationResult> p =
            distributed_permutation(world(), backend, rdms.v1.rdm, rdms.rep_rdms(), perms, cfg.stats_seed);
        for (auto& r : rows)
            if (is_pearson(r)) r.p_value = p[r.representation].p_value;
        timings["permutation_ms"] = ms_since(t0);
    }
    if (ceiling) {
        for (auto& r : rows)
            if (is_pearson(r)) r.ceiling = ceiling->ceiling;
        stats.noise_ceiling = NoiseCeilingDescription{
            ceiling->ceiling, ceiling->r_half, ceiling->bins_kept, ceiling->bins_dropped,
            "split halves of each 1-degree bin's trials (0..180 degrees), Spearman-Brown corrected"};
    }
    return stats;
}

}  // namespace rsa

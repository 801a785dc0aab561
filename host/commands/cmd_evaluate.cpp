// `rsa_gpu evaluate --data D --models M1 [M2 ...]`: rsatoolbox's model evaluation (eval_fixed,
// eval_bootstrap_pattern / _rdm / eval_bootstrap) of fixed model RDMs against data RDMs, with the noise ceiling,
// (data and models given as RDM files, or as response matrices turned into RDMs by --dissimilarity: dissimilarity.h),
// rsatoolbox's tests (--test t-test|bootstrap|ranksum) with get_ci's interval of that test (percentile for bootstrap,
// else t), a multiple-comparison correction and a permutation test (evaluate.h), the resamples in the batches of the
// memory plan (evaluate_plan.h: its line on stderr). Prints a table or one JSON object; --out DIR gets evaluate.json,
// evaluate.csv, pairwise.csv, the figure and report.html (the table, report and figure name the interval).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/distributed.h"
#include "rsa_gpu/distributed_stats.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/figures.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/output_dir.h"
#include "rsa_gpu/progress.h"
#include "rsa_gpu/rdm_engine.h"
#include "rsa_gpu/rdm_set.h"

namespace rsa::commands {

namespace {

bool is_rdm_file(const std::filesystem::path& p) {
    const std::string ext = p.extension().string();
    return ext == ".npy" || ext == ".npz" || ext == ".h5" || ext == ".hdf5";
}

// The RDMs of response matrices (one .npy per subject, session or model, S x N): each file's RDM by `spec` on the
// backend, named by the file's stem; all of them over the same patterns (InputError naming the files otherwise).
RdmSet rdms_of_responses(Backend& backend, const std::vector<std::string>& files, const DissimilaritySpec& spec,
                         const RdmOptions& options) {
    RdmSet set;
    set.dissimilarity_measure = dissimilarity_name(spec.method);
    for (const std::string& f : files) {
        check_interrupt("loading the responses");
        const Matrix x = npy_load_matrix(f);
        check_dissimilarity_spec(spec, x.rows, x.cols);
        DissimilarityResult r = compute_dissimilarity_rdm(backend, x, spec, options, f);
        const Matrix m = r.rdm.rdm.take_matrix();
        const std::vector<double> values(m.data.begin(), m.data.end());
        const RdmSet one = rdm_set_from_array(values.data(), {m.rows, m.cols}, f + " (its RDM)",
                                              std::filesystem::path(f).stem().string());
        if (set.count > 0 && one.patterns != set.patterns)
            throw InputError(f + ": its RDM has " + std::to_string(one.patterns) + " patterns but " + files[0] +
                             "'s has " + std::to_string(set.patterns) + " (shapes " + std::to_string(x.rows) + " x " +
                             std::to_string(x.cols) + " and the first file's)");
        set.patterns = one.patterns;
        set.upper.insert(set.upper.end(), one.upper.begin(), one.upper.end());
        set.names.push_back(one.names.at(0));
        ++set.count;
    }
    return set;
}

// The model files: --models in order, then every RDM file of --models-dir (sorted by name); none is fine when
// `responses` (--model-responses) gives models.
std::vector<std::string> model_files(const std::vector<std::string>& models, const std::string& dir,
                                     bool responses) {
    std::vector<std::string> files = models;
    if (!dir.empty()) {
        std::error_code ec;
        if (!std::filesystem::is_directory(dir, ec)) throw InputError("--models-dir " + dir + ": not a folder");
        std::vector<std::string> found;
        for (const auto& e : std::filesystem::directory_iterator(dir, ec))
            if (e.is_regular_file() && is_rdm_file(e.path())) found.push_back(e.path().string());
        if (ec) throw InputError("--models-dir " + dir + ": cannot list it (" + ec.message() + ")");
        if (found.empty()) throw InputError("--models-dir " + dir + ": no RDM file (.npy, .npz, .h5, .hdf5) in it");
        std::sort(found.begin(), found.end());
        files.insert(files.end(), found.begin(), found.end());
    }
    if (files.empty() && !responses)
        throw InputError("evaluate: no models (give --models FILE ..., --models-dir DIR or --model-responses FILE ...)");
    return files;
}

std::string fmt(double x, const char* f = "%.4f") {
    if (std::isnan(x)) return "nan";
    char b[64];
    std::snprintf(b, sizeof b, f, x);
    return b;
}

std::string fmt_p(double p) { return std::isnan(p) ? "nan" : (p < 0.001 ? "< 0.001" : fmt(p, "%.3f")); }

// Which of rsatoolbox's tests gave the p-values, in words (the table's p-value line and the report).
std::string test_text(const EvaluateResult& r, const EvaluateOptions& o) {
    switch (r.test) {
        case EvalTest::TTest: return "rsatoolbox's t-tests (dof " + std::to_string(r.dof) + ")";
        case EvalTest::Bootstrap:
            return "rsatoolbox's bootstrap tests (proportions of the " + std::to_string(o.bootstrap) + " resamples)";
        case EvalTest::Ranksum:
            return "rsatoolbox's ranksum tests (Wilcoxon signed-rank over the " + std::to_string(r.n_rdm) +
                   " data RDMs, two-sided)";
    }
    return "?";
}

// The level as the table names it ("95%").
std::string level_text(double ci) { return fmt(100.0 * ci, "%.4g") + "%"; }

// Which of rsatoolbox's intervals ci_low / ci_high are (get_ci(ci, test_type): evaluate.h EvalInterval), in words.
std::string interval_text(const EvaluateResult& r, const EvaluateOptions& o) {
    const std::string call = "get_ci(" + fmt(o.ci, "%g") + ", '" + eval_test_name(r.test) + "')";
    if (r.interval == EvalInterval::Percentile) {
        const double cut = 100.0 * (1.0 - o.ci) / 2.0;
        return "percentiles " + fmt(cut, "%g") + " and " + fmt(100.0 - cut, "%g") + " of the " +
               std::to_string(o.bootstrap) + " bootstrap evaluations (rsatoolbox's " + call +
               ": np.quantile of the samples with -inf and +inf added)";
    }
    return "rsatoolbox's t intervals (" + call + ": mean +- SEM x t quantile, dof " + std::to_string(r.dof) + ")";
}

// Why a percentile interval is not finite, as rsatoolbox's get_ci gives it ("" when every bound is finite).
std::string interval_warning(const EvaluateResult& r, const EvaluateOptions& o) {
    if (r.interval != EvalInterval::Percentile) return "";
    bool finite = true;
    for (int64_t m = 0; m < r.n_model; ++m)
        finite = finite && std::isfinite(r.ci_low[m]) && std::isfinite(r.ci_high[m]);
    if (finite) return "";
    if (r.valid_samples < o.bootstrap)
        return "nan intervals: " + std::to_string(o.bootstrap - r.valid_samples) +
               " resample(s) had fewer than 3 different patterns (NaN rows), and rsatoolbox's np.quantile over a "
               "NaN is NaN (use --test t-test, or more patterns)";
    return "non-finite intervals: too few resamples for a " + level_text(o.ci) +
           " percentile interval (rsatoolbox's -inf / +inf frame reaches the bounds; at 95% it takes --bootstrap 40 "
           "or more)";
}

std::string table(const EvaluateResult& r, const std::vector<std::string>& names, const EvaluateOptions& o) {
    size_t w = 6;
    for (const auto& n : names) w = std::max(w, n.size() + 1);
    std::ostringstream s;
    s << "evaluation of " << r.n_model << " model(s) against " << r.n_rdm << " data RDM(s) of " << r.n_pattern
      << " patterns: method " << eval_method_name(r.method) << ", inference " << eval_inference_name(r.inference);
    if (r.inference != EvalInference::Fixed) s << " (" << r.valid_samples << " of " << o.bootstrap << " resamples valid)";
    s << "\n\n";
    auto pad = [](const std::string& x, size_t n) { return x + std::string(n > x.size() ? n - x.size() : 0, ' '); };
    const std::string ci_head =
        level_text(o.ci) + (r.interval == EvalInterval::Percentile ? " percentile CI" : " t CI");
    s << pad("Model", w) << "|  Eval +- SEM     | " << pad(ci_head, 18) << " | p (against 0) | p (against NC)"
      << (r.p_perm.empty() ? "" : " | p (permutation)") << "\n";
    s << std::string(w + 86, '-') << "\n";
    for (int64_t m = 0; m < r.n_model; ++m) {
        s << pad(names[m], w) << "| " << pad(fmt(r.mean[m], "% .4f") + " +- " + fmt(r.se[m]), 16) << " | "
          << pad("[" + fmt(r.ci_low[m], "% .3f") + ", " + fmt(r.ci_high[m], "% .3f") + "]", 18) << " | "
          << pad(fmt_p(r.p_zero_corrected[m]), 13) << " | " << pad(fmt_p(r.p_noise_corrected[m]), 14);
        if (!r.p_perm.empty()) s << " | " << fmt_p(r.p_perm[m]);
        s << "\n";
    }
    s << "\nnoise ceiling: lower " << fmt(r.ceiling.lower) << ", upper " << fmt(r.ceiling.upper) << "\n";
    s << "intervals: " << interval_text(r, o) << "\n";
    const std::string warning = interval_warning(r, o);
    if (!warning.empty()) s << warning << "\n";
    s << "p-values: " << test_text(r, o) << ", " << correction_name(r.correction)
      << "-corrected over models (against 0, against NC) and model pairs\n";
    int sig = 0;
    for (int64_t i = 0; i < r.n_model; ++i)
        for (int64_t j = i + 1; j < r.n_model; ++j)
            if (r.pairwise_corrected[i * r.n_model + j] < 0.05) {
                s << "  " << names[i] << " vs " << names[j] << ": p = " << fmt_p(r.pairwise_corrected[i * r.n_model + j])
                  << " (" << (r.mean[i] > r.mean[j] ? names[i] : names[j]) << " better)\n";
                ++sig;
            }
    if (r.n_model > 1 && sig == 0) s << "  no model pair differs at p < 0.05\n";
    if (!r.has_variance)
        s << "one data RDM and no bootstrap: no standard errors" << (r.test == EvalTest::TTest ? " or t-tests" : "")
          << " (use --inference pattern)\n";
    return s.str();
}

std::string csv_value(double x) { return std::isnan(x) ? "" : fmt(x, "%.17g"); }

std::string html_escape(const std::string& x) {
    std::string o;
    for (char c : x) {
        if (c == '<') o += "&lt;";
        else if (c == '>') o += "&gt;";
        else if (c == '&') o += "&amp;";
        else if (c == '"') o += "&quot;";
        else o += c;
    }
    return o;
}

class EvaluateCommand : public Command {
public:
    void add_to(CLI::App& app) override {
        cmd_ = app.add_subcommand("evaluate",
                                  "evaluate model RDMs against data RDMs (rsatoolbox's eval_fixed / eval_bootstrap_*: "
                                  "noise ceiling, t-tests, pairwise comparisons)");
        add_device_and_quiet(*cmd_, device_, quiet_);
        CLI::Option* data = cmd_->add_option("--data", data_, "data RDMs: .npy (S x S or K x S x S), .npz, rsatoolbox HDF5")
                                ->check(CLI::ExistingFile);
        cmd_->add_option("--data-responses", data_responses_,
                         "data as response matrices instead (.npy, S x N, one per subject or session; their RDMs by "
                         "--dissimilarity, named by file)")
            ->check(CLI::ExistingFile)
            ->excludes(data);
        cmd_->add_option("--model-responses", model_responses_,
                         "models as response matrices (.npy, S x N, one per model; RDMs by --dissimilarity)")
            ->check(CLI::ExistingFile);
        add_dissimilarity_options(*cmd_, dissim_text_, "--dissimilarity");
        add_rdm_options(*cmd_, rdm_text_);
        cmd_->add_option("--models", models_, "model RDM files (same forms; named by file or key)")
            ->check(CLI::ExistingFile);
        cmd_->add_option("--models-dir", models_dir_, "every RDM file (.npy, .npz, .h5, .hdf5) of a folder");
        cmd_->add_option("--method", method_, "corr, cosine, spearman, rho-a, tau-a, corr_cov, cosine_cov")
            ->check(CLI::IsMember({"corr", "cosine", "spearman", "rho-a", "tau-a", "corr_cov", "cosine_cov"}));
        cmd_->add_option("--inference", inference_,
                         "fixed (eval_fixed), pattern (bootstrap of patterns), rdm (of data RDMs), both")
            ->check(CLI::IsMember({"fixed", "pattern", "rdm", "both"}));
        cmd_->add_option("--bootstrap", options_.bootstrap, "bootstrap resamples (pattern, rdm, both)")
            ->check(integer_in(2, 100000000, "2 to 100,000,000"));
        cmd_->add_option("--permutations", options_.permutations, "permutation test of stimulus labels (0: none)")
            ->check(integer_in(0, 100000000, "0 to 100,000,000"));
        cmd_->add_option("--seed", options_.seed, "seed of the resamples and permutations")->check(seed_check());
        cmd_->add_option("--test", test_,
                         "rsatoolbox's test_type of the p-values and intervals: t-test, bootstrap (counts over the "
                         "resamples, percentile intervals; bootstrap inference), ranksum (Wilcoxon over the data RDMs, "
                         "t intervals; inference fixed)")
            ->check(CLI::IsMember({"t-test", "bootstrap", "ranksum"}));
        cmd_->add_option("--correction", correction_, "multiple-comparison correction: fdr, bonferroni, none")
            ->check(CLI::IsMember({"fdr", "bonferroni", "none"}));
        cmd_->add_flag("--json", json_, "print one JSON object instead of the table");
        cmd_->add_option("--out", out_, "output folder (evaluate.json, evaluate.csv, pairwise.csv, figure, report)");
        cmd_->add_flag("--force", force_, "replace an existing --out folder");
        cmd_->add_flag("--no-figures", no_figures_, "no figure or report page in --out");
    }

    bool chosen() const override { return static_cast<bool>(*cmd_); }
    bool heavy_blas() const override { return true; }  // the bootstrap's quadratic forms are dtrmm

    int run(const std::string& command_line) override {
        enable_progress(quiet_, json_);
        options_.method = parse_eval_method(method_);
        options_.inference = parse_eval_inference(inference_);
        options_.correction = parse_correction(correction_);
        options_.test = parse_eval_test(test_);
        check_eval_test(options_.test, options_.inference, "--test", "--inference");  // before any output is claimed
        if (data_.empty() && data_responses_.empty())
            throw InputError("evaluate: no data (give --data FILE or --data-responses FILE ...)");
        const bool responses = !data_responses_.empty() || !model_responses_.empty();
        const DissimilaritySpec spec =
            responses ? dissimilarity_spec(dissim_text_, "--dissimilarity") : DissimilaritySpec();
        const RdmOptions rdm_opts = rdm_options(rdm_text_, quiet_ || json_);
        options_.max_memory_bytes = rdm_opts.max_gpu_bytes;  // --max-gpu-mem also caps the evaluation's batches
        options_.on_plan = [this](const EvaluatePlan& plan) {
            if (!quiet_ && !json_ && printing_rank() && plan.resamples + plan.permutations > 0)
                std::fprintf(stderr, "%s\n", describe(plan).c_str());
        };
        const std::vector<std::string> files = model_files(models_, models_dir_, !model_responses_.empty());
        // claimed before any work, by the printing rank alone (agreed: a refused claim is every rank's error)
        std::unique_ptr<OutputDir> out;
        agreed(world(), "claiming the output folder", [&] {
            if (!out_.empty() && printing_rank()) out = std::make_unique<OutputDir>(out_, force_);
        });
        std::vector<std::pair<std::string, bool>> staging;
        if (out) staging = {{out->staging(), true}, {out->lock_path(), false}};
        const auto kept = register_root_staging(world(), staging);  // removed by the others if rank 0 is killed
        auto backend = open_backend(device_, quiet_ || json_);

        const RdmSet data =
            data_.empty() ? rdms_of_responses(*backend, data_responses_, spec, rdm_opts) : read_rdm_set(data_);
        const std::string data_name = data_.empty() ? "--data-responses" : data_;
        std::vector<std::string> names;
        std::map<std::string, std::string> origin;
        std::vector<double> models;
        std::vector<std::string> sources = files;
        sources.insert(sources.end(), model_responses_.begin(), model_responses_.end());
        for (size_t i = 0; i < sources.size(); ++i) {
            const std::string& f = sources[i];
            check_interrupt("loading the models");
            const RdmSet set =
                i < files.size() ? read_rdm_set(f) : rdms_of_responses(*backend, {f}, spec, rdm_opts);
            if (set.patterns != data.patterns)
                throw InputError("model RDMs " + f + " have " + std::to_string(set.patterns) +
                                 " patterns but the data RDMs " + data_name + " have " + std::to_string(data.patterns) +
                                 " (shapes " + std::to_string(set.patterns) + " x " + std::to_string(set.patterns) +
                                 " and " + std::to_string(data.patterns) + " x " + std::to_string(data.patterns) + ")");
            for (int64_t k = 0; k < set.count; ++k) {
                const std::string& n = set.names[k];
                const auto it = origin.find(n);
                if (it != origin.end())
                    throw InputError("duplicate model name '" + n + "' (in " + it->second + " and " + f +
                                     "); rename one");
                origin[n] = f;
                names.push_back(n);
            }
            models.insert(models.end(), set.upper.begin(), set.upper.end());
        }
        const int64_t M = static_cast<int64_t>(names.size());

        std::unique_ptr<Progress> bar;
        // this rank's share of the resamples and permutations (the whole run on one process)
        Comm& comm = world();
        const int64_t work = rank_range(evaluate_bootstrap_count(options_), comm.rank(), comm.size()).count +
                             rank_range(options_.permutations, comm.rank(), comm.size()).count;
        if (work > 0) bar = std::make_unique<Progress>("evaluate", work);
        // the resamples and permutations divided among the ranks (one process: the whole run), gathered on every rank
        const EvaluateResult r = distributed_evaluate(comm, *backend, data.upper, data.count, models, M,
                                                      data.patterns, options_, [&](int64_t done, int64_t) {
                                                          if (bar) bar->update(done);
                                                      });
        bar.reset();
        if (!printing_rank()) return kExitOk;  // rank 0 prints and writes
        nlohmann::json j = evaluate_json(r, names, options_);
        j["data"] = data_.empty() ? nlohmann::json(data_responses_) : nlohmann::json(data_);
        j["model_files"] = sources;
        if (responses) j["dissimilarity"] = dissimilarity_name(spec.method);
        j["command"] = command_line;
        if (json_) {
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%s", table(r, names, options_).c_str());
        }
        if (out) {
            out->write([&] { write_outputs(*out, r, names, j); });
            out->commit();
            if (!quiet_) std::fprintf(stderr, "wrote %s\n", out_.c_str());
        }
        return kExitOk;
    }

private:
    void write_outputs(const OutputDir& out, const EvaluateResult& r, const std::vector<std::string>& names,
                       nlohmann::json& j) {
        std::ostringstream csv;
        csv << "name,evaluation,se,ci_low,ci_high,ci_type,p_zero,p_noise,p_zero_uncorrected,p_noise_uncorrected,point"
            << (r.p_perm.empty() ? "" : ",p_perm") << "\n";
        for (int64_t m = 0; m < r.n_model; ++m) {
            csv << '"' << names[m] << '"' << ',' << csv_value(r.mean[m]) << ',' << csv_value(r.se[m]) << ','
                << csv_value(r.ci_low[m]) << ',' << csv_value(r.ci_high[m]) << ',' << eval_interval_name(r.interval)
                << ',' << csv_value(r.p_zero_corrected[m])
                << ',' << csv_value(r.p_noise_corrected[m]) << ',' << csv_value(r.p_zero[m]) << ','
                << csv_value(r.p_noise[m]) << ',' << csv_value(r.point[m]);
            if (!r.p_perm.empty()) csv << ',' << csv_value(r.p_perm[m]);
            csv << "\n";
        }
        write_file_atomic(out.path("evaluate.csv"), csv.str());
        std::ostringstream pw;
        pw << "model";
        for (const auto& n : names) pw << ",\"" << n << '"';
        pw << "\n";
        for (int64_t i = 0; i < r.n_model; ++i) {
            pw << '"' << names[i] << '"';
            for (int64_t k = 0; k < r.n_model; ++k) pw << ',' << csv_value(r.pairwise_corrected[i * r.n_model + k]);
            pw << "\n";
        }
        write_file_atomic(out.path("pairwise.csv"), pw.str());
        write_file_atomic(out.path("evaluate.json"), j.dump(1) + "\n");
        bool figure = false;
        if (!no_figures_) {
            const nlohmann::json made = make_figures(
                out.staging(), out.target(), j.dump(),
                [this](const std::string& line) {
                    if (!quiet_) std::fprintf(stderr, "%s\n", line.c_str());
                },
                "evaluate_figure.py");
            figure = made.value("made", false);
        }
        std::ostringstream h;
        h << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>rsa_gpu evaluate</title>"
          << "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          << "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}td:first-child{text-align:left}</style>"
          << "</head><body>\n<h1>Model evaluation</h1>\n<p>" << r.n_model << " model(s) against " << r.n_rdm
          << " data RDM(s) of " << r.n_pattern << " patterns; method <b>" << eval_method_name(r.method)
          << "</b>, inference <b>" << eval_inference_name(r.inference) << "</b>";
        if (r.inference != EvalInference::Fixed) h << " (" << r.valid_samples << " valid resamples)";
        h << "; p-values from " << html_escape(test_text(r, options_)) << ", " << correction_name(r.correction)
          << "-corrected; intervals: " << html_escape(interval_text(r, options_)) << ".</p>\n";
        const std::string warning = interval_warning(r, options_);
        if (!warning.empty()) h << "<p>" << html_escape(warning) << ".</p>\n";
        if (figure) h << "<p><img src=\"figures/evaluate.png\" alt=\"model comparison\" style=\"max-width:900px\"></p>\n";
        h << "<table><tr><th>model</th><th>evaluation</th><th>SE</th><th>" << level_text(options_.ci)
          << (r.interval == EvalInterval::Percentile ? " percentile CI" : " t CI") << "</th><th>p (against 0)</th>"
          << "<th>p (against NC)</th></tr>\n";
        for (int64_t m = 0; m < r.n_model; ++m)
            h << "<tr><td>" << html_escape(names[m]) << "</td><td>" << fmt(r.mean[m]) << "</td><td>" << fmt(r.se[m])
              << "</td><td>[" << fmt(r.ci_low[m]) << ", " << fmt(r.ci_high[m]) << "]</td><td>"
              << fmt_p(r.p_zero_corrected[m]) << "</td><td>" << fmt_p(r.p_noise_corrected[m]) << "</td></tr>\n";
        h << "</table>\n<p>Noise ceiling: lower " << fmt(r.ceiling.lower) << ", upper " << fmt(r.ceiling.upper)
          << ".</p>\n<p>Files: evaluate.json, evaluate.csv, pairwise.csv.</p>\n</body></html>\n";
        write_file_atomic(out.path("report.html"), h.str());
    }

    CLI::App* cmd_ = nullptr;
    std::string device_ = "auto";
    bool quiet_ = false, json_ = false, force_ = false, no_figures_ = false;
    std::string data_, models_dir_, out_;
    std::vector<std::string> models_, data_responses_, model_responses_;
    DissimilarityOptionText dissim_text_;
    RdmOptionText rdm_text_;
    std::string method_ = "corr", inference_ = "fixed", correction_ = "fdr", test_ = "t-test";
    EvaluateOptions options_;
};

}  // namespace

std::unique_ptr<Command> make_evaluate_command() { return std::make_unique<EvaluateCommand>(); }

}  // namespace rsa::commands

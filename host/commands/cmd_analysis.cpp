// The main job (rsa_gpu without a subcommand): its options on the top-level command line, turned into an
// AnalysisConfig, checked before any work (check_analysis_config) and run (run_analysis, analysis.h).
#include "commands.h"
#include "rsa_gpu/analysis.h"
#include "rsa_gpu/measures.h"

namespace rsa::commands {

namespace {

class AnalysisCommand : public Command {
public:
    void add_to(CLI::App& app) override {
        app_ = &app;
        add_device_option(app, device_);
        app.add_option("--out", cfg_.out_dir, "output folder");
        app.add_flag("--force", cfg_.force,
                     "replace an existing output folder (and --save-model file), at the end and only if it is still "
                     "the one there at the start");
        app.add_option("--v1", cfg_.v1_path, "V1 data: the tutorial's npz (keys resp S x N, stimuli S in degrees)")
            ->check(CLI::ExistingFile);
        auto* resp_opt = app.add_option("--responses", cfg_.responses_path, "V1 data: response matrix .npy (S x N)");
        auto* ori_opt = app.add_option("--orientations", cfg_.orientations_path, "orientations .npy (S, degrees)");
        resp_opt->needs(ori_opt);
        ori_opt->needs(resp_opt);
        resp_opt->excludes("--v1");
        auto* sresp_opt =
            app.add_option("--sresp", cfg_.sresp_path, "trial-level V1: responses .npy (neurons x trials)")
                ->check(CLI::ExistingFile);
        auto* istim_opt =
            app.add_option("--istim", cfg_.istim_path, "trial-level V1: trial orientations .npy (radians)")
                ->check(CLI::ExistingFile);
        sresp_opt->needs(istim_opt);
        istim_opt->needs(sresp_opt);
        sresp_opt->excludes("--v1")->excludes("--responses");
        app.add_flag("--trials", cfg_.trials,
                     "per-trial analysis of trial-level data (T x T RDMs; default: 1-degree bins)");
        app.add_option("--v1-seed", cfg_.synthetic.seed, "seed of the embedded synthetic V1 recording")
            ->check(seed_check());
        app.add_option("--v1-neurons", cfg_.synthetic.neurons, "neurons of the embedded synthetic V1 recording")
            ->check(neurons_check());
        app.add_option("--v1-trials", cfg_.synthetic.trials, "trials of the embedded synthetic V1 recording (>= 360)")
            ->check(trials_check());
        add_training_options(app, cfg_.train);
        app.add_option("--load-model", cfg_.load_model,
                       "use these CNN weights (.npz, PyTorch state_dict names) instead of training")
            ->check(CLI::ExistingFile);
        app.add_option("--save-model", cfg_.save_model, "also save the trained CNN weights here (.npz)");
        app.add_option("--layers", layers_text_, "CNN layers to compare with V1 (conv, pool, fc, fc_relu, out)");
        app.add_flag("--no-cnn", cfg_.no_cnn, "skip the CNN: compare V1 with the pixel control only");
        app.add_option("--measures", measures_text_,
                       "RDM comparison measures: pearson, spearman, kendall, cosine (comma list)");
        app.add_flag("--cka", cfg_.cka, "also linear CKA and debiased CKA of each representation with the V1 responses");
        app.add_option("--bootstrap", cfg_.bootstrap,
                       "bootstrap resamples over stimuli for the 95% interval (-1: 10,000, fewer when R x S^2 x "
                       "(2 + 3 models) multiply-adds would exceed 3e14 on a GPU or 1.5e11 on the CPU, skipped when "
                       "fewer than 1,000 fit; 0: off)")
            ->check(CLI::Range(-1, 100000000));
        app.add_option("--permutations", cfg_.permutations,
                       "permutations for the p-value (-1: 10,000, fewer when P x models x S^2 / 2 pair visits would "
                       "exceed 6e11 on a GPU or 1.5e10 on the CPU, skipped when fewer than 1,000 fit; 0: off)")
            ->check(CLI::Range(-1, 100000000));
        app.add_flag("--noise-ceiling", cfg_.noise_ceiling,
                     "split-half noise ceiling of V1 (always computed for trial-level data)");
        app.add_option("--stats-seed", cfg_.stats_seed, "seed of the bootstrap, permutations and splits")
            ->check(seed_check());
        app.add_flag("--save-v1", cfg_.save_v1, "write the V1 responses (resp_v1.npy) even when larger than 64 MB");
        app.add_flag("--no-figures", cfg_.no_figures, "skip the figures and report.html (tools/make_figures.py)");
        add_constant_rows_option(app, rdm_text_.constant_rows);
        app.add_option("--sf", cfg_.grating.sf, "grating spatial frequency (cycles per pixel / 2 pi, as the tutorial)")
            ->check(sf_check());
        app.add_option("--res", cfg_.grating.res, "grating resolution (0.1 gives 48 x 64 images)")->check(res_check());
        add_rdm_options(app, rdm_text_);
        app.add_option("--dissimilarity", dissimilarity_,
                       "the V1 RDM: correlation, or crossnobis (from trial-level V1: 1-degree bins as conditions, "
                       "split-half runs); representations stay correlation")
            ->capture_default_str();
        app.add_flag("--quiet", cfg_.quiet, "print nothing but errors");
        app.add_flag("--json", cfg_.json, "print one machine-readable summary line on stdout");
    }

    bool chosen() const override { return app_->get_subcommands().empty(); }
    bool heavy_blas() const override { return true; }

    int run(const std::string& command_line) override {
        enable_progress(cfg_.quiet, cfg_.json);
        cfg_.rdm = rdm_options(rdm_text_, cfg_.quiet);
        cfg_.dissimilarity = parse_dissimilarity(dissimilarity_, "--dissimilarity");
        cfg_.layers = split_list(layers_text_, "--layers", "pool,fc");
        cfg_.measures.clear();
        for (const std::string& m : split_list(measures_text_, "--measures", "pearson,spearman"))
            cfg_.measures.push_back(parse_measure(m));
        check_analysis_config(cfg_);  // before a device is opened or an output claimed
        std::string note;
        auto backend = make_backend(parse_device(device_), &note);
        cfg_.device_note = note;
        cfg_.command_line = command_line;
        return run_analysis(*backend, cfg_);
    }

private:
    CLI::App* app_ = nullptr;
    AnalysisConfig cfg_;
    std::string device_ = "auto";
    std::string layers_text_ = "pool,fc", measures_text_ = "pearson";
    std::string dissimilarity_ = "correlation";
    RdmOptionText rdm_text_;
};

}  // namespace

std::unique_ptr<Command> make_analysis_command() { return std::make_unique<AnalysisCommand>(); }

}  // namespace rsa::commands

// `rsa_gpu synthetic`: the embedded synthetic V1 recording written as the tutorial's npz (resp, stimuli) or, with
// --trial-level, as a trial-level npz (sresp neurons x trials, istim radians).
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/output_dir.h"
#include "rsa_gpu/synthetic_v1.h"

namespace rsa::commands {

namespace {

class SyntheticCommand : public Command {
public:
    void add_to(CLI::App& app) override {
        cmd_ = app.add_subcommand("synthetic", "write the embedded synthetic V1 recording as the tutorial's npz");
        add_device_and_quiet(*cmd_, device_, quiet_);
        cmd_->add_option("--out", out_, "output .npz (keys resp 360 x N, stimuli 360)")->required();
        cmd_->add_flag("--force", force_, "replace an existing output file");
        cmd_->add_option("--seed", params_.seed, "seed")->check(seed_check());
        cmd_->add_option("--neurons", params_.neurons, "number of neurons")->check(neurons_check());
        cmd_->add_option("--trials", params_.trials, "number of trials (>= 360)")->check(trials_check());
        cmd_->add_flag("--trial-level", trial_level_,
                       "write the trial-level recording (sresp neurons x trials, istim radians)");
    }

    bool chosen() const override { return static_cast<bool>(*cmd_); }

    int run(const std::string&) override {
        enable_progress(quiet_);
        auto backend = open_backend(device_, quiet_);
        OutputFile out(out_, force_, "--out");  // claimed before any work
        if (trial_level_) {
            const SyntheticV1Trials t = backend->synthetic_v1_trials(params_);
            check_interrupt("generating the synthetic recording");
            std::vector<float> sresp(t.resp.data.size()), istim;
            for (int64_t k = 0; k < t.resp.rows; ++k)
                for (int64_t n = 0; n < t.resp.cols; ++n)
                    sresp[static_cast<size_t>(n * t.resp.rows + k)] = t.resp.at(k, n);
            for (float deg : t.orientation) istim.push_back(static_cast<float>(deg * M_PI / 180.0));
            out.write([&](const std::string& p) {
                npz_save(p, {{"sresp", {{t.resp.cols, t.resp.rows}, sresp}},
                             {"istim", {{static_cast<int64_t>(istim.size())}, istim}}});
            });
            out.commit();
            std::fprintf(stderr, "wrote %s: sresp %lld x %lld (neurons x trials), istim %zu (radians)\n",
                         out_.c_str(), static_cast<long long>(t.resp.cols), static_cast<long long>(t.resp.rows),
                         istim.size());
            return kExitOk;
        }
        const SyntheticV1 sv = backend->synthetic_v1(params_);
        check_interrupt("generating the synthetic recording");
        out.write([&](const std::string& p) {
            npz_save(p, {{"resp", {{sv.resp.rows, sv.resp.cols}, sv.resp.data}},
                         {"stimuli", {{static_cast<int64_t>(sv.stimuli.size())}, sv.stimuli}}});
        });
        out.commit();
        std::fprintf(stderr, "wrote %s: resp %lld x %lld, stimuli %zu\n", out_.c_str(),
                     static_cast<long long>(sv.resp.rows), static_cast<long long>(sv.resp.cols), sv.stimuli.size());
        return kExitOk;
    }

private:
    CLI::App* cmd_ = nullptr;
    std::string device_ = "auto";
    bool quiet_ = false, force_ = false, trial_level_ = false;
    std::string out_;
    SyntheticV1Params params_;
};

}  // namespace

std::unique_ptr<Command> make_synthetic_command() { return std::make_unique<SyntheticCommand>(); }

}  // namespace rsa::commands

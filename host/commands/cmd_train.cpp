// `rsa_gpu train`: train the tutorial's CNN (printing its loss lines) and save its weights (.npz, PyTorch
// state_dict names).
#include <cstdio>

#include "commands.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/grating.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/output_dir.h"
#include "rsa_gpu/train_network.h"

namespace rsa::commands {

namespace {

class TrainCommand : public Command {
public:
    void add_to(CLI::App& app) override {
        cmd_ = app.add_subcommand("train", "train the tutorial's CNN and save its weights (.npz)");
        add_device_and_quiet(*cmd_, device_, quiet_);
        add_training_options(*cmd_, train_);
        cmd_->add_option("--save-model", out_, "output .npz (PyTorch state_dict names)")->required();
        cmd_->add_flag("--force", force_, "replace an existing output file");
    }

    bool chosen() const override { return static_cast<bool>(*cmd_); }
    bool heavy_blas() const override { return true; }

    int run(const std::string&) override {
        enable_progress(quiet_);
        std::string note;
        auto backend = make_backend(parse_device(device_), &note);
        OutputFile out(out_, force_, "--save-model");  // claimed before any work
        if (!quiet_) std::printf("%s\n", note.c_str());
        double stimuli_ms = 0, training_ms = 0;
        const TrainedNetwork net =
            train_tutorial_network(*backend, train_, GratingParams{}, quiet_, &stimuli_ms, &training_ms);
        check_interrupt("training");
        out.write([&](const std::string& p) { cnn_save_npz(p, net.params); });
        out.commit();
        if (!quiet_)
            std::printf("training-set accuracy: %d / %d; training took %.1f ms; weights written to %s\n", net.correct,
                        net.total, training_ms, out_.c_str());
        return kExitOk;
    }

private:
    CLI::App* cmd_ = nullptr;
    std::string device_ = "auto";
    bool quiet_ = false, force_ = false;
    TrainConfig train_;
    std::string out_;
};

}  // namespace

std::unique_ptr<Command> make_train_command() { return std::make_unique<TrainCommand>(); }

}  // namespace rsa::commands

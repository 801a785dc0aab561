// `rsa_gpu cka X.npy Y.npy`: linear CKA (or its debiased form) of two response matrices with the same stimuli.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/measures.h"
#include "rsa_gpu/npy.h"

namespace rsa::commands {

namespace {

class CkaCommand : public Command {
public:
    void add_to(CLI::App& app) override {
        cmd_ = app.add_subcommand("cka", "linear CKA of two response matrices with the same stimuli (rows)");
        add_device_and_quiet(*cmd_, device_, quiet_);
        cmd_->add_option("X", x_, "first response matrix .npy (S x N1)")->required()->check(CLI::ExistingFile);
        cmd_->add_option("Y", y_, "second response matrix .npy (S x N2)")->required()->check(CLI::ExistingFile);
        cmd_->add_flag("--debiased", debiased_, "the debiased (unbiased HSIC) form; needs S >= 4");
        cmd_->add_flag("--json", json_, "print one JSON line instead of the number");
    }

    bool chosen() const override { return static_cast<bool>(*cmd_); }
    bool heavy_blas() const override { return true; }

    int run(const std::string&) override {
        enable_progress(quiet_);
        auto backend = open_backend(device_, quiet_);
        const Matrix x = npy_load_matrix(x_), y = npy_load_matrix(y_);
        if (x.rows != y.rows)
            throw InputError("cka: " + x_ + " has " + std::to_string(x.rows) + " rows (stimuli) but " + y_ + " has " +
                             std::to_string(y.rows));
        check_cka_inputs(x, y, debiased_, x_, y_);  // 3+ stimuli, no constant response matrix
        const CkaResult c = backend->cka(x, y);
        const double v = debiased_ ? c.debiased : c.plain;
        check_interrupt("CKA");
        if (json_)
            std::printf("%s\n", nlohmann::json({{"measure", debiased_ ? "cka_debiased" : "cka"}, {"value", v},
                                                {"x", x_}, {"y", y_}, {"device", backend->name()}})
                                    .dump()
                                    .c_str());
        else
            std::printf("%.9g\n", v);
        return kExitOk;
    }

private:
    CLI::App* cmd_ = nullptr;
    std::string device_ = "auto";
    bool quiet_ = false, debiased_ = false, json_ = false;
    std::string x_, y_;
};

}  // namespace

std::unique_ptr<Command> make_cka_command() { return std::make_unique<CkaCommand>(); }

}  // namespace rsa::commands

// `rsa_gpu stimuli`: draw gratings at given angles (--angles or --angles-from) into a B x height x width float32
// .npy.
#include <cstdio>

#include "commands.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/grating.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/output_dir.h"

namespace rsa::commands {

namespace {

class StimuliCommand : public Command {
public:
    void add_to(CLI::App& app) override {
        cmd_ = app.add_subcommand("stimuli", "draw gratings (B x height x width float32 .npy)");
        add_device_and_quiet(*cmd_, device_, quiet_);
        cmd_->add_option("--angles", angles_text_, "comma-separated angles in degrees, e.g. -90,-45,0,45,90");
        cmd_->add_option("--angles-from", angles_from_, ".npy with the angles (1-D)")->check(CLI::ExistingFile);
        cmd_->add_option("--out", out_, "output .npy")->required();
        cmd_->add_flag("--force", force_, "replace an existing output file");
        cmd_->add_option("--sf", params_.sf, "spatial frequency")->check(sf_check());
        cmd_->add_option("--res", params_.res, "resolution (0.1 gives 48 x 64)")->check(res_check());
    }

    bool chosen() const override { return static_cast<bool>(*cmd_); }

    int run(const std::string&) override {
        enable_progress(quiet_);
        const bool given = cmd_->count("--angles") > 0, from_file = cmd_->count("--angles-from") > 0;
        if (given && from_file) throw InputError("stimuli: give exactly one of --angles or --angles-from, not both");
        if (!given && !from_file) throw InputError("stimuli: give one of --angles or --angles-from");
        const std::vector<float> listed = given ? parse_angles(angles_text_) : std::vector<float>{};
        check_grating_params(params_);  // the image size, in 64 bits and bounded
        auto backend = open_backend(device_, quiet_);

        OutputFile out(out_, force_, "--out");  // claimed before any work
        const std::vector<float> angles = given ? listed : npy_load_vector(angles_from_);
        const Array g = backend->gratings(angles, params_);
        check_interrupt("drawing the gratings");
        const std::vector<int64_t> shape = {g.rows(), params_.height(), params_.width()};
        out.write([&](const std::string& p) { npy_save_f32(p, g.host(), shape); });  // straight from the result
        out.commit();
        std::fprintf(stderr, "wrote %s: %lld gratings of %d x %d\n", out_.c_str(), static_cast<long long>(g.rows()),
                     params_.height(), params_.width());
        return kExitOk;
    }

private:
    CLI::App* cmd_ = nullptr;
    std::string device_ = "auto";
    bool quiet_ = false, force_ = false;
    std::string angles_text_, angles_from_, out_;
    GratingParams params_;
};

}  // namespace

std::unique_ptr<Command> make_stimuli_command() { return std::make_unique<StimuliCommand>(); }

}  // namespace rsa::commands

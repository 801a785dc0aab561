// `rsa_gpu compare A.npy B.npy`: two RDMs compared over their strict upper triangles (Pearson, Spearman, Kendall
// tau-a or cosine); NaN pairs (constant rows kept with --constant-rows nan) are skipped and counted.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "rsa_gpu/compare.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/measures.h"
#include "rsa_gpu/npy.h"

namespace rsa::commands {

namespace {

// An RDM read for comparison: square, NaN allowed (constant rows kept as NaN), Inf rejected (by check_rdm_pair).
Matrix load_rdm(const std::string& path) {
    return npy_load_matrix(path, MatrixRules{false, false, "an RDM must be a 2-D array"});
}

class CompareCommand : public Command {
public:
    void add_to(CLI::App& app) override {
        cmd_ = app.add_subcommand(
            "compare", "compare two RDMs over their strict upper triangles (Pearson, Spearman, Kendall, cosine)");
        add_device_and_quiet(*cmd_, device_, quiet_);
        cmd_->add_option("--method", method_, "pearson, spearman, kendall (tau-a) or cosine")
            ->check(CLI::IsMember({"pearson", "spearman", "kendall", "cosine"}));
        cmd_->add_option("A", a_, "first RDM .npy")->required()->check(CLI::ExistingFile);
        cmd_->add_option("B", b_, "second RDM .npy")->required()->check(CLI::ExistingFile);
        cmd_->add_flag("--json", json_, "print one JSON line instead of the number");
    }

    bool chosen() const override { return static_cast<bool>(*cmd_); }

    int run(const std::string&) override {
        enable_progress(quiet_);
        auto backend = open_backend(device_, quiet_);
        const Matrix a = load_rdm(a_), b = load_rdm(b_);
        check_rdm_pair(a, b, a_.c_str(), b_.c_str());
        const CompareResult r = backend->compare(a, {Array(b)}, {parse_measure(method_)})[0][0];
        check_interrupt("the comparison");
        if (r.skipped)
            std::fprintf(stderr, "skipped %lld of %lld upper-triangle pairs where either RDM is NaN\n",
                         static_cast<long long>(r.skipped), static_cast<long long>(r.skipped + r.pairs));
        if (json_) {
            const nlohmann::json j = {{"measure", method_}, {"value", r.value},  {"pairs", r.pairs},
                                      {"skipped_pairs", r.skipped}, {"a", a_}, {"b", b_},
                                      {"device", backend->name()}};
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%.9g\n", r.value);
        }
        return kExitOk;
    }

private:
    CLI::App* cmd_ = nullptr;
    std::string device_ = "auto";
    bool quiet_ = false, json_ = false;
    std::string method_ = "pearson", a_, b_;
};

}  // namespace

std::unique_ptr<Command> make_compare_command() { return std::make_unique<CompareCommand>(); }

}  // namespace rsa::commands

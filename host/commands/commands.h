// The rsa_gpu commands, one file each (host/commands/cmd_*.cpp, built into the rsa_gpu executable with CLI11): a
// command adds its options to the command line and runs with them. host/main.cpp builds the CLI::App from
// all_commands(), runs the one the command line chose and maps exceptions to exit codes.
//
// Shared here (options.cpp): the options several commands take (--device, --quiet, --force, the RDM options, the
// training hyper-parameters, the grating and synthetic-recording sizes) and the checks of numeric option text,
// made on the text before conversion so that no value wraps or turns into inf/nan silently (exit 2, nothing else
// done).
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/dissimilarity.h"
#include "rsa_gpu/rdm.h"

namespace rsa::commands {

class Command {
public:
    virtual ~Command() = default;
    // Adds the command to `app`: a subcommand with its options, or (the main job) the top-level options.
    virtual void add_to(CLI::App& app) = 0;
    // After parsing: whether the command line chose this command.
    virtual bool chosen() const = 0;
    // Runs it; returns the exit code. Throws InputError, RuntimeError, Interrupted (main.cpp maps them).
    // `command_line` is the whole command line as given (recorded in results.json).
    virtual int run(const std::string& command_line) = 0;
    // Whether its work is mostly BLAS (SYRK, GEMM): main.cpp then makes sure OpenBLAS runs the kernels the CPU can
    // (blas_setup.h), at the price of one restart of the process (~30 ms). Light commands do not pay it.
    virtual bool heavy_blas() const { return false; }
};

// The main job first (the top-level options), then the subcommands in --help order.
std::vector<std::unique_ptr<Command>> all_commands();

std::unique_ptr<Command> make_analysis_command();
std::unique_ptr<Command> make_stimuli_command();
std::unique_ptr<Command> make_rdm_command();
std::unique_ptr<Command> make_compare_command();
std::unique_ptr<Command> make_cka_command();
std::unique_ptr<Command> make_evaluate_command();
std::unique_ptr<Command> make_train_command();
std::unique_ptr<Command> make_synthetic_command();
std::unique_ptr<Command> make_bench_command();

// ---- options shared by several commands

// --device auto|cpu|N.
void add_device_option(CLI::App& app, std::string& device);
// A subcommand's --device and --quiet ("print nothing but results and errors").
void add_device_and_quiet(CLI::App& app, std::string& device, bool& quiet);

// --precision and --max-gpu-mem (the main job and `rdm`), and --constant-rows.
struct RdmOptionText {
    std::string precision = "fp32";
    std::string max_gpu_mem;  // empty: no cap
    std::string constant_rows = "fail";
};
void add_rdm_options(CLI::App& app, RdmOptionText& text);
void add_constant_rows_option(CLI::App& app, std::string& constant_rows);
// The RDM engine's options from their text; the memory plan of large jobs goes to stderr unless `quiet`.
RdmOptions rdm_options(const RdmOptionText& text, bool quiet);

// The dissimilarity of response matrices (`rdm` and `evaluate`): `method_option` (rdm: --method; evaluate:
// --dissimilarity) correlation|euclidean|mahalanobis|crossnobis, --noise FILE.npy|diag, --runs R.npy,
// --conditions C.npy (dissimilarity.h); dissimilarity_spec parses them and reads the label files.
struct DissimilarityOptionText {
    std::string method = "correlation", noise, runs, conditions;
};
void add_dissimilarity_options(CLI::App& app, DissimilarityOptionText& text, const std::string& method_option);
DissimilaritySpec dissimilarity_spec(const DissimilarityOptionText& text, const std::string& method_option);

// --epochs, --batch, --lr, --momentum, --train-size, --seed with their ranges: the one check of the training
// hyper-parameters (the main job and `train`).
void add_training_options(CLI::App& app, TrainConfig& train);

// The checks of option text (CLI11 validators).
CLI::Validator real_in(double lo, double hi, bool lo_open, bool hi_open, const std::string& range_text);
CLI::Validator integer_in(long long lo, long long hi, const std::string& range_text);
CLI::Validator seed_check();  // an integer 0 to 2^64 - 1 ("-1" would otherwise wrap)
CLI::Validator sf_check();    // --sf: finite, > 0, <= 1e6
CLI::Validator res_check();   // --res: likewise (the image size is checked by check_grating_params)
CLI::Validator neurons_check();  // --v1-neurons, synthetic --neurons: 1 to 10,000,000
CLI::Validator trials_check();   // --v1-trials, synthetic --trials: 360 to 10,000,000

// ---- parsing of option values (InputError naming the option)

// A comma-separated list; an empty list or an empty item is an InputError naming the option.
std::vector<std::string> split_list(const std::string& text, const std::string& option, const std::string& example);
// --angles: finite numbers.
std::vector<float> parse_angles(const std::string& text);
// --max-gpu-mem: "512M", "8G", "1.5GiB", "1000000" -> bytes; at least one byte, finite, below 2^64 (16 EiB).
uint64_t parse_bytes(const std::string& text);
ConstantRows parse_constant_rows(const std::string& text);

// ---- running

// Progress bars when stdout is a terminal and the run is neither quiet nor JSON.
void enable_progress(bool quiet, bool json = false);
// The backend of --device; the line saying which device was taken (and why) goes to stderr unless `quiet`, and to
// `note` when given. A rank of a distributed run asks for the GPU of its rank on its node (--device auto).
std::unique_ptr<Backend> open_backend(const std::string& device, bool quiet, std::string* note = nullptr);

// The command line as given, and its arguments for CLI11 (a negative --angles list glued to its option).
std::string joined_args(int argc, char** argv);
std::vector<std::string> cli_arguments(int argc, char** argv);

}  // namespace rsa::commands

// Options shared by the rsa_gpu commands (commands.h): --device/--quiet, the RDM options, the training
// hyper-parameters with their ranges, the checks of numeric option text, list and size parsers, and the list of
// commands.
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "commands.h"
#include "rsa_gpu/distributed.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/progress.h"

namespace rsa::commands {

std::vector<std::unique_ptr<Command>> all_commands() {
    std::vector<std::unique_ptr<Command>> commands;
    commands.push_back(make_analysis_command());
    commands.push_back(make_stimuli_command());
    commands.push_back(make_rdm_command());
    commands.push_back(make_compare_command());
    commands.push_back(make_cka_command());
    commands.push_back(make_evaluate_command());
    commands.push_back(make_train_command());
    commands.push_back(make_synthetic_command());
    commands.push_back(make_bench_command());
    return commands;
}

// ---- shared options

void add_device_option(CLI::App& app, std::string& device) {
    app.add_option("--device", device, "auto (GPU 0 if usable, else CPU), cpu, or a GPU index");
}

void add_device_and_quiet(CLI::App& app, std::string& device, bool& quiet) {
    add_device_option(app, device);
    app.add_flag("--quiet", quiet, "print nothing but results and errors");
}

void add_rdm_options(CLI::App& app, RdmOptionText& text) {
    app.add_option("--precision", text.precision, "RDM products: fp32 (exact) or tf32 (tensor cores)")
        ->check(CLI::IsMember({"fp32", "tf32"}));
    app.add_option("--max-gpu-mem", text.max_gpu_mem,
                   "cap on the memory the RDM engine (and evaluate's resample batches) uses, e.g. 8G (larger inputs "
                   "are streamed or tiled)");
}

void add_constant_rows_option(CLI::App& app, std::string& constant_rows) {
    app.add_option("--constant-rows", constant_rows, "zero-variance stimulus rows: fail or nan")
        ->check(CLI::IsMember({"fail", "nan"}));
}

void add_dissimilarity_options(CLI::App& app, DissimilarityOptionText& text, const std::string& method_option) {
    app.add_option(method_option, text.method,
                   "correlation (1 - Pearson r), euclidean (squared distance / N), mahalanobis, crossnobis")
        ->capture_default_str();
    app.add_option("--noise", text.noise,
                   "noise precision for mahalanobis / crossnobis: an N x N .npy, or 'diag' (from the residuals around "
                   "the condition means); default the identity");
    app.add_option("--runs", text.runs, "crossnobis: each row's run (.npy, integers)")->check(CLI::ExistingFile);
    app.add_option("--conditions", text.conditions,
                   "each row's condition (.npy, integers): rows averaged per condition (crossnobis: required)")
        ->check(CLI::ExistingFile);
}

DissimilaritySpec dissimilarity_spec(const DissimilarityOptionText& text, const std::string& method_option) {
    DissimilaritySpec spec;
    spec.method = parse_dissimilarity(text.method, method_option);
    spec.noise = parse_noise(text.noise);
    if (!text.conditions.empty()) spec.conditions = load_labels(text.conditions, text.conditions);
    if (!text.runs.empty()) spec.runs = load_labels(text.runs, text.runs);
    spec.conditions_what = text.conditions.empty() ? "--conditions" : text.conditions;
    spec.runs_what = text.runs.empty() ? "--runs" : text.runs;
    return spec;
}

RdmOptions rdm_options(const RdmOptionText& text, bool quiet) {
    RdmOptions options;
    options.constant_rows = parse_constant_rows(text.constant_rows);
    options.precision = parse_precision(text.precision);
    if (!text.max_gpu_mem.empty()) options.max_gpu_bytes = parse_bytes(text.max_gpu_mem);
    options.on_plan = [quiet](const std::string& plan) {
        if (!quiet) std::fprintf(stderr, "memory plan:\n%s\n", plan.c_str());
    };
    return options;
}

void add_training_options(CLI::App& app, TrainConfig& train) {
    app.add_option("--epochs", train.epochs, "training epochs")->check(integer_in(1, 1000000, "an integer 1 to 1,000,000"));
    app.add_option("--batch", train.batch, "mini-batch size")->check(integer_in(1, 100000, "an integer 1 to 100,000"));
    app.add_option("--lr", train.lr, "SGD learning rate")
        ->check(real_in(0, 1e6, true, false, "a finite number > 0 and <= 1e6"));
    app.add_option("--momentum", train.momentum, "SGD momentum (PyTorch's definition)")
        ->check(real_in(0, 1, false, true, "a finite number >= 0 and < 1"));
    app.add_option("--train-size", train.train_size, "number of training gratings")
        ->check(integer_in(1, 100000000, "an integer 1 to 100,000,000"));
    app.add_option("--seed", train.seed, "training seed (initial weights, training angles, shuffles)")
        ->check(seed_check());
    app.add_option_function<std::string>(
           "--cnn-kernels", [&train](const std::string& v) { train.kernels = parse_cnn_kernels(v); },
           "GPU training kernels: cudnn (cuDNN convolution and pooling; equal to the CPU twin within FP32 rounding "
           "where max pooling has no ties) or exact (the CPU twin's arithmetic, tied maxima routed alike); with "
           "--device cpu both run the same CPU twin")
        ->check(CLI::IsMember({"cudnn", "exact"}))
        ->default_str(cnn_kernels_name(train.kernels));
}

// ---- checks of option text

namespace {

std::string number_text(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.10g", v);
    return b;
}

}  // namespace

CLI::Validator real_in(double lo, double hi, bool lo_open, bool hi_open, const std::string& range_text) {
    const std::string shown = std::string(lo_open ? "(" : "[") + number_text(lo) + ", " + number_text(hi) +
                              (hi_open ? ")" : "]");
    return CLI::Validator(
        [=](std::string& input) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(input.c_str(), &end);
            if (input.empty() || end == input.c_str() || *end != '\0')
                return "'" + input + "' is not a number (expected " + range_text + ")";
            if (!std::isfinite(v)) return "'" + input + "' is not finite (expected " + range_text + ")";
            if (v < lo || v > hi || (lo_open && v == lo) || (hi_open && v == hi))
                return number_text(v) + " is out of range (expected " + range_text + ")";
            return "";
        },
        "in " + shown);
}

CLI::Validator integer_in(long long lo, long long hi, const std::string& range_text) {
    return CLI::Validator(
        [=](std::string& input) -> std::string {
            char* end = nullptr;
            errno = 0;
            const long long v = std::strtoll(input.c_str(), &end, 10);
            if (input.empty() || end == input.c_str() || *end != '\0')
                return "'" + input + "' is not an integer (expected " + range_text + ")";
            if (errno == ERANGE || v < lo || v > hi)
                return "'" + input + "' is out of range (expected " + range_text + ")";
            return "";
        },
        "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

CLI::Validator seed_check() {
    return CLI::Validator(
        [](std::string& input) -> std::string {
            if (input.empty() || input.find_first_not_of("0123456789") != std::string::npos)
                return "'" + input + "' is not a seed (expected an integer 0 to 18446744073709551615)";
            errno = 0;
            std::strtoull(input.c_str(), nullptr, 10);
            if (errno == ERANGE) return "'" + input + "' is out of range (expected an integer 0 to 18446744073709551615)";
            return "";
        },
        ">= 0");
}

CLI::Validator sf_check() { return real_in(0, 1e6, true, false, "a finite number > 0 and <= 1e6"); }
CLI::Validator res_check() { return real_in(0, 1e6, true, false, "a finite number > 0; 0.1 gives 48 x 64 images"); }
CLI::Validator neurons_check() { return integer_in(1, 10000000, "an integer 1 to 10,000,000"); }
CLI::Validator trials_check() { return integer_in(360, 10000000, "an integer 360 to 10,000,000"); }

// ---- parsing of option values

std::vector<std::string> split_list(const std::string& text, const std::string& option, const std::string& example) {
    std::vector<std::string> items;
    size_t start = 0;
    for (;;) {
        const size_t comma = text.find(',', start);
        std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.pop_back();
        while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.erase(item.begin());
        if (item.empty())
            throw InputError(option + ": " + (text.find_first_not_of(" \t") == std::string::npos
                                                  ? std::string("the list is empty")
                                                  : "an empty item in '" + text + "'") +
                             " (expected e.g. " + example + ")");
        items.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return items;
}

std::vector<float> parse_angles(const std::string& text) {
    std::vector<float> angles;
    for (const std::string& item : split_list(text, "--angles", "-90,-45,0,45,90")) {
        char* end = nullptr;
        const float v = std::strtof(item.c_str(), &end);
        if (end == item.c_str() || *end != '\0' || !std::isfinite(v))
            throw InputError("--angles: '" + item + "' is not a finite number (expected e.g. -90,-45,0,45,90)");
        angles.push_back(v);
    }
    return angles;
}

uint64_t parse_bytes(const std::string& text) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    std::string unit(end);
    for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    double mult = 1;
    if (unit == "" || unit == "B") mult = 1;
    else if (unit == "K" || unit == "KB" || unit == "KIB") mult = 1024.0;
    else if (unit == "M" || unit == "MB" || unit == "MIB") mult = 1024.0 * 1024;
    else if (unit == "G" || unit == "GB" || unit == "GIB") mult = 1024.0 * 1024 * 1024;
    else if (unit == "T" || unit == "TB" || unit == "TIB") mult = 1024.0 * 1024 * 1024 * 1024;
    else mult = -1;
    const bool number = end != text.c_str() && !std::isspace(static_cast<unsigned char>(text[0])) &&
                        text.find_first_of("xXpP") == std::string::npos;  // no hex floats
    if (!number || mult < 0 || !std::isfinite(v) || !(v > 0))
        throw InputError("--max-gpu-mem: expected a positive size such as 512M or 8G, got '" + text + "'");
    const double bytes = v * mult;
    if (!(bytes >= 1.0) || !(bytes < 18446744073709551616.0))  // [1 B, 2^64)
        throw InputError("--max-gpu-mem: '" + text + "' is out of range (1 byte to 16 EiB)");
    return static_cast<uint64_t>(bytes);
}

ConstantRows parse_constant_rows(const std::string& text) {
    if (text == "fail") return ConstantRows::Fail;
    if (text == "nan") return ConstantRows::Nan;
    throw InputError("--constant-rows: expected fail or nan, got '" + text + "'");
}

// ---- running

void enable_progress(bool quiet, bool json) { set_progress_enabled(isatty(fileno(stdout)) && !quiet && !json); }

std::unique_ptr<Backend> open_backend(const std::string& device, bool quiet, std::string* note_out) {
    std::string note;
    DeviceRequest request = parse_device(device);
    // A rank of a distributed run takes the GPU of its rank on its node (--device auto).
    if (request.automatic && distributed_run()) request.index = world().local_rank();
    auto backend = make_backend(request, &note);
    if (!quiet) std::fprintf(stderr, "%s\n", note.c_str());
    if (note_out) *note_out = note;
    return backend;
}

std::string joined_args(int argc, char** argv) {
    std::string s;
    for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
    return s;
}

std::vector<std::string> cli_arguments(int argc, char** argv) {
    // CLI11 reads "-90,-45" after --angles as an option name; glue such a value to its option.
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if ((a == "--angles") && i + 1 < argc && argv[i + 1][0] == '-' && argv[i + 1][1] != '-') {
            a += "=" + std::string(argv[++i]);
        }
        args.push_back(a);
    }
    return args;
}

}  // namespace rsa::commands

// rsa_gpu command line: the main job (no subcommand) and the stimuli, rdm, compare, cka, train and synthetic
// commands. Every numeric option is range-checked here. Exit codes: 0 success, 2 bad usage or input (anything the
// user can fix by changing the command or the input, an unwritable or taken output path included), 1 runtime
// failure of the machine, 130 / 143 interrupted by SIGINT / SIGTERM (nothing written).
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "rsa_gpu/analysis.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/grating.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/output_dir.h"
#include "rsa_gpu/progress.h"
#include "rsa_gpu/v1_data.h"

using namespace rsa;

namespace {

// A comma-separated list; an empty list or an empty item is an InputError naming the option.
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

// "512M", "8G", "1.5GiB", "1000000" -> bytes; at least one byte, finite, below 2^64 (16 EiB).
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

std::string number_text(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.10g", v);
    return b;
}

// CLI11 checks, on the text before conversion, so that no value wraps or turns into inf/nan silently.
// A finite real number in [lo, hi] (either end excluded when open).
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

// An integer in [lo, hi], written in decimal digits (no exponent, no fraction, no overflow).
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

// A seed: a non-negative decimal integer below 2^64 ("-1" would otherwise wrap to 2^64 - 1).
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

ConstantRows parse_constant_rows(const std::string& text) {
    if (text == "fail") return ConstantRows::Fail;
    if (text == "nan") return ConstantRows::Nan;
    throw InputError("--constant-rows: expected fail or nan, got '" + text + "'");
}

// An RDM read for comparison: square, NaN allowed (constant rows kept as NaN), Inf rejected.
Matrix load_rdm(const std::string& path) {
    const NpyArray a = npy_load(path);
    if (a.shape.size() != 2) throw InputError(path + ": an RDM must be a 2-D array");
    Matrix m(a.shape[0], a.shape[1]);
    for (size_t i = 0; i < a.values.size(); ++i) m.data[i] = static_cast<float>(a.values[i]);
    return m;
}

std::string joined_args(int argc, char** argv) {
    std::string s;
    for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
    return s;
}

// CLI11 reads "-90,-45" after --angles as an option name; glue such a value to its option.
std::vector<std::string> glue_negative_values(int argc, char** argv) {
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

}  // namespace

int main(int argc, char** argv) {
    install_interrupt_handlers();
    CLI::App app{"rsa_gpu: representational similarity analysis of a CNN and mouse V1, on the GPU (or CPU).\n"
                 "Without a subcommand it runs the whole analysis on the embedded synthetic V1 recording\n"
                 "(or on --v1 / --responses data) and writes the results to --out."};
    app.name("rsa_gpu");
    app.set_version_flag("--version", [] { return version_report(); }, "print the version, the library versions and the GPUs");
    app.option_defaults()->always_capture_default();

    std::string device = "auto";
    AnalysisConfig cfg;
    std::string constant_rows = "fail";
    const auto add_device = [&](CLI::App* a) {
        a->add_option("--device", device, "auto (GPU 0 if usable, else CPU), cpu, or a GPU index");
        if (a != &app) a->add_flag("--quiet", cfg.quiet, "print nothing but results and errors");
    };
    add_device(&app);
    app.add_option("--out", cfg.out_dir, "output folder");
    app.add_flag("--force", cfg.force,
                 "replace an existing output folder (and --save-model file), at the end and only if it is still the "
                 "one there at the start");
    app.add_option("--v1", cfg.v1_path, "V1 data: the tutorial's npz (keys resp S x N, stimuli S in degrees)")
        ->check(CLI::ExistingFile);
    auto* resp_opt = app.add_option("--responses", cfg.responses_path, "V1 data: response matrix .npy (S x N)");
    auto* ori_opt = app.add_option("--orientations", cfg.orientations_path, "orientations .npy (S, degrees)");
    resp_opt->needs(ori_opt);
    ori_opt->needs(resp_opt);
    resp_opt->excludes("--v1");
    auto* sresp_opt = app.add_option("--sresp", cfg.sresp_path, "trial-level V1: responses .npy (neurons x trials)")
        ->check(CLI::ExistingFile);
    auto* istim_opt = app.add_option("--istim", cfg.istim_path, "trial-level V1: trial orientations .npy (radians)")
        ->check(CLI::ExistingFile);
    sresp_opt->needs(istim_opt);
    istim_opt->needs(sresp_opt);
    sresp_opt->excludes("--v1")->excludes("--responses");
    app.add_flag("--trials", cfg.trials, "per-trial analysis of trial-level data (T x T RDMs; default: 1-degree bins)");
    const CLI::Validator neurons_range = integer_in(1, 10000000, "an integer 1 to 10,000,000");
    const CLI::Validator trials_range = integer_in(360, 10000000, "an integer 360 to 10,000,000");
    app.add_option("--v1-seed", cfg.synthetic.seed, "seed of the embedded synthetic V1 recording")->check(seed_check());
    app.add_option("--v1-neurons", cfg.synthetic.neurons, "neurons of the embedded synthetic V1 recording")
        ->check(neurons_range);
    app.add_option("--v1-trials", cfg.synthetic.trials, "trials of the embedded synthetic V1 recording (>= 360)")
        ->check(trials_range);
    const auto add_training = [&](CLI::App* a) {
        a->add_option("--epochs", cfg.train.epochs, "training epochs")
            ->check(integer_in(1, 1000000, "an integer 1 to 1,000,000"));
        a->add_option("--batch", cfg.train.batch, "mini-batch size")
            ->check(integer_in(1, 100000, "an integer 1 to 100,000"));
        a->add_option("--lr", cfg.train.lr, "SGD learning rate")
            ->check(real_in(0, 1e6, true, false, "a finite number > 0 and <= 1e6"));
        a->add_option("--momentum", cfg.train.momentum, "SGD momentum (PyTorch's definition)")
            ->check(real_in(0, 1, false, true, "a finite number >= 0 and < 1"));
        a->add_option("--train-size", cfg.train.train_size, "number of training gratings")
            ->check(integer_in(1, 100000000, "an integer 1 to 100,000,000"));
        a->add_option("--seed", cfg.train.seed, "training seed (initial weights, training angles, shuffles)")
            ->check(seed_check());
    };
    add_training(&app);
    app.add_option("--load-model", cfg.load_model, "use these CNN weights (.npz, PyTorch state_dict names) instead of training")
        ->check(CLI::ExistingFile);
    app.add_option("--save-model", cfg.save_model, "also save the trained CNN weights here (.npz)");
    std::string layers_text = "pool,fc";
    app.add_option("--layers", layers_text, "CNN layers to compare with V1 (conv, pool, fc, fc_relu, out)");
    app.add_flag("--no-cnn", cfg.no_cnn, "skip the CNN: compare V1 with the pixel control only");
    std::string measures_text = "pearson";
    app.add_option("--measures", measures_text, "RDM comparison measures: pearson, spearman, kendall, cosine (comma list)");
    app.add_flag("--cka", cfg.cka, "also linear CKA and debiased CKA of each representation with the V1 responses");
    app.add_option("--bootstrap", cfg.bootstrap,
                   "bootstrap resamples over stimuli for the 95% interval (-1: 10,000, fewer when R x S^2 x "
                   "(2 + 3 models) multiply-adds would exceed 3e14 on a GPU or 1.5e11 on the CPU, skipped when fewer "
                   "than 1,000 fit; 0: off)")
        ->check(CLI::Range(-1, 100000000));
    app.add_option("--permutations", cfg.permutations,
                   "permutations for the p-value (-1: 10,000, fewer when P x models x S^2 / 2 pair visits would "
                   "exceed 6e11 on a GPU or 1.5e10 on the CPU, skipped when fewer than 1,000 fit; 0: off)")
        ->check(CLI::Range(-1, 100000000));
    app.add_flag("--noise-ceiling", cfg.noise_ceiling,
                 "split-half noise ceiling of V1 (always computed for trial-level data)");
    app.add_option("--stats-seed", cfg.stats_seed, "seed of the bootstrap, permutations and splits")->check(seed_check());
    app.add_flag("--save-v1", cfg.save_v1, "write the V1 responses (resp_v1.npy) even when larger than 64 MB");
    app.add_flag("--no-figures", cfg.no_figures, "skip the figures and report.html (tools/make_figures.py)");
    app.add_option("--constant-rows", constant_rows, "zero-variance stimulus rows: fail or nan")
        ->check(CLI::IsMember({"fail", "nan"}));
    const CLI::Validator sf_range = real_in(0, 1e6, true, false, "a finite number > 0 and <= 1e6");
    const CLI::Validator res_range = real_in(0, 1e6, true, false, "a finite number > 0; 0.1 gives 48 x 64 images");
    app.add_option("--sf", cfg.grating.sf, "grating spatial frequency (cycles per pixel / 2 pi, as the tutorial)")
        ->check(sf_range);
    app.add_option("--res", cfg.grating.res, "grating resolution (0.1 gives 48 x 64 images)")
        ->check(res_range);
    std::string precision_text = "fp32", max_mem_text;
    const auto add_rdm_options = [&](CLI::App* a) {
        a->add_option("--precision", precision_text, "RDM products: fp32 (exact) or tf32 (tensor cores)")
            ->check(CLI::IsMember({"fp32", "tf32"}));
        a->add_option("--max-gpu-mem", max_mem_text,
                      "cap on the memory the RDM engine uses, e.g. 8G (larger inputs are streamed or tiled)");
    };
    add_rdm_options(&app);
    app.add_flag("--quiet", cfg.quiet, "print nothing but errors");
    app.add_flag("--json", cfg.json, "print one machine-readable summary line on stdout");

    // stimuli
    auto* stim = app.add_subcommand("stimuli", "draw gratings (B x height x width float32 .npy)");
    std::string angles_text, angles_from, stim_out;
    GratingParams stim_params;
    add_device(stim);
    stim->add_option("--angles", angles_text, "comma-separated angles in degrees, e.g. -90,-45,0,45,90");
    stim->add_option("--angles-from", angles_from, ".npy with the angles (1-D)")->check(CLI::ExistingFile);
    stim->add_option("--out", stim_out, "output .npy")->required();
    stim->add_flag("--force", cfg.force, "replace an existing output file");
    stim->add_option("--sf", stim_params.sf, "spatial frequency")->check(sf_range);
    stim->add_option("--res", stim_params.res, "resolution (0.1 gives 48 x 64)")->check(res_range);

    // rdm
    auto* rdm_cmd = app.add_subcommand("rdm", "RDM (1 - Pearson correlation) of a response matrix");
    std::string rdm_in, rdm_out;
    add_device(rdm_cmd);
    rdm_cmd->add_option("--responses", rdm_in, "response matrix .npy (S x N)")->required()->check(CLI::ExistingFile);
    rdm_cmd->add_option("--out", rdm_out, "output .npy (S x S)")->required();
    rdm_cmd->add_flag("--force", cfg.force, "replace an existing output file");
    rdm_cmd->add_option("--constant-rows", constant_rows, "zero-variance stimulus rows: fail or nan")
        ->check(CLI::IsMember({"fail", "nan"}));
    add_rdm_options(rdm_cmd);

    // compare
    auto* cmp = app.add_subcommand("compare", "compare two RDMs over their strict upper triangles (Pearson, Spearman, Kendall, cosine)");
    std::string rdm_a, rdm_b;
    bool cmp_json = false;
    std::string cmp_method = "pearson";
    add_device(cmp);
    cmp->add_option("--method", cmp_method, "pearson, spearman, kendall (tau-a) or cosine")
        ->check(CLI::IsMember({"pearson", "spearman", "kendall", "cosine"}));
    cmp->add_option("A", rdm_a, "first RDM .npy")->required()->check(CLI::ExistingFile);
    cmp->add_option("B", rdm_b, "second RDM .npy")->required()->check(CLI::ExistingFile);
    cmp->add_flag("--json", cmp_json, "print one JSON line instead of the number");

    // cka
    auto* cka_cmd = app.add_subcommand("cka", "linear CKA of two response matrices with the same stimuli (rows)");
    std::string cka_x, cka_y;
    bool cka_debiased = false, cka_json = false;
    add_device(cka_cmd);
    cka_cmd->add_option("X", cka_x, "first response matrix .npy (S x N1)")->required()->check(CLI::ExistingFile);
    cka_cmd->add_option("Y", cka_y, "second response matrix .npy (S x N2)")->required()->check(CLI::ExistingFile);
    cka_cmd->add_flag("--debiased", cka_debiased, "the debiased (unbiased HSIC) form; needs S >= 4");
    cka_cmd->add_flag("--json", cka_json, "print one JSON line instead of the number");

    // train
    auto* train_cmd = app.add_subcommand("train", "train the tutorial's CNN and save its weights (.npz)");
    std::string train_out;
    add_device(train_cmd);
    add_training(train_cmd);
    train_cmd->add_option("--save-model", train_out, "output .npz (PyTorch state_dict names)")->required();
    train_cmd->add_flag("--force", cfg.force, "replace an existing output file");

    // synthetic
    auto* syn = app.add_subcommand("synthetic", "write the embedded synthetic V1 recording as the tutorial's npz");
    std::string syn_out;
    SyntheticV1Params syn_params;
    add_device(syn);
    syn->add_option("--out", syn_out, "output .npz (keys resp 360 x N, stimuli 360)")->required();
    syn->add_flag("--force", cfg.force, "replace an existing output file");
    syn->add_option("--seed", syn_params.seed, "seed")->check(seed_check());
    syn->add_option("--neurons", syn_params.neurons, "number of neurons")->check(neurons_range);
    syn->add_option("--trials", syn_params.trials, "number of trials (>= 360)")->check(trials_range);
    bool syn_trial_level = false;
    syn->add_flag("--trial-level", syn_trial_level, "write the trial-level recording (sresp neurons x trials, istim radians)");

    std::vector<std::string> args = glue_negative_values(argc, argv);
    std::reverse(args.begin(), args.end());
    try {
        app.parse(args);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return kExitUsage;
    }

    try {
        set_progress_enabled(isatty(fileno(stdout)) && !cfg.quiet && !cfg.json);
        cfg.rdm.constant_rows = parse_constant_rows(constant_rows);
        cfg.rdm.precision = parse_precision(precision_text);
        if (!max_mem_text.empty()) cfg.rdm.max_gpu_bytes = parse_bytes(max_mem_text);
        cfg.rdm.on_plan = [&cfg](const std::string& plan) {
            if (!cfg.quiet) std::fprintf(stderr, "memory plan:\n%s\n", plan.c_str());
        };
        // Lists and the grating size are checked before any work (and before a device is opened).
        if (*stim) {
            if (stim->count("--angles") > 0 && stim->count("--angles-from") > 0)
                throw InputError("stimuli: give exactly one of --angles or --angles-from, not both");
            if (stim->count("--angles") == 0 && stim->count("--angles-from") == 0)
                throw InputError("stimuli: give one of --angles or --angles-from");
        }
        const std::vector<float> stim_angles =
            *stim && stim->count("--angles") > 0 ? parse_angles(angles_text) : std::vector<float>{};
        check_grating_params(*stim ? stim_params : cfg.grating);  // the image size, in 64 bits and bounded
        std::vector<std::string> layers, measures;
        if (!(*stim || *rdm_cmd || *cmp || *cka_cmd || *syn || *train_cmd)) {
            layers = split_list(layers_text, "--layers", "pool,fc");
            measures = split_list(measures_text, "--measures", "pearson,spearman");
        }

        const DeviceRequest request = parse_device(device);
        std::string note;
        auto backend = make_backend(request, &note);
        const bool subcommand = *stim || *rdm_cmd || *cmp || *cka_cmd || *syn;
        if (subcommand && !cfg.quiet) std::fprintf(stderr, "%s\n", note.c_str());

        if (*stim) {
            OutputFile out(stim_out, cfg.force, "--out");  // claimed before any work
            const std::vector<float> angles =
                stim_angles.empty() ? npy_to_vector(npy_load(angles_from), angles_from) : stim_angles;
            const Matrix g = backend->gratings(angles, stim_params);
            check_interrupt("drawing the gratings");
            const std::vector<int64_t> shape = {g.rows, stim_params.height(), stim_params.width()};
            const std::vector<char> bytes = npy_bytes_f32(g.data.data(), shape);
            out.write([&](const std::string& p) { write_file_atomic(p, std::string(bytes.begin(), bytes.end())); });
            out.commit();
            std::fprintf(stderr, "wrote %s: %lld gratings of %d x %d\n", stim_out.c_str(),
                         static_cast<long long>(g.rows), stim_params.height(), stim_params.width());
            return kExitOk;
        }
        if (*rdm_cmd) {
            OutputFile out(rdm_out, cfg.force, "--out");
            const Matrix x = npy_to_matrix(npy_load(rdm_in), rdm_in);
            check_interrupt("loading the responses");
            // An out-of-core (tiled) RDM is written straight into the staging file beside the output.
            RdmOptions opt = cfg.rdm;
            opt.output_path = out.staging_path();
            Matrix m;
            out.write([&](const std::string& p) {
                m = backend->rdm(x, opt, rdm_in);
                check_interrupt("the RDM");
                if (m.rows != 0) npy_save(p, m);  // the returned RDM is final (a backend's own copy may not be)
            });
            if (m.rows == 0) m.rows = m.cols = x.rows;  // tiled: already in the staging file; for the message
            out.commit();
            std::fprintf(stderr, "wrote %s: %lld x %lld RDM of %lld units\n", rdm_out.c_str(),
                         static_cast<long long>(m.rows), static_cast<long long>(m.cols),
                         static_cast<long long>(x.cols));
            return kExitOk;
        }
        if (*cmp) {
            const Matrix a = load_rdm(rdm_a), b = load_rdm(rdm_b);
            check_rdm_pair(a, b, rdm_a.c_str(), rdm_b.c_str());
            const CompareResult r = backend->compare(a, b, parse_measure(cmp_method));
            check_interrupt("the comparison");
            if (r.skipped)
                std::fprintf(stderr, "skipped %lld of %lld upper-triangle pairs where either RDM is NaN\n",
                             static_cast<long long>(r.skipped), static_cast<long long>(r.skipped + r.pairs));
            if (cmp_json) {
                nlohmann::json j = {{"measure", cmp_method}, {"value", r.value}, {"pairs", r.pairs},
                                    {"skipped_pairs", r.skipped}, {"a", rdm_a}, {"b", rdm_b},
                                    {"device", backend->name()}};
                std::printf("%s\n", j.dump().c_str());
            } else {
                std::printf("%.9g\n", r.value);
            }
            return kExitOk;
        }
        if (*cka_cmd) {
            const Matrix x = npy_to_matrix(npy_load(cka_x), cka_x), y = npy_to_matrix(npy_load(cka_y), cka_y);
            if (x.rows != y.rows)
                throw InputError("cka: " + cka_x + " has " + std::to_string(x.rows) + " rows (stimuli) but " + cka_y +
                                 " has " + std::to_string(y.rows));
            check_cka_inputs(x, y, cka_debiased, cka_x, cka_y);  // 3+ stimuli, no constant response matrix
            const double v = backend->cka(x, y, cka_debiased);
            check_interrupt("CKA");
            if (cka_json)
                std::printf("%s\n", nlohmann::json({{"measure", cka_debiased ? "cka_debiased" : "cka"}, {"value", v},
                                                    {"x", cka_x}, {"y", cka_y}, {"device", backend->name()}})
                                        .dump()
                                        .c_str());
            else
                std::printf("%.9g\n", v);
            return kExitOk;
        }
        if (*syn) {
            OutputFile out(syn_out, cfg.force, "--out");
            if (syn_trial_level) {
                const SyntheticV1Trials t = backend->synthetic_v1_trials(syn_params);
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
                             syn_out.c_str(), static_cast<long long>(t.resp.cols),
                             static_cast<long long>(t.resp.rows), istim.size());
                return kExitOk;
            }
            const SyntheticV1 sv = backend->synthetic_v1(syn_params);
            check_interrupt("generating the synthetic recording");
            out.write([&](const std::string& p) {
                npz_save(p, {{"resp", {{sv.resp.rows, sv.resp.cols}, sv.resp.data}},
                             {"stimuli", {{static_cast<int64_t>(sv.stimuli.size())}, sv.stimuli}}});
            });
            out.commit();
            std::fprintf(stderr, "wrote %s: resp %lld x %lld, stimuli %zu\n", syn_out.c_str(),
                         static_cast<long long>(sv.resp.rows), static_cast<long long>(sv.resp.cols),
                         sv.stimuli.size());
            return kExitOk;
        }
        if (*train_cmd) {
            OutputFile out(train_out, cfg.force, "--save-model");
            if (!cfg.quiet) std::printf("%s\n", note.c_str());
            double stim_ms = 0, train_ms = 0;
            const TrainedNetwork net = train_tutorial_network(*backend, cfg.train, GratingParams{}, cfg.quiet,
                                                              &stim_ms, &train_ms);
            check_interrupt("training");
            out.write([&](const std::string& p) { cnn_save_npz(p, net.params); });
            out.commit();
            if (!cfg.quiet)
                std::printf("training-set accuracy: %d / %d; training took %.1f ms; weights written to %s\n",
                            net.correct, net.total, train_ms, train_out.c_str());
            return kExitOk;
        }
        cfg.layers = layers;
        cfg.measures.clear();
        for (const std::string& m : measures) cfg.measures.push_back(parse_measure(m));
        cfg.device_note = note;
        cfg.command_line = joined_args(argc, argv);
        return run_analysis(*backend, cfg);
    } catch (const Interrupted& e) {
        remove_registered_staging();  // a safety net: the owners' destructors have removed theirs already
        std::fflush(stdout);
        std::fprintf(stderr, "%s; nothing written\n", e.what());
        return e.exit_code();
    } catch (const std::bad_alloc&) {
        // Large allocations go through checked_alloc (OutOfMemoryError, naming what and how large); this is the
        // safety net for the rest.
        remove_registered_staging();
        std::fprintf(stderr, "error: out of host memory (an allocation failed; try fewer stimuli or neurons, or "
                             "--max-gpu-mem with a tiled output)\n");
        return kExitRuntime;
    } catch (const std::exception& e) {
        const int sig = interrupt_signal();
        if (sig) {  // a failure caused by the interruption (a killed child, an interrupted call) is the interruption
            remove_registered_staging();
            std::fprintf(stderr, "%s; nothing written\n", Interrupted(sig, "the run").what());
            return 128 + sig;
        }
        std::fprintf(stderr, "error: %s\n", e.what());
        const bool input = dynamic_cast<const InputError*>(&e) != nullptr;
        return input ? kExitUsage : kExitRuntime;
    }
}

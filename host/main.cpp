// rsa_gpu command line: builds the CLI from the commands (host/commands: the main job without a subcommand, and
// stimuli, rdm, compare, cka, train, synthetic, bench), runs the one chosen and maps what it throws to the exit code:
// 0 success, 2 bad usage or input (anything the user can fix by changing the command or the input, an unwritable or
// taken output path included), 1 runtime failure of the machine, 130 / 143 interrupted by SIGINT / SIGTERM (nothing
// written).
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "commands/commands.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/blas_setup.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"

using namespace rsa;

namespace {

// OpenBLAS reads OPENBLAS_CORETYPE once, as it loads (before main): when it fell back to its generic kernels on an
// AVX-512 CPU it does not know, start again once with the type that fixes it (blas_setup.h). A failed exec changes
// nothing; RSA_GPU_BLAS_RESTARTED guards against a loop.
void restart_for_blas_kernels(char** argv) {
    if (std::getenv("RSA_GPU_BLAS_RESTARTED")) return;
    const std::string fix = blas_coretype_fix();
    if (fix.empty()) return;
    ::setenv("OPENBLAS_CORETYPE", fix.c_str(), 1);
    ::setenv("RSA_GPU_BLAS_RESTARTED", "1", 1);
    std::fflush(nullptr);
    ::execv("/proc/self/exe", argv);
    ::unsetenv("OPENBLAS_CORETYPE");  // exec failed: go on with the kernels OpenBLAS chose
    ::unsetenv("RSA_GPU_BLAS_RESTARTED");
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
    const auto commands = commands::all_commands();
    for (const auto& command : commands) command->add_to(app);

    std::vector<std::string> args = commands::cli_arguments(argc, argv);
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
        for (const auto& command : commands)
            if (command->chosen()) {
                if (command->heavy_blas()) restart_for_blas_kernels(argv);
                return command->run(commands::joined_args(argc, argv));
            }
        throw RuntimeError("no command was chosen");  // unreachable: the main job runs without a subcommand
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

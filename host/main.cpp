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

#include <fcntl.h>

#include "commands/commands.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/blas_setup.h"
#include "rsa_gpu/distributed.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"
#ifdef RSA_GPU_HAVE_MPI
#include "mpi_comm.h"
#endif

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

// A run started by a launcher (distributed.h): only rank 0 speaks. The other ranks' stdout and stderr go to
// /dev/null from the start (their rank is known from the launcher's variables before MPI starts); their own stderr is
// kept (returned) for an error no other rank knows of.
int quiet_other_ranks() {
    if (launcher_rank() <= 0) return -1;
    std::fflush(nullptr);
    const int saved = ::dup(STDERR_FILENO);
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) {
        ::dup2(null, STDOUT_FILENO);
        ::dup2(null, STDERR_FILENO);
        ::close(null);
    }
    return saved;
}

// The error line of a failed run, and its exit code. In a distributed run an error every rank agreed on is printed by
// rank 0 alone; one that only this rank knows of is printed with its rank, and the whole job is ended (the other
// ranks may be waiting for this one).
int report_error(const std::string& line, int code, int own_stderr) {
    if (!distributed_run()) {
        std::fprintf(stderr, "%s\n", line.c_str());
        return code;
    }
    if (failure_was_agreed()) {
        if (printing_rank()) std::fprintf(stderr, "%s\n", line.c_str());
        return code;
    }
    const std::string text = "rank " + std::to_string(world().rank()) + ": " + line + "\n";
    const int fd = own_stderr >= 0 ? own_stderr : STDERR_FILENO;
    if (::write(fd, text.data(), text.size()) < 0) {}
    world().abort(code);
    return code;  // not reached
}

}  // namespace

int main(int argc, char** argv) {
    install_interrupt_handlers();
    const int own_stderr = quiet_other_ranks();
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

#ifdef RSA_GPU_HAVE_MPI
    std::unique_ptr<MpiSession> mpi;  // MPI_Finalize when main returns
#endif
    try {
        for (const auto& command : commands)
            if (command->chosen()) {
                if (command->heavy_blas()) restart_for_blas_kernels(argv);  // before MPI starts: exec is safe
                const std::string command_line = commands::joined_args(argc, argv);
#ifdef RSA_GPU_HAVE_MPI
                mpi = std::make_unique<MpiSession>(&argc, &argv);
#else
                if (launcher_size() > 1)
                    throw InputError("started by a launcher with " + std::to_string(launcher_size()) +
                                     " ranks, but this rsa_gpu was built without MPI (configure with -DRSA_GPU_MPI=ON "
                                     "and OpenMPI installed: libopenmpi-dev), so every rank would run the whole job "
                                     "alone: run it without mpirun / srun, or rebuild");
#endif
                // Every rank of a distributed run exits at the first signal: it may be waiting in a collective that
                // never returns once another rank died.
                if (distributed_run()) set_exit_on_first_signal(true);
                return command->run(command_line);
            }
        throw RuntimeError("no command was chosen");  // unreachable: the main job runs without a subcommand
    } catch (const Interrupted& e) {
        remove_registered_staging();  // a safety net: the owners' destructors have removed theirs already
        std::fflush(stdout);
        return report_error(std::string(e.what()) + "; nothing written", e.exit_code(), own_stderr);
    } catch (const std::bad_alloc&) {
        // Large allocations go through checked_alloc (OutOfMemoryError, naming what and how large); this is the
        // safety net for the rest.
        remove_registered_staging();
        return report_error("error: out of host memory (an allocation failed; try fewer stimuli or neurons, or "
                            "--max-gpu-mem with a tiled output)", kExitRuntime, own_stderr);
    } catch (const std::exception& e) {
        const int sig = interrupt_signal();
        if (sig) {  // a failure caused by the interruption (a killed child, an interrupted call) is the interruption
            remove_registered_staging();
            return report_error(std::string(Interrupted(sig, "the run").what()) + "; nothing written", 128 + sig,
                                own_stderr);
        }
        const bool input = dynamic_cast<const InputError*>(&e) != nullptr;
        return report_error(std::string("error: ") + e.what(), input ? kExitUsage : kExitRuntime, own_stderr);
    }
}

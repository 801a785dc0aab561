// Figures and report.html for an output folder: runs tools/make_figures.py (matplotlib, t-SNE) as a child process
// (fork/exec, its own process group, killed when we are interrupted or die) and reports what happened; missing
// tools are not an error (the run says how to get them); an interrupt during the figures is an interruption.
#include "rsa_gpu/figures.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"

extern char** environ;

namespace rsa {

namespace {

struct ChildResult {
    int status = 0;            // waitpid status
    bool interrupted = false;  // we received SIGINT/SIGTERM while it ran (it was killed)
};

// Runs argv[0] with argv, the environment plus `extra_env`, stdin from /dev/null and stdout+stderr to
// `output` (/dev/null when empty), in its own process group; waits for it, polling for interrupts. On an
// interrupt the child's group gets SIGTERM, then SIGKILL after two seconds. RuntimeError when it cannot start.
ChildResult run_child(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                      const std::string& output) {
    // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<std::string> env_store;
    for (char** e = environ; *e; ++e) {
        bool replaced = false;
        for (const auto& x : extra_env)
            replaced |= std::strncmp(*e, x.c_str(), x.find('=') + 1) == 0;
        if (!replaced) env_store.emplace_back(*e);
    }
    for (const auto& x : extra_env) env_store.push_back(x);
    std::vector<char*> envp;
    for (auto& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string out = output.empty() ? "/dev/null" : output;
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0) throw RuntimeError("figures: cannot open " + out + ": " + std::strerror(errno));
    const int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int err = errno;
        ::close(out_fd);
        if (in_fd >= 0) ::close(in_fd);
        throw RuntimeError(std::string("figures: cannot start python3: ") + std::strerror(err));
    }
    if (pid == 0) {
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive us, even when we are killed outright
        if (::getppid() != parent) ::_exit(127);
        struct sigaction dfl;
        std::memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        ::sigaction(SIGINT, &dfl, nullptr);
        ::sigaction(SIGTERM, &dfl, nullptr);
        if (in_fd >= 0) ::dup2(in_fd, STDIN_FILENO);
        ::dup2(out_fd, STDOUT_FILENO);
        ::dup2(out_fd, STDERR_FILENO);
        ::execve(args[0], args.data(), envp.data());
        ::_exit(127);
    }
    ::setpgid(pid, pid);  // also from here, so the group exists before any kill below
    set_interrupt_child(pid);
    ::close(out_fd);
    if (in_fd >= 0) ::close(in_fd);
    ChildResult r;
    using Clock = std::chrono::steady_clock;
    Clock::time_point term_sent;
    bool term = false, killed = false;
    for (;;) {
        const pid_t w = ::waitpid(pid, &r.status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) {
            r.status = 0;
            break;
        }
        if (interrupt_requested()) {
            r.interrupted = true;
            if (!term) {
                ::kill(-pid, SIGTERM);
                term = true;
                term_sent = Clock::now();
            } else if (!killed && Clock::now() - term_sent > std::chrono::seconds(2)) {
                ::kill(-pid, SIGKILL);
                killed = true;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    set_interrupt_child(0);
    if (interrupt_requested()) r.interrupted = true;
    return r;
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by " + signal_name(WTERMSIG(status));
    return "status " + std::to_string(status);
}

}  // namespace

// Figures and report.html by tools/make_figures.py (Debian's python3-matplotlib and python3-sklearn), run on
// the staging folder before it is committed. Missing tools are not an error: say how to get them.
nlohmann::json make_figures(const std::string& folder, const std::string& final_folder, const std::string& results_json,
                            const std::function<void(const std::string&)>& say) {
    const char* env = std::getenv("RSA_GPU_TOOLS_DIR");
    const std::string script = std::string(env ? env : RSA_GPU_TOOLS_DIR) + "/make_figures.py";
    const std::string python = "/usr/bin/python3";
    if (access(script.c_str(), R_OK) != 0) {
        say("figures: skipped (" + script + " not found; set RSA_GPU_TOOLS_DIR to the rsa_gpu tools/ folder)");
        return {{"made", false}, {"reason", "script not found"}};
    }
    if (access(python.c_str(), X_OK) != 0) {
        say("figures: skipped (they need /usr/bin/python3 with Debian's python3-matplotlib and python3-sklearn: "
            "sudo apt-get install python3-matplotlib python3-sklearn)");
        return {{"made", false}, {"reason", "python3 missing"}};
    }
    check_interrupt("figures");
    ChildResult probe, run;
    try {
        probe = run_child({python, "-c", "import matplotlib, sklearn"}, {}, "");
    } catch (const RuntimeError& e) {  // fork or open failed: no figures, the results are kept
        say(std::string(e.what()) + "; the figures are skipped, the results kept");
        return {{"made", false}, {"reason", e.what()}};
    }
    if (probe.interrupted) check_interrupt("figures");
    if (!(WIFEXITED(probe.status) && WEXITSTATUS(probe.status) == 0)) {
        say("figures: skipped (they need Debian's python3-matplotlib and python3-sklearn: "
            "sudo apt-get install python3-matplotlib python3-sklearn)");
        return {{"made", false}, {"reason", "python3-matplotlib or python3-sklearn missing"}};
    }
    const std::string log = folder + "/figures.log";
    // The report names the folder it will live in, not the staging folder it is drawn in.
    std::error_code ec;
    const std::string shown = std::filesystem::absolute(final_folder, ec).string();
    // The results for the script, beside the system's temporary files (not in the user's folder), removed on return.
    const char* tmpdir = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/rsa_gpu_results_XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) {
        say(std::string("figures: skipped (cannot create a temporary file in ") + (tmpdir ? tmpdir : "/tmp") + ": " +
            std::strerror(errno) + "); the results are kept");
        return {{"made", false}, {"reason", "no temporary file for the results"}};
    }
    struct RemoveTemp {
        std::string path;
        ~RemoveTemp() { ::unlink(path.c_str()); }
    } remove_temp{tmpl};
    const bool written = ::write(fd, results_json.data(), results_json.size()) == static_cast<ssize_t>(results_json.size());
    ::close(fd);
    if (!written) {
        say("figures: skipped (cannot write the results to " + tmpl + "); the results are kept");
        return {{"made", false}, {"reason", "cannot write the results for the script"}};
    }
    try {
        run = run_child({python, script, folder, "--results", tmpl}, {"RSA_GPU_OUT_DIR=" + shown}, log);
    } catch (const RuntimeError& e) {
        say(std::string(e.what()) + "; the figures are skipped, the results kept");
        return {{"made", false}, {"reason", e.what()}};
    }
    if (run.interrupted) check_interrupt("figures");  // throws: an interruption, not a figures failure
    if (!(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)) {
        say("figures: make_figures.py failed (" + describe_status(run.status) +
            "; see figures.log in the output folder); the results are kept");
        return {{"made", false}, {"reason", "make_figures.py failed (" + describe_status(run.status) + ")"}};
    }
    std::remove(log.c_str());
    return {{"made", true}, {"report", "report.html"}, {"folder", "figures/"}};
}

}  // namespace rsa

// Child processes of the host (tools/make_figures.py, the benchmark peers of tools/bench_peer.py): fork/exec in
// their own process group, killed when we are interrupted or die (see child_process.h).
#include "rsa_gpu/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"

extern char** environ;

namespace rsa {

ChildResult run_child(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                      const std::string& output, const std::string& what) {
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
    if (out_fd < 0) throw RuntimeError(what + ": cannot open " + out + ": " + std::strerror(errno));
    const int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int err = errno;
        ::close(out_fd);
        if (in_fd >= 0) ::close(in_fd);
        throw RuntimeError(what + ": cannot start " + argv[0] + ": " + std::strerror(err));
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


}  // namespace rsa

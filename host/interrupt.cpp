// Interrupts (see interrupt.h): the SIGINT/SIGTERM handler (records the signal; a second one cleans up and exits),
// check_interrupt(), and the registry of staging paths removed by an async-signal-safe recursive unlink.
#include "rsa_gpu/interrupt.h"

#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace rsa {

namespace {

std::atomic<int> g_signal{0};
std::atomic<pid_t> g_child{0};

constexpr int kSlots = 64;
constexpr size_t kPathMax = 4096;
struct Slot {
    std::atomic<int> state{0};  // 0 free, 1 being written, 2 registered
    bool folder = false;
    char path[kPathMax] = {};
};
Slot g_slots[kSlots];

struct LinuxDirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[1];
};

// Removes `name` (relative to dirfd) and, when it is a folder, everything below it. Async-signal-safe: raw
// getdents64, openat, unlinkat, close; a fixed buffer on the stack per level, at most 16 levels.
void remove_tree_at(int dirfd, const char* name, int depth) {
    if (::unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return;
    const int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        for (int pass = 0; pass < 3 && depth < 16; ++pass) {  // entries removed while reading: read again
            bool any = false;
            alignas(8) char buf[2048];
            for (;;) {
                const long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
                if (n <= 0) break;
                for (long off = 0; off < n;) {
                    const auto* d = reinterpret_cast<const LinuxDirent64*>(buf + off);
                    off += d->d_reclen;
                    const char* e = d->d_name;
                    if (e[0] == '.' && (e[1] == '\0' || (e[1] == '.' && e[2] == '\0'))) continue;
                    remove_tree_at(fd, e, depth + 1);
                    any = true;
                }
            }
            if (!any) break;
            ::lseek(fd, 0, SEEK_SET);
        }
        ::close(fd);
    }
    ::unlinkat(dirfd, name, AT_REMOVEDIR);
}

void write_stderr(const char* s) {
    size_t n = 0;
    while (s[n]) ++n;
    while (n > 0) {
        const ssize_t w = ::write(STDERR_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= static_cast<size_t>(w);
    }
}

std::atomic<bool> g_exit_on_first{false};

// The signals blocked while any of these handlers runs: a handler removing staging paths is never interrupted by
// another one (which would wait for it forever).
void handler_mask(sigset_t* set) {
    sigemptyset(set);
    for (int sig : {SIGINT, SIGTERM, SIGCONT, SIGTSTP}) sigaddset(set, sig);
}

void on_signal(int sig) {
    const int saved_errno = errno;
    int expected = 0;
    if (g_signal.compare_exchange_strong(expected, sig) && !g_exit_on_first.load()) {  // the first signal: stop at the next safe point
        errno = saved_errno;
        return;
    }
    // A second signal: no more waiting for a safe point.
    const pid_t child = g_child.load();
    if (child > 0) ::kill(-child, SIGKILL);
    remove_registered_staging();
    if (g_exit_on_first.load()) ::_exit(128 + sig);  // a rank of a distributed job: the launcher says why
    write_stderr(sig == SIGTERM ? "interrupted again (SIGTERM): staging files removed, exiting now\n"
                                : "interrupted again (SIGINT): staging files removed, exiting now\n");
    ::_exit(128 + sig);
}

}  // namespace

Interrupted::Interrupted(int signal, std::string during)
    : signal_(signal), during_(std::move(during)), text_("interrupted (" + signal_name(signal) + ") during " + during_) {}

std::string signal_name(int signal) {
    if (signal == SIGINT) return "SIGINT";
    if (signal == SIGTERM) return "SIGTERM";
    return "signal " + std::to_string(signal);
}

void install_interrupt_handlers() {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    handler_mask(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

namespace {

std::atomic<bool> g_job_stopped{false};

// A rank of a distributed job: Open MPI's launcher ends a job by SIGCONT, a second later SIGTERM, and SIGKILL a
// millisecond after that: too short to remove a staging folder reliably. So a SIGCONT that does not follow a
// suspension (SIGTSTP, forwarded by the launcher for Ctrl-Z) is taken as the end of the job: the staging paths go and
// the rank exits with 143, as for SIGTERM.
void on_job_stop(int) {
    g_job_stopped.store(true);
    ::kill(::getpid(), SIGSTOP);  // the suspension itself
}

void on_job_continue(int) {
    if (g_job_stopped.exchange(false)) return;  // resumed after a suspension
    on_signal(SIGTERM);
}

}  // namespace

void set_exit_on_first_signal(bool on) {
    g_exit_on_first.store(on);
    if (!on) return;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    handler_mask(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = on_job_stop;
    ::sigaction(SIGTSTP, &sa, nullptr);
    sa.sa_handler = on_job_continue;
    ::sigaction(SIGCONT, &sa, nullptr);
}

int interrupt_signal() { return g_signal.load(std::memory_order_relaxed); }

void request_interrupt(int signal) noexcept { g_signal.store(signal, std::memory_order_relaxed); }
void clear_interrupt() noexcept { g_signal.store(0, std::memory_order_relaxed); }

void check_interrupt(const char* during) {
    const int sig = g_signal.load(std::memory_order_relaxed);
    if (sig) throw Interrupted(sig, during);
}

StagingRegistration::StagingRegistration(const std::string& path, bool folder) {
    if (path.empty() || path.size() >= kPathMax) return;
    for (int i = 0; i < kSlots; ++i) {
        int expected = 0;
        if (!g_slots[i].state.compare_exchange_strong(expected, 1)) continue;
        std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
        g_slots[i].folder = folder;
        g_slots[i].state.store(2);
        slot_ = i;
        return;
    }
}

StagingRegistration& StagingRegistration::operator=(StagingRegistration&& other) noexcept {
    if (this != &other) {
        release();
        slot_ = other.slot_;
        other.slot_ = -1;
    }
    return *this;
}

void StagingRegistration::release() noexcept {
    if (slot_ >= 0) g_slots[slot_].state.store(0);
    slot_ = -1;
}

void remove_registered_staging() noexcept {
    for (auto& s : g_slots) {
        int expected = 2;
        if (!s.state.compare_exchange_strong(expected, 1)) continue;
        if (s.folder)
            remove_tree_at(AT_FDCWD, s.path, 0);
        else
            ::unlink(s.path);
        s.state.store(0);
    }
    // A path another thread is removing right now (the same signal delivered twice, to two threads, as a launcher
    // may do): wait for it (up to about 2 s), so that this thread's exit does not cut that removal short.
    for (int wait = 0; wait < 2000; ++wait) {
        bool busy = false;
        for (auto& s : g_slots) busy = busy || s.state.load() == 1;
        if (!busy) break;
        const struct timespec ms = {0, 1000000};
        ::nanosleep(&ms, nullptr);
    }
}

void set_interrupt_child(pid_t pid) { g_child.store(pid); }

}  // namespace rsa

// Interrupts (SIGINT, SIGTERM) stop long work at safe points and leave nothing behind. The signal handler only
// records the signal (an async-signal-safe atomic store); long loops call check_interrupt() at safe points, which
// throws Interrupted; unwinding removes every staging file and folder (their owners' destructors), and the command
// line maps Interrupted to exit code 128 + signal (130 for SIGINT, 143 for SIGTERM) with one line on stderr.
// Staging paths are also registered here, so that a second signal (the user insisting) can remove them from the
// handler itself and exit at once; a running child process (the figures) is registered so it can be killed.
#pragma once
#include <sys/types.h>

#include <exception>
#include <string>

namespace rsa {

// Thrown by check_interrupt() after SIGINT or SIGTERM. `during` names the interrupted stage ("training").
class Interrupted : public std::exception {
public:
    Interrupted(int signal, std::string during);
    int signal() const { return signal_; }
    const std::string& during() const { return during_; }
    int exit_code() const { return 128 + signal_; }  // 130 (SIGINT), 143 (SIGTERM)
    const char* what() const noexcept override { return text_.c_str(); }  // "interrupted (SIGINT) during training"

private:
    int signal_;
    std::string during_, text_;
};

// Installs the handler for SIGINT and SIGTERM (SA_RESTART: interrupted system calls resume; work stops at the next
// check). The first signal is recorded; a second one kills the registered child, removes every registered staging
// path and exits at once with 128 + signal.
void install_interrupt_handlers();

// A rank of a distributed job (distributed.h) may be waiting in a collective that never returns once another rank
// died, so it cannot reach a safe point: with this on, the first signal already removes the registered staging paths
// and exits with 128 + signal (the launcher reports which rank failed). Open MPI's launcher ends a job with SIGCONT,
// SIGTERM a second later and SIGKILL a millisecond after that, so a SIGCONT that does not follow a suspension
// (SIGTSTP: Ctrl-Z, forwarded by the launcher) is taken as SIGTERM as well.
void set_exit_on_first_signal(bool on);

// The recorded signal (SIGINT or SIGTERM), 0 when none arrived. Cheap: one relaxed atomic load.
int interrupt_signal();
inline bool interrupt_requested() { return interrupt_signal() != 0; }

// Throws Interrupted(signal, during) when a signal has arrived; call at safe points of long work.
void check_interrupt(const char* during);

// For hosts that handle signals themselves and go on afterwards (the Python package: Ctrl-C raises
// KeyboardInterrupt and the session continues): record `signal` as the handler would (async-signal-safe), and
// forget it before the next call. The command line never clears it (it exits).
void request_interrupt(int signal) noexcept;
void clear_interrupt() noexcept;

// "SIGINT", "SIGTERM", "signal N".
std::string signal_name(int signal);

// ---- staging paths
// A staging file or folder registered for the duration of its life: a second signal removes it from the handler
// (folders recursively). Registration does not remove anything by itself; the owner removes or commits the path
// and then releases it (or lets the destructor release it). At most 64 paths at once; beyond that a path is simply
// not registered (its owner still cleans it up on the normal path).
class StagingRegistration {
public:
    StagingRegistration() = default;
    StagingRegistration(const std::string& path, bool folder);
    ~StagingRegistration() { release(); }
    StagingRegistration(StagingRegistration&& other) noexcept : slot_(other.slot_) { other.slot_ = -1; }
    StagingRegistration& operator=(StagingRegistration&& other) noexcept;
    StagingRegistration(const StagingRegistration&) = delete;
    StagingRegistration& operator=(const StagingRegistration&) = delete;
    void release() noexcept;  // forget the path (it was committed or removed)

private:
    int slot_ = -1;
};

// Removes every registered staging path (folders recursively) and forgets them. Async-signal-safe (open, getdents,
// unlinkat); also called by the command line after an Interrupted as a safety net.
void remove_registered_staging() noexcept;

// The running child process (0: none), killed (its whole process group) by a second signal.
void set_interrupt_child(pid_t pid);

}  // namespace rsa

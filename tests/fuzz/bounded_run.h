// Runs a function in a forked child under an address-space limit (RLIMIT_AS: what the process has mapped now
// plus a margin) and reports how it ended: returned, InputError, OutOfMemoryError, std::bad_alloc, another
// exception or a crash, with the message and the time taken. Lets the npz tests show that reading a hostile
// file needs little memory, and that an honest but too-large member ends as an OutOfMemoryError, not bad_alloc.
#pragma once
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

#include "rsa_gpu/error.h"

namespace bounded_run {

// AddressSanitizer maps terabytes of shadow memory, so an address-space limit cannot be set under it.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kLimitWorks = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kLimitWorks = false;
#else
constexpr bool kLimitWorks = true;
#endif
#else
constexpr bool kLimitWorks = true;
#endif

enum class Outcome { Returned, InputError, OutOfMemory, BadAlloc, OtherException, Crashed };

inline const char* outcome_name(Outcome o) {
    switch (o) {
        case Outcome::Returned: return "returned";
        case Outcome::InputError: return "InputError";
        case Outcome::OutOfMemory: return "OutOfMemoryError";
        case Outcome::BadAlloc: return "std::bad_alloc";
        case Outcome::OtherException: return "another exception";
        default: return "crashed";
    }
}

struct Result {
    Outcome outcome = Outcome::Crashed;
    std::string message;
    double seconds = 0.0;
};

// Bytes of address space this process has mapped now (/proc/self/statm), 0 when unknown.
inline uint64_t mapped_bytes() {
    unsigned long pages = 0;
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (std::fscanf(f, "%lu", &pages) != 1) pages = 0;
    std::fclose(f);
    return static_cast<uint64_t>(pages) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// f() in a child whose address space may grow by at most extra_bytes beyond what is mapped now.
template <class F>
Result run(F&& f, uint64_t extra_bytes) {
    int fds[2];
    Result r;
    if (::pipe(fds) != 0) {
        r.message = "pipe failed";
        return r;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        const uint64_t base = mapped_bytes();
        struct rlimit lim;
        lim.rlim_cur = lim.rlim_max = static_cast<rlim_t>(base + extra_bytes);
        ::setrlimit(RLIMIT_AS, &lim);
        int code = 0;
        std::string msg;
        try {
            f();
        } catch (const rsa::InputError& e) {
            code = 1;
            msg = e.what();
        } catch (const rsa::OutOfMemoryError& e) {
            code = 2;
            msg = e.what();
        } catch (const std::bad_alloc& e) {
            code = 3;
            msg = e.what();
        } catch (const std::exception& e) {
            code = 4;
            msg = e.what();
        }
        size_t done = 0;
        while (done < msg.size()) {
            const ssize_t n = ::write(fds[1], msg.data() + done, msg.size() - done);
            if (n <= 0) break;
            done += static_cast<size_t>(n);
        }
        ::close(fds[1]);
        ::_exit(code);
    }
    ::close(fds[1]);
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n <= 0) break;
        r.message.append(buf, static_cast<size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) != pid) {
        r.message = "fork/wait failed";
        return r;
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!WIFEXITED(status)) {
        r.outcome = Outcome::Crashed;
        if (WIFSIGNALED(status)) r.message = "signal " + std::to_string(WTERMSIG(status));
        return r;
    }
    static const Outcome by_code[] = {Outcome::Returned, Outcome::InputError, Outcome::OutOfMemory,
                                      Outcome::BadAlloc, Outcome::OtherException};
    const int code = WEXITSTATUS(status);
    r.outcome = code >= 0 && code <= 4 ? by_code[code] : Outcome::Crashed;
    return r;
}

}  // namespace bounded_run

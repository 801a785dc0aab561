// Host memory on the CPU path: the budget large jobs are planned against (physical memory less a margin, or
// the RSA_GPU_HOST_MEM_BYTES override), and checked allocations that turn a failure (or a request the budget or
// the machine cannot hold) into an OutOfMemoryError naming what was being allocated and how large.
#pragma once
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "rsa_gpu/matrix.h"

namespace rsa {

// Environment variable that overrides the host memory budget: bytes, optionally with a K, M or G suffix
// (powers of 1024), e.g. RSA_GPU_HOST_MEM_BYTES=512M. Meant for tests and for sharing a machine.
constexpr const char* kHostMemEnv = "RSA_GPU_HOST_MEM_BYTES";

// Physical memory of the machine (sysconf pages x page size); 0 when the system does not say.
uint64_t host_physical_bytes();

// What the CPU path may plan for in all: RSA_GPU_HOST_MEM_BYTES when set, else physical memory less a margin
// of max(512 MiB, 10%) for the system and the rest of the process. An unparsable override is an InputError
// naming the variable. Read on every call (cheap), so tests can change it.
uint64_t host_memory_budget();

// One line saying where the budget comes from, e.g. "24.1 GB (physical memory 25.7 GB less a 2.6 GB margin;
// set RSA_GPU_HOST_MEM_BYTES to change it)".
std::string host_budget_text();

// count * size in 64 bits; OutOfMemoryError naming `what` when the product overflows.
uint64_t checked_bytes(uint64_t count, uint64_t size, const std::string& what);

// [[noreturn]] OutOfMemoryError: "out of host memory: cannot allocate <size> for <what>: <why>".
[[noreturn]] void throw_host_oom(const std::string& what, uint64_t bytes, const std::string& why);

// Before a large allocation: OutOfMemoryError naming `what` and its size when `bytes` exceeds the host budget,
// or (requests of 64 MiB and more, without the override) the memory the system has available right now
// (MemAvailable + SwapFree in /proc/meminfo), so that an allocation Linux would overcommit and later kill the
// process for fails cleanly instead.
void check_host_alloc(uint64_t bytes, const std::string& what);

// A vector of n values of T (filled with `fill`) through check_host_alloc; std::bad_alloc (and
// std::length_error) become OutOfMemoryError naming `what` and the size.
template <class T>
std::vector<T> checked_alloc(size_t n, const std::string& what, const T& fill = T()) {
    const uint64_t bytes = checked_bytes(n, sizeof(T), what);
    check_host_alloc(bytes, what);
    try {
        return std::vector<T>(n, fill);
    } catch (const std::bad_alloc&) {
        throw_host_oom(what, bytes, "the allocation failed");
    } catch (const std::length_error&) {
        throw_host_oom(what, bytes, "too large for this platform");
    }
}

// Resize `v` to n values the same way (existing values kept, new ones value-initialised).
template <class T>
void checked_resize(std::vector<T>& v, size_t n, const std::string& what) {
    const uint64_t bytes = checked_bytes(n, sizeof(T), what);
    if (n > v.size()) check_host_alloc(checked_bytes(n - v.size(), sizeof(T), what), what);
    try {
        v.resize(n);
    } catch (const std::bad_alloc&) {
        throw_host_oom(what, bytes, "the allocation failed");
    } catch (const std::length_error&) {
        throw_host_oom(what, bytes, "too large for this platform");
    }
}

// A rows x cols float matrix (filled with `fill`) through checked_alloc; negative shapes are a RuntimeError.
Matrix checked_matrix(int64_t rows, int64_t cols, const std::string& what, float fill = 0.0f);

}  // namespace rsa

// Error types of rsa_gpu. InputError: the user's input or usage is wrong (exit code 2).
// RuntimeError: the machine or a library failed (exit code 1); OutOfMemoryError is one. Messages name the file, key, shape or row.
#pragma once
#include <stdexcept>
#include <string>

namespace rsa {

struct InputError : std::runtime_error {
    explicit InputError(const std::string& what) : std::runtime_error(what) {}
};

struct RuntimeError : std::runtime_error {
    explicit RuntimeError(const std::string& what) : std::runtime_error(what) {}
};

// An allocation failed (device or host memory); the message names what was being allocated and how large. The
// RDM engine's fallbacks (one-shot -> streamed -> tiled) catch it; elsewhere it is a runtime failure (exit 1).
struct OutOfMemoryError : RuntimeError {
    explicit OutOfMemoryError(const std::string& what) : RuntimeError(what) {}
};

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

}  // namespace rsa

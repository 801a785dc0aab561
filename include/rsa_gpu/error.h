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

// A warning that does not stop the work (a failed cleanup, a fallback taken): the one way the engine's lower layers
// (kernels, twins) say something. The host prints it to stderr as "rsa_gpu: <message>" unless a handler is set
// (the Python package routes warnings to Python's warnings module). Thread-safe; never throws.
void report_warning(const std::string& message) noexcept;
using WarningHandler = void (*)(const std::string& message);
void set_warning_handler(WarningHandler handler) noexcept;  // nullptr: back to stderr

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

}  // namespace rsa

// The one gate of every GPU test program (the gtest GPU tests and test_backend_ops): may this process run its GPU
// cases? A machine with no NVIDIA driver or no CUDA device skips (exit 77, CTest's SKIP_RETURN_CODE), and only
// such a machine: a driver too old for this build's CUDA runtime, or any other CUDA failure, is a failure
// (exit 1). With RSA_GPU_REQUIRE=1 in the environment every reason not to run is a failure, so a device check
// can never read "all skipped" as a pass.
#pragma once
#include <string>

namespace rsa_test {

enum class GpuGate {
    Run,        // a usable device 0
    SkipNoGpu,  // no driver library, or no CUDA device: exit 77 unless RSA_GPU_REQUIRE=1
    Fail,       // a driver or runtime problem on a machine that has a GPU: exit 1
};

// Classifies this machine; `why` says why not Run.
GpuGate gpu_gate(std::string* why);

// Whether RSA_GPU_REQUIRE=1 is set.
bool gpu_required();

// Prints the verdict for `program` and returns the exit code to leave with (77 or 1), or -1 to go on.
int gpu_gate_exit_code(const char* program);

}  // namespace rsa_test

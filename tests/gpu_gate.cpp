// GPU test gate (see gpu_gate.h): tells "no GPU here" (skip) from "a GPU here that does not work" (fail).
#include "gpu_gate.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(RSA_GPU_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace rsa_test {

namespace {
std::string cuda_version_text(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }
}  // namespace

bool gpu_required() {
    const char* v = std::getenv("RSA_GPU_REQUIRE");
    return v && std::strcmp(v, "1") == 0;
}

GpuGate gpu_gate(std::string* why) {
#if !defined(RSA_GPU_HAVE_CUDA)
    *why = "this build has no CUDA (-DRSA_GPU_CUDA=OFF)";
    return GpuGate::SkipNoGpu;
#else
    // The driver library first: without it there is no GPU to test on.
    void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!driver) {
        *why = std::string("no NVIDIA driver (libcuda.so.1 cannot be loaded: ") + dlerror() + ")";
        return GpuGate::SkipNoGpu;
    }
    dlclose(driver);
    int runtime = 0, driver_version = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver_version);
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status == cudaErrorNoDevice || (status == cudaSuccess && count == 0)) {
        cudaGetLastError();
        *why = "no CUDA device is present (driver " + cuda_version_text(driver_version) + ")";
        return GpuGate::SkipNoGpu;
    }
    if (status != cudaSuccess) {
        cudaGetLastError();
        *why = std::string("CUDA cannot start: cudaGetDeviceCount: ") + cudaGetErrorName(status) + ": " +
               cudaGetErrorString(status) + " (driver supports CUDA " + cuda_version_text(driver_version) +
               ", this build's runtime is CUDA " + cuda_version_text(runtime) + ")";
        if (status == cudaErrorInsufficientDriver)
            *why += ": the driver is too old for this toolkit; install a newer driver or build with an older toolkit";
        return GpuGate::Fail;
    }
    return GpuGate::Run;
#endif
}

int gpu_gate_exit_code(const char* program) {
    std::string why;
    const GpuGate gate = gpu_gate(&why);
    if (gate == GpuGate::Run) return -1;
    if (gate == GpuGate::Fail) {
        std::printf("FAILED: %s: a GPU is present but not usable: %s\n", program, why.c_str());
        return 1;
    }
    if (gpu_required()) {
        std::printf("FAILED: %s: RSA_GPU_REQUIRE=1 but no usable GPU: %s\n", program, why.c_str());
        return 1;
    }
    std::printf("SKIPPED: no usable GPU: %s\n", why.c_str());
    return 77;
}

}  // namespace rsa_test

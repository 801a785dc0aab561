// Device selection (--device auto|cpu|N) and the backend factory. In a CPU-only build every request for a GPU
// says that the binary was built without CUDA.
#include <cstdlib>
#include <memory>
#include <string>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"

#include <cblas.h>

#if defined(RSA_GPU_HAVE_CUDA)
#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include "gpu_context.cuh"
#include <cudnn.h>
#include <curand.h>
#endif

namespace rsa {

DeviceRequest parse_device(const std::string& text) {
    DeviceRequest r;
    if (text == "auto" || text.empty()) return r;
    r.automatic = false;
    if (text == "cpu") {
        r.cpu = true;
        return r;
    }
    char* end = nullptr;
    const long index = std::strtol(text.c_str(), &end, 10);
    if (end == text.c_str() || *end != '\0' || index < 0 || index > 1024)
        throw InputError("--device: expected auto, cpu or a GPU index (0, 1, ...), got '" + text + "'");
    r.index = static_cast<int>(index);
    return r;
}

static bool probe(int index, std::string* why) {
#if defined(RSA_GPU_HAVE_CUDA)
    return gpu_probe(index, why);
#else
    (void)index;
    *why = "this rsa_gpu was built without CUDA (-DRSA_GPU_CUDA=OFF)";
    return false;
#endif
}

bool gpu_usable(std::string* why) {
    std::string reason;
    const bool ok = probe(0, &reason);
    if (why) *why = reason;
    return ok;
}

std::string version_report() {
    std::string out = std::string("rsa_gpu ") + RSA_GPU_VERSION + "\n";
    out += std::string("OpenBLAS: ") + openblas_get_config() + "\n";
#if defined(RSA_GPU_HAVE_CUDA)
    // Version queries are reported, never fatal: a failed one prints its library's message instead.
    int runtime = 0, driver = 0;
    const cudaError_t runtime_status = cudaRuntimeGetVersion(&runtime);
    const cudaError_t driver_status = cudaDriverGetVersion(&driver);
    out += "CUDA runtime: " +
           (runtime_status == cudaSuccess ? std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10)
                                          : std::string(cudaGetErrorString(runtime_status))) + "\n";
    out += "CUDA driver: " +
           (driver_status == cudaSuccess && driver > 0
                ? std::to_string(driver / 1000) + "." + std::to_string(driver % 1000 / 10)
                : std::string("none")) + "\n";
    int major = 0, minor = 0, patch = 0;
    const bool blas_ok = cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
                         cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
                         cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS;
    out += "cuBLAS: " + (blas_ok ? std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch)
                                 : std::string("unknown (cublasGetProperty failed)")) + "\n";
    const size_t cudnn = cudnnGetVersion();
    out += "cuDNN: " + std::to_string(cudnn / 10000) + "." + std::to_string(cudnn % 10000 / 100) + "." +
           std::to_string(cudnn % 100) + "\n";
    int curand = 0;
    out += "cuRAND: " + (curandGetVersion(&curand) == CURAND_STATUS_SUCCESS ? std::to_string(curand)
                                                                             : std::string("unknown")) + "\n";
    std::string why;
    if (probe(0, &why)) {
        int count = 0;
        if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
        for (int d = 0; d < count; ++d) {
            cudaDeviceProp prop{};
            if (cudaGetDeviceProperties(&prop, d) == cudaSuccess)
                out += "GPU " + std::to_string(d) + ": " + prop.name + " (sm_" + std::to_string(prop.major) +
                       std::to_string(prop.minor) + ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB)\n";
        }
    } else {
        out += "GPU: none usable (" + why + ")\n";
    }
#else
    out += "CUDA: not built (-DRSA_GPU_CUDA=OFF)\n";
#endif
    if (!out.empty()) out.pop_back();
    return out;
}

std::unique_ptr<Backend> make_backend(const DeviceRequest& request, std::string* note) {
    if (request.cpu) {
        if (note) *note = "device: cpu (requested)";
        return make_cpu_backend();
    }
    std::string why;
    if (request.automatic) {
        if (!probe(0, &why)) {
            if (note) *note = "device: cpu (auto: " + why + ")";
            return make_cpu_backend();
        }
    } else if (!probe(request.index, &why)) {
        throw RuntimeError("cannot use --device " + std::to_string(request.index) + ": " + why +
                           ". Run with --device cpu to use the CPU instead.");
    }
#if defined(RSA_GPU_HAVE_CUDA)
    auto backend = make_gpu_backend(request.automatic ? 0 : request.index);
    if (note) *note = "device: " + backend->name() + (request.automatic ? " (auto)" : "");
    return backend;
#else
    throw RuntimeError("unreachable: GPU requested in a CPU-only build");
#endif
}

}  // namespace rsa

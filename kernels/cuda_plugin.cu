// The entry point of the CUDA plugin (librsa_gpu_cuda.so, see include/rsa_gpu/cuda_plugin.h): the device probe,
// the GPU backend factory, the CUDA library versions and (when built with NCCL) the device collectives, handed to the
// host in one table.
#include "rsa_gpu/cuda_plugin.h"

#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <curand.h>

#include "gpu_context.cuh"

namespace rsa {

std::unique_ptr<Backend> make_cuda_backend(int device);  // kernels/gpu_backend.cu
std::shared_ptr<DeviceStore> borrow_cuda_memory(const float* data, int device, size_t count,
                                                std::shared_ptr<const void> keeper);  // kernels/gpu_backend.cu
#if defined(RSA_GPU_HAVE_NCCL)
std::string nccl_unique_id();  // kernels/nccl_collective.cu
std::unique_ptr<DeviceCollective> nccl_collective(const std::string& id, int rank, int ranks,
                                                  int device);  // kernels/nccl_collective.cu
std::string nccl_version_report();  // kernels/nccl_collective.cu
#endif

namespace {

std::string cuda_version_text(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// Version queries are reported, never fatal: a failed one prints its library's message instead.
std::string cuda_versions() {
    std::string out;
    int runtime = 0, driver = 0;
    const cudaError_t runtime_status = cudaRuntimeGetVersion(&runtime);
    const cudaError_t driver_status = cudaDriverGetVersion(&driver);
    out += "CUDA runtime: " +
           (runtime_status == cudaSuccess ? cuda_version_text(runtime) : std::string(cudaGetErrorString(runtime_status))) +
           "\n";
    out += "CUDA driver: " + (driver_status == cudaSuccess && driver > 0 ? cuda_version_text(driver) : std::string("none")) +
           "\n";
    int major = 0, minor = 0, patch = 0;
    const bool blas_ok = cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
                         cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
                         cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS;
    out += "cuBLAS: " + (blas_ok ? std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch)
                                 : std::string("unknown (cublasGetProperty failed)")) + "\n";
    // cuDNN's own version and the CUDA runtime it was built for (a cu12 cuDNN in a CUDA 13 build fails at run time;
    // tools/device_check.sh compares this major with the toolkit's).
    const size_t cudnn = cudnnGetVersion();
    const size_t cudnn_cudart = cudnnGetCudartVersion();
    out += "cuDNN: " + std::to_string(cudnn / 10000) + "." + std::to_string(cudnn % 10000 / 100) + "." +
           std::to_string(cudnn % 100) + " (built for CUDA " + cuda_version_text(static_cast<int>(cudnn_cudart)) + ")\n";
    int curand = 0;
    out += "cuRAND: " + (curandGetVersion(&curand) == CURAND_STATUS_SUCCESS ? std::to_string(curand)
                                                                             : std::string("unknown")) + "\n";
#if defined(RSA_GPU_HAVE_NCCL)
    out += "NCCL: " + nccl_version_report() + "\n";
#else
    out += "NCCL: not built in (distributed runs sum through host memory)\n";
#endif
    std::string why;
    if (gpu_probe(0, &why)) {
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
    if (!out.empty()) out.pop_back();
    return out;
}

}  // namespace
}  // namespace rsa

extern "C" const rsa::CudaPlugin* rsa_gpu_cuda_plugin() {
    static const rsa::CudaPlugin plugin = [] {
        rsa::CudaPlugin p;
        p.abi = rsa::kCudaPluginAbi;
        p.probe = &rsa::gpu_probe;
        p.make_backend = &rsa::make_cuda_backend;
        p.versions = &rsa::cuda_versions;
        p.borrow_device = &rsa::borrow_cuda_memory;
#if defined(RSA_GPU_HAVE_NCCL)
        p.nccl_unique_id = &rsa::nccl_unique_id;
        p.nccl_collective = &rsa::nccl_collective;
#endif
        return p;
    }();
    return &plugin;
}

// The per-device GpuContext (stream, cuBLAS and cuDNN handles), created once, and the device probe.
#include "gpu_context.cuh"

#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "cuda_check.cuh"

namespace rsa {

bool gpu_probe(int device, std::string* why) {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
        cudaGetLastError();  // clear the sticky error for later calls
        if (why) {
            if (status == cudaErrorInsufficientDriver || status == cudaErrorNoDevice)
                *why = status == cudaErrorNoDevice ? "no CUDA device is present"
                                                   : "no usable NVIDIA driver (cudaGetDeviceCount: " +
                                                         std::string(cudaGetErrorString(status)) + ")";
            else
                *why = std::string("CUDA is not usable (cudaGetDeviceCount: ") + cudaGetErrorString(status) + ")";
        }
        return false;
    }
    if (count == 0) {
        if (why) *why = "no CUDA device is present";
        return false;
    }
    if (device < 0 || device >= count) {
        if (why) {
            std::ostringstream os;
            os << "CUDA device " << device << " does not exist (this machine has " << count << ": 0.." << count - 1
               << ")";
            *why = os.str();
        }
        return false;
    }
    return true;
}

void bind_cublas_stream(cublasHandle_t cublas, cudaStream_t stream) {
    cudaStream_t current = nullptr;
    CUBLAS_CHECK(cublasGetStream(cublas, &current));
    if (current != stream) CUBLAS_CHECK(cublasSetStream(cublas, stream));
}

GpuContext& gpu_context(int device) {
    static std::mutex mutex;
    static std::map<int, std::unique_ptr<GpuContext>> contexts;
    std::lock_guard<std::mutex> lock(mutex);
    auto found = contexts.find(device);
    if (found != contexts.end()) return *found->second;

    std::string why;
    if (!gpu_probe(device, &why)) throw RuntimeError("cannot use GPU " + std::to_string(device) + ": " + why);
    auto ctx = std::make_unique<GpuContext>();
    ctx->device = device;
    CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    ctx->card = prop.name;
    CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&ctx->cublas));
    CUBLAS_CHECK(cublasSetStream(ctx->cublas, ctx->stream));
    CUBLAS_CHECK(cublasSetMathMode(ctx->cublas, CUBLAS_PEDANTIC_MATH));
    ctx->cublas_workspace_bytes = 32u << 20;
    CUDA_CHECK(cudaMalloc(&ctx->cublas_workspace, ctx->cublas_workspace_bytes));
    CUBLAS_CHECK(cublasSetWorkspace(ctx->cublas, ctx->cublas_workspace, ctx->cublas_workspace_bytes));
    CUDNN_CHECK(cudnnCreate(&ctx->cudnn));
    CUDNN_CHECK(cudnnSetStream(ctx->cudnn, ctx->stream));
    GpuContext& ref = *ctx;
    contexts.emplace(device, std::move(ctx));
    return ref;
}

}  // namespace rsa

// The per-device GpuContext (stream, cuBLAS handle and workspace) created once, the cuDNN handle created on the
// CNN's first use, their release (on a failed creation and at process exit), and the device probe.
#include "gpu_context.cuh"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>

#include "cuda_check.cuh"

namespace rsa {

namespace {

// The registry lives on the heap and is never destroyed by a static destructor: release_all_contexts (an atexit
// handler registered after the CUDA runtime was initialised, so it runs before the runtime's own teardown and
// before the destructors of objects built on a context) releases the contexts.
std::mutex& registry_mutex() {
    static std::mutex* m = new std::mutex;
    return *m;
}
std::map<int, std::unique_ptr<GpuContext>>& registry() {
    static auto* r = new std::map<int, std::unique_ptr<GpuContext>>;
    return *r;
}
bool exit_handler_registered = false;  // guarded by registry_mutex()

void release_all_contexts() {
    std::map<int, std::unique_ptr<GpuContext>> doomed;
    {
        std::lock_guard<std::mutex> lock(registry_mutex());
        doomed.swap(registry());
    }
    doomed.clear();  // ~GpuContext -> release(), never throws
}

// Cleanup-side check: true when the CUDA runtime is unloading (stop calling it); other failures are printed.
bool runtime_gone(cudaError_t status, int device, const char* what) {
    if (status == cudaSuccess) return false;
    cudaGetLastError();  // clear the last-error slot
    if (status == cudaErrorCudartUnloading) return true;
    report_warning("releasing the context of GPU " + std::to_string(device) + ": " + what + ": " +
                   cudaGetErrorString(status));
    return false;
}

}  // namespace

void GpuContext::release() noexcept {
    if (!stream && !cublas && !cublas_workspace && !cudnn_) return;
    // Forget whatever is left (freed already, or left to the driver when the runtime is unloading).
    auto drop = [&]() {
        cudnn_ = nullptr;
        cublas = nullptr;
        cublas_workspace_buffer.abandon();
        cublas_workspace = nullptr;
        cublas_workspace_bytes = 0;
        stream = nullptr;
    };
    if (runtime_gone(cudaSetDevice(device), device, "cudaSetDevice")) return drop();
    // Queued work may still use the workspace or the handles.
    if (stream && runtime_gone(cudaStreamSynchronize(stream), device, "cudaStreamSynchronize")) return drop();
    if (cudnn_) {
        const cudnnStatus_t s = cudnnDestroy(cudnn_);
        if (s != CUDNN_STATUS_SUCCESS)
            report_warning("releasing the context of GPU " + std::to_string(device) +
                           ": cudnnDestroy: " + cudnnGetErrorString(s));
    }
    if (cublas) {
        const cublasStatus_t s = cublasDestroy(cublas);
        if (s != CUBLAS_STATUS_SUCCESS)
            report_warning("releasing the context of GPU " + std::to_string(device) +
                           ": cublasDestroy: " + cublasGetStatusString(s));
    }
    cublas_workspace_buffer.resize(0);  // frees it (DeviceBuffer reports a failed cudaFree, never throws)
    if (stream) runtime_gone(cudaStreamDestroy(stream), device, "cudaStreamDestroy");
    drop();
}

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
    if (current == stream) return;
    CUBLAS_CHECK(cublasSetStream(cublas, stream));
    // cublasSetStream dropped the workspace: the context owning the handle gives its own back.
    void* workspace = nullptr;
    size_t bytes = 0;
    {
        std::lock_guard<std::mutex> lock(registry_mutex());
        for (const auto& entry : registry())
            if (entry.second->cublas == cublas) {
                workspace = entry.second->cublas_workspace;
                bytes = entry.second->cublas_workspace_bytes;
            }
    }
    if (workspace) CUBLAS_CHECK(cublasSetWorkspace(cublas, workspace, bytes));
}

GpuContext& gpu_context(int device) {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto& contexts = registry();
    auto found = contexts.find(device);
    if (found != contexts.end()) return *found->second;

    std::string why;
    if (!gpu_probe(device, &why)) throw RuntimeError("cannot use GPU " + std::to_string(device) + ": " + why);
    // Owned from the start: a failure below releases whatever was created (~GpuContext).
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
    const size_t workspace_bytes = 32u << 20;
    ctx->cublas_workspace_buffer.resize(workspace_bytes, "the cuBLAS workspace");
    ctx->cublas_workspace = ctx->cublas_workspace_buffer.get();
    ctx->cublas_workspace_bytes = workspace_bytes;
    CUBLAS_CHECK(cublasSetWorkspace(ctx->cublas, ctx->cublas_workspace, ctx->cublas_workspace_bytes));
    // The CUDA runtime is initialised by now, so this handler runs before the runtime's teardown at exit.
    if (!exit_handler_registered && std::atexit(release_all_contexts) == 0) exit_handler_registered = true;
    GpuContext& ref = *ctx;
    contexts.emplace(device, std::move(ctx));
    return ref;
}

cudnnHandle_t gpu_cudnn(GpuContext& ctx) {
    std::lock_guard<std::mutex> lock(ctx.cudnn_mutex_);
    if (ctx.cudnn_) return ctx.cudnn_;
    CUDA_CHECK(cudaSetDevice(ctx.device));
    cudnnHandle_t handle = nullptr;
    const char* step = "cudnnCreate";
    cudnnStatus_t status = cudnnCreate(&handle);
    if (status == CUDNN_STATUS_SUCCESS) {
        step = "cudnnSetStream";
        status = cudnnSetStream(handle, ctx.stream);
    }
    if (status != CUDNN_STATUS_SUCCESS) {
        const std::string message = cudnn_message(status);  // before cudnnDestroy resets the last error
        if (handle) cudnnDestroy(handle);
        const size_t loaded = cudnnGetVersion();
        std::ostringstream os;
        os << "cuDNN could not be initialised on GPU " << ctx.device << " (" << step << ": " << message
           << "; cuDNN library " << loaded / 10000 << "." << loaded % 10000 / 100 << "." << loaded % 100
           << ", built against " << CUDNN_MAJOR << "." << CUDNN_MINOR << "." << CUDNN_PATCHLEVEL
           << "). The CNN needs cuDNN (the RDMs, comparisons and statistics do not): install the cuDNN 9 of this "
              "CUDA version (or point CUDNN_ROOT / LD_LIBRARY_PATH at one), skip the CNN with --no-cnn, or run on "
              "the CPU with --device cpu";
        throw RuntimeError(os.str());
    }
    ctx.cudnn_ = handle;
    return handle;
}

}  // namespace rsa

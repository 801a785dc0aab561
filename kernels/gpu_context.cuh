// GpuContext: the one CUDA stream and the library handles (cuBLAS, cuDNN) of a device, created once per
// process and shared by every GPU operation. Handles are bound to the stream; cuBLAS gets an explicit
// workspace (required for graph capture) and pedantic FP32 math by default (exact FP32 paths).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

namespace rsa {

struct GpuContext {
    int device = 0;
    std::string card;                  // e.g. "NVIDIA H100 80GB HBM3"
    cudaStream_t stream = nullptr;
    cublasHandle_t cublas = nullptr;
    cudnnHandle_t cudnn = nullptr;
    void* cublas_workspace = nullptr;
    size_t cublas_workspace_bytes = 0;
};

// The context of `device`, created on first use (throws RuntimeError when the device cannot be used).
GpuContext& gpu_context(int device);

// Bind `cublas` to `stream` only when it is bound elsewhere: cublasSetStream also resets the handle's workspace to
// cuBLAS's default pool (dropping the one set with cublasSetWorkspace, which graph capture needs, and allocating
// anew, which can fail under memory pressure).
void bind_cublas_stream(cublasHandle_t cublas, cudaStream_t stream);

// Cheap probe: true when a CUDA device `device` exists and a driver is present; otherwise `why` says why.
bool gpu_probe(int device, std::string* why);

}  // namespace rsa

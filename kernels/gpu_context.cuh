// GpuContext: the one CUDA stream and the cuBLAS handle (with its workspace) of a device, created once per process
// and shared by every GPU operation; the cuDNN handle is created on first use by the CNN only (gpu_cudnn), so the
// RDM, measure and statistics paths need cuBLAS alone and work where cuDNN does not load. Handles are bound to the
// stream; cuBLAS gets an explicit workspace (required for graph capture) and pedantic FP32 math by default (exact
// FP32 paths). A context releases its stream, handles and workspace when its creation fails halfway and at
// process exit (never throwing; a CUDA runtime that is already unloading is left to the driver).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <mutex>
#include <string>

#include "device_buffer.cuh"

namespace rsa {

struct GpuContext {
    int device = 0;
    std::string card;                  // e.g. "NVIDIA H100 80GB HBM3"
    cudaStream_t stream = nullptr;
    cublasHandle_t cublas = nullptr;
    DeviceBuffer<char> cublas_workspace_buffer;  // owns the workspace below
    void* cublas_workspace = nullptr;            // cublas_workspace_buffer.get(), set on the handle
    size_t cublas_workspace_bytes = 0;

    GpuContext() = default;
    ~GpuContext() { release(); }
    GpuContext(const GpuContext&) = delete;
    GpuContext& operator=(const GpuContext&) = delete;

    // Waits for the stream, then destroys the cuDNN handle (if created), the cuBLAS handle, its workspace and the
    // stream. Never throws: failures are printed, except cudaErrorCudartUnloading (process exit after the runtime's
    // own teardown), when nothing more is called and the driver reclaims everything.
    void release() noexcept;

    // Whether gpu_cudnn has created the cuDNN handle yet (the RDM, measure and statistics paths never do).
    bool has_cudnn() {
        std::lock_guard<std::mutex> lock(cudnn_mutex_);
        return cudnn_ != nullptr;
    }

private:
    friend cudnnHandle_t gpu_cudnn(GpuContext& ctx);
    cudnnHandle_t cudnn_ = nullptr;    // created by gpu_cudnn on first use
    std::mutex cudnn_mutex_;
};

// The context of `device`, created on first use (throws RuntimeError when the device cannot be used; whatever was
// created before the failure is released). Every context is released at process exit.
GpuContext& gpu_context(int device);

// The context's cuDNN handle, created and bound to the context stream on first use (the CNN's entry points call
// it). RuntimeError naming the cuDNN failure (status and cuDNN's own message) when cuDNN cannot be initialised;
// a later call tries again.
cudnnHandle_t gpu_cudnn(GpuContext& ctx);

// The one way a launcher binds a cuBLAS handle to its stream: nothing when `cublas` is on `stream` already;
// otherwise cublasSetStream, which resets the handle's workspace to cuBLAS's default pool (allocated on demand: a
// graph capture cannot, and under memory pressure it can fail), so a context's handle then gets the context's own
// workspace back (cublasSetWorkspace). Every cuBLAS handle of the program is bound this way (the context creation
// aside), so a context's handle always runs on the context's workspace.
void bind_cublas_stream(cublasHandle_t cublas, cudaStream_t stream);

// Cheap probe: true when a CUDA device `device` exists and a driver is present; otherwise `why` says why.
bool gpu_probe(int device, std::string* why);

}  // namespace rsa

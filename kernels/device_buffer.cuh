// DeviceBuffer<T>: an owning, checked device allocation with host copies (RAII; frees without throwing).
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

#include "cuda_check.cuh"

namespace rsa {

template <typename T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t count) { resize(count); }
    ~DeviceBuffer() { release(); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), count_(o.count_) { o.ptr_ = nullptr; o.count_ = 0; }

    void resize(size_t count) {
        if (count == count_) return;
        release();
        if (count) CUDA_CHECK(cudaMalloc(&ptr_, count * sizeof(T)));
        count_ = count;
    }
    void upload(const T* host, size_t count, cudaStream_t stream) {
        resize(count);
        if (count) CUDA_CHECK(cudaMemcpyAsync(ptr_, host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
    }
    void upload(const std::vector<T>& host, cudaStream_t stream) { upload(host.data(), host.size(), stream); }
    // Copies to host and waits for the stream.
    void download(T* host, size_t count, cudaStream_t stream) const {
        if (count) CUDA_CHECK(cudaMemcpyAsync(host, ptr_, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    // Fill every byte with `byte` (0xFF poisons floats with NaN).
    void poison(cudaStream_t stream, int byte = 0xFF) {
        if (count_) CUDA_CHECK(cudaMemsetAsync(ptr_, byte, count_ * sizeof(T), stream));
    }
    T* get() { return ptr_; }
    const T* get() const { return ptr_; }
    size_t size() const { return count_; }

private:
    void release() noexcept {
        if (ptr_) {
            const cudaError_t e = cudaFree(ptr_);
            if (e != cudaSuccess) std::fprintf(stderr, "warning: cudaFree failed: %s\n", cudaGetErrorString(e));
        }
        ptr_ = nullptr;
        count_ = 0;
    }
    T* ptr_ = nullptr;
    size_t count_ = 0;
};

}  // namespace rsa

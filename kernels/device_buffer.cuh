// DeviceBuffer<T>: an owning, checked device allocation with host copies (RAII; frees without throwing). An
// allocation failure raises OutOfMemoryError naming the bytes (and `what`, when given), so the RDM engine's
// fallbacks catch it wherever it happens. In poison mode (rsa_gpu/poison.h, a test switch) a fresh allocation is
// filled with 0xFF bytes (NaN for floats) and carries a tail of sentinel bytes after its elements, verified on
// download() and on release(); with poison mode off nothing of that happens. PinnedBuffer<T>: page-locked host memory
// with the same allocation-failure rule (OutOfMemoryError). These are the only owners of CUDA allocations in kernels/.
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "cuda_check.cuh"
#include "rsa_gpu/poison.h"

namespace rsa {

template <typename T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t count, const char* what = nullptr) { resize(count, what); }
    ~DeviceBuffer() { release(); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), count_(o.count_), tail_(o.tail_) {
        o.ptr_ = nullptr;
        o.count_ = 0;
        o.tail_ = 0;
    }

    void resize(size_t count, const char* what = nullptr) {
        if (count == count_) return;
        release();
        if (count) {
            const size_t tail = poison_mode() ? kPoisonTailBytes : 0;  // sentinel bytes after the elements
            const cudaError_t e = cudaMalloc(&ptr_, count * sizeof(T) + tail);
            if (e == cudaErrorMemoryAllocation) {
                cudaGetLastError();  // not sticky: clear it so later calls do not see it
                ptr_ = nullptr;
                throw OutOfMemoryError("out of device memory allocating " + std::to_string(count * sizeof(T)) +
                                       " bytes" + (what ? std::string(" for ") + what : std::string()));
            }
            CUDA_CHECK(e);
            if (tail) {
                count_ = count;
                tail_ = tail;
                poison_fresh();
            }
        }
        count_ = count;
    }
    void upload(const T* host, size_t count, cudaStream_t stream) {
        resize(count);
        if (count) CUDA_CHECK(cudaMemcpyAsync(ptr_, host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
    }
    void upload(const std::vector<T>& host, cudaStream_t stream) { upload(host.data(), host.size(), stream); }
    // Copies to host and waits for the stream (in poison mode, then checks the sentinel tail).
    void download(T* host, size_t count, cudaStream_t stream) const {
        if (count) CUDA_CHECK(cudaMemcpyAsync(host, ptr_, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        if (tail_) check_tail("download");
    }
    // Fill every byte with `byte` (0xFF poisons floats with NaN).
    void poison(cudaStream_t stream, int byte = 0xFF) {
        if (count_) CUDA_CHECK(cudaMemsetAsync(ptr_, byte, count_ * sizeof(T), stream));
    }
    T* get() { return ptr_; }
    const T* get() const { return ptr_; }
    size_t size() const { return count_; }
    // Forgets the allocation without freeing it: only for a CUDA runtime that is unloading at process exit (the
    // driver reclaims the memory; calling cudaFree then would fail).
    void abandon() noexcept {
        ptr_ = nullptr;
        count_ = 0;
        tail_ = 0;
    }

private:
    // Poison mode: elements to kPoisonFill, the tail to kPoisonSentinel. The memsets go to the legacy default
    // stream, which does not order with the library's non-blocking streams, so wait for them here.
    void poison_fresh() {
        char* bytes = reinterpret_cast<char*>(ptr_);
        CUDA_CHECK(cudaMemset(bytes, kPoisonFill, count_ * sizeof(T)));
        CUDA_CHECK(cudaMemset(bytes + count_ * sizeof(T), kPoisonSentinel, tail_));
        CUDA_CHECK(cudaDeviceSynchronize());
    }
    // Poison mode: read the tail back (after every stream's work) and report damage; never throws.
    void check_tail(const char* where) const noexcept {
        if (!ptr_ || !tail_) return;
        unsigned char host[kPoisonTailBytes];
        cudaError_t e = cudaDeviceSynchronize();
        if (e == cudaSuccess)
            e = cudaMemcpy(host, reinterpret_cast<const char*>(ptr_) + count_ * sizeof(T), tail_,
                           cudaMemcpyDeviceToHost);
        if (e != cudaSuccess) {
            report_warning("poison mode: cannot read the sentinel tail of a device buffer of " +
                           std::to_string(count_ * sizeof(T)) + " bytes: " + cudaGetErrorString(e));
            return;
        }
        size_t first = 0;
        const size_t bad = poison_tail_damage(host, tail_, &first);
        if (bad) poison_report_violation("device buffer", where, count_, sizeof(T), first, bad);
    }
    void release() noexcept {
        if (ptr_) {
            if (tail_) check_tail("release");
            const cudaError_t e = cudaFree(ptr_);
            if (e != cudaSuccess) report_warning(std::string("cudaFree failed: ") + cudaGetErrorString(e));
        }
        ptr_ = nullptr;
        count_ = 0;
        tail_ = 0;
    }
    T* ptr_ = nullptr;
    size_t count_ = 0;
    size_t tail_ = 0;  // sentinel bytes after the elements (poison mode at allocation), else 0
};

// PinnedBuffer<T>: an owning page-locked host allocation (cudaMallocHost; RAII, frees without throwing). An
// allocation failure raises OutOfMemoryError naming the bytes (and `what`), as DeviceBuffer does; other CUDA
// errors are RuntimeErrors.
template <typename T>
class PinnedBuffer {
public:
    PinnedBuffer() = default;
    explicit PinnedBuffer(size_t count, const char* what = nullptr) {
        if (!count) return;
        const cudaError_t e = cudaMallocHost(reinterpret_cast<void**>(&ptr_), count * sizeof(T));
        if (e == cudaErrorMemoryAllocation) {
            cudaGetLastError();  // not sticky: clear it so later calls do not see it
            ptr_ = nullptr;
            throw OutOfMemoryError("out of pinned host memory allocating " + std::to_string(count * sizeof(T)) +
                                   " bytes" + (what ? std::string(" for ") + what : std::string()));
        }
        if (e != cudaSuccess) ptr_ = nullptr;
        CUDA_CHECK(e);
        count_ = count;
    }
    ~PinnedBuffer() { release(); }
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    PinnedBuffer(PinnedBuffer&& o) noexcept : ptr_(o.ptr_), count_(o.count_) {
        o.ptr_ = nullptr;
        o.count_ = 0;
    }
    PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
        std::swap(ptr_, o.ptr_);
        std::swap(count_, o.count_);
        return *this;
    }
    T* get() const { return ptr_; }
    size_t size() const { return count_; }

private:
    void release() noexcept {
        if (ptr_) {
            const cudaError_t e = cudaFreeHost(ptr_);
            if (e != cudaSuccess) report_warning(std::string("cudaFreeHost failed: ") + cudaGetErrorString(e));
        }
        ptr_ = nullptr;
        count_ = 0;
    }
    T* ptr_ = nullptr;
    size_t count_ = 0;
};

}  // namespace rsa

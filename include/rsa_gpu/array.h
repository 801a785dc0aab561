// Array: the currency of the Backend interface. A rows x cols float32 row-major matrix that lives on the host, on
// one GPU, or on both, so that data stays where it was computed: an RDM the GPU backend made stays on its device
// until something asks for it on the host (host() downloads it once and keeps the copy), and a host matrix that a
// GPU backend uploads keeps its device copy (keep_device_copy), so the next operation on the same Array does not
// upload it again. Copies of an Array share one state (like a shared_ptr): pass them by value freely.
//
// A host Array either owns a Matrix (Array(Matrix&&)) or borrows memory it does not own (Array(const Matrix&),
// borrow(): a numpy array, a memory-mapped file); a borrowed pointer must outlive every copy of the Array unless a
// `keeper` holds it. A device Array holds a DeviceStore: the CUDA backend's buffer (kernels/gpu_backend.cu) or a
// borrowed device pointer (a PyTorch or CuPy array). The host side never includes a CUDA header: a DeviceStore
// is an interface. Thread-safe: the lazy download and the cached upload take the state's lock.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "rsa_gpu/matrix.h"

namespace rsa {

// A copy of an Array's data in one device's memory.
class DeviceStore {
public:
    virtual ~DeviceStore() = default;
    virtual int device() const = 0;
    virtual const float* data() const = 0;                   // rows * cols floats, row-major, device memory
    virtual void download(float* host, size_t count) const = 0;  // blocking copy of the first `count` floats
};

class Array {
public:
    Array() = default;
    Array(Matrix&& m);       // NOLINT: implicit on purpose: owns m
    Array(const Matrix& m);  // NOLINT: borrows m (which must outlive the Array and its copies)
    // Host memory owned elsewhere; `keeper` (may be null) keeps it alive as long as the Array.
    static Array borrow(const float* data, int64_t rows, int64_t cols, std::shared_ptr<const void> keeper = {});
    // Device memory only (the host copy is made on the first host()).
    static Array on_device(int64_t rows, int64_t cols, std::shared_ptr<DeviceStore> store);

    int64_t rows() const;
    int64_t cols() const;
    int64_t size() const { return rows() * cols(); }
    bool empty() const { return !s_ || size() == 0; }

    bool has_host() const;                    // a host copy exists now: host() costs nothing
    const float* host() const;                // the host data; a device-only Array is downloaded once, then kept
    MatrixView view() const { return MatrixView(host(), rows(), cols()); }
    Matrix to_matrix() const;                 // an owned host copy
    // The host data as a Matrix, moved out when this Array owns it (the Array then has no host copy: for the last
    // holder of a result), else copied (borrowed memory) or downloaded.
    Matrix take_matrix();

    // The copy on `device`, or null. keep_device_copy records one (a backend's upload; const: it is a cache).
    const DeviceStore* device_copy(int device) const;
    void keep_device_copy(std::shared_ptr<DeviceStore> store) const;
    int home_device() const;  // the device the Array was made on (-1: the host)

private:
    struct State;
    std::shared_ptr<State> s_;
};

}  // namespace rsa

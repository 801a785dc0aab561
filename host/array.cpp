// Array (array.h): shared state of a matrix on the host and/or on devices, the lazy download and the cached uploads.
#include "rsa_gpu/array.h"

#include <mutex>
#include <utility>
#include <vector>

#include "rsa_gpu/error.h"

namespace rsa {

struct Array::State {
    int64_t rows = 0, cols = 0;
    int home = -1;                          // -1: made on the host
    Matrix owned;                           // the host copy when the Array owns it (or downloaded it)
    const float* host = nullptr;            // the host data (owned.data.data() or borrowed), null: none yet
    std::shared_ptr<const void> keeper;     // keeps borrowed host memory alive
    std::vector<std::shared_ptr<DeviceStore>> devices;  // at most one per device
    std::mutex lock;
};

Array::Array(Matrix&& m) : s_(std::make_shared<State>()) {
    s_->rows = m.rows;
    s_->cols = m.cols;
    s_->owned = std::move(m);
    s_->host = s_->owned.data.data();
}

Array::Array(const Matrix& m) : s_(std::make_shared<State>()) {
    s_->rows = m.rows;
    s_->cols = m.cols;
    s_->host = m.data.data();
}

Array Array::borrow(const float* data, int64_t rows, int64_t cols, std::shared_ptr<const void> keeper) {
    Array a;
    a.s_ = std::make_shared<State>();
    a.s_->rows = rows;
    a.s_->cols = cols;
    a.s_->host = data;
    a.s_->keeper = std::move(keeper);
    return a;
}

Array Array::on_device(int64_t rows, int64_t cols, std::shared_ptr<DeviceStore> store) {
    if (!store) throw RuntimeError("Array::on_device: no device store");
    Array a;
    a.s_ = std::make_shared<State>();
    a.s_->rows = rows;
    a.s_->cols = cols;
    a.s_->home = store->device();
    a.s_->devices.push_back(std::move(store));
    return a;
}

int64_t Array::rows() const { return s_ ? s_->rows : 0; }
int64_t Array::cols() const { return s_ ? s_->cols : 0; }
int Array::home_device() const { return s_ ? s_->home : -1; }

bool Array::has_host() const {
    if (!s_) return true;
    std::lock_guard<std::mutex> g(s_->lock);
    return s_->host != nullptr || s_->rows * s_->cols == 0;
}

const float* Array::host() const {
    if (!s_) return nullptr;
    std::lock_guard<std::mutex> g(s_->lock);
    if (s_->host || s_->rows * s_->cols == 0) return s_->host;
    if (s_->devices.empty()) throw RuntimeError("Array::host: the array has neither host nor device data");
    Matrix m(s_->rows, s_->cols);
    s_->devices.front()->download(m.data.data(), m.data.size());
    s_->owned = std::move(m);
    s_->host = s_->owned.data.data();
    return s_->host;
}

Matrix Array::to_matrix() const {
    Matrix m(rows(), cols());
    const float* h = host();
    if (h) std::copy(h, h + m.data.size(), m.data.begin());
    return m;
}

Matrix Array::take_matrix() {
    if (!s_) return Matrix();
    host();  // downloads a device-only Array into its own Matrix
    {
        std::lock_guard<std::mutex> g(s_->lock);
        if (s_->host && s_->host == s_->owned.data.data()) {
            Matrix m = std::move(s_->owned);
            s_->owned = Matrix();
            s_->host = nullptr;
            if (s_->devices.empty()) s_->rows = s_->cols = 0;  // nothing left: an empty Array
            return m;
        }
    }
    return to_matrix();
}

const DeviceStore* Array::device_copy(int device) const {
    if (!s_) return nullptr;
    std::lock_guard<std::mutex> g(s_->lock);
    for (const auto& d : s_->devices)
        if (d->device() == device) return d.get();
    return nullptr;
}

void Array::keep_device_copy(std::shared_ptr<DeviceStore> store) const {
    if (!s_ || !store) return;
    std::lock_guard<std::mutex> g(s_->lock);
    for (auto& d : s_->devices)
        if (d->device() == store->device()) {
            d = std::move(store);
            return;
        }
    s_->devices.push_back(std::move(store));
}

}  // namespace rsa

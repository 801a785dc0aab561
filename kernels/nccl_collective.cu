// The CUDA plugin's NCCL device collective (issue 13: device-side collectives of distributed runs): the NCCL unique
// id that rank 0 creates and the host broadcasts, and one rank's member of the NCCL communicator, which sums a
// device-resident Array over the ranks into the root's Array in place (ncclReduce, float, sum) on the device's
// GpuContext stream, the stream every GPU operation of the backend runs on. Compiled into librsa_gpu_cuda.so only
// when CMake finds NCCL (RSA_GPU_HAVE_NCCL); every NCCL call is checked (NCCL_CHECK: statement, file, line and
// NCCL's message). The host side (host/device_collective.cpp) agrees on shapes and residency before calling in.
#include <nccl.h>

#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "common.cuh"
#include "cuda_check.cuh"
#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "rsa_gpu/array.h"
#include "rsa_gpu/cuda_plugin.h"
#include "rsa_gpu/distributed.h"
#include "rsa_gpu/error.h"

namespace rsa {

namespace {

std::string nccl_version_text() {
    int v = 0;
    NCCL_CHECK(ncclGetVersion(&v));
    // NCCL_VERSION(X, Y, Z) = X * 10000 + Y * 100 + Z since 2.9 (X * 1000 + Y * 100 + Z before).
    if (v >= 10000)
        return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
    return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 100) + "." + std::to_string(v % 100);
}

// out[i] = weight (complement ? 1 - d[i] : d[i]) in float64 (grid-strided).
__global__ void weighted_kernel(const float* __restrict__ d, size_t n, double weight, bool complement,
                                double* __restrict__ out) {
    for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<size_t>(gridDim.x) * blockDim.x) {
        const double v = static_cast<double>(d[i]);
        out[i] = weight * (complement ? 1.0 - v : v);
    }
}

class NcclCollective final : public DeviceCollective {
public:
    NcclCollective(GpuContext& ctx, ncclComm_t comm, int rank, int ranks)
        : ctx_(ctx), comm_(comm), rank_(rank), ranks_(ranks), version_(nccl_version_text()) {}
    ~NcclCollective() override {
        if (!comm_) return;
        // After a failed reduce a peer may be gone: abort (does not wait for the others) instead of destroy.
        const ncclResult_t status = failed_ ? ncclCommAbort(comm_) : ncclCommDestroy(comm_);
        if (status != ncclSuccess)
            report_warning(std::string("NCCL error: ") + nccl_message(status) + " in " +
                           (failed_ ? "ncclCommAbort" : "ncclCommDestroy") + " (rank " + std::to_string(rank_) +
                           " of " + std::to_string(ranks_) + ")");
    }
    NcclCollective(const NcclCollective&) = delete;
    NcclCollective& operator=(const NcclCollective&) = delete;

    void reduce_sum(Array& a, int root) override {
        if (root < 0 || root >= ranks_)
            throw RuntimeError("NCCL reduce: root " + std::to_string(root) + " is not a rank of " +
                               std::to_string(ranks_));
        const size_t count = static_cast<size_t>(a.size());
        if (count == 0) return;
        const DeviceStore* store = a.device_copy(ctx_.device);
        if (!store)
            throw RuntimeError("NCCL reduce: the " + std::to_string(a.rows()) + " x " + std::to_string(a.cols()) +
                               " array has no copy on device " + std::to_string(ctx_.device));
        // In place: root's buffer receives the sum (sendbuff == recvbuff); the other ranks only send, so their
        // buffers are read, never written. The store is the Array's own device copy, written through on root.
        float* data = const_cast<float*>(store->data());
        try {
            CUDA_CHECK(cudaSetDevice(ctx_.device));
            NCCL_CHECK(ncclReduce(data, data, count, ncclFloat, ncclSum, root, comm_, ctx_.stream));
            CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
            ncclResult_t async = ncclSuccess;
            NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
            if (async != ncclSuccess)
                gpu_fail("NCCL", nccl_message(async), "ncclReduce (asynchronous error)", __func__, __FILE__, __LINE__);
        } catch (...) {
            failed_ = true;
            throw;
        }
    }

    std::vector<double> allreduce_weighted(const Array& a, double weight, bool complement) override {
        const size_t count = static_cast<size_t>(a.size());
        std::vector<double> host(count);
        if (count == 0) return host;
        const DeviceStore* store = a.device_copy(ctx_.device);
        if (!store)
            throw RuntimeError("NCCL sum: the " + std::to_string(a.rows()) + " x " + std::to_string(a.cols()) +
                               " array has no copy on device " + std::to_string(ctx_.device));
        try {
            CUDA_CHECK(cudaSetDevice(ctx_.device));
            DeviceBuffer<double> sum(count, "the weighted partial RDM (float64)");
            weighted_kernel<<<grid_1d(static_cast<int64_t>(count)), kBlock, 0, ctx_.stream>>>(
                store->data(), count, weight, complement, sum.get());
            RSA_CHECK_LAUNCH();
            NCCL_CHECK(ncclAllReduce(sum.get(), sum.get(), count, ncclDouble, ncclSum, comm_, ctx_.stream));
            ncclResult_t async = ncclSuccess;
            NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
            if (async != ncclSuccess)
                gpu_fail("NCCL", nccl_message(async), "ncclAllReduce (asynchronous error)", __func__, __FILE__,
                         __LINE__);
            read_back(host.data(), sum.get(), count, ctx_.stream);
        } catch (...) {
            failed_ = true;
            throw;
        }
        return host;
    }

    std::string name() const override { return "NCCL " + version_ + " (" + std::to_string(ranks_) + " ranks)"; }

private:
    GpuContext& ctx_;
    ncclComm_t comm_ = nullptr;
    int rank_ = 0, ranks_ = 1;
    std::string version_;
    bool failed_ = false;
};

}  // namespace

// For --version: the NCCL library's version, or why it cannot be read (never throws).
std::string nccl_version_report() {
    try {
        return nccl_version_text();
    } catch (const std::exception& e) {
        return std::string("unknown (") + e.what() + ")";
    }
}

std::string nccl_unique_id() {
    ncclUniqueId id;
    NCCL_CHECK(ncclGetUniqueId(&id));
    return std::string(id.internal, sizeof(id.internal));
}

std::unique_ptr<DeviceCollective> nccl_collective(const std::string& id, int rank, int ranks, int device) {
    ncclUniqueId uid;
    if (id.size() != sizeof(uid.internal))
        throw RuntimeError("NCCL: the unique id has " + std::to_string(id.size()) + " bytes, expected " +
                           std::to_string(sizeof(uid.internal)) + " (ranks built against different NCCL versions?)");
    if (ranks < 1 || rank < 0 || rank >= ranks)
        throw RuntimeError("NCCL: rank " + std::to_string(rank) + " of " + std::to_string(ranks) + " is out of range");
    id.copy(uid.internal, sizeof(uid.internal));
    GpuContext& ctx = gpu_context(device);  // the backend's context: its stream carries the reduce
    CUDA_CHECK(cudaSetDevice(device));
    ncclComm_t comm = nullptr;
    NCCL_CHECK(ncclCommInitRank(&comm, ranks, uid, rank));
    try {
        return std::make_unique<NcclCollective>(ctx, comm, rank, ranks);
    } catch (...) {
        const ncclResult_t status = ncclCommDestroy(comm);
        if (status != ncclSuccess)
            report_warning(std::string("NCCL error: ") + nccl_message(status) + " in ncclCommDestroy");
        throw;
    }
}

}  // namespace rsa

// make_device_collective (distributed.h): the device collective of a distributed run, NCCL through the CUDA plugin.
// Every rank agrees whether one can be made (launched, more than one rank, a GPU backend and a plugin built with
// NCCL on every rank), rank 0 creates the NCCL unique id through the plugin and broadcasts its bytes over the host
// communicator, and every rank joins the NCCL communicator on its backend's device. The collective handed back
// agrees on shapes and residency over the host communicator before each device reduce, so that a rank with a bad
// Array makes every rank throw instead of leaving the others waiting inside NCCL.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "rsa_gpu/array.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/cuda_plugin.h"
#include "rsa_gpu/distributed.h"
#include "rsa_gpu/error.h"

namespace rsa {

namespace {

// The plugin's collective behind a check, over the host communicator, that every rank calls it with the same
// shape and a usable Array.
class AgreedDeviceCollective final : public DeviceCollective {
public:
    AgreedDeviceCollective(Comm& comm, std::unique_ptr<DeviceCollective> inner, int device)
        : comm_(comm), inner_(std::move(inner)), device_(device) {}

    void reduce_sum(Array& a, int root) override {
        if (root < 0 || root >= comm_.size())
            throw RuntimeError("device reduce: root " + std::to_string(root) + " is not a rank of " +
                               std::to_string(comm_.size()));
        if (!check_arrays(a, root)) return;
        agreed(comm_, "the device reduce", [&] { inner_->reduce_sum(a, root); });
    }

    std::vector<double> allreduce_weighted(const Array& a, double weight, bool complement) override {
        if (!check_arrays(a, -1)) return {};
        std::vector<double> sum;
        agreed(comm_, "the device sum", [&] { sum = inner_->allreduce_weighted(a, weight, complement); });
        return sum;
    }

    std::string name() const override { return inner_->name(); }

private:
    // Every rank's array usable (a copy on this rank's device; with root >= 0 none on the root's host) and of one
    // shape, agreed in one collective; false for empty arrays (nothing to sum).
    bool check_arrays(const Array& a, int root) {
        std::string problem;
        if (!a.empty()) {
            if (!a.device_copy(device_))
                problem = "its " + std::to_string(a.rows()) + " x " + std::to_string(a.cols()) +
                          " array has no copy on device " + std::to_string(device_);
            else if (comm_.rank() == root && a.has_host())
                problem = "its array (the root's) has a host copy, which the in-place device sum would leave stale";
        }
        // One collective: the largest and smallest shapes and the lowest rank with a problem (size - rank).
        int64_t v[5] = {a.rows(), a.cols(), -a.rows(), -a.cols(),
                        problem.empty() ? 0 : static_cast<int64_t>(comm_.size() - comm_.rank())};
        comm_.allreduce_max(v, 5);
        if (v[4]) {
            const int bad = comm_.size() - static_cast<int>(v[4]);
            throw RuntimeError("device reduce: rank " + std::to_string(bad) + ": " +
                               (bad == comm_.rank() ? problem : std::string("its array cannot be reduced")));
        }
        if (v[0] != -v[2] || v[1] != -v[3])
            throw RuntimeError("device reduce: the ranks' arrays differ in shape (rows " + std::to_string(-v[2]) +
                               " to " + std::to_string(v[0]) + ", columns " + std::to_string(-v[3]) + " to " +
                               std::to_string(v[1]) + ")");
        return !a.empty();
    }

    Comm& comm_;
    std::unique_ptr<DeviceCollective> inner_;
    int device_;
};

}  // namespace

std::unique_ptr<DeviceCollective> make_device_collective(Comm& comm, Backend& backend, std::string* why) {
    const auto none = [why](const std::string& reason) {
        if (why) *why = reason;
        return std::unique_ptr<DeviceCollective>();
    };
    // The same on every rank: no collective needed to agree.
    if (!comm.launched()) return none("not a distributed run (no launcher started this process)");
    if (comm.size() < 2) return none("one rank: there is nothing to reduce between devices");

    // This rank's own reason, if any; then every rank learns the lowest rank's reason.
    std::string local;
    const CudaPlugin* plugin = nullptr;
    if (!backend.is_gpu()) {
        local = "its backend is " + backend.name() + ", not a GPU";
    } else {
        std::string plugin_why;
        plugin = cuda_plugin(&plugin_why);
        if (!plugin)
            local = "the CUDA plugin is not loaded (" + plugin_why + ")";
        else if (!plugin->nccl_unique_id || !plugin->nccl_collective)
            local = "the CUDA plugin was built without NCCL";
    }
    int64_t first = local.empty() ? 0 : comm.size() - comm.rank();
    comm.allreduce_max(&first, 1);
    if (first) {
        const int bad = comm.size() - static_cast<int>(first);
        uint64_t length = local.size();
        comm.broadcast(&length, sizeof(length), bad);
        std::string reason = local;
        reason.resize(length);
        if (length) comm.broadcast(&reason[0], length, bad);
        return none("rank " + std::to_string(bad) + ": " + reason);
    }

    std::string id;
    agreed(comm, "creating the NCCL unique id", [&] {
        if (comm.rank() == 0) id = plugin->nccl_unique_id();
    });
    uint64_t length = id.size();
    comm.broadcast(&length, sizeof(length), 0);
    id.resize(length);
    if (length) comm.broadcast(&id[0], length, 0);

    std::unique_ptr<DeviceCollective> inner;
    agreed(comm, "creating the NCCL communicator",
           [&] { inner = plugin->nccl_collective(id, comm.rank(), comm.size(), backend.device()); });
    if (why) why->clear();
    return std::make_unique<AgreedDeviceCollective>(comm, std::move(inner), backend.device());
}

}  // namespace rsa

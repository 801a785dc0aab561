// The CUDA backend as a plugin: every piece of CUDA code (kernels/, cuBLAS, cuDNN, cuRAND) is built into one shared
// library, librsa_gpu_cuda.so, that the host loads with dlopen only when a GPU is asked for (--device N) or looked for
// (--device auto). The rsa_gpu binary itself links no CUDA library: on a machine without the CUDA libraries or the
// driver it still starts, and --device auto takes the CPU and says why. This header is the contract between the
// two sides (no CUDA types in it); both are built by the same compiler from the same tree, so C++ types may cross.
#pragma once
#include <memory>
#include <string>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/distributed.h"

namespace rsa {

// Bumped whenever CudaPlugin changes: a plugin from another build is refused with a clear message.
constexpr int kCudaPluginAbi = 3;

struct CudaPlugin {
    int abi = 0;
    // True when device `device` exists and a driver is present; otherwise `why` says why.
    bool (*probe)(int device, std::string* why) = nullptr;
    // The GPU backend of `device` (RuntimeError naming the cause when it cannot be made).
    std::unique_ptr<Backend> (*make_backend)(int device) = nullptr;
    // Lines for --version: CUDA runtime and driver, cuBLAS, cuDNN (and the CUDA it was built for), cuRAND, NCCL,
    // the GPUs.
    std::string (*versions)() = nullptr;
    // A DeviceStore over `count` floats of device memory owned elsewhere (a PyTorch or CuPy array) on `device`;
    // `keeper` keeps that memory alive. The device is synchronised first, so the producer's work is done.
    std::shared_ptr<DeviceStore> (*borrow_device)(const float* data, int device, size_t count,
                                                  std::shared_ptr<const void> keeper) = nullptr;
    // NCCL (kernels/nccl_collective.cu); both null when the plugin was built without NCCL.
    // A fresh NCCL unique id (ncclGetUniqueId) as its raw bytes, for rank 0 to broadcast.
    std::string (*nccl_unique_id)() = nullptr;
    // This rank's member of the NCCL communicator named by `id` (ncclCommInitRank on `device`, a collective: every
    // rank calls it together). RuntimeError with NCCL's message when it cannot be made.
    std::unique_ptr<DeviceCollective> (*nccl_collective)(const std::string& id, int rank, int ranks,
                                                         int device) = nullptr;
};

// The loaded plugin, or null with `why` saying why (not built, library missing, a CUDA library it needs missing,
// ABI mismatch). Loaded once per process; the search order is RSA_GPU_CUDA_PLUGIN (a file), then the folder of
// the running executable and its ../lib, then the build folder it was built in.
const CudaPlugin* cuda_plugin(std::string* why);

}  // namespace rsa

// The one symbol the plugin exports for the host to look up.
extern "C" const rsa::CudaPlugin* rsa_gpu_cuda_plugin();

// The tutorial's CNN on the GPU: cuDNN convolution (forward, filter and bias gradients), ReLU and max pooling
// (forward and backward), cuBLAS SGEMM for fc and out, our kernels for sigmoid+BCE, its gradient and the
// momentum update. All tensors stay on the device; a training step is captured as a CUDA graph and replayed
// (graph_replays() counts the replays of the last train()). The cuDNN handle is created by the first CnnGpu of a
// device (RuntimeError naming the cuDNN failure when cuDNN cannot be initialised). Same semantics as the CPU twin
// in cnn.h. No CUDA types in this header (pimpl); CUDA builds only.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "rsa_gpu/cnn.h"

namespace rsa {

class CnnGpu {
public:
    // Descriptors, algorithms (chosen once here) and buffers for batches up to max_batch.
    CnnGpu(int device, int max_batch);
    ~CnnGpu();
    CnnGpu(const CnnGpu&) = delete;
    CnnGpu& operator=(const CnnGpu&) = delete;

    void set_params(const std::vector<float>& params);  // kParams values
    std::vector<float> params() const;

    // Forward pass over host images (batch x kPixels); fills every field of act (host copies).
    void forward(const float* images, int batch, CnnActivations* act);
    // Loss and gradient (kParams) for one batch, without updating parameters.
    float loss_and_grad(const float* images, const float* labels, int batch, std::vector<float>* grad);
    // The same training loop as cnn_train_ref (same permutations), one CUDA graph per step shape.
    TrainResult train(const MatrixView& images, const std::vector<float>& labels, const TrainConfig& config,
                      const EpochCallback& on_epoch);
    // Full-size steps of the last train() call that replayed its captured CUDA graph (the rest ran directly: a
    // smaller last batch, every step when the capture failed or graphs are off). 0 before any train().
    int64_t graph_replays() const;
    // Whether train() captures a graph at all (false in RSA_GPU_DEVICE_DEBUG builds, which synchronise after every
    // launch, something a capture forbids).
    static bool graph_capture_enabled();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rsa

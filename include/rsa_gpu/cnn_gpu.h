// The tutorial's CNN on the GPU, with two training paths (CnnKernels, --cnn-kernels; details in kernels/cnn_gpu.cu):
// `cudnn`, cuDNN's convolution forward with fused bias + ReLU, max pooling forward and backward, ReLU backward and the
// conv filter and bias gradients, cuBLAS SGEMM for fc and out; `exact`, our kernels only, repeating the CPU twin's
// arithmetic operation for operation. Both use our kernels for sigmoid + BCE, its gradient and the momentum update;
// cuDNN algorithms are deterministic ones only, chosen once per batch size within a bounded workspace, so training is
// bit-reproducible run to run on one card.
// What "the same as the CPU twin" means:
//   exact: BIT-IDENTICAL to the twin on any input: every forward layer, the loss, the full gradient, and the losses and
//          parameters after any number of training steps (given the same images and starting parameters);
//   cudnn: per step within FP32 rounding where no max-pool window holds tied maxima (random images); on the
//          binary gratings, whose windows tie exactly, by the training trajectory (every epoch's loss close to the
//          twin's, the same training accuracy; tests/test_cnn_gpu.cu states the tolerances).
// The read-out forward() always runs the exact path (so its activations are the twin's bits). All tensors
// stay on the device; a training step (either path) is captured as a CUDA graph and replayed (graph_replays()
// counts the replays of the last train()). The cuDNN handle is created by the first CnnGpu of a device
// (RuntimeError naming the cuDNN failure when cuDNN cannot be initialised). No CUDA types in this header (pimpl);
// CUDA builds only.
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
    // Loss and gradient (kParams) for one batch through `kernels`' path, without updating parameters.
    float loss_and_grad(const float* images, const float* labels, int batch, std::vector<float>* grad,
                        CnnKernels kernels);
    // The same training loop as cnn_train_ref (same permutations) through config.kernels' path, one CUDA graph per
    // step shape.
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

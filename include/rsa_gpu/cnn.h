// The tutorial's CNN (spec sections 1.3-1.7): input B x 1 x 48 x 64 -> conv 6@7x7 pad 3 (+bias) -> ReLU ->
// maxpool 8 -> 'pool' (B x 288, C*H*W) -> fc 288->10 ('fc', pre-ReLU) -> ReLU ('fc_relu') -> out 10->1
// ('out', the logit, as a hook on the `out` module records it) -> sigmoid. 3,201 parameters in one flat
// buffer in PyTorch state_dict order. CPU twin (host/cnn_ref.cpp) and training helpers shared by both twins.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "rsa_gpu/matrix.h"

namespace rsa {

namespace cnn {
constexpr int kHeight = 48, kWidth = 64, kPixels = kHeight * kWidth;
constexpr int kChannels = 6, kKernel = 7, kPad = 3, kPool = 8;
constexpr int kPoolH = kHeight / kPool, kPoolW = kWidth / kPool, kPooled = kChannels * kPoolH * kPoolW;  // 288
constexpr int kHidden = 10;
// Offsets into the flat parameter buffer (PyTorch state_dict order and shapes).
constexpr int kConvW = 0;                                          // conv.weight 6 x 1 x 7 x 7
constexpr int kConvB = kConvW + kChannels * kKernel * kKernel;     // conv.bias 6        (294)
constexpr int kFcW = kConvB + kChannels;                           // fc.weight 10 x 288 (300)
constexpr int kFcB = kFcW + kHidden * kPooled;                     // fc.bias 10         (3180)
constexpr int kOutW = kFcB + kHidden;                              // out.weight 1 x 10  (3190)
constexpr int kOutB = kOutW + kHidden;                             // out.bias 1         (3200)
constexpr int kParams = kOutB + 1;                                 // 3201
}  // namespace cnn

// Which GPU kernels train the CNN (--cnn-kernels). cudnn: cuDNN convolution (bias + ReLU fused), max pooling and
// their gradients, deterministic algorithms only; equal to the CPU twin within FP32 rounding where max pooling has
// no ties, and by the training trajectory on the tutorial's gratings (cnn_gpu.h). exact: our kernels with the CPU
// twin's arithmetic, bit-identical to it (tied maxima routed like the twin). The CPU twin is the same for both.
enum class CnnKernels { cudnn, exact };
// "cudnn" / "exact"; InputError naming --cnn-kernels for any other text.
CnnKernels parse_cnn_kernels(const std::string& text);
const char* cnn_kernels_name(CnnKernels kernels);

struct TrainConfig {
    int epochs = 25;
    int batch = 100;
    int train_size = 1000;
    float lr = 5e-4f;
    float momentum = 0.99f;
    uint64_t seed = 12;
    CnnKernels kernels = CnnKernels::cudnn;  // GPU only; the CPU twin ignores it
};

// Per-layer activations of one forward pass over B images.
struct CnnActivations {
    int batch = 0;
    std::vector<float> conv;     // B x 6 x 48 x 64, conv output before ReLU ('conv')
    std::vector<float> pool;     // B x 288, maxpool(ReLU(conv)) ('pool')
    std::vector<float> fc;       // B x 10, before ReLU ('fc')
    std::vector<float> fc_relu;  // B x 10 ('fc_relu')
    std::vector<float> logit;    // B ('out')
    std::vector<float> prob;     // B, sigmoid(logit)
};

struct TrainResult {
    std::vector<float> step_losses;   // every mini-batch loss, in order
    std::vector<float> epoch_losses;  // loss on the last mini-batch of each epoch
};

// Called after each epoch with (epoch starting at 1, loss on its last mini-batch).
using EpochCallback = std::function<void(int epoch, float loss)>;

// The tutorial's six fixed filters (6 x 1 x 7 x 7): [cs, -cs, gabor 0, 45, 90, 135], each / max|value|.
void cnn_tutorial_filters(float* weights);

// Our seeded generators mirror the tutorial's exactly (as llm.c mirrors torch's MT19937): torch 1.13's CPU
// generator (MT19937, float uniform_ from 24 bits, randperm as Fisher-Yates with random() % (n - i)) and numpy's
// legacy np.random.seed/rand, so seed 12 reproduces the tutorial's printed losses.
// Initial parameters: tutorial filters, conv bias 0, fc and out uniform in +-1/sqrt(fan_in) as torch.manual_seed
// (seed) then CNN(48, 64) draws them (the conv layer's default init is drawn and discarded).
std::vector<float> cnn_init_params(uint64_t seed);

// Training set: train_size orientations (np.random.seed(seed); (np.random.rand(n) - 0.5) * 180); label 1 when > 0.
void cnn_training_set(const TrainConfig& config, std::vector<float>* angles_deg, std::vector<float>* labels);

// The order of samples in `epoch` (0-based): torch.randperm(n) of that epoch, after the initialisation draws.
std::vector<int> cnn_epoch_permutation(uint64_t seed, int epoch, int n);

// Names of the read-out layers: conv, pool, fc, fc_relu, out.
const std::vector<std::string>& cnn_layer_names();
// The layer's matrix (B x units) from activations; InputError for an unknown name.
Matrix cnn_layer_matrix(const CnnActivations& act, const std::string& layer);

// ---- CPU twin ----
void cnn_forward_ref(const float* params, const float* images, int batch, CnnActivations* act);
// Mean binary cross-entropy from logits, computed stably: mean(max(z,0) - z y + log(1 + exp(-|z|))).
float cnn_bce_loss_ref(const float* logits, const float* labels, int batch);
// Gradient of the mean BCE with respect to all 3,201 parameters (grad is overwritten).
void cnn_backward_ref(const float* params, const float* images, const float* labels, int batch,
                      const CnnActivations& act, float* grad);
// PyTorch SGD with momentum: v = mu v + g; p = p - lr v.
void sgd_momentum_ref(float* params, float* velocity, const float* grad, int count, float lr, float momentum);
// Full training loop (images: train_size x 3072 pixels), updates params in place.
TrainResult cnn_train_ref(std::vector<float>& params, const MatrixView& images, const std::vector<float>& labels,
                          const TrainConfig& config, const EpochCallback& on_epoch);

// Weights in PyTorch state_dict names/shapes (.npz): conv.weight, conv.bias, fc.weight, fc.bias, out.weight,
// out.bias. Load checks every key and shape (InputError naming them).
void cnn_save_npz(const std::string& path, const std::vector<float>& params);
std::vector<float> cnn_load_npz(const std::string& path);

}  // namespace rsa

// CPU twin of the tutorial's CNN (spec sections 1.3-1.7), llm.c style: plain loops and forward/backward
// pairs, with OpenBLAS SGEMM for the convolution forward (im2col) and the two Linear layers; the conv weight
// gradient sums only the <= 288 non-zero positions per image that max pooling lets through.
// Shapes: B = batch, H x W = 48 x 64, C = 6 channels, K = 7 (pad 3), P = 8 (pool), HP x WP = 6 x 8,
// F = C*HP*WP = 288 pooled units, D = 10 hidden units. All tensors row-major float32.
//
// Random numbers: the tutorial's own streams, so its run (spec 1.5) is reproduced draw for draw (as llm.c
// mirrors PyTorch's RNG). Both PyTorch 1.13's CPU generator (torch.manual_seed) and numpy's legacy
// np.random.seed(int) are MT19937 seeded with init_genrand(seed), i.e. std::mt19937(seed) (seed taken mod 2^32):
//   init (torch.manual_seed(seed); CNN(48, 64)): Conv2d's default init draws 294 + 6 values (discarded: the
//     tutorial replaces them by the fixed filters and zeros), then fc.weight 2880, fc.bias 10, out.weight 10,
//     out.bias 1 -> 3,201 32-bit draws, each value from one draw as torch's float uniform_;
//   angles (np.random.seed(seed); (np.random.rand(n) - 0.5) * 180): numpy's legacy double from two draws;
//   epoch e's torch.randperm(n) continues the torch stream after the init: it starts at draw 3201 + e (n - 1)
//     and uses n - 1 draws (torch 1.13 CPU randperm_cpu).
// Verified bit for bit against torch 1.13 / numpy 1.24 by tools/cnn_oracle.py (tests/data/cnn/tutorial_*.npy).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <vector>

#include "rsa_gpu/cnn.h"
#include "rsa_gpu/error.h"

namespace rsa {

using namespace cnn;

namespace {

// MT19937 as torch.manual_seed(seed) / np.random.seed(seed) set it up (init_genrand of the low 32 bits).
std::mt19937 seeded_mt19937(uint64_t seed) { return std::mt19937(static_cast<std::mt19937::result_type>(seed & 0xffffffffu)); }

// torch 1.13 CPU Tensor.uniform_(from, to) on float32, one value from one 32-bit draw
// (at::uniform_real_distribution<float> + transformation::uniform_real, accumulate type double on CPU):
// from/to are cast to float, x = (draw & (2^24 - 1)) * 2^-24 in double, value = float(x * (to - from) + from)
// with to - from computed in float.
void torch_uniform_float(std::mt19937& gen, double from_d, double to_d, float* out, int count) {
    const float from = static_cast<float>(from_d), to = static_cast<float>(to_d);
    const float range = to - from;
    for (int i = 0; i < count; ++i) {
        const uint32_t v = static_cast<uint32_t>(gen());
        const double x = static_cast<double>(v & ((1u << 24) - 1u)) * (1.0 / 16777216.0);
        out[i] = static_cast<float>(x * static_cast<double>(range) + static_cast<double>(from));
    }
}

// torch.nn.init.kaiming_uniform_(w, a=sqrt(5)) bound, as Python computes it in double:
// gain = sqrt(2 / (1 + a^2)), std = gain / sqrt(fan_in), bound = sqrt(3) * std (= 1/sqrt(fan_in) up to rounding).
double kaiming_uniform_bound(int fan_in) {
    const double a = std::sqrt(5.0);
    const double gain = std::sqrt(2.0 / (1.0 + a * a));
    return std::sqrt(3.0) * (gain / std::sqrt(static_cast<double>(fan_in)));
}

// nn.Linear / nn.Conv2d default bias bound: 1 / math.sqrt(fan_in).
double bias_bound(int fan_in) { return 1.0 / std::sqrt(static_cast<double>(fan_in)); }

// Draws of the torch stream that torch.manual_seed(seed); CNN(48, 64) consumes (one per parameter).
constexpr unsigned long long kInitDraws = kParams;  // 294 + 6 (conv, discarded) + 2880 + 10 + 10 + 1 = 3201

// ---- convolution ----
// Forward per image: im2col in Caffe's layout (49 x H*W, stays in L2) and one SGEMM (6 x 49) x (49 x 3072);
// measured ~5x faster with OpenBLAS on 2 cores than one tall (B*H*W x 49) x (49 x 6) GEMM over the batch.

// im2col: image (H, W) -> colT (49, H*W): row ki*7+kj is the image shifted by (ki-3, kj-3) with zero padding,
// so that conv = weight (6, 49) x colT is PyTorch's cross-correlation with padding 3.
void im2col_image(const float* img, float* colT) {
    for (int ki = 0; ki < kKernel; ++ki) {
        for (int kj = 0; kj < kKernel; ++kj) {
            float* row = colT + static_cast<size_t>(ki * kKernel + kj) * kPixels;
            const int dx = kj - kPad;
            const int j0 = std::max(0, -dx), j1 = std::min(kWidth, kWidth - dx);  // valid output columns
            for (int i = 0; i < kHeight; ++i) {
                float* r = row + i * kWidth;
                const int y = i + ki - kPad;
                if (y < 0 || y >= kHeight) {
                    std::fill(r, r + kWidth, 0.0f);
                    continue;
                }
                std::fill(r, r + j0, 0.0f);
                std::copy(img + y * kWidth + j0 + dx, img + y * kWidth + j1 + dx, r + j0);
                std::fill(r + j1, r + kWidth, 0.0f);
            }
        }
    }
}

// conv forward, one image: colT (49, H*W), weight (C, 49), bias (C) -> out (C, H, W) = weight x colT + bias,
// pre-ReLU.
void conv_forward_image(const float* colT, const float* weight, const float* bias, float* out) {
    for (int c = 0; c < kChannels; ++c) std::fill(out + c * kPixels, out + (c + 1) * kPixels, bias[c]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kChannels, kPixels, kKernel * kKernel, 1.0f, weight,
                kKernel * kKernel, colT, kPixels, 1.0f, out, kPixels);
}

// ---- ReLU + max pool ----

// relu_pool forward: conv (B, C, H, W) pre-ReLU -> pool (B, C*HP*WP) = max over each 8x8 window of
// ReLU(conv); argmax (B, F) = index within the image's conv (C*H*W) of the FIRST maximum in row-major window
// order (PyTorch CPU max_pool2d keeps the first: it replaces only on a strictly greater value).
void relu_pool_forward(const float* conv, int B, float* pool, int* argmax) {
    for (int b = 0; b < B; ++b) {
        const float* img = conv + static_cast<size_t>(b) * kChannels * kPixels;
        for (int c = 0; c < kChannels; ++c) {
            for (int pi = 0; pi < kPoolH; ++pi) {
                for (int pj = 0; pj < kPoolW; ++pj) {
                    float best = -INFINITY;
                    int best_at = 0;
                    for (int di = 0; di < kPool; ++di) {
                        for (int dj = 0; dj < kPool; ++dj) {
                            const int at = c * kPixels + (pi * kPool + di) * kWidth + pj * kPool + dj;
                            const float v = std::max(img[at], 0.0f);
                            if (v > best) {
                                best = v;
                                best_at = at;
                            }
                        }
                    }
                    const size_t o = static_cast<size_t>(b) * kPooled + (c * kPoolH + pi) * kPoolW + pj;
                    pool[o] = best;
                    argmax[o] = best_at;
                }
            }
        }
    }
}

// relu_pool + conv backward, one image: dpool (F), argmax (F) (indices into this image's conv), conv (C, H, W)
// pre-ReLU, image (H, W) -> dweight (C, 49) += dconv x patches, dbias (C) += sum of dconv (accumulated in
// double). dconv = the pool gradient routed to each window's argmax, then through the ReLU (zero where
// conv <= 0, as PyTorch's threshold_backward), is non-zero at most at F = 288 of the C*H*W = 18,432 positions,
// so the weight gradient sums just those (the same terms as the dense im2col GEMM dconv x col, whose other
// 98% are products with zero; ~60x less work than the GEMM).
void relu_pool_conv_backward_image(const float* dpool, const int* argmax, const float* conv, const float* img,
                                   double* dweight, double* dbias) {
    for (int o = 0; o < kPooled; ++o) {
        const int at = argmax[o];
        if (!(conv[at] > 0.0f)) continue;
        const double d = dpool[o];
        const int c = at / kPixels, i = (at % kPixels) / kWidth, j = at % kWidth;
        dbias[c] += d;
        double* dw = dweight + c * kKernel * kKernel;
        for (int ki = 0; ki < kKernel; ++ki) {
            const int y = i + ki - kPad;
            if (y < 0 || y >= kHeight) continue;
            for (int kj = 0; kj < kKernel; ++kj) {
                const int x = j + kj - kPad;
                if (x >= 0 && x < kWidth) dw[ki * kKernel + kj] += d * img[y * kWidth + x];
            }
        }
    }
}

// ---- Linear layers ----

// linear forward: in (B, I), weight (O, I), bias (O) -> out (B, O) = in x weight^T + bias.
void linear_forward(const float* in, const float* weight, const float* bias, int B, int I, int O, float* out) {
    for (int b = 0; b < B; ++b)
        for (int o = 0; o < O; ++o) out[b * O + o] = bias[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, O, I, 1.0f, in, I, weight, I, 1.0f, out, O);
}

// linear backward: dout (B, O), in (B, I), weight (O, I) -> dweight (O, I) = dout^T x in,
// dbias (O) = column sums of dout, din (B, I) = dout x weight (skipped when din is null).
void linear_backward(const float* dout, const float* in, const float* weight, int B, int I, int O, float* dweight,
                     float* dbias, float* din) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, B, 1.0f, dout, O, in, I, 0.0f, dweight, I);
    for (int o = 0; o < O; ++o) {
        float s = 0.0f;
        for (int b = 0; b < B; ++b) s += dout[b * O + o];
        dbias[o] = s;
    }
    if (din) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, I, O, 1.0f, dout, O, weight, I, 0.0f, din, I);
}

float sigmoidf(float z) { return z >= 0.0f ? 1.0f / (1.0f + std::exp(-z)) : std::exp(z) / (1.0f + std::exp(z)); }

}  // namespace

// ---- filters, init, data, permutation ----

// filters (6, 1, 7, 7): spec 1.3 in float32 like numpy (python-float constants rounded to float32 first).
void cnn_tutorial_filters(float* weights) {
    const int K = kKernel;
    const int KK = K * K;
    float grid[kKernel];
    for (int i = 0; i < K; ++i)  // np.linspace(-3.5, 3.5, 7) in double, then float32; endpoint exact
        grid[i] = static_cast<float>(i == K - 1 ? K / 2.0 : -K / 2.0 + i * (static_cast<double>(K) / (K - 1)));
    const double sigma = 1.1;
    const float d_gauss = static_cast<float>(2 * sigma * sigma);
    const float d_wide = static_cast<float>(2 * (sigma * 2) * (sigma * 2));
    const float d_env = static_cast<float>(2 * (sigma * 0.4) * (sigma * 0.4));
    const float two_pi = static_cast<float>(2 * M_PI), lam = 10.0f, phi = static_cast<float>(M_PI / 2);
    float r[kKernel * kKernel];
    for (int i = 0; i < K; ++i)      // indexing='ij': xx = grid[i] along rows, yy = grid[j] along columns
        for (int j = 0; j < K; ++j) r[i * K + j] = std::sqrt(grid[i] * grid[i] + grid[j] * grid[j]);
    for (int p = 0; p < KK; ++p) {
        const float cs = std::exp(-r[p] / d_gauss) - 0.5f * std::exp(-r[p] / d_wide);
        weights[p] = cs;
        weights[KK + p] = -cs;
    }
    for (int g = 0; g < 4; ++g) {
        const double theta = (45.0 * g) * M_PI / 180.0;
        const float ct = static_cast<float>(std::cos(theta)), st = static_cast<float>(std::sin(theta));
        for (int i = 0; i < K; ++i) {
            for (int j = 0; j < K; ++j) {
                const int p = i * K + j;
                const float x = grid[i] * ct + grid[j] * st;
                const float env = std::exp(-r[p] / d_env);
                weights[(2 + g) * KK + p] = env * std::cos(two_pi * x / lam + phi);
            }
        }
    }
    for (int c = 0; c < kChannels; ++c) {
        float m = 0.0f;
        for (int p = 0; p < KK; ++p) m = std::max(m, std::fabs(weights[c * KK + p]));
        for (int p = 0; p < KK; ++p) weights[c * KK + p] /= m;
    }
}

// params (3201): torch.manual_seed(seed); net = CNN(48, 64) of the tutorial (torch 1.13 CPU): Conv2d(1, 6, 7)
// default init (kaiming_uniform_ weight 294 draws, bias U(+-1/sqrt(49)) 6 draws) is consumed and replaced by
// conv.weight = filters, conv.bias = 0; then fc = Linear(288, 10) and out = Linear(10, 1) default init:
// weight kaiming_uniform_(a = sqrt(5)), bias U(+-1/sqrt(fan_in)), in that order. Bit-exact with torch.
std::vector<float> cnn_init_params(uint64_t seed) {
    std::vector<float> p(kParams, 0.0f);
    std::mt19937 gen = seeded_mt19937(seed);
    const int conv_fan_in = kKernel * kKernel;  // in_channels * 7 * 7
    torch_uniform_float(gen, -kaiming_uniform_bound(conv_fan_in), kaiming_uniform_bound(conv_fan_in), p.data() + kConvW,
                        kConvB - kConvW);
    torch_uniform_float(gen, -bias_bound(conv_fan_in), bias_bound(conv_fan_in), p.data() + kConvB, kFcW - kConvB);
    cnn_tutorial_filters(p.data() + kConvW);  // the tutorial's conv.weight = nn.Parameter(filters(6, 7))
    std::fill(p.begin() + kConvB, p.begin() + kFcW, 0.0f);  // conv.bias = zeros
    torch_uniform_float(gen, -kaiming_uniform_bound(kPooled), kaiming_uniform_bound(kPooled), p.data() + kFcW,
                        kFcB - kFcW);
    torch_uniform_float(gen, -bias_bound(kPooled), bias_bound(kPooled), p.data() + kFcB, kOutW - kFcB);
    torch_uniform_float(gen, -kaiming_uniform_bound(kHidden), kaiming_uniform_bound(kHidden), p.data() + kOutW,
                        kOutB - kOutW);
    torch_uniform_float(gen, -bias_bound(kHidden), bias_bound(kHidden), p.data() + kOutB, kParams - kOutB);
    return p;
}

// angles (train_size): np.random.seed(config.seed); ori = (np.random.rand(train_size) - 0.5) * 180 (numpy
// legacy RandomState: u = ((a >> 5) * 2^26 + (b >> 6)) / 2^53 from two consecutive 32-bit draws a, b), the
// double rounded to float (the 1,000 tutorial gratings are identical either way); labels: angle > 0.
void cnn_training_set(const TrainConfig& config, std::vector<float>* angles_deg, std::vector<float>* labels) {
    if (config.train_size <= 0) throw InputError("cnn_training_set: train_size must be positive");
    angles_deg->resize(config.train_size);
    labels->resize(config.train_size);
    std::mt19937 gen = seeded_mt19937(config.seed);
    for (int i = 0; i < config.train_size; ++i) {
        const uint32_t a = static_cast<uint32_t>(gen()) >> 5, b = static_cast<uint32_t>(gen()) >> 6;
        const double u = (a * 67108864.0 + b) / 9007199254740992.0;
        const double angle = (u - 0.5) * 180.0;
        (*angles_deg)[i] = static_cast<float>(angle);
        (*labels)[i] = angle > 0.0 ? 1.0f : 0.0f;
    }
}

// perm (n): the tutorial's torch.randperm(n) at epoch `epoch` (0-based), torch 1.13 CPU randperm_cpu: the
// torch stream of torch.manual_seed(seed) after the init's 3,201 draws and the n - 1 draws of each earlier
// epoch; from the identity, for i = 0 .. n-2: z = draw % (n - i), swap(perm[i], perm[i + z]).
std::vector<int> cnn_epoch_permutation(uint64_t seed, int epoch, int n) {
    std::vector<int> perm(std::max(n, 0));
    for (int i = 0; i < n; ++i) perm[i] = i;
    if (n < 2) return perm;  // torch draws nothing for n <= 1
    std::mt19937 gen = seeded_mt19937(seed);
    gen.discard(kInitDraws + static_cast<unsigned long long>(std::max(epoch, 0)) * static_cast<unsigned long long>(n - 1));
    for (int i = 0; i < n - 1; ++i) {
        const int64_t z = static_cast<int64_t>(static_cast<uint32_t>(gen()) % static_cast<uint32_t>(n - i));
        std::swap(perm[i], perm[i + z]);
    }
    return perm;
}

// ---- layers as matrices ----

const std::vector<std::string>& cnn_layer_names() {
    static const std::vector<std::string> names = {"conv", "pool", "fc", "fc_relu", "out"};
    return names;
}

// act -> (B, units): conv (B, 18432) pre-ReLU C*H*W, pool (B, 288), fc (B, 10), fc_relu (B, 10), out (B, 1).
Matrix cnn_layer_matrix(const CnnActivations& act, const std::string& layer) {
    const std::vector<float>* src = nullptr;
    int64_t units = 0;
    if (layer == "conv") { src = &act.conv; units = int64_t(kChannels) * kPixels; }
    else if (layer == "pool") { src = &act.pool; units = kPooled; }
    else if (layer == "fc") { src = &act.fc; units = kHidden; }
    else if (layer == "fc_relu") { src = &act.fc_relu; units = kHidden; }
    else if (layer == "out") { src = &act.logit; units = 1; }
    else {
        std::ostringstream msg;
        msg << "unknown CNN layer '" << layer << "'; valid layers:";
        for (const auto& n : cnn_layer_names()) msg << ' ' << n;
        throw InputError(msg.str());
    }
    if (src->size() != static_cast<size_t>(act.batch) * units) {
        std::ostringstream msg;
        msg << "CNN layer '" << layer << "' holds " << src->size() << " values, expected batch " << act.batch
            << " x " << units;
        throw InputError(msg.str());
    }
    Matrix m(act.batch, units);
    std::copy(src->begin(), src->end(), m.data.begin());
    return m;
}

// ---- CPU twin ----

// forward: params (3201), images (B, 48*64) -> act: conv (B, 6, 48, 64) pre-ReLU, pool (B, 288),
// fc (B, 10) pre-ReLU, fc_relu (B, 10), logit (B), prob (B) = sigmoid(logit).
void cnn_forward_ref(const float* params, const float* images, int batch, CnnActivations* act) {
    if (batch <= 0) throw InputError("cnn_forward_ref: batch must be positive");
    const int B = batch;
    act->batch = B;
    act->conv.resize(static_cast<size_t>(B) * kChannels * kPixels);
    act->pool.resize(static_cast<size_t>(B) * kPooled);
    act->fc.resize(static_cast<size_t>(B) * kHidden);
    act->fc_relu.resize(static_cast<size_t>(B) * kHidden);
    act->logit.resize(B);
    act->prob.resize(B);
    std::vector<float> colT(static_cast<size_t>(kKernel) * kKernel * kPixels);
    for (int b = 0; b < B; ++b) {
        im2col_image(images + static_cast<size_t>(b) * kPixels, colT.data());
        conv_forward_image(colT.data(), params + kConvW, params + kConvB,
                           act->conv.data() + static_cast<size_t>(b) * kChannels * kPixels);
    }
    std::vector<int> argmax(act->pool.size());
    relu_pool_forward(act->conv.data(), B, act->pool.data(), argmax.data());
    linear_forward(act->pool.data(), params + kFcW, params + kFcB, B, kPooled, kHidden, act->fc.data());
    for (size_t i = 0; i < act->fc.size(); ++i) act->fc_relu[i] = std::max(act->fc[i], 0.0f);
    linear_forward(act->fc_relu.data(), params + kOutW, params + kOutB, B, kHidden, 1, act->logit.data());
    for (int b = 0; b < B; ++b) act->prob[b] = sigmoidf(act->logit[b]);
}

// loss: logits (B), labels (B) -> mean(max(z,0) - z y + log1p(exp(-|z|))) (BCE from logits, stable; equal to
// PyTorch's BCELoss on sigmoid(z) except where that one clamps log at -100).
float cnn_bce_loss_ref(const float* logits, const float* labels, int batch) {
    double s = 0.0;
    for (int b = 0; b < batch; ++b) {
        const double z = logits[b], y = labels[b];
        s += std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::fabs(z)));
    }
    return static_cast<float>(s / batch);
}

// backward: params (3201), images (B, 3072), labels (B), act from cnn_forward_ref -> grad (3201) of the mean
// BCE. dlogit (B) = (sigmoid(z) - y) / B -> out -> dfc_relu (B, 10) -> ReLU -> dfc (B, 10) -> fc ->
// dpool (B, 288) -> max pool + ReLU -> dconv (B, 6, 48, 64) -> conv weight and bias gradients.
void cnn_backward_ref(const float* params, const float* images, const float* labels, int batch,
                      const CnnActivations& act, float* grad) {
    const int B = batch;
    if (B <= 0 || act.batch != B) throw InputError("cnn_backward_ref: activations do not match the batch");
    std::vector<float> dlogit(B);
    for (int b = 0; b < B; ++b) dlogit[b] = (act.prob[b] - labels[b]) / static_cast<float>(B);

    std::vector<float> dfc(static_cast<size_t>(B) * kHidden);
    linear_backward(dlogit.data(), act.fc_relu.data(), params + kOutW, B, kHidden, 1, grad + kOutW, grad + kOutB,
                    dfc.data());
    for (size_t i = 0; i < dfc.size(); ++i)
        if (!(act.fc[i] > 0.0f)) dfc[i] = 0.0f;

    std::vector<float> dpool(static_cast<size_t>(B) * kPooled);
    linear_backward(dfc.data(), act.pool.data(), params + kFcW, B, kPooled, kHidden, grad + kFcW, grad + kFcB,
                    dpool.data());

    // Per image: argmax of each pool window, then the pool, ReLU and conv weight/bias gradients.
    std::vector<float> pool_check(kPooled);
    std::vector<int> argmax(kPooled);
    double dweight[kChannels * kKernel * kKernel] = {}, dbias[kChannels] = {};
    for (int b = 0; b < B; ++b) {
        const float* conv = act.conv.data() + static_cast<size_t>(b) * kChannels * kPixels;
        relu_pool_forward(conv, 1, pool_check.data(), argmax.data());
        relu_pool_conv_backward_image(dpool.data() + static_cast<size_t>(b) * kPooled, argmax.data(), conv,
                                      images + static_cast<size_t>(b) * kPixels, dweight, dbias);
    }
    for (int k = 0; k < kChannels * kKernel * kKernel; ++k) grad[kConvW + k] = static_cast<float>(dweight[k]);
    for (int c = 0; c < kChannels; ++c) grad[kConvB + c] = static_cast<float>(dbias[c]);
}

// sgd: params, velocity, grad (count) -> v = mu v + g; p = p - lr v (PyTorch SGD, dampening 0, no nesterov;
// velocity starting at 0 makes the first step v = g, as PyTorch's lazily created buffer).
void sgd_momentum_ref(float* params, float* velocity, const float* grad, int count, float lr, float momentum) {
    for (int i = 0; i < count; ++i) {
        velocity[i] = momentum * velocity[i] + grad[i];
        params[i] -= lr * velocity[i];
    }
}

// train: params (3201) in place, images (N, 3072), labels (N). Per epoch: permutation cnn_epoch_permutation(
// seed, epoch, N), consecutive batches of config.batch (the last one smaller when N % batch != 0), forward,
// loss, backward, SGD-momentum step.
TrainResult cnn_train_ref(std::vector<float>& params, const Matrix& images, const std::vector<float>& labels,
                          const TrainConfig& config, const EpochCallback& on_epoch) {
    if (params.size() != static_cast<size_t>(kParams))
        throw InputError("cnn_train_ref: expected " + std::to_string(kParams) + " parameters, got " +
                         std::to_string(params.size()));
    if (images.cols != kPixels)
        throw InputError("cnn_train_ref: images must have " + std::to_string(kPixels) + " columns, got " +
                         std::to_string(images.cols));
    if (images.rows != static_cast<int64_t>(labels.size()) || images.rows <= 0)
        throw InputError("cnn_train_ref: " + std::to_string(images.rows) + " images but " +
                         std::to_string(labels.size()) + " labels");
    if (config.batch <= 0 || config.epochs < 0) throw InputError("cnn_train_ref: batch and epochs must be positive");
    const int n = static_cast<int>(images.rows);
    TrainResult result;
    std::vector<float> velocity(kParams, 0.0f), grad(kParams);
    std::vector<float> xb(static_cast<size_t>(std::min(n, config.batch)) * kPixels), yb(config.batch);
    CnnActivations act;
    for (int epoch = 0; epoch < config.epochs; ++epoch) {
        const std::vector<int> perm = cnn_epoch_permutation(config.seed, epoch, n);
        float loss = 0.0f;
        for (int start = 0; start < n; start += config.batch) {
            const int B = std::min(config.batch, n - start);
            for (int b = 0; b < B; ++b) {
                const int s = perm[start + b];
                std::copy(images.row(s), images.row(s) + kPixels, xb.data() + static_cast<size_t>(b) * kPixels);
                yb[b] = labels[s];
            }
            cnn_forward_ref(params.data(), xb.data(), B, &act);
            loss = cnn_bce_loss_ref(act.logit.data(), yb.data(), B);
            cnn_backward_ref(params.data(), xb.data(), yb.data(), B, act, grad.data());
            sgd_momentum_ref(params.data(), velocity.data(), grad.data(), kParams, config.lr, config.momentum);
            result.step_losses.push_back(loss);
        }
        result.epoch_losses.push_back(loss);
        if (on_epoch) on_epoch(epoch + 1, loss);
    }
    return result;
}

}  // namespace rsa

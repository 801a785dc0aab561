// CPU twin of the tutorial's CNN (spec sections 1.3-1.7), llm.c style: plain loops and forward/backward
// pairs. A direct convolution (a loop along output rows that the compiler vectorises) fused with ReLU and max
// pooling per channel; the conv weight gradient sums only the <= 288 non-zero positions per image that max
// pooling lets through. The images of a batch are split across std::thread::hardware_concurrency() threads,
// each image writing only its own slots; the gradient sums over the batch run in image order afterwards, so
// results are the same for any number of threads. Training keeps no 18,432-value conv map per image, only each
// pool window's argmax. Cost per image: 903k multiply-adds forward, <= 14k backward.
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
#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "rsa_gpu/cnn.h"
#include "rsa_gpu/cnn_exact_math.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"

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

// ---- threads ----

// Runs body(begin, end) on contiguous chunks of [0, n), one per hardware thread (the calling thread takes the
// first). Callers give every image its own output slots, so results are the same for any number of threads.
template <class Body>
void parallel_for(int n, const Body& body) {
    const int threads = std::max(1, std::min(n, static_cast<int>(std::thread::hardware_concurrency())));
    std::vector<std::thread> workers;
    for (int t = 1; t < threads; ++t)
        workers.emplace_back([&body, n, threads, t] {
            body(static_cast<int>(int64_t(n) * t / threads), static_cast<int>(int64_t(n) * (t + 1) / threads));
        });
    body(0, n / threads);
    for (std::thread& w : workers) w.join();
}

// ---- convolution, ReLU and max pool ----
// Direct convolution, 3072 x 49 multiply-adds per channel and image and no im2col buffer: the image is copied once
// into a zero-padded frame (54 x 70), so the inner loop, along one output row (64 columns, a fixed count), has no
// bounds tests and the compiler vectorises it (SSE2 at -O2). Each channel's 48 x 64 map (12 KB) is pooled while
// it is still in L1; training keeps only the pooled values and each window's argmax, all the backward needs.

constexpr int kTaps = kKernel * kKernel;                               // 49
constexpr int kPadH = kHeight + 2 * kPad, kPadW = kWidth + 2 * kPad;   // 54 x 70
constexpr int kWindows = kPoolH * kPoolW;                              // 48 pool windows per channel

// pad: image (H, W) -> padded (H + 6, W + 6), the image at offset (3, 3) and zeros around it.
void pad_image(const float* img, float* padded) {
    std::fill(padded, padded + kPadH * kPadW, 0.0f);
    for (int y = 0; y < kHeight; ++y)
        std::copy(img + y * kWidth, img + (y + 1) * kWidth, padded + (y + kPad) * kPadW + kPad);
}

// conv forward, one channel of one image: padded (54, 70), weight (7, 7), bias -> out (H, W) pre-ReLU,
// out[y][x] = (sum over (ky, kx) in row-major order of weight[ky][kx] padded[y + ky][x + kx]) + bias
// (PyTorch's cross-correlation with zero padding 3). One kernel row at a time with its 7 taps written out, so
// each output is loaded and stored once per kernel row rather than once per tap (3x faster). The order of the
// sum, taps in order then the bias, is the one of PyTorch's (and a GEMM's) dot products: on the tutorial's
// binary gratings every product is exact, so equal windows tie exactly as in PyTorch and max pooling picks the
// same positions.
// Compiled for AVX-512, AVX2 and baseline x86-64 (picked at run time); -ffp-contract=off keeps every multiply and
// add separately rounded, so all three give the same bits (vectorisation runs across x, each output keeps its order).
__attribute__((target_clones("avx512f", "avx2", "default")))
void conv_channel_forward(const float* __restrict padded, const float* __restrict weight, float bias,
                          float* __restrict out) {
    for (int y = 0; y < kHeight; ++y) {
        float* __restrict row = out + y * kWidth;
        for (int x = 0; x < kWidth; ++x) row[x] = 0.0f;
        for (int ky = 0; ky < kKernel; ++ky) {
            const float* __restrict in = padded + (y + ky) * kPadW;
            const float* w = weight + ky * kKernel;
            const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6];
            for (int x = 0; x < kWidth; ++x)
                row[x] = row[x] + w0 * in[x] + w1 * in[x + 1] + w2 * in[x + 2] + w3 * in[x + 3] + w4 * in[x + 4] +
                         w5 * in[x + 5] + w6 * in[x + 6];
        }
        for (int x = 0; x < kWidth; ++x) row[x] += bias;
    }
}

// relu_pool forward, one channel: conv (H, W) pre-ReLU -> pool (HP, WP) = max over each 8x8 window of ReLU(conv);
// at (HP, WP) = index (y * W + x) of the window's FIRST maximum in row-major order when that maximum is > 0, else
// -1. (PyTorch CPU max_pool2d keeps the first maximum, replacing only on a strictly greater value; where the
// maximum is ReLU's 0, threshold_backward passes no gradient, so -1 stands for "no gradient through this window".)
__attribute__((target_clones("avx512f", "avx2", "default")))
void relu_pool_channel_forward(const float* __restrict conv, float* __restrict pool, int* __restrict at) {
    for (int pi = 0; pi < kPoolH; ++pi) {
        const float* __restrict band = conv + pi * kPool * kWidth;  // the 8 rows under this row of windows
        float colmax[kWidth];  // per column of the band: its maximum and the first row holding it (vectorised)
        int colrow[kWidth];
        for (int x = 0; x < kWidth; ++x) {
            float m = band[x];
            int r = 0;
            for (int di = 1; di < kPool; ++di) {
                const float v = band[di * kWidth + x];
                if (v > m) {
                    m = v;
                    r = di;
                }
            }
            colmax[x] = m;
            colrow[x] = r;
        }
        // The window's first maximum in row-major order: the earliest row, then the earliest column, among the
        // window's columns that hold the maximum.
        for (int pj = 0; pj < kPoolW; ++pj) {
            int best = pj * kPool;
            for (int x = best + 1; x < (pj + 1) * kPool; ++x)
                if (colmax[x] > colmax[best] || (colmax[x] == colmax[best] && colrow[x] < colrow[best])) best = x;
            const float m = colmax[best];
            pool[pi * kPoolW + pj] = std::max(m, 0.0f);
            at[pi * kPoolW + pj] = m > 0.0f ? (pi * kPool + colrow[best]) * kWidth + best : -1;
        }
    }
}

// conv backward through ReLU and max pool, one image: dpool (F), at (F) (index into the image's conv map C*H*W
// of each window's first maximum, -1 where it was <= 0), img (H, W) -> dweight (C, 49) and dbias (C) of this image
// alone (overwritten). dconv, the pool gradient routed to each window's argmax, is non-zero at most at F = 288 of
// the C*H*W = 18,432 conv positions, so the weight gradient sums just those: dweight[c][ky][kx] +=
// dconv[c][y][x] padded[y + ky][x + kx] (the same terms as the dense im2col GEMM dconv x col, whose other 98% are
// products with zero). Summed in float per image (at most 48 terms), over the batch in double.
void conv_backward_image(const float* dpool, const int* at, const float* img, double* dweight, double* dbias) {
    float padded[kPadH * kPadW + 1];  // + 1: the 8-wide loop below reads one float past the last window
    pad_image(img, padded);
    padded[kPadH * kPadW] = 0.0f;
    float dw[kChannels][kKernel][8] = {};  // kx padded to 8 columns (the 8th is discarded) so the loop vectorises
    float db[kChannels] = {};
    for (int o = 0; o < kPooled; ++o) {
        if (at[o] < 0) continue;
        const float d = dpool[o];
        const int c = at[o] / kPixels, y = (at[o] % kPixels) / kWidth, x = at[o] % kWidth;
        db[c] += d;
        for (int ky = 0; ky < kKernel; ++ky) {
            const float* in = padded + (y + ky) * kPadW + x;
            for (int kx = 0; kx < 8; ++kx) dw[c][ky][kx] += d * in[kx];
        }
    }
    for (int c = 0; c < kChannels; ++c) {
        dbias[c] = db[c];
        for (int ky = 0; ky < kKernel; ++ky)
            for (int kx = 0; kx < kKernel; ++kx) dweight[(c * kKernel + ky) * kKernel + kx] = dw[c][ky][kx];
    }
}

// z >= 0 ? 1 / (1 + e^-z) : e^z / (1 + e^z) in float, e^z from cnn_math::exp_f (not std::exp: the GPU twin must
// compute the same bits, and no library exp is the same on both; cnn_exact_math.h).
float sigmoidf(float z) { return cnn_math::sigmoid_f(z); }

// ---- one image through the net, forward and backward ----
// Everything per image runs on the threads (each image writes only its own rows); the sums over the batch
// (the parameter gradients) run afterwards in image order, so results do not depend on the number of threads.
// The Linear layers are a few thousand multiply-adds per image, plain loops (an OpenBLAS call per layer would
// wake OpenBLAS's own threads, which then spin against ours on 2 cores).

// act (B rows): sized for B images; conv (B, 6, 48, 64) only when keep_conv, else empty.
void size_activations(int B, bool keep_conv, CnnActivations* act) {
    act->batch = B;
    if (keep_conv) act->conv.resize(static_cast<size_t>(B) * kChannels * kPixels);
    else act->conv.clear();
    act->pool.resize(static_cast<size_t>(B) * kPooled);
    act->fc.resize(static_cast<size_t>(B) * kHidden);
    act->fc_relu.resize(static_cast<size_t>(B) * kHidden);
    act->logit.resize(B);
    act->prob.resize(B);
}

// forward, image b: params (3201), img (H, W) -> act row b of pool, fc, fc_relu, logit, prob, and of conv when
// act->conv is not empty; at (F) = for each pool window the index into the image's conv map (C*H*W) of its first
// maximum when that is > 0, else -1.
void forward_image(const float* params, const float* img, int b, CnnActivations* act, int* at) {
    float padded[kPadH * kPadW], scratch[kPixels];
    pad_image(img, padded);
    float* pool = act->pool.data() + static_cast<size_t>(b) * kPooled;
    for (int c = 0; c < kChannels; ++c) {
        float* map = act->conv.empty() ? scratch : act->conv.data() + (static_cast<size_t>(b) * kChannels + c) * kPixels;
        conv_channel_forward(padded, params + kConvW + c * kTaps, params[kConvB + c], map);
        relu_pool_channel_forward(map, pool + c * kWindows, at + c * kWindows);
        for (int w = c * kWindows; w < (c + 1) * kWindows; ++w)
            if (at[w] >= 0) at[w] += c * kPixels;
    }
    // fc: fc[o] = bias[o] + sum over i of pool[i] weight[o][i] (i outer: ten independent running sums).
    float* fc = act->fc.data() + static_cast<size_t>(b) * kHidden;
    float* fc_relu = act->fc_relu.data() + static_cast<size_t>(b) * kHidden;
    for (int o = 0; o < kHidden; ++o) fc[o] = params[kFcB + o];
    for (int i = 0; i < kPooled; ++i)
        for (int o = 0; o < kHidden; ++o) fc[o] += pool[i] * params[kFcW + o * kPooled + i];
    float z = params[kOutB];
    for (int o = 0; o < kHidden; ++o) {
        fc_relu[o] = std::max(fc[o], 0.0f);
        z += fc_relu[o] * params[kOutW + o];
    }
    act->logit[b] = z;
    act->prob[b] = sigmoidf(z);
}

// Per-image gradient terms, filled by backward_image and summed over the batch by sum_gradients.
constexpr int kConvGrads = kChannels * kTaps + kChannels;  // dweight (6 x 49), then dbias (6)
struct ImageGrads {
    std::vector<float> dlogit;        // B: d(mean BCE) / d logit = (sigmoid(z) - y) / B
    std::vector<float> dfc;           // B x 10: gradient at fc's output (after its ReLU's mask)
    std::vector<double> conv;         // B x 300: this image's conv weight and bias gradients
    void resize(int B) {
        dlogit.resize(B);
        dfc.resize(static_cast<size_t>(B) * kHidden);
        conv.resize(static_cast<size_t>(B) * kConvGrads);
    }
};

// backward, image b of B: params, img (H, W), its label, act row b and at (F) from forward_image -> g rows b.
// dlogit -> out -> dfc_relu (10) -> ReLU -> dfc (10) -> fc -> dpool (288) -> max pool + ReLU -> conv.
void backward_image(const float* params, const float* img, float label, int b, int B, const CnnActivations& act,
                    const int* at, ImageGrads* g) {
    const float dlogit = (act.prob[b] - label) / static_cast<float>(B);
    g->dlogit[b] = dlogit;
    float* dfc = g->dfc.data() + static_cast<size_t>(b) * kHidden;
    for (int o = 0; o < kHidden; ++o)
        dfc[o] = act.fc[static_cast<size_t>(b) * kHidden + o] > 0.0f ? dlogit * params[kOutW + o] : 0.0f;
    float dpool[kPooled] = {};  // dpool[i] = sum over o of dfc[o] weight[o][i]
    for (int o = 0; o < kHidden; ++o)
        for (int i = 0; i < kPooled; ++i) dpool[i] += dfc[o] * params[kFcW + o * kPooled + i];
    double* conv = g->conv.data() + static_cast<size_t>(b) * kConvGrads;
    conv_backward_image(dpool, at, img, conv, conv + kChannels * kTaps);
}

// grad (3201) = the sums over the batch's B images, in image order: out.weight += dlogit fc_relu, out.bias +=
// dlogit, fc.weight += dfc pool^T, fc.bias += dfc, conv weight and bias (per-image doubles).
void sum_gradients(const CnnActivations& act, const ImageGrads& g, int B, float* grad) {
    std::fill(grad, grad + kParams, 0.0f);
    double conv[kConvGrads] = {};
    for (int b = 0; b < B; ++b) {
        const float* pool = act.pool.data() + static_cast<size_t>(b) * kPooled;
        const float* dfc = g.dfc.data() + static_cast<size_t>(b) * kHidden;
        for (int o = 0; o < kHidden; ++o) {
            grad[kOutW + o] += g.dlogit[b] * act.fc_relu[static_cast<size_t>(b) * kHidden + o];
            grad[kFcB + o] += dfc[o];
            float* dw = grad + kFcW + o * kPooled;
            if (dfc[o] != 0.0f)
                for (int i = 0; i < kPooled; ++i) dw[i] += dfc[o] * pool[i];
        }
        grad[kOutB] += g.dlogit[b];
        for (int k = 0; k < kConvGrads; ++k) conv[k] += g.conv[static_cast<size_t>(b) * kConvGrads + k];
    }
    for (int k = 0; k < kConvGrads; ++k) grad[kConvW + k] = static_cast<float>(conv[k]);  // kConvB follows kConvW
}

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

// ---- the GPU kernel choice (the CPU twin is the same for both) ----

CnnKernels parse_cnn_kernels(const std::string& text) {
    if (text == "cudnn") return CnnKernels::cudnn;
    if (text == "exact") return CnnKernels::exact;
    throw InputError("--cnn-kernels: expected cudnn or exact, got '" + text + "'");
}

const char* cnn_kernels_name(CnnKernels kernels) { return kernels == CnnKernels::exact ? "exact" : "cudnn"; }

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
    size_activations(batch, true, act);
    std::vector<int> at(static_cast<size_t>(batch) * kPooled);
    parallel_for(batch, [&](int b0, int b1) {
        for (int b = b0; b < b1; ++b)
            forward_image(params, images + static_cast<size_t>(b) * kPixels, b, act, at.data() + static_cast<size_t>(b) * kPooled);
    });
}

// loss: logits (B), labels (B) -> mean(max(z,0) - z y + log1p(exp(-|z|))) (BCE from logits, stable; equal to
// PyTorch's BCELoss on sigmoid(z) except where that one clamps log at -100). Each term in double with
// cnn_math::bce_term_d (its own exp and log1p, which the GPU computes to the same bits), summed in image order.
float cnn_bce_loss_ref(const float* logits, const float* labels, int batch) {
    double s = 0.0;
    for (int b = 0; b < batch; ++b) s += cnn_math::bce_term_d(logits[b], labels[b]);
    return static_cast<float>(s / batch);
}

// backward: params (3201), images (B, 3072), labels (B), act from cnn_forward_ref -> grad (3201) of the mean
// BCE. Each pool window's argmax is found again from act.conv, then backward_image per image and sum_gradients.
void cnn_backward_ref(const float* params, const float* images, const float* labels, int batch,
                      const CnnActivations& act, float* grad) {
    const int B = batch;
    if (B <= 0 || act.batch != B || act.conv.size() != static_cast<size_t>(B) * kChannels * kPixels)
        throw InputError("cnn_backward_ref: activations do not match the batch");
    ImageGrads g;
    g.resize(B);
    parallel_for(B, [&](int b0, int b1) {
        int at[kPooled];
        float pool[kWindows];
        for (int b = b0; b < b1; ++b) {
            for (int c = 0; c < kChannels; ++c) {
                relu_pool_channel_forward(act.conv.data() + (static_cast<size_t>(b) * kChannels + c) * kPixels, pool,
                                          at + c * kWindows);
                for (int w = c * kWindows; w < (c + 1) * kWindows; ++w)
                    if (at[w] >= 0) at[w] += c * kPixels;
            }
            backward_image(params, images + static_cast<size_t>(b) * kPixels, labels[b], b, B, act, at, &g);
        }
    });
    sum_gradients(act, g, B, grad);
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
// seed, epoch, N), consecutive batches of config.batch (the last one smaller when N % batch != 0), forward
// (without the conv map) and backward of each image on the threads, loss, gradient sums, SGD-momentum step.
TrainResult cnn_train_ref(std::vector<float>& params, const MatrixView& images, const std::vector<float>& labels,
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
    std::vector<float> velocity(kParams, 0.0f), grad(kParams), yb(std::min(n, config.batch));
    CnnActivations act;
    ImageGrads g;
    for (int epoch = 0; epoch < config.epochs; ++epoch) {
        const std::vector<int> perm = cnn_epoch_permutation(config.seed, epoch, n);
        float loss = 0.0f;
        for (int start = 0; start < n; start += config.batch) {
            check_interrupt("training");  // a safe point between SGD steps
            const int B = std::min(config.batch, n - start);
            for (int b = 0; b < B; ++b) yb[b] = labels[perm[start + b]];
            size_activations(B, false, &act);
            g.resize(B);
            parallel_for(B, [&](int b0, int b1) {
                int at[kPooled];
                for (int b = b0; b < b1; ++b) {
                    const float* img = images.row(perm[start + b]);
                    forward_image(params.data(), img, b, &act, at);
                    backward_image(params.data(), img, yb[b], b, B, act, at, &g);
                }
            });
            loss = cnn_bce_loss_ref(act.logit.data(), yb.data(), B);
            sum_gradients(act, g, B, grad.data());
            sgd_momentum_ref(params.data(), velocity.data(), grad.data(), kParams, config.lr, config.momentum);
            result.step_losses.push_back(loss);
        }
        result.epoch_losses.push_back(loss);
        if (on_epoch) on_epoch(epoch + 1, loss);
    }
    return result;
}

}  // namespace rsa

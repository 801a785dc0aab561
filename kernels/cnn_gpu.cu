// CnnGpu: the tutorial's CNN (cnn.h) on one GPU, with two interchangeable training paths (CnnKernels, --cnn-kernels):
//   cudnn  cuDNN's convolution forward with bias and ReLU fused (cudnnConvolutionBiasActivationForward), max pooling
//          forward and backward (CUDNN_POOLING_MAX_DETERMINISTIC), ReLU backward (cudnnActivationBackward, in
//          place), the conv filter and bias gradients (cudnnConvolutionBackwardFilter/Bias), fc and out as cuBLAS
//          SGEMMs plus our bias/ReLU/bias-gradient kernels. Where a pooling window holds tied maxima cuDNN routes the
//          gradient to one of them of its choosing, not necessarily the twin's first, so on the binary gratings it
//          follows a slightly different trajectory; elsewhere it is within FP32 rounding of the twin.
//   exact  our kernels only, each repeating the CPU twin's (host/cnn_ref.cpp) arithmetic operation for operation, so
//          every value is BIT-IDENTICAL to the twin's: the forward layers, the loss, the gradient, the parameters
//          after any number of steps. How: one thread computes each output's whole sum, in the twin's order, with
//          separately rounded __fmul_rn / __fadd_rn (nvcc would contract a * b + c into an FMA; the twin is built
//          with -ffp-contract=off and x86-64 has no FMA without -march), and double sums with __dadd_rn where the twin
//          sums in double. Per kernel: conv_forward (49 taps in row-major order from 0, then + bias); relu_pool_forward
//          (the first maximum in row-major order); linear_forward_exact for fc and out (bias first, then + x[i] w[o][i]
//          for i ascending; std::max's ReLU); sigmoid_exact and the loss with cnn_exact_math.h's exp/log1p (the same
//          source on both sides: no library exp is bit-reproducible across glibc and CUDA); out_backward_exact (dfc
//          = fc > 0 ? dlogit w : 0); linear_backward_data_exact (dpool from 0, o ascending); head_grads_exact (fc and
//          out gradients summed image by image from 0, skipping dfc == 0 like the twin); conv_grad_image_exact (per
//          image, a float sum over the channel's 48 windows in order whose maximum is > 0) and
//          conv_grad_sum_exact (those per-image floats summed over the batch in double, in image order, rounded
//          once); sgd_momentum (v = mu v + g; p -= lr v, rounded per step).
// Shared by both: the batch gather, the loss and its gradient (bce_loss_grad: double terms summed in image order by
// one thread, the twin's), the momentum update.
// cuDNN runs through its legacy convolution/pooling calls (deprecated in cuDNN 9 in favour of the graph API, still
// shipped and supported there; the graph API would need a hand-built backend-descriptor graph per op for the same
// four calls) on the context's cuDNN handle, created by the first CnnGpu (gpu_cudnn). Convolutions use FMA math
// (exact FP32, no TF32) and, per batch size, the first algorithm of cuDNN's heuristic ranking (the _v7 queries; no
// kernels run) that is deterministic, keeps a direct sum (no FFT/Winograd) and fits kWorkspaceCap: a function of the
// batch size alone, chosen once outside any capture; the one workspace (DeviceBuffer) is sized for them.
// Parameters, gradients and velocity each live in ONE flat device buffer in state_dict order, so the libraries point
// at offsets inside it. Device memory is DeviceBuffer (OutOfMemoryError on allocation failure); block size, grids and
// the block sum are the kit's (common.cuh); cuBLAS is bound to the context stream by bind_cublas_stream.
// Training uploads the data once, gathers every batch on the device from the epoch's permutation, replays one
// captured CUDA graph per full-size step (counted: graph_replays) and reads the losses back once per epoch. Same
// semantics as the CPU twin (cnn_forward_ref, cnn_backward_ref, cnn_train_ref).
//
// Shapes (B = batch):  x B x 1 x 48 x 64 -> conv/relu B x 6 x 48 x 64 -> pool B x 6 x 6 x 8 = B x 288
//                      -> fc/fc_relu B x 10 -> logit/prob B.
#include "rsa_gpu/cnn_gpu.h"

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common.cuh"
#include "cuda_check.cuh"
#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "rsa_gpu/cnn_exact_math.h"
#include "rsa_gpu/error.h"

namespace rsa {
namespace {

using namespace cnn;

constexpr size_t kWorkspaceCap = size_t(64) << 20;  // cuDNN convolution workspace cap (bytes)
constexpr int kConvOut = kChannels * kPixels;     // 18,432 conv outputs per image
constexpr int kMaxBatch = 2147483647 / kConvOut;  // 116,508: B x 18432 stays within int

// ----------------------------------------------------------------------------------------------------------
// CUDA kernels

// Batch gather: images[b] = all_images[perm[offset + b]], labels[b] = all_labels[perm[offset + b]] with
// offset = (*step) * stride, so one captured graph serves every step of an epoch.
// images: batch x 3072 (as float4: batch x 768), all_images: n x 3072, perm: n.
__global__ void gather_batch_kernel(float4* __restrict__ images, float* __restrict__ labels,
                                    const float4* __restrict__ all_images, const float* __restrict__ all_labels,
                                    const int* __restrict__ perm, const int* __restrict__ step, int stride,
                                    int batch) {
    constexpr int kVec = kPixels / 4;
    const int offset = *step * stride;
    const int total = batch * kVec;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const int b = i / kVec;
        const int p = i - b * kVec;
        const int src = perm[offset + b];
        images[i] = all_images[static_cast<size_t>(src) * kVec + p];
        if (p == 0) labels[b] = all_labels[src];
    }
}

// fc bias and ReLU: y (rows x cols, the GEMM result) += bias (cols); y_relu = max(y, 0).
__global__ void bias_relu_forward_kernel(float* __restrict__ y, float* __restrict__ y_relu,
                                         const float* __restrict__ bias, int rows, int cols) {
    const int total = rows * cols;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const float v = __fadd_rn(y[i], bias[i % cols]);
        y[i] = v;
        y_relu[i] = v > 0.0f ? v : 0.0f;
    }
}

// out bias and sigmoid: logit (B, the GEMM result) += *bias; prob = sigmoid(logit).
__global__ void logit_sigmoid_kernel(float* __restrict__ logit, float* __restrict__ prob,
                                     const float* __restrict__ bias, int batch) {
    const float b0 = *bias;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < batch; i += gridDim.x * blockDim.x) {
        const float z = __fadd_rn(logit[i], b0);
        logit[i] = z;
        prob[i] = cnn_math::sigmoid_f(z);
    }
}

// Mean BCE from logits and its gradient, as the CPU twin computes them (cnn_bce_loss_ref, backward_image), in ONE
// block: each image's term max(z,0) - z y + log1p(exp(-|z|)) in double (cnn_math::bce_term_d, the twin's function)
// into terms[b], then thread 0 sums them in image order from 0.0 and rounds once: loss_base[step ? *step : 0] =
// float(sum / B). dlogit[b] = (prob[b] - y) / float(B) in float, from the forward's prob (the twin's act.prob).
// Both paths use it; for the exact path loss and dlogit are bit for bit the twin's.
__global__ void bce_loss_grad_kernel(const float* __restrict__ logit, const float* __restrict__ prob,
                                     const float* __restrict__ labels, int batch, float* __restrict__ dlogit,
                                     double* __restrict__ terms, float* __restrict__ loss_base,
                                     const int* __restrict__ step) {
    const float fbatch = static_cast<float>(batch);
    for (int i = threadIdx.x; i < batch; i += blockDim.x) {
        const float y = labels[i];
        terms[i] = cnn_math::bce_term_d(static_cast<double>(logit[i]), static_cast<double>(y));
        dlogit[i] = __fdiv_rn(__fsub_rn(prob[i], y), fbatch);
    }
    __syncthreads();  // the block's global writes to terms are visible to thread 0 after the barrier
    if (threadIdx.x == 0) {
        double sum = 0.0;
        for (int i = 0; i < batch; ++i) sum = __dadd_rn(sum, terms[i]);
        loss_base[step ? *step : 0] = __double2float_rn(__ddiv_rn(sum, static_cast<double>(batch)));
    }
}

// ReLU backward: dx = x > 0 ? dy : 0 (n values).
__global__ void relu_backward_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                                     const float* __restrict__ x, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

// Direct convolution forward (+ bias), one thread per conv output: conv[b, c, i, j] = acc + bias[c], acc a chain
// of separately rounded multiply-adds over the 49 taps in (ki, kj) row-major order starting at +0, padding taps
// included as zeros. This is exactly the CPU twin's arithmetic (host/cnn_ref.cpp conv_channel_forward, generic
// x86-64 without FMA), so both twins give bit-identical conv outputs. cuDNN's summation order differs, and on the
// binary gratings many pool windows hold maxima that are equal in exact arithmetic but not in float: a different
// order re-routes those gradients (relative L2 ~5e-3 on the gradient, measured by emulation), while the exact path
// must give the twin's bits.
__global__ void conv_forward_kernel(const float* __restrict__ x, const float* __restrict__ weight,
                                    const float* __restrict__ bias, float* __restrict__ conv, int64_t total) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = i / kConvOut;
        const int e = static_cast<int>(i - b * kConvOut);
        const int c = e / kPixels;
        const int p = e - c * kPixels;
        const int y = p / kWidth, xc = p - y * kWidth;
        const float* img = x + b * kPixels;
        const float* w = weight + c * kKernel * kKernel;
        float acc = 0.0f;
        for (int ki = 0; ki < kKernel; ++ki) {
            const int yy = y + ki - kPad;
            const bool row_ok = yy >= 0 && yy < kHeight;
            for (int kj = 0; kj < kKernel; ++kj) {
                const int xx = xc + kj - kPad;
                const float v = (row_ok && xx >= 0 && xx < kWidth) ? img[yy * kWidth + xx] : 0.0f;
                // Separately rounded multiply and add, taps in row-major order: the CPU twin's exact arithmetic
                // (generic x86-64 has no FMA), so equal windows tie identically and pooling picks the same maxima.
                acc = __fadd_rn(acc, __fmul_rn(w[ki * kKernel + kj], v));
            }
        }
        conv[i] = __fadd_rn(bias[c], acc);
    }
}

// ReLU + max pool forward, one thread per pooled unit: pool[b, o] = max over the 8x8 window of max(conv, 0), and
// argmax[b, o] = the index within image b's conv (C*H*W) of the FIRST maximum in row-major window order (only a
// strictly greater value replaces it), exactly as relu_pool_forward of the CPU twin (including std::max's NaN rule).
__global__ void relu_pool_forward_kernel(const float* __restrict__ conv, float* __restrict__ pool,
                                         int* __restrict__ argmax, int64_t total) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = i / kPooled;
        const int o = static_cast<int>(i - b * kPooled);
        const int c = o / (kPoolH * kPoolW);
        const int r = o - c * (kPoolH * kPoolW);
        const int pi = r / kPoolW, pj = r - pi * kPoolW;
        const float* img = conv + b * kConvOut;
        float best = -INFINITY;
        int best_at = c * kPixels + pi * kPool * kWidth + pj * kPool;  // the window's first position (kept if all NaN)
        for (int di = 0; di < kPool; ++di) {
            const int row = c * kPixels + (pi * kPool + di) * kWidth + pj * kPool;
            for (int dj = 0; dj < kPool; ++dj) {
                const float x = img[row + dj];
                const float v = x < 0.0f ? 0.0f : x;  // std::max(x, 0.0f)
                if (v > best) {
                    best = v;
                    best_at = row + dj;
                }
            }
        }
        pool[i] = best;
        argmax[i] = best_at;
    }
}

// ---- the exact path's fc layers and parameter gradients: the CPU twin's loops, one thread per output value ----
// Every product and sum is a separately rounded __fmul_rn / __fadd_rn (or __dadd_rn) in the twin's order, each
// output's sum in one thread, so each value is bit for bit the twin's (host/cnn_ref.cpp, compiled without FMA).

// Linear forward: y[r, o] = ((bias[o] + x[r, 0] w[o, 0]) + x[r, 1] w[o, 1]) + ... (i ascending), and y_relu[r, o] =
// std::max(y, 0) (y itself unless y < 0: -0 and NaN pass as the twin's) when y_relu is given. forward_image's fc
// (fc[o] = bias, then fc[o] += pool[i] w[o][i] for i = 0..287) and out (z = bias, then z += fc_relu[o] w[o]).
__global__ void linear_forward_exact_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                            const float* __restrict__ bias, float* __restrict__ y,
                                            float* __restrict__ y_relu, int rows, int in, int out) {
    const int total = rows * out;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        const int r = t / out, o = t - r * out;
        const float* xr = x + static_cast<size_t>(r) * in;
        const float* wo = w + static_cast<size_t>(o) * in;
        float acc = bias[o];
        for (int i = 0; i < in; ++i) acc = __fadd_rn(acc, __fmul_rn(xr[i], wo[i]));
        y[t] = acc;
        if (y_relu != nullptr) y_relu[t] = acc < 0.0f ? 0.0f : acc;
    }
}

// prob = sigmoid(logit) with the twin's sigmoidf (cnn_math::sigmoid_f).
__global__ void sigmoid_exact_kernel(const float* __restrict__ logit, float* __restrict__ prob, int batch) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < batch; i += gridDim.x * blockDim.x)
        prob[i] = cnn_math::sigmoid_f(logit[i]);
}

// out backward through fc's ReLU, one thread per (image, unit): dfc[b, o] = fc[b, o] > 0 ? dlogit[b] w_out[o] : 0
// (backward_image's dfc).
__global__ void out_backward_exact_kernel(const float* __restrict__ dlogit, const float* __restrict__ w_out,
                                          const float* __restrict__ fc, float* __restrict__ dfc, int batch) {
    const int total = batch * kHidden;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        const int b = t / kHidden, o = t - b * kHidden;
        dfc[t] = fc[t] > 0.0f ? __fmul_rn(dlogit[b], w_out[o]) : 0.0f;
    }
}

// Linear data gradient: dx[r, i] = ((0 + dy[r, 0] w[0, i]) + dy[r, 1] w[1, i]) + ... (o ascending, zero terms
// included): backward_image's dpool (dpool[i] = 0, then dpool[i] += dfc[o] w[o][i] for o = 0..9).
__global__ void linear_backward_data_exact_kernel(const float* __restrict__ dy, const float* __restrict__ w,
                                                  float* __restrict__ dx, int rows, int in, int out) {
    const int total = rows * in;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        const int r = t / in, i = t - r * in;
        const float* dyr = dy + static_cast<size_t>(r) * out;
        float acc = 0.0f;
        for (int o = 0; o < out; ++o) acc = __fadd_rn(acc, __fmul_rn(dyr[o], w[static_cast<size_t>(o) * in + i]));
        dx[t] = acc;
    }
}

// The fc and out parameter gradients, one thread per parameter k in [kFcW, kParams), each summed over the batch in
// image order from 0 in float, as sum_gradients does:
//   fc.weight[o][i] += dfc[b][o] pool[b][i]  (only where dfc[b][o] != 0, the twin's skip)
//   fc.bias[o]      += dfc[b][o]
//   out.weight[o]   += dlogit[b] fc_relu[b][o]
//   out.bias        += dlogit[b]
__global__ void head_grads_exact_kernel(const float* __restrict__ pool, const float* __restrict__ dfc,
                                        const float* __restrict__ fc_relu, const float* __restrict__ dlogit,
                                        float* __restrict__ grad, int batch) {
    constexpr int kCount = kParams - kFcW;  // 2,901
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < kCount; t += gridDim.x * blockDim.x) {
        const int k = kFcW + t;
        float acc = 0.0f;
        if (k < kFcB) {
            const int o = (k - kFcW) / kPooled, i = (k - kFcW) - o * kPooled;
            for (int b = 0; b < batch; ++b) {
                const float d = dfc[static_cast<size_t>(b) * kHidden + o];
                if (d != 0.0f) acc = __fadd_rn(acc, __fmul_rn(d, pool[static_cast<size_t>(b) * kPooled + i]));
            }
        } else if (k < kOutW) {
            const int o = k - kFcB;
            for (int b = 0; b < batch; ++b) acc = __fadd_rn(acc, dfc[static_cast<size_t>(b) * kHidden + o]);
        } else if (k < kOutB) {
            const int o = k - kOutW;
            for (int b = 0; b < batch; ++b)
                acc = __fadd_rn(acc, __fmul_rn(dlogit[b], fc_relu[static_cast<size_t>(b) * kHidden + o]));
        } else {
            for (int b = 0; b < batch; ++b) acc = __fadd_rn(acc, dlogit[b]);
        }
        grad[k] = acc;
    }
}

constexpr int kTaps = kKernel * kKernel;                     // 49
constexpr int kConvGrads = kChannels * kTaps + kChannels;    // 300: conv.weight (6 x 49), then conv.bias (6)
constexpr int kWindows = kPoolH * kPoolW;                    // 48 pool windows per channel

// The conv weight and bias gradients of each image alone (conv_backward_image), one thread per (image, k), k < 294 a
// filter tap (c, ky, kx), k >= 294 the bias of channel k - 294: a float sum from 0 over the channel's 48 pool windows
// in order, skipping those whose maximum is not > 0 (the twin's at < 0: conv at the recorded argmax <= 0), of
// dpool[window] x the padded image at (y + ky, x + kx) around the window's argmax (y, x) (padding reads 0, and the
// product is still added, as in the twin), or of dpool[window] alone for the bias. parts: batch x 300.
__global__ void conv_grad_image_exact_kernel(const float* __restrict__ x, const float* __restrict__ conv,
                                             const float* __restrict__ dpool, const int* __restrict__ argmax,
                                             float* __restrict__ parts, int batch) {
    const int64_t total = static_cast<int64_t>(batch) * kConvGrads;
    for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
         t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = t / kConvGrads;
        const int k = static_cast<int>(t - b * kConvGrads);
        const bool is_bias = k >= kChannels * kTaps;
        const int c = is_bias ? k - kChannels * kTaps : k / kTaps;
        const int tap = is_bias ? 0 : k - c * kTaps;
        const int ky = tap / kKernel, kx = tap - ky * kKernel;
        const float* img = x + b * kPixels;
        const float* cv = conv + b * kConvOut;
        const int64_t first = b * kPooled + c * kWindows;
        float acc = 0.0f;
        for (int w = 0; w < kWindows; ++w) {
            const int e = argmax[first + w];  // index in the image's conv (C*H*W) of the window's first maximum
            if (!(cv[e] > 0.0f)) continue;    // the window's maximum is not > 0: no gradient (twin: at < 0)
            const float d = dpool[first + w];
            if (is_bias) {
                acc = __fadd_rn(acc, d);
                continue;
            }
            const int p = e - c * kPixels;
            const int y = p / kWidth, xc = p - y * kWidth;
            const int yy = y + ky - kPad, xx = xc + kx - kPad;
            const float v = (yy >= 0 && yy < kHeight && xx >= 0 && xx < kWidth) ? img[yy * kWidth + xx] : 0.0f;
            acc = __fadd_rn(acc, __fmul_rn(d, v));
        }
        parts[t] = acc;
    }
}

// grad[kConvW + k] = float(sum over b in image order, from 0.0, of double(parts[b, k])), k < 300 (conv.bias follows
// conv.weight): sum_gradients' double accumulation of the per-image conv gradients.
__global__ void conv_grad_sum_exact_kernel(const float* __restrict__ parts, float* __restrict__ grad, int batch) {
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < kConvGrads; k += gridDim.x * blockDim.x) {
        double sum = 0.0;
        for (int b = 0; b < batch; ++b)
            sum = __dadd_rn(sum, static_cast<double>(parts[static_cast<size_t>(b) * kConvGrads + k]));
        grad[kConvW + k] = __double2float_rn(sum);
    }
}

// Bias gradient: db[j] = sum over rows of dy[r, j]; dy rows x cols row-major; one block per column.
__global__ void bias_grad_kernel(float* __restrict__ db, const float* __restrict__ dy, int rows, int cols) {
    const int j = blockIdx.x;
    float sum = 0.0f;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) sum += dy[static_cast<size_t>(r) * cols + j];
    const float total = block_sum(sum);
    if (threadIdx.x == 0) db[j] = total;
}

// PyTorch SGD with momentum over the flat parameters: v = mu v + g; p = p - lr v. Separately rounded products
// and sums (no FMA contraction), like the CPU twin. Thread 0 also advances the training step counter when given.
__global__ void sgd_momentum_kernel(float* __restrict__ params, float* __restrict__ velocity,
                                    const float* __restrict__ grad, int n, float lr, float momentum,
                                    int* __restrict__ step_counter) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const float v = __fadd_rn(__fmul_rn(momentum, velocity[i]), grad[i]);
        velocity[i] = v;
        params[i] = __fsub_rn(params[i], __fmul_rn(lr, v));
    }
    if (step_counter != nullptr && i == 0) *step_counter += 1;
}

// ----------------------------------------------------------------------------------------------------------
// kernel launchers

void gather_batch(float* images, float* labels, const float* all_images, const float* all_labels, const int* perm,
                  const int* step, int stride, int batch, cudaStream_t stream) {
    gather_batch_kernel<<<grid_1d(batch * kPixels / 4), kBlock, 0, stream>>>(
        reinterpret_cast<float4*>(images), labels, reinterpret_cast<const float4*>(all_images), all_labels, perm,
        step, stride, batch);
    RSA_CHECK_LAUNCH();
}

void bias_relu_forward(float* y, float* y_relu, const float* bias, int rows, int cols, cudaStream_t stream) {
    bias_relu_forward_kernel<<<grid_1d(rows * cols), kBlock, 0, stream>>>(y, y_relu, bias, rows, cols);
    RSA_CHECK_LAUNCH();
}

void logit_sigmoid(float* logit, float* prob, const float* bias, int batch, cudaStream_t stream) {
    logit_sigmoid_kernel<<<grid_1d(batch), kBlock, 0, stream>>>(logit, prob, bias, batch);
    RSA_CHECK_LAUNCH();
}

// terms: batch doubles of scratch.
void bce_loss_grad(const float* logit, const float* prob, const float* labels, int batch, float* dlogit,
                   double* terms, float* loss_base, const int* step, cudaStream_t stream) {
    bce_loss_grad_kernel<<<1, kBlock, 0, stream>>>(logit, prob, labels, batch, dlogit, terms, loss_base, step);
    RSA_CHECK_LAUNCH();
}

void relu_backward(float* dx, const float* dy, const float* x, int n, cudaStream_t stream) {
    relu_backward_kernel<<<grid_1d(n), kBlock, 0, stream>>>(dx, dy, x, n);
    RSA_CHECK_LAUNCH();
}

void conv_forward(const float* x, const float* weight, const float* bias, float* conv, int batch,
                  cudaStream_t stream) {
    const int64_t total = static_cast<int64_t>(batch) * kConvOut;
    conv_forward_kernel<<<grid_1d(total), kBlock, 0, stream>>>(x, weight, bias, conv, total);
    RSA_CHECK_LAUNCH();
}

void relu_pool_forward(const float* conv, float* pool, int* argmax, int batch, cudaStream_t stream) {
    const int64_t total = static_cast<int64_t>(batch) * kPooled;
    relu_pool_forward_kernel<<<grid_1d(total), kBlock, 0, stream>>>(conv, pool, argmax, total);
    RSA_CHECK_LAUNCH();
}

// The exact path's launchers (the kernels above; rows x out and rows x in stay within int: max_batch <= kMaxBatch).
void linear_forward_exact(const float* x, const float* w, const float* bias, float* y, float* y_relu, int rows,
                          int in, int out, cudaStream_t stream) {
    linear_forward_exact_kernel<<<grid_1d(static_cast<int64_t>(rows) * out), kBlock, 0, stream>>>(x, w, bias, y, y_relu,
                                                                                                rows, in, out);
    RSA_CHECK_LAUNCH();
}

void sigmoid_exact(const float* logit, float* prob, int batch, cudaStream_t stream) {
    sigmoid_exact_kernel<<<grid_1d(batch), kBlock, 0, stream>>>(logit, prob, batch);
    RSA_CHECK_LAUNCH();
}

void out_backward_exact(const float* dlogit, const float* w_out, const float* fc, float* dfc, int batch,
                        cudaStream_t stream) {
    out_backward_exact_kernel<<<grid_1d(static_cast<int64_t>(batch) * kHidden), kBlock, 0, stream>>>(dlogit, w_out, fc,
                                                                                                   dfc, batch);
    RSA_CHECK_LAUNCH();
}

void linear_backward_data_exact(const float* dy, const float* w, float* dx, int rows, int in, int out,
                                cudaStream_t stream) {
    linear_backward_data_exact_kernel<<<grid_1d(static_cast<int64_t>(rows) * in), kBlock, 0, stream>>>(dy, w, dx, rows,
                                                                                                     in, out);
    RSA_CHECK_LAUNCH();
}

void head_grads_exact(const float* pool, const float* dfc, const float* fc_relu, const float* dlogit, float* grad,
                      int batch, cudaStream_t stream) {
    head_grads_exact_kernel<<<grid_1d(kParams - kFcW), kBlock, 0, stream>>>(pool, dfc, fc_relu, dlogit, grad, batch);
    RSA_CHECK_LAUNCH();
}

// parts: batch x kConvGrads floats of scratch; writes grad[kConvW, kFcW).
void conv_grads_exact(const float* x, const float* conv, const float* dpool, const int* argmax, float* parts,
                      float* grad, int batch, cudaStream_t stream) {
    conv_grad_image_exact_kernel<<<grid_1d(static_cast<int64_t>(batch) * kConvGrads), kBlock, 0, stream>>>(
        x, conv, dpool, argmax, parts, batch);
    RSA_CHECK_LAUNCH();
    conv_grad_sum_exact_kernel<<<grid_1d(kConvGrads), kBlock, 0, stream>>>(parts, grad, batch);
    RSA_CHECK_LAUNCH();
}

void bias_grad(float* db, const float* dy, int rows, int cols, cudaStream_t stream) {
    bias_grad_kernel<<<cols, kBlock, 0, stream>>>(db, dy, rows, cols);
    RSA_CHECK_LAUNCH();
}

void sgd_momentum(float* params, float* velocity, const float* grad, int n, float lr, float momentum,
                  int* step_counter, cudaStream_t stream) {
    // One thread per parameter (not grid-strided): kParams fits one grid_1d launch.
    static_assert(kParams <= kStrideBlocks * kBlock, "sgd_momentum_kernel needs a thread per parameter");
    sgd_momentum_kernel<<<grid_1d(n), kBlock, 0, stream>>>(params, velocity, grad, n, lr, momentum, step_counter);
    RSA_CHECK_LAUNCH();
}

// Row-major linear layer with cuBLAS (column-major): a row-major R x C matrix is a column-major C x R one.
// Forward Y (B x out) = X (B x in) W^T, W (out x in): column-major Y^T (out x B) = W^T' (op T of the
// in x out view) X^T (in x B).
void linear_forward(cublasHandle_t h, const float* x, const float* w, float* y, int batch, int in, int out) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, out, batch, in, &one, w, in, x, in, &zero, y, out));
}

// Backward: dW (out x in) = dY^T X -> column-major dW^T (in x out) = X^T (in x B) . dY (B x out, op T of the
// out x B view); dX (B x in) = dY W -> column-major dX^T (in x B) = W^T (in x out) . dY^T (out x B).
void linear_backward(cublasHandle_t h, const float* x, const float* w, const float* dy, float* dw, float* dx,
                     int batch, int in, int out) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, in, out, batch, &one, x, in, dy, out, &zero, dw, in));
    if (dx != nullptr)
        CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, in, batch, out, &one, w, in, dy, out, &zero, dx, in));
}

// Algorithms that keep a direct FP32 sum (no FFT or Winograd transforms, whose rounding differs).
bool exact_fwd_algo(cudnnConvolutionFwdAlgo_t a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
}
bool exact_bwd_filter_algo(cudnnConvolutionBwdFilterAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}

// Destructor-side checks: log, never throw.
void log_cuda(cudaError_t status, const char* what) {
    if (status != cudaSuccess) report_warning(std::string("CnnGpu cleanup: ") + what + ": " + cudaGetErrorString(status));
}
void log_cudnn(cudnnStatus_t status, const char* what) {
    if (status != CUDNN_STATUS_SUCCESS)
        report_warning(std::string("CnnGpu cleanup: ") + what + ": " + cudnnGetErrorString(status));
}

// A captured training step (graph and its executable), destroyed with the train() call.
struct StepGraph {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    StepGraph() = default;
    StepGraph(const StepGraph&) = delete;
    StepGraph& operator=(const StepGraph&) = delete;
    ~StepGraph() {
        if (exec) log_cuda(cudaGraphExecDestroy(exec), "cudaGraphExecDestroy");
        if (graph) log_cuda(cudaGraphDestroy(graph), "cudaGraphDestroy");
    }
};

}  // namespace

// ----------------------------------------------------------------------------------------------------------
// CnnGpu

struct CnnGpu::Impl {
    // Descriptors and algorithms of one batch size (the constructor builds max_batch; others on first use,
    // never inside a graph capture).
    struct Shape {
        int batch = 0;
        cudnnTensorDescriptor_t x = nullptr;     // B x 1 x 48 x 64
        cudnnTensorDescriptor_t conv = nullptr;  // B x 6 x 48 x 64 (conv and its gradient)
        cudnnTensorDescriptor_t pool = nullptr;  // B x 6 x 6 x 8 (pool and its gradient; cuDNN path)
        cudnnConvolutionFwdAlgo_t fwd_algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;  // cuDNN path
        cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
    };

    int device = 0;
    int max_batch = 0;
    GpuContext* ctx = nullptr;
    cudnnHandle_t cudnn = nullptr;  // the context's, created on the CNN's first use (gpu_cudnn)
    int64_t graph_replays = 0;      // steps of the last train() replayed through its captured CUDA graph

    cudnnFilterDescriptor_t w_desc = nullptr;           // 6 x 1 x 7 x 7
    cudnnTensorDescriptor_t conv_bias_desc = nullptr;   // 1 x 6 x 1 x 1
    cudnnConvolutionDescriptor_t conv_desc = nullptr;   // pad 3, stride 1, cross-correlation, FMA math
    cudnnActivationDescriptor_t relu_desc = nullptr;    // ReLU, NaN not propagated (cuDNN path)
    cudnnPoolingDescriptor_t pool_desc = nullptr;       // 8 x 8 max, stride 8, deterministic (cuDNN path)
    std::map<int, std::unique_ptr<Shape>> shapes;

    DeviceBuffer<char> workspace_buffer;  // the cuDNN workspace
    void* workspace = nullptr;            // workspace_buffer.get()
    size_t workspace_bytes = 0;

    std::vector<DeviceBuffer<char>> allocations;  // every device buffer below, freed in release()
    float* params = nullptr;         // kParams, state_dict order
    float* grad = nullptr;           // kParams
    float* velocity = nullptr;       // kParams
    float* x = nullptr;              // B x 3072
    float* labels = nullptr;         // B
    float* conv = nullptr;           // B x 18432: before ReLU (exact path); after the fused bias + ReLU (cuDNN path)
    float* pool = nullptr;           // B x 288
    int* pool_argmax = nullptr;      // B x 288: index in the image's conv of each window's first maximum (exact)
    float* fc = nullptr;             // B x 10, before ReLU
    float* fc_relu = nullptr;        // B x 10
    float* logit = nullptr;          // B
    float* prob = nullptr;           // B
    float* dlogit = nullptr;         // B
    float* dfc_relu = nullptr;       // B x 10
    float* dfc = nullptr;            // B x 10
    float* dpool = nullptr;          // B x 288
    float* dconv = nullptr;          // B x 18432 (cuDNN path: the pooling gradient, then in place the ReLU's)
    float* conv_grad_parts = nullptr;  // B x 300: each image's conv weight and bias gradients (exact path)
    double* loss_terms = nullptr;    // B: each image's BCE term
    float* loss = nullptr;           // 1
    int* step = nullptr;             // training step counter within an epoch

    Impl(int device_, int max_batch_) : device(device_), max_batch(max_batch_) {
        if (max_batch < 1) throw InputError("CnnGpu: max_batch must be at least 1 (got " + std::to_string(max_batch) + ")");
        // Element counts (B x 18432) stay within int: cuDNN's 4-d descriptors and our kernels' grid sizes.
        if (max_batch > kMaxBatch)
            throw InputError("CnnGpu: max_batch " + std::to_string(max_batch) + " exceeds " + std::to_string(kMaxBatch));
        ctx = &gpu_context(device);
        cudnn = gpu_cudnn(*ctx);  // RuntimeError naming the cuDNN failure when cuDNN cannot be initialised
        try {
            setup();
        } catch (...) {
            release();
            throw;
        }
    }
    ~Impl() { release(); }

    // A device buffer of count T owned by the network (DeviceBuffer: 256-byte aligned, OutOfMemoryError naming it).
    template <typename T>
    T* alloc(size_t count, const char* what) {
        allocations.emplace_back(count * sizeof(T), what);
        return reinterpret_cast<T*>(allocations.back().get());
    }

    void setup() {
        CUDA_CHECK(cudaSetDevice(device));
        CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_desc));
        CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_desc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, kChannels, 1, kKernel, kKernel));
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&conv_bias_desc));
        CUDNN_CHECK(cudnnSetTensor4dDescriptor(conv_bias_desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, kChannels, 1, 1));
        CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_desc));
        CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv_desc, kPad, kPad, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                    CUDNN_DATA_FLOAT));
        CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc, CUDNN_FMA_MATH));
        CUDNN_CHECK(cudnnCreateActivationDescriptor(&relu_desc));
        CUDNN_CHECK(cudnnSetActivationDescriptor(relu_desc, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
        CUDNN_CHECK(cudnnCreatePoolingDescriptor(&pool_desc));
        CUDNN_CHECK(cudnnSetPooling2dDescriptor(pool_desc, CUDNN_POOLING_MAX_DETERMINISTIC, CUDNN_NOT_PROPAGATE_NAN,
                                                kPool, kPool, 0, 0, kPool, kPool));

        // Algorithms for max_batch, chosen once; the workspace is sized for them.
        std::unique_ptr<Shape> full = make_shape(max_batch);
        try {
            choose_algos(*full);
            ensure_workspace(required_workspace(*full));
        } catch (...) {
            destroy_shape(*full);
            throw;
        }
        shapes[max_batch] = std::move(full);

        const size_t b = static_cast<size_t>(max_batch);
        params = alloc<float>(kParams, "the CNN parameters");
        grad = alloc<float>(kParams, "the CNN gradient");
        velocity = alloc<float>(kParams, "the CNN velocity");
        x = alloc<float>(b * kPixels, "the CNN input batch");
        labels = alloc<float>(b, "the CNN labels");
        conv = alloc<float>(b * kConvOut, "the CNN convolution output");
        pool = alloc<float>(b * kPooled, "the CNN pooled output");
        pool_argmax = alloc<int>(b * kPooled, "the CNN pooling argmax");
        fc = alloc<float>(b * kHidden, "the CNN fc output");
        fc_relu = alloc<float>(b * kHidden, "the CNN fc ReLU");
        logit = alloc<float>(b, "the CNN logits");
        prob = alloc<float>(b, "the CNN probabilities");
        dlogit = alloc<float>(b, "the CNN logit gradient");
        dfc_relu = alloc<float>(b * kHidden, "the CNN fc ReLU gradient");
        dfc = alloc<float>(b * kHidden, "the CNN fc gradient");
        dpool = alloc<float>(b * kPooled, "the CNN pooled gradient");
        dconv = alloc<float>(b * kConvOut, "the CNN convolution gradient");
        conv_grad_parts = alloc<float>(b * kConvGrads, "the CNN per-image convolution gradients");
        loss_terms = alloc<double>(b, "the CNN loss terms");
        loss = alloc<float>(1, "the CNN loss");
        step = alloc<int>(1, "the CNN step counter");
        CUDA_CHECK(cudaMemsetAsync(params, 0, kParams * sizeof(float), ctx->stream));
        // The cuDNN path's fused call names conv as its z input with weight 0: finite values, never garbage.
        CUDA_CHECK(cudaMemsetAsync(conv, 0, b * kConvOut * sizeof(float), ctx->stream));
        CUDA_CHECK(cudaMemsetAsync(velocity, 0, kParams * sizeof(float), ctx->stream));
        CUDA_CHECK(cudaMemsetAsync(step, 0, sizeof(int), ctx->stream));
        CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    }

    // Never throws: logs failures.
    void release() {
        log_cuda(cudaSetDevice(device), "cudaSetDevice");
        if (ctx != nullptr) log_cuda(cudaStreamSynchronize(ctx->stream), "cudaStreamSynchronize");
        allocations.clear();            // DeviceBuffer frees without throwing (and reports a failed cudaFree)
        workspace_buffer.resize(0);     // likewise
        workspace = nullptr;
        workspace_bytes = 0;
        for (auto& entry : shapes) destroy_shape(*entry.second);
        shapes.clear();
        if (pool_desc) log_cudnn(cudnnDestroyPoolingDescriptor(pool_desc), "cudnnDestroyPoolingDescriptor");
        if (relu_desc) log_cudnn(cudnnDestroyActivationDescriptor(relu_desc), "cudnnDestroyActivationDescriptor");
        pool_desc = nullptr;
        relu_desc = nullptr;
        if (conv_desc) log_cudnn(cudnnDestroyConvolutionDescriptor(conv_desc), "cudnnDestroyConvolutionDescriptor");
        if (conv_bias_desc) log_cudnn(cudnnDestroyTensorDescriptor(conv_bias_desc), "cudnnDestroyTensorDescriptor");
        if (w_desc) log_cudnn(cudnnDestroyFilterDescriptor(w_desc), "cudnnDestroyFilterDescriptor");
        conv_desc = nullptr;
        conv_bias_desc = nullptr;
        w_desc = nullptr;
    }

    static void destroy_shape(Shape& s) {
        if (s.x) log_cudnn(cudnnDestroyTensorDescriptor(s.x), "cudnnDestroyTensorDescriptor");
        if (s.conv) log_cudnn(cudnnDestroyTensorDescriptor(s.conv), "cudnnDestroyTensorDescriptor");
        if (s.pool) log_cudnn(cudnnDestroyTensorDescriptor(s.pool), "cudnnDestroyTensorDescriptor");
        s.x = s.conv = s.pool = nullptr;
    }

    // First entry of cuDNN's heuristic ranking that succeeds within `cap` bytes and is deterministic (training is
    // reproducible bit for bit run to run on one card), taken in three passes: (1) FMA math and a direct FP32 sum
    // (no FFT/Winograd transform); (2) a direct sum whatever math the entry reports (execution uses the
    // descriptor's FMA math anyway); (3) any deterministic entry, with a warning. -1 when none is deterministic.
    template <typename Perf, typename IsExact>
    static int pick_algo(const Perf* perf, int returned, size_t cap, IsExact is_exact) {
        for (int pass = 0; pass < 3; ++pass)
            for (int i = 0; i < returned; ++i) {
                const Perf& p = perf[i];
                if (p.status != CUDNN_STATUS_SUCCESS || p.memory > cap || p.determinism != CUDNN_DETERMINISTIC)
                    continue;
                const bool exact = is_exact(p.algo);
                if (pass == 0 && !(exact && p.mathType == CUDNN_FMA_MATH)) continue;
                if (pass == 1 && !exact) continue;
                if (pass == 2)
                    report_warning("CnnGpu: no direct-sum deterministic convolution algorithm; using " +
                                   std::to_string(static_cast<int>(p.algo)));
                return i;
            }
        return -1;
    }

    cudnnConvolutionFwdAlgo_t choose_fwd_algo(const Shape& s, size_t cap) const {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        int returned = 0;
        CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cudnn, s.x, w_desc, conv_desc, s.conv,
                                                           CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
        const int at = pick_algo(perf, returned, cap, exact_fwd_algo);
        if (at < 0)
            throw RuntimeError("CnnGpu: cuDNN offers no deterministic forward convolution algorithm for batch " +
                               std::to_string(s.batch) + " within " + std::to_string(cap) + " bytes of workspace");
        return perf[at].algo;
    }

    // Both convolution algorithms of a shape (the forward one is used by the cuDNN path only, but chosen for every
    // shape so that the workspace, like the algorithms, is a function of the batch size alone).
    void choose_algos(Shape& s) const {
        s.fwd_algo = choose_fwd_algo(s, kWorkspaceCap);
        s.bwd_filter_algo = choose_bwd_filter_algo(s, kWorkspaceCap);
    }

    cudnnConvolutionBwdFilterAlgo_t choose_bwd_filter_algo(const Shape& s, size_t cap) const {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        int returned = 0;
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn, s.x, s.conv, conv_desc, w_desc,
                                                                  CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned,
                                                                  perf));
        const int at = pick_algo(perf, returned, cap, exact_bwd_filter_algo);
        if (at < 0)
            throw RuntimeError("CnnGpu: cuDNN offers no deterministic filter-gradient convolution algorithm for "
                               "batch " + std::to_string(s.batch) + " within " + std::to_string(cap) + " bytes of workspace");
        return perf[at].algo;
    }

    // Owns a Shape's descriptors until it is stored in `shapes` (a half-built one is destroyed, never stored).
    struct ShapeDeleter {
        void operator()(Shape* s) const {
            destroy_shape(*s);
            delete s;
        }
    };

    // Descriptors for `batch` (algorithms are set by the caller, which stores the shape once complete).
    std::unique_ptr<Shape> make_shape(int batch) {
        std::unique_ptr<Shape, ShapeDeleter> s(new Shape());
        s->batch = batch;
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&s->x));
        CUDNN_CHECK(cudnnSetTensor4dDescriptor(s->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, batch, 1, kHeight, kWidth));
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&s->conv));
        CUDNN_CHECK(cudnnSetTensor4dDescriptor(s->conv, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, batch, kChannels, kHeight,
                                               kWidth));
        int n = 0, c = 0, h = 0, w = 0;
        CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv_desc, s->x, w_desc, &n, &c, &h, &w));
        if (n != batch || c != kChannels || h != kHeight || w != kWidth)
            throw RuntimeError("CnnGpu: unexpected cuDNN convolution output shape");
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&s->pool));
        CUDNN_CHECK(cudnnSetTensor4dDescriptor(s->pool, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, batch, kChannels, kPoolH,
                                               kPoolW));
        CUDNN_CHECK(cudnnGetPooling2dForwardOutputDim(pool_desc, s->conv, &n, &c, &h, &w));
        if (n != batch || c != kChannels || h != kPoolH || w != kPoolW)
            throw RuntimeError("CnnGpu: unexpected cuDNN pooling output shape");
        return std::unique_ptr<Shape>(s.release());
    }

    // Workspace bytes the shape's two convolution algorithms need (the larger; they never run at once).
    size_t required_workspace(const Shape& s) const {
        size_t fwd_bytes = 0, bwd_bytes = 0;
        CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cudnn, s.x, w_desc, conv_desc, s.conv, s.fwd_algo,
                                                            &fwd_bytes));
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn, s.x, s.conv, conv_desc, w_desc,
                                                                   s.bwd_filter_algo, &bwd_bytes));
        return fwd_bytes > bwd_bytes ? fwd_bytes : bwd_bytes;
    }

    // Grows the cuDNN workspace to `bytes` (never inside a capture: graphs are built after every shape_for).
    void ensure_workspace(size_t bytes) {
        if (bytes <= workspace_bytes) return;
        CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
        workspace = nullptr;
        workspace_bytes = 0;
        workspace_buffer.resize(bytes, "the cuDNN workspace");  // frees the old one first
        workspace = workspace_buffer.get();
        workspace_bytes = bytes;
    }

    // The descriptors for `batch` (built outside any capture). Every batch size chooses its filter-gradient
    // algorithm within the same cap (kWorkspaceCap), exactly as the max_batch shape does, so the algorithm (and the
    // gradient's rounding) is a function of the batch size alone, never of which batches ran before or how much
    // workspace they left allocated; the workspace then grows to what the choice needs.
    const Shape& shape_for(int batch) {
        if (batch < 1 || batch > max_batch)
            throw InputError("CnnGpu: batch " + std::to_string(batch) + " is outside 1.." + std::to_string(max_batch) +
                             " (max_batch given to the constructor)");
        auto found = shapes.find(batch);
        if (found != shapes.end()) return *found->second;
        std::unique_ptr<Shape> owned = make_shape(batch);
        Shape& s = *owned;
        try {
            choose_algos(s);
            ensure_workspace(required_workspace(s));
        } catch (...) {
            destroy_shape(s);
            throw;
        }
        shapes[batch] = std::move(owned);
        return s;
    }

    // The device, then the shared handles on the context stream: cuBLAS through bind_cublas_stream (which, when it
    // has to rebind, gives the handle back the context's own workspace: a graph capture cannot allocate cuBLAS's
    // default pool), cuDNN's stream likewise. Host-side calls only; run at every entry point, outside any capture.
    void bind_libraries() {
        CUDA_CHECK(cudaSetDevice(device));
        bind_cublas_stream(ctx->cublas, ctx->stream);
        CUDNN_CHECK(cudnnSetStream(cudnn, ctx->stream));
    }

    // ---- the passes (stream-ordered, no host synchronisation: safe to capture) ----

    // x (B x 3072) -> conv, relu, pool, fc, fc_relu, logit, prob.
    void run_forward(const Shape& s, CnnKernels kernels) {
        const int B = s.batch;
        if (kernels == CnnKernels::exact) {
            // The twin's forward_image bit for bit: every layer in its order of operations.
            conv_forward(x, params + kConvW, params + kConvB, conv, B, ctx->stream);  // conv + bias, twin's order
            relu_pool_forward(conv, pool, pool_argmax, B, ctx->stream);              // ReLU, 8x8 max, argmax
            linear_forward_exact(pool, params + kFcW, params + kFcB, fc, fc_relu, B, kPooled, kHidden,
                                 ctx->stream);                                       // fc = b + pool W^T, ReLU
            linear_forward_exact(fc_relu, params + kOutW, params + kOutB, logit, nullptr, B, kHidden, 1,
                                 ctx->stream);                                       // logit = b + fc_relu w^T
            sigmoid_exact(logit, prob, B, ctx->stream);
            return;
        }
        // conv <- ReLU(conv(x) + bias) in one call (z = conv with alpha2 = 0: read as nothing), then 8x8 max.
        const float one = 1.0f, zero = 0.0f;
        CUDNN_CHECK(cudnnConvolutionBiasActivationForward(
            cudnn, &one, s.x, x, w_desc, params + kConvW, conv_desc, s.fwd_algo, workspace, workspace_bytes, &zero,
            s.conv, conv, conv_bias_desc, params + kConvB, relu_desc, s.conv, conv));
        CUDNN_CHECK(cudnnPoolingForward(cudnn, pool_desc, &one, s.conv, conv, &zero, s.pool, pool));
        linear_forward(ctx->cublas, pool, params + kFcW, fc, B, kPooled, kHidden);  // fc = pool W^T
        bias_relu_forward(fc, fc_relu, params + kFcB, B, kHidden, ctx->stream);      // + b, ReLU
        linear_forward(ctx->cublas, fc_relu, params + kOutW, logit, B, kHidden, 1);  // logit = fc_relu w^T
        logit_sigmoid(logit, prob, params + kOutB, B, ctx->stream);                  // + b, sigmoid
    }

    // Loss into loss_base[step ? *step : 0] and dlogit.
    void run_loss(const Shape& s, float* loss_base, const int* step_ptr) {
        bce_loss_grad(logit, prob, labels, s.batch, dlogit, loss_terms, loss_base, step_ptr, ctx->stream);
    }

    // dlogit -> the full flat gradient (every entry overwritten).
    void run_backward(const Shape& s, CnnKernels kernels) {
        const int B = s.batch;
        if (kernels == CnnKernels::exact) {
            // The twin's backward_image and sum_gradients bit for bit: dfc (out and fc's ReLU), dpool, the fc and out
            // gradients summed image by image, the conv gradients per image in float, over the batch in double.
            out_backward_exact(dlogit, params + kOutW, fc, dfc, B, ctx->stream);
            linear_backward_data_exact(dfc, params + kFcW, dpool, B, kPooled, kHidden, ctx->stream);
            head_grads_exact(pool, dfc, fc_relu, dlogit, grad, B, ctx->stream);
            conv_grads_exact(x, conv, dpool, pool_argmax, conv_grad_parts, grad, B, ctx->stream);
            return;
        }
        const float one = 1.0f, zero = 0.0f;
        cudnnHandle_t h = cudnn;
        // out: dW_out = dlogit^T fc_relu, db_out = sum dlogit, dfc_relu = dlogit w_out
        linear_backward(ctx->cublas, fc_relu, params + kOutW, dlogit, grad + kOutW, dfc_relu, B, kHidden, 1);
        bias_grad(grad + kOutB, dlogit, B, 1, ctx->stream);
        // fc: ReLU mask, dW_fc = dfc^T pool, db_fc = column sums, dpool = dfc W_fc
        relu_backward(dfc, dfc_relu, fc, B * kHidden, ctx->stream);
        linear_backward(ctx->cublas, pool, params + kFcW, dfc, grad + kFcW, dpool, B, kPooled, kHidden);
        bias_grad(grad + kFcB, dfc, B, kHidden, ctx->stream);
        // pooling and ReLU backward, then the conv filter and bias gradients (no data gradient needed). conv holds
        // ReLU(conv + b): pooling backward recomputes each window's maximum from it and pool; ReLU backward masks
        // with conv > 0 (relu > 0 exactly where conv + b > 0), in place on dconv.
        CUDNN_CHECK(cudnnPoolingBackward(h, pool_desc, &one, s.pool, pool, s.pool, dpool, s.conv, conv, &zero, s.conv,
                                         dconv));
        CUDNN_CHECK(cudnnActivationBackward(h, relu_desc, &one, s.conv, conv, s.conv, dconv, s.conv, conv, &zero,
                                            s.conv, dconv));
        CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &one, s.conv, dconv, &zero, conv_bias_desc, grad + kConvB));
        CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, s.x, x, s.conv, dconv, conv_desc, s.bwd_filter_algo,
                                                   workspace, workspace_bytes, &zero, w_desc, grad + kConvW));
    }

    // One training step on the device: gather batch (*step) of the permutation, forward, loss into
    // losses[*step], backward, momentum update, ++*step.
    void run_train_step(const Shape& s, CnnKernels kernels, const float* all_images, const float* all_labels,
                        const int* perm, float* losses, int stride, float lr, float momentum) {
        gather_batch(x, labels, all_images, all_labels, perm, step, stride, s.batch, ctx->stream);
        run_forward(s, kernels);
        run_loss(s, losses, step);
        run_backward(s, kernels);
        sgd_momentum(params, velocity, grad, kParams, lr, momentum, step, ctx->stream);
    }

    // Captures run_train_step on the context stream into *graph and instantiates it. On any failure (a library
    // call that cannot be captured, an invalidated capture) it leaves the stream out of capture mode, logs, and
    // returns false: the caller then runs the steps directly.
    bool capture_train_step(const Shape& s, CnnKernels kernels, const float* all_images, const float* all_labels,
                            const int* perm, float* losses, int stride, float lr, float momentum, StepGraph* graph) {
        cudaStream_t stream = ctx->stream;
        CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        std::string failure;
        try {
            run_train_step(s, kernels, all_images, all_labels, perm, losses, stride, lr, momentum);
        } catch (const std::exception& e) {
            failure = e.what();
        }
        cudaGraph_t captured = nullptr;
        const cudaError_t end_status = cudaStreamEndCapture(stream, &captured);
        if (failure.empty() && end_status != cudaSuccess)
            failure = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(end_status);
        if (failure.empty()) {
            graph->graph = captured;
            captured = nullptr;
            const cudaError_t inst_status = cudaGraphInstantiate(&graph->exec, graph->graph, 0);
            if (inst_status != cudaSuccess) {
                failure = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(inst_status);
                graph->exec = nullptr;
            }
        }
        if (captured != nullptr) log_cuda(cudaGraphDestroy(captured), "cudaGraphDestroy");
        if (failure.empty()) return true;
        cudaGetLastError();  // capture errors are not sticky; clear the last-error slot
        report_warning("CnnGpu::train: CUDA graph capture failed, running the steps directly: " + failure);
        return false;
    }

    void upload_images(const float* images, int batch) {
        if (images == nullptr) throw InputError("CnnGpu: images is null");
        CUDA_CHECK(cudaMemcpyAsync(x, images, static_cast<size_t>(batch) * kPixels * sizeof(float),
                                   cudaMemcpyHostToDevice, ctx->stream));
    }

    void download(std::vector<float>* out, const float* src, size_t count) {
        out->resize(count);
        CUDA_CHECK(cudaMemcpyAsync(out->data(), src, count * sizeof(float), cudaMemcpyDeviceToHost, ctx->stream));
    }
};

CnnGpu::CnnGpu(int device, int max_batch) : impl_(std::make_unique<Impl>(device, max_batch)) {}

CnnGpu::~CnnGpu() = default;

void CnnGpu::set_params(const std::vector<float>& params) {
    if (params.size() != static_cast<size_t>(cnn::kParams))
        throw InputError("CnnGpu::set_params: expected " + std::to_string(cnn::kParams) + " values, got " +
                         std::to_string(params.size()));
    Impl& m = *impl_;
    m.bind_libraries();
    CUDA_CHECK(cudaMemcpyAsync(m.params, params.data(), params.size() * sizeof(float), cudaMemcpyHostToDevice,
                               m.ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(m.ctx->stream));
}

std::vector<float> CnnGpu::params() const {
    Impl& m = *impl_;
    m.bind_libraries();
    std::vector<float> out;
    m.download(&out, m.params, cnn::kParams);
    CUDA_CHECK(cudaStreamSynchronize(m.ctx->stream));
    return out;
}

void CnnGpu::forward(const float* images, int batch, CnnActivations* act) {
    if (act == nullptr) throw InputError("CnnGpu::forward: act is null");
    Impl& m = *impl_;
    m.bind_libraries();
    const Impl::Shape& s = m.shape_for(batch);
    m.upload_images(images, batch);
    m.run_forward(s, CnnKernels::exact);  // the read-out: pre-ReLU conv, the twin's arithmetic
    const size_t B = static_cast<size_t>(batch);
    act->batch = batch;
    m.download(&act->conv, m.conv, B * kConvOut);
    m.download(&act->pool, m.pool, B * cnn::kPooled);
    m.download(&act->fc, m.fc, B * cnn::kHidden);
    m.download(&act->fc_relu, m.fc_relu, B * cnn::kHidden);
    m.download(&act->logit, m.logit, B);
    m.download(&act->prob, m.prob, B);
    CUDA_CHECK(cudaStreamSynchronize(m.ctx->stream));
}

float CnnGpu::loss_and_grad(const float* images, const float* labels, int batch, std::vector<float>* grad,
                            CnnKernels kernels) {
    if (grad == nullptr) throw InputError("CnnGpu::loss_and_grad: grad is null");
    if (labels == nullptr) throw InputError("CnnGpu::loss_and_grad: labels is null");
    Impl& m = *impl_;
    m.bind_libraries();
    const Impl::Shape& s = m.shape_for(batch);
    m.upload_images(images, batch);
    CUDA_CHECK(cudaMemcpyAsync(m.labels, labels, static_cast<size_t>(batch) * sizeof(float), cudaMemcpyHostToDevice,
                               m.ctx->stream));
    m.run_forward(s, kernels);
    m.run_loss(s, m.loss, nullptr);
    m.run_backward(s, kernels);
    float loss = 0.0f;
    CUDA_CHECK(cudaMemcpyAsync(&loss, m.loss, sizeof(float), cudaMemcpyDeviceToHost, m.ctx->stream));
    m.download(grad, m.grad, cnn::kParams);
    CUDA_CHECK(cudaStreamSynchronize(m.ctx->stream));
    return loss;
}

int64_t CnnGpu::graph_replays() const { return impl_->graph_replays; }

bool CnnGpu::graph_capture_enabled() {
#if defined(RSA_GPU_DEVICE_DEBUG)
    return false;
#else
    return true;
#endif
}

TrainResult CnnGpu::train(const MatrixView& images, const std::vector<float>& labels, const TrainConfig& config,
                          const EpochCallback& on_epoch) {
    Impl& m = *impl_;
    // Like cnn_train_ref: the training set is every row of images (config.train_size only made the set).
    if (images.cols != cnn::kPixels)
        throw InputError("CnnGpu::train: images have " + std::to_string(images.cols) + " columns, expected " +
                         std::to_string(cnn::kPixels));
    if (images.rows < 1 || images.rows != static_cast<int64_t>(labels.size()) || images.rows > (int64_t(1) << 30))
        throw InputError("CnnGpu::train: " + std::to_string(images.rows) + " images but " +
                         std::to_string(labels.size()) + " labels");
    const int n = static_cast<int>(images.rows);
    if (config.batch < 1) throw InputError("CnnGpu::train: batch must be positive");
    if ((config.batch < n ? config.batch : n) > m.max_batch)
        throw InputError("CnnGpu::train: batch " + std::to_string(config.batch) + " exceeds max_batch " +
                         std::to_string(m.max_batch) + " given to the constructor");
    if (config.epochs < 0) throw InputError("CnnGpu::train: epochs must not be negative");

    m.bind_libraries();
    m.graph_replays = 0;
    cudaStream_t stream = m.ctx->stream;
    const int batch = config.batch;
    const int full_steps = n / batch;
    const int rest = n % batch;
    const int steps = full_steps + (rest > 0 ? 1 : 0);

    // Descriptors for both step shapes, built before any capture.
    const Impl::Shape* full_shape = full_steps > 0 ? &m.shape_for(batch) : nullptr;
    const Impl::Shape* rest_shape = rest > 0 ? &m.shape_for(rest) : nullptr;

    // The whole training set stays on the device: n x 3072 images, n labels, the epoch's permutation, the
    // losses of one epoch.
    DeviceBuffer<float> all_images(static_cast<size_t>(n) * cnn::kPixels, "the training images");
    DeviceBuffer<float> all_labels(static_cast<size_t>(n), "the training labels");
    DeviceBuffer<int> perm(static_cast<size_t>(n), "the epoch permutation");
    DeviceBuffer<float> losses(static_cast<size_t>(steps), "the epoch losses");
    CUDA_CHECK(cudaMemcpyAsync(all_images.get(), images.ptr,
                               static_cast<size_t>(n) * cnn::kPixels * sizeof(float),
                               cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaMemcpyAsync(all_labels.get(), labels.data(), static_cast<size_t>(n) * sizeof(float),
                               cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaMemsetAsync(perm.get(), 0, static_cast<size_t>(n) * sizeof(int), stream));  // valid for warm-up
    CUDA_CHECK(cudaMemsetAsync(m.velocity, 0, cnn::kParams * sizeof(float), stream));          // fresh optimiser

    // Capture one full-size step as a graph. A warm-up pass first (no update, loss into the scratch scalar)
    // loads every library kernel outside the capture. Debug builds synchronise after each launch, which a
    // capture forbids, so they run the steps directly.
    StepGraph graph;
    bool use_graph = false;
#if !defined(RSA_GPU_DEVICE_DEBUG)
    if (full_shape != nullptr) {
        CUDA_CHECK(cudaMemsetAsync(m.step, 0, sizeof(int), stream));
        gather_batch(m.x, m.labels, all_images.get(), all_labels.get(), perm.get(), m.step, batch, batch, stream);
        m.run_forward(*full_shape, config.kernels);
        m.run_loss(*full_shape, m.loss, nullptr);
        m.run_backward(*full_shape, config.kernels);
        sgd_momentum(m.params, m.velocity, m.grad, 0, config.lr, config.momentum, nullptr, stream);  // load only
        CUDA_CHECK(cudaStreamSynchronize(stream));

        use_graph = m.capture_train_step(*full_shape, config.kernels, all_images.get(), all_labels.get(), perm.get(),
                                         losses.get(), batch, config.lr, config.momentum, &graph);
    }
#endif

    TrainResult result;
    result.step_losses.reserve(static_cast<size_t>(config.epochs) * steps);
    result.epoch_losses.reserve(config.epochs);
    std::vector<float> epoch_losses(steps);
    // On an exception (a CUDA error, a throwing callback) wait for the queued steps before the graph and the
    // device arrays they use are destroyed.
    try {
        for (int epoch = 0; epoch < config.epochs; ++epoch) {
            const std::vector<int> order = cnn_epoch_permutation(config.seed, epoch, n);
            if (order.size() != static_cast<size_t>(n))
                throw RuntimeError("CnnGpu::train: cnn_epoch_permutation returned " +
                                   std::to_string(order.size()) + " indices for " + std::to_string(n) + " samples");
            // Pageable source: the copy is staged before the call returns, and the previous epoch has finished.
            CUDA_CHECK(cudaMemcpyAsync(perm.get(), order.data(), static_cast<size_t>(n) * sizeof(int),
                                       cudaMemcpyHostToDevice, stream));
            CUDA_CHECK(cudaMemsetAsync(m.step, 0, sizeof(int), stream));
            for (int k = 0; k < full_steps; ++k) {
                if (use_graph) {
                    CUDA_CHECK(cudaGraphLaunch(graph.exec, stream));
                    ++m.graph_replays;
                } else {
                    m.run_train_step(*full_shape, config.kernels, all_images.get(), all_labels.get(), perm.get(),
                                     losses.get(), batch, config.lr, config.momentum);
                }
            }
            if (rest_shape != nullptr)
                m.run_train_step(*rest_shape, config.kernels, all_images.get(), all_labels.get(), perm.get(),
                                 losses.get(), batch, config.lr, config.momentum);
            CUDA_CHECK(cudaMemcpyAsync(epoch_losses.data(), losses.get(), static_cast<size_t>(steps) * sizeof(float),
                                       cudaMemcpyDeviceToHost, stream));
            CUDA_CHECK(cudaStreamSynchronize(stream));
            result.step_losses.insert(result.step_losses.end(), epoch_losses.begin(), epoch_losses.end());
            result.epoch_losses.push_back(epoch_losses.back());
            if (on_epoch) on_epoch(epoch + 1, epoch_losses.back());
        }
    } catch (...) {
        log_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
        throw;
    }
    return result;
}

}  // namespace rsa

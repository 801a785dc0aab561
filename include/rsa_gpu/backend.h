// Backend: the operations of the analysis behind one interface, with a CPU twin (OpenBLAS) and a CUDA
// implementation (kernels/, cuBLAS, cuDNN) in a plugin. The host driver only talks to this interface, so the same
// commands run with --device cpu and --device N. Inputs and outputs are Arrays (array.h): a result stays on the
// backend's device until the host asks for it, and an upload is kept with its Array, so data moves once.
// Operations take batches (several models and measures per call). Shapes are checked here; the user-facing checks
// (naming files) are the driver's, once, at the boundary.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "rsa_gpu/array.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/compare.h"
#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/measures.h"
#include "rsa_gpu/grating.h"
#include "rsa_gpu/matrix.h"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/stats.h"
#include "rsa_gpu/synthetic_v1.h"

namespace rsa {

// The memory an RDM plan may use on a backend and the words for it in messages.
struct PlanMemory {
    uint64_t free_bytes = 0;  // what the plan may allocate (plan_rdm keeps a margin off it)
    std::string name;         // "device memory", or the host budget beside the input
};

// Plain and debiased linear CKA of one pair of response matrices (debiased NaN when S < 4).
struct CkaResult {
    double plain = 0.0, debiased = 0.0;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;  // "cpu" or "cuda:0 (<card>)"
    virtual bool is_gpu() const = 0;
    virtual int device() const = 0;        // -1 for the CPU; where this backend's Arrays live

    // B gratings, B x (height*width).
    virtual Array gratings(const std::vector<float>& angles_deg, const GratingParams& params) = 0;

    // ---- the RDM engine (one per backend). compute_rdm (rdm_engine.h) checks, plans once and calls these.
    // Mean and centred sum of squares of every row of x (S x N), two passes in double: the input checks and the
    // statistics the run z-scores with. keep_on_device: the plan holds the whole input in memory (one-shot), so a GPU
    // may upload x now (kept with x, for the run and later operations) and compute them there; otherwise a host x is
    // summarised where it is (the plan streams it).
    virtual RowMoments row_moments(const Array& x, bool keep_on_device) = 0;
    // What an S x N RDM plan may use: free device memory, or the host budget beside the input.
    virtual PlanMemory rdm_memory(int64_t S, int64_t N) = 0;
    // Runs `plan` on x with its row moments: in-memory plans return the S x S RDM on this backend's device with rows
    // and columns nan_rows set NaN; a tiled plan hands its tiles to `sink` and returns an empty Array.
    // OutOfMemoryError when an allocation fails (compute_rdm then tries the next plan kind).
    virtual Array rdm_run(const Array& x, const MemoryPlan& plan, Precision precision, const RowMoments& moments,
                          const std::vector<int64_t>& nan_rows, RdmTileSink* sink) = 0;
    // Spread of an S x S RDM's strict upper triangle (values, NaN count, mean, m2; min and max on the CPU only):
    // compute_rdm's test for a constant result.
    virtual UpperSpread rdm_spread(const Array& rdm) = 0;

    // ---- dissimilarities beyond correlation (dissimilarity.h: mahalanobis and crossnobis around the RDM engine)
    // x (S x N) whitened by a precision factor F (P = F F^T): `factor` N x N row-major gives Y = X F (one FP32 GEMM);
    // `factor` 1 x N is a diagonal F (column j of x scaled by factor[j]). Y (S x N) stays on this backend's device.
    virtual Array whiten(const Array& x, const Array& factor) = 0;
    // K = sum over f of A_f B_f^T (C x C, FP32 GEMMs accumulated fold after fold), A_f and B_f rows [f C, (f + 1) C)
    // of train and test ((folds * C) x N each): the crossnobis kernel of per-fold train and test condition means.
    virtual Array cross_gram(const Array& train, const Array& test, int64_t folds) = 0;

    // ---- comparisons (strict upper triangles, NaN pairs skipped; shapes checked with check_rdm_shapes)
    // result[model][measure]: every measure of `ref` with each model RDM, in one call.
    virtual std::vector<std::vector<CompareResult>> compare(const Array& ref, const std::vector<Array>& models,
                                                            const std::vector<Measure>& measures) = 0;
    // Linear CKA of two response matrices with the same stimuli (rows), plain and debiased together.
    virtual CkaResult cka(const Array& x, const Array& y) = 0;

    // ---- statistics of RDM correlations with a reference (stats.h): bootstrap over stimuli (Pearson, self-copy
    // pairs excluded) and the permutation test of stimulus labels for several models at once; the split-half noise
    // ceiling of trial-level responses.
    virtual BootstrapResult bootstrap(const Array& ref, const std::vector<Array>& models, int resamples,
                                      uint64_t seed) = 0;
    virtual std::vector<PermutationResult> permutation(const Array& ref, const std::vector<Array>& models,
                                                       int permutations, uint64_t seed) = 0;
    virtual NoiseCeilingResult noise_ceiling(const Array& resp, const std::vector<int64_t>& bins, int splits,
                                             uint64_t seed) = 0;
    // ---- model evaluation (evaluate.h): the weighted sums of the corr / cosine bootstrap of `rsa_gpu evaluate` for
    // `resamples` pattern resamples at once (counts: resamples x S), every data RDM (K x P) and model (M x P) in one
    // call; float64 host vectors in and out.
    virtual WeightedMoments evaluate_moments(const std::vector<double>& data, int64_t K,
                                             const std::vector<double>& models, int64_t M, int64_t S,
                                             const std::vector<double>& counts, int64_t resamples, bool centre) = 0;
    // The embedded synthetic V1 recording, binned.
    virtual SyntheticV1 synthetic_v1(const SyntheticV1Params& params) = 0;
    // The embedded synthetic recording at trial level (trials x neurons).
    virtual SyntheticV1Trials synthetic_v1_trials(const SyntheticV1Params& params) = 0;

    // The tutorial's CNN: train in place (images: n x 3072 gratings, labels: n) and forward read-out.
    virtual TrainResult cnn_train(std::vector<float>& params, const Array& images, const std::vector<float>& labels,
                                  const TrainConfig& config, const EpochCallback& on_epoch) = 0;
    virtual CnnActivations cnn_forward(const std::vector<float>& params, const Array& images) = 0;
};

// Which device a --device value asks for: "auto" (GPU `index` modulo the GPUs when usable, else CPU; index 0 but for a
// rank of a distributed run: its local rank), "cpu", or an index.
struct DeviceRequest {
    bool cpu = false;
    bool automatic = true;
    int index = 0;
};
DeviceRequest parse_device(const std::string& text);  // InputError for anything else

// Whether a GPU is usable; when not, `why` says why (no driver, no device, built without CUDA).
bool gpu_usable(std::string* why);

// Make the backend. For an explicit GPU index that is not usable: RuntimeError naming the cause and
// suggesting --device cpu. `note` (if not null) receives a line saying which device auto took and why.
std::unique_ptr<Backend> make_backend(const DeviceRequest& request, std::string* note = nullptr);

std::unique_ptr<Backend> make_cpu_backend();

// Version of rsa_gpu and of the libraries it runs on (OpenBLAS, CUDA runtime/driver, cuBLAS, cuDNN, cuRAND),
// and the usable GPUs. With load_cuda false the CUDA plugin is not loaded for it (a CPU run does not pay ~0.2 s and
// ~200 MB to list libraries it does not use): its lines then appear only when the plugin is already loaded.
std::string version_report(bool load_cuda = true);
// Device memory owned elsewhere (a PyTorch or CuPy array: rows x cols float32, row-major, on GPU `device`) as an Array
// that the GPU backend of that device reads in place (no copy); `keeper` keeps the memory alive as long as the Array.
// Through the CUDA plugin: RuntimeError naming the cause when it cannot be used.
Array borrow_device_array(const float* data, int64_t rows, int64_t cols, int device,
                          std::shared_ptr<const void> keeper);

// The GPU backend of `device` through the CUDA plugin (cuda_plugin.h); RuntimeError naming the cause when the
// plugin or the device cannot be used.
std::unique_ptr<Backend> make_gpu_backend(int device);

}  // namespace rsa

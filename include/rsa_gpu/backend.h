// Backend: the operations of the analysis behind one interface, with a CPU twin (OpenBLAS) and a CUDA
// implementation (kernels/, cuBLAS, cuDNN). The host driver only talks to this interface, so the same
// commands run with --device cpu and --device N. Inputs and outputs are host matrices.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "rsa_gpu/cnn.h"
#include "rsa_gpu/compare.h"
#include "rsa_gpu/measures.h"
#include "rsa_gpu/grating.h"
#include "rsa_gpu/matrix.h"
#include "rsa_gpu/rdm.h"
#include "rsa_gpu/stats.h"
#include "rsa_gpu/synthetic_v1.h"

namespace rsa {

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;  // "cpu" or "cuda:0 (<card>)"
    virtual bool is_gpu() const = 0;

    // B gratings, B x (height*width).
    virtual Matrix gratings(const std::vector<float>& angles_deg, const GratingParams& params) = 0;
    // Rows z-scored (constant rows become NaN and are listed).
    virtual Matrix zscore_rows(const Matrix& x, std::vector<int64_t>* constant_rows) = 0;
    // S x S RDM. With ConstantRows::Fail a zero-variance row throws InputError listing the rows.
    // `what` names the data in messages.
    virtual Matrix rdm(const Matrix& x, const RdmOptions& options, const std::string& what) = 0;
    // Pearson over the strict upper triangles.
    virtual PearsonResult compare_pearson(const Matrix& a, const Matrix& b) = 0;
    // Any measure over the strict upper triangles (NaN pairs skipped).
    virtual CompareResult compare(const Matrix& a, const Matrix& b, Measure measure) = 0;
    // Linear CKA of two response matrices with the same stimuli (rows).
    virtual double cka(const Matrix& x, const Matrix& y, bool debiased) = 0;
    // Statistics of RDM correlations with a reference (stats.h): bootstrap over stimuli (Pearson, self-copy pairs
    // excluded), permutation test of stimulus labels, and the split-half noise ceiling of trial-level responses.
    virtual BootstrapResult bootstrap(const Matrix& ref, const std::vector<Matrix>& models, int resamples,
                                      uint64_t seed) = 0;
    virtual PermutationResult permutation(const Matrix& ref, const Matrix& model, int permutations, uint64_t seed) = 0;
    virtual NoiseCeilingResult noise_ceiling(const Matrix& resp, const std::vector<int64_t>& bins, int splits,
                                             uint64_t seed) = 0;
    // The embedded synthetic V1 recording, binned.
    virtual SyntheticV1 synthetic_v1(const SyntheticV1Params& params) = 0;
    // The embedded synthetic recording at trial level (trials x neurons).
    virtual SyntheticV1Trials synthetic_v1_trials(const SyntheticV1Params& params) = 0;

    // The tutorial's CNN: train in place (images: n x 3072 gratings, labels: n) and forward read-out.
    virtual TrainResult cnn_train(std::vector<float>& params, const Matrix& images, const std::vector<float>& labels,
                                  const TrainConfig& config, const EpochCallback& on_epoch) = 0;
    virtual CnnActivations cnn_forward(const std::vector<float>& params, const Matrix& images) = 0;
};

// Which device a --device value asks for: "auto" (GPU 0 when usable, else CPU), "cpu", or an index.
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
// The GPU backend of `device` through the CUDA plugin (cuda_plugin.h); RuntimeError naming the cause when the
// plugin or the device cannot be used.
std::unique_ptr<Backend> make_gpu_backend(int device);

}  // namespace rsa

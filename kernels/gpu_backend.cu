// The GPU backend: the analysis' operations on one CUDA device through the kernels and cuBLAS, sharing the
// device's GpuContext (stream and cuBLAS handle created once; cuDNN only when the CNN runs). Host matrices in, host
// matrices out. The one-shot FP32 RDM z-scores its input in place (one input buffer) and, when device memory runs
// short (OutOfMemoryError from any of its allocations), falls back to the memory plan's streamed path. The checks
// and degenerate-input semantics are the CPU backend's (host/cpu_backend.cpp), run on the host with the same shared
// functions: rows constant up to rounding found before any work (NaN rows and columns, or an InputError), a
// constant RDM result, comparisons NaN for every measure on a degenerate side, CKA NaN on degenerate responses.
// The comparison and CKA launchers take workspace: it is allocated here (DeviceBuffer, so running out of device
// memory is an OutOfMemoryError naming it), as are the allocating conveniences of measures.cuh.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "compare.cuh"
#include "cuda_check.cuh"
#include "device_buffer.cuh"
#include "gpu_context.cuh"
#include "grating.cuh"
#include "rdm.cuh"
#include "rdm_scale.cuh"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/cnn_gpu.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/poison.h"
#include "measures.cuh"
#include "stats.cuh"
#include "synthetic_v1.cuh"

namespace rsa {

namespace {

class GpuBackend final : public Backend {
public:
    explicit GpuBackend(int device) : ctx_(gpu_context(device)) { CUDA_CHECK(cudaSetDevice(device)); }

    std::string name() const override { return "cuda:" + std::to_string(ctx_.device) + " (" + ctx_.card + ")"; }
    bool is_gpu() const override { return true; }

    Matrix gratings(const std::vector<float>& angles_deg, const GratingParams& params) override {
        check_gratings_output(angles_deg.size(), params);  // InputError with the sizes, before any allocation
        Matrix out(static_cast<int64_t>(angles_deg.size()), params.pixels());
        DeviceBuffer<float> d_angles, d_out(static_cast<size_t>(out.size()));
        d_angles.upload(angles_deg, ctx_.stream);
        grating_launch(d_angles.get(), out.rows, params, d_out.get(), ctx_.stream);
        d_out.download(out.data.data(), out.data.size(), ctx_.stream);
        return out;
    }

    Matrix zscore_rows(const Matrix& x, std::vector<int64_t>* constant_rows) override {
        // One device buffer: the rows are z-scored in place.
        Matrix z(x.rows, x.cols);
        DeviceBuffer<float> d_x(static_cast<size_t>(x.size()), "the rows to z-score");
        DeviceBuffer<int> d_const(static_cast<size_t>(x.rows), "constant-row flags");
        d_x.upload(x.data, ctx_.stream);
        zscore_rows_launch(d_x.get(), x.rows, x.cols, d_x.get(), d_const.get(), ctx_.stream);
        d_x.download(z.data.data(), z.data.size(), ctx_.stream);
        collect_constant(d_const, x.rows, constant_rows);
        return z;
    }

    Matrix rdm(const Matrix& x, const RdmOptions& options, const std::string& what) override {
        check_rdm_input(x, what);
        // Rows without a correlation (constant up to float rounding) are known before any work, as on the CPU.
        const std::vector<int64_t> flat = degenerate_rows(x);
        if (!flat.empty() && options.constant_rows == ConstantRows::Fail) throw_constant_rows(flat, what);
        Matrix m = rdm_compute(x, options, what);
        // Rows constant only up to rounding were z-scored like any other: NaN them as the exact ones (a tiled RDM
        // in its file on disk).
        if (!flat.empty()) {
            if (m.rows) nan_rows_and_columns(m.data.data(), m.rows, flat);
            else nan_rows_in_npy(options.output_path, x.rows, flat);
        }
        if (m.rows) check_rdm_result(m, options, what);  // a tiled RDM on disk is not read back
        return m;
    }

    // Shapes only: a degenerate RDM gives NaN for every measure (compare.h; the launchers test it on the device's
    // moments); user-facing callers name it with check_rdm_pair first.
    PearsonResult compare_pearson(const Matrix& a, const Matrix& b) override {
        check_rdm_shapes(a, b, "first RDM", "second RDM");
        DeviceBuffer<float> d_a, d_b;
        DeviceBuffer<char> work(pearson_workspace_bytes(a.rows), "the Pearson workspace");
        d_a.upload(a.data, ctx_.stream);
        d_b.upload(b.data, ctx_.stream);
        return pearson_upper_launch(d_a.get(), d_b.get(), a.rows, work.get(), ctx_.stream);
    }

    CompareResult compare(const Matrix& a, const Matrix& b, Measure measure) override {
        check_rdm_shapes(a, b, "first RDM", "second RDM");
        DeviceBuffer<float> d_a, d_b;
        DeviceBuffer<char> work(compare_workspace_bytes(measure, a.rows), "the comparison workspace");
        d_a.upload(a.data, ctx_.stream);
        d_b.upload(b.data, ctx_.stream);
        return compare_upper_launch(measure, d_a.get(), d_b.get(), a.rows, work.get(), ctx_.stream);
    }

    double cka(const Matrix& x, const Matrix& y, bool debiased) override {
        check_cka_shapes(x.rows, x.cols, y.rows, y.cols, debiased);
        // Degenerate responses (every stimulus the same up to rounding): NaN before any work, as cka_linear_ref.
        if (!responses_degenerate_reason(x).empty() || !responses_degenerate_reason(y).empty()) return std::nan("");
        DeviceBuffer<float> d_x, d_y;
        DeviceBuffer<char> work(cka_workspace_bytes(x.rows, x.cols, y.cols), "the CKA workspace");
        d_x.upload(x.data, ctx_.stream);
        d_y.upload(y.data, ctx_.stream);
        return cka_linear_launch(ctx_.cublas, d_x.get(), x.rows, x.cols, d_y.get(), y.cols, debiased, work.get(),
                                 ctx_.stream);
    }

    BootstrapResult bootstrap(const Matrix& ref, const std::vector<Matrix>& models, int resamples,
                              uint64_t seed) override {
        // The device path reads S x S from every buffer with S = ref.rows: check the shapes as the CPU twin does.
        if (models.empty()) throw InputError("bootstrap: no model RDMs given");
        for (size_t l = 0; l < models.size(); ++l)
            check_rdm_pair(ref, models[l], "reference RDM", ("model " + std::to_string(l)).c_str());
        DeviceBuffer<float> d_ref;
        d_ref.upload(ref.data, ctx_.stream);
        std::vector<DeviceBuffer<float>> d_models(models.size());
        std::vector<const float*> ptrs;
        for (size_t i = 0; i < models.size(); ++i) {
            d_models[i].upload(models[i].data, ctx_.stream);
            ptrs.push_back(d_models[i].get());
        }
        return bootstrap_launch(ctx_.cublas, d_ref.get(), ptrs, ref.rows, resamples, seed, ctx_.stream);
    }
    PermutationResult permutation(const Matrix& ref, const Matrix& model, int permutations, uint64_t seed) override {
        check_rdm_pair(ref, model, "reference RDM", "model RDM");
        DeviceBuffer<float> d_ref, d_model;
        d_ref.upload(ref.data, ctx_.stream);
        d_model.upload(model.data, ctx_.stream);
        return permutation_launch(d_ref.get(), d_model.get(), ref.rows, permutations, seed, ctx_.stream);
    }
    NoiseCeilingResult noise_ceiling(const Matrix& resp, const std::vector<int64_t>& bins, int splits,
                                     uint64_t seed) override {
        DeviceBuffer<float> d_resp;
        d_resp.upload(resp.data, ctx_.stream);
        return noise_ceiling_launch(ctx_.cublas, d_resp.get(), resp.rows, resp.cols, bins, splits, seed, ctx_.stream);
    }

    SyntheticV1 synthetic_v1(const SyntheticV1Params& params) override {
        const SyntheticV1Plan plan = synthetic_v1_plan(params);
        SyntheticV1 out;
        out.stimuli = plan.stimuli;
        out.resp = Matrix(params.bins, params.neurons);
        DeviceBuffer<float> d_out(static_cast<size_t>(out.resp.size()));
        synthetic_v1_launch(plan, d_out.get(), ctx_.stream);
        d_out.download(out.resp.data.data(), out.resp.data.size(), ctx_.stream);
        return out;
    }

    SyntheticV1Trials synthetic_v1_trials(const SyntheticV1Params& params) override {
        const SyntheticV1Plan plan = synthetic_v1_plan(params);
        SyntheticV1Trials out;
        for (double o : plan.trial_orientation) out.orientation.push_back(static_cast<float>(o));
        out.bin = synthetic_v1_trial_bins(plan);
        out.resp = Matrix(params.trials, params.neurons);
        DeviceBuffer<float> d_out(static_cast<size_t>(out.resp.size()));
        synthetic_v1_trials_launch(plan, d_out.get(), ctx_.stream);
        d_out.download(out.resp.data.data(), out.resp.data.size(), ctx_.stream);
        return out;
    }

    TrainResult cnn_train(std::vector<float>& params, const Matrix& images, const std::vector<float>& labels,
                          const TrainConfig& config, const EpochCallback& on_epoch) override {
        CnnGpu& net = cnn(std::min<int64_t>(config.batch, images.rows));
        net.set_params(params);
        TrainResult r = net.train(images, labels, config, on_epoch);
        params = net.params();
        return r;
    }

    CnnActivations cnn_forward(const std::vector<float>& params, const Matrix& images) override {
        // forward() copies rows x 3072 floats from the host: a narrower matrix would be read past its end.
        if (images.cols != cnn::kPixels)
            throw InputError("CNN forward: images have " + std::to_string(images.cols) + " columns, expected " +
                             std::to_string(cnn::kPixels));
        CnnGpu& net = cnn(static_cast<int>(std::max<int64_t>(images.rows, 1)));
        net.set_params(params);
        CnnActivations act;
        net.forward(images.data.data(), static_cast<int>(images.rows), &act);
        return act;
    }

private:
    // The RDM under the memory plan, after rdm()'s checks: the plain one-shot FP32 path when the data fit, else (or
    // when that runs out of device memory) rdm_scaled. Rows the device finds exactly constant are NaN rows and
    // columns, rejected with ConstantRows::Fail (degenerate_rows, which rdm() ran first, lists them all already).
    // Empty for a tiled plan: the RDM is in options.output_path.
    Matrix rdm_compute(const Matrix& x, const RdmOptions& options, const std::string& what) {
        size_t free_bytes = 0, total_bytes = 0;
        CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
        const MemoryPlan plan = plan_rdm(x.rows, x.cols, options.max_gpu_bytes, free_bytes);
        const uint64_t big = 256ull << 20;
        if (options.on_plan && (plan.kind != PlanKind::OneShot || plan.input_bytes + plan.output_bytes > big))
            options.on_plan(describe(plan));
        check_plan_output(plan, options, what);
        PlanKind min_kind = PlanKind::OneShot;
        std::string plain_failure;
        if (plan.kind == PlanKind::OneShot && options.precision == Precision::FP32 && options.max_gpu_bytes == 0) {
            // Data fit: the plain path (z-score kernel in place + SSYRK), constant rows reported before the
            // product. Device memory can still run short (the free-memory reading is a snapshot; other processes
            // allocate too): then the memory plan's streamed path takes over.
            try {
                return rdm_plain(x, options, what);
            } catch (const OutOfMemoryError& e) {
                min_kind = PlanKind::Streamed;
                plain_failure = e.what();
            }
        }
        // Streamed / tiled / TF32 / capped: the memory plan's path (falls back on device out-of-memory). Constant
        // rows come out of its row statistics; with Fail the result (and any tiled file, removed by the caller)
        // is discarded.
        ScaledRdmOptions o;
        o.precision = options.precision;
        o.max_gpu_bytes = options.max_gpu_bytes;
        o.output_path = options.output_path;
        o.poison = poison_mode();  // tests (test_backend_ops, RSA_GPU_POISON): every buffer and the result NaN first
        ScaledRdmResult r = rdm_scaled(ctx_, x.data.data(), x.rows, x.cols, o, min_kind);
        if (!r.constant_rows.empty() && options.constant_rows == ConstantRows::Fail)
            throw_constant_rows(r.constant_rows, what);
        if ((r.fell_back || !plain_failure.empty()) && options.on_plan)
            options.on_plan("device memory ran short" + (plain_failure.empty() ? "" : " (" + plain_failure + ")") +
                            "; fell back to:\n" + describe(r.plan));
        return std::move(r.rdm);
    }

    // The one-shot FP32 RDM: input (z-scored in place), constant-row flags and output, all allocated before any
    // work is queued, so an OutOfMemoryError leaves nothing in flight on the stream.
    Matrix rdm_plain(const Matrix& x, const RdmOptions& options, const std::string& what) {
        DeviceBuffer<float> d_x(static_cast<size_t>(x.size()), "the RDM input");
        DeviceBuffer<int> d_const(static_cast<size_t>(x.rows), "constant-row flags");
        DeviceBuffer<float> d_m(static_cast<size_t>(x.rows * x.rows), "the RDM");
        d_x.upload(x.data, ctx_.stream);
        zscore_rows_launch(d_x.get(), x.rows, x.cols, d_x.get(), d_const.get(), ctx_.stream);
        std::vector<int64_t> constant;
        collect_constant(d_const, x.rows, &constant);
        if (!constant.empty() && options.constant_rows == ConstantRows::Fail) throw_constant_rows(constant, what);
        Matrix m(x.rows, x.rows, poison_mode() ? std::nanf("") : 0.0f);  // poison mode: unwritten slots read NaN
        rdm_from_zscored_launch(ctx_.cublas, d_x.get(), x.rows, x.cols, d_m.get(), ctx_.stream);
        d_m.download(m.data.data(), m.data.size(), ctx_.stream);
        return m;
    }

    // One network object (descriptors, algorithms, buffers) reused while its max batch is large enough.
    CnnGpu& cnn(int64_t max_batch) {
        if (!cnn_ || cnn_max_batch_ < max_batch) {
            cnn_.reset();
            cnn_ = std::make_unique<CnnGpu>(ctx_.device, static_cast<int>(max_batch));
            cnn_max_batch_ = max_batch;
        }
        return *cnn_;
    }
    std::unique_ptr<CnnGpu> cnn_;
    int64_t cnn_max_batch_ = 0;

    void collect_constant(const DeviceBuffer<int>& d_const, int64_t rows, std::vector<int64_t>* out) {
        std::vector<int> flags(static_cast<size_t>(rows));
        d_const.download(flags.data(), flags.size(), ctx_.stream);
        if (!out) return;
        for (int64_t i = 0; i < rows; ++i)
            if (flags[static_cast<size_t>(i)]) out->push_back(i);
    }

    GpuContext& ctx_;
};

}  // namespace

// ---------------------------------------------------------------- allocating conveniences (measures.cuh)
CompareResult compare_upper_launch(Measure m, const float* d_a, const float* d_b, int64_t S, cudaStream_t stream) {
    DeviceBuffer<char> work(compare_workspace_bytes(m, S), "the comparison workspace");
    return compare_upper_launch(m, d_a, d_b, S, work.get(), stream);  // returns after reading back: work is idle
}

double cka_linear_launch(cublasHandle_t cublas, const float* d_x, int64_t S, int64_t N1, const float* d_y,
                         int64_t N2, bool debiased, cudaStream_t stream) {
    check_cka_shapes(S, N1, S, N2, debiased);  // InputError before sizing anything
    DeviceBuffer<char> work(cka_workspace_bytes(S, N1, N2), "the CKA workspace");
    return cka_linear_launch(cublas, d_x, S, N1, d_y, N2, debiased, work.get(), stream);
}

// The plugin's backend factory (kernels/cuda_plugin.cu hands it to the host; the host's make_gpu_backend goes through it).
std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<GpuBackend>(device); }

}  // namespace rsa

// The GPU backend: the analysis' operations on one CUDA device through the kernels and cuBLAS, sharing the
// device's GpuContext (stream and cuBLAS handle created once; cuDNN only when the CNN runs). Arrays in and out
// (array.h): results stay on the device (a GpuStore: a DeviceBuffer behind the DeviceStore interface), and a host
// Array an operation uploads keeps its device copy, so the V1 responses and the RDMs move to the device once per job.
// The RDM is the shared layer's plan (rdm_engine.h) run by the GPU engine (rdm_run_gpu, kernels/rdm_scale.cu).
// Degenerate inputs follow the CPU backend's rules with the same shared functions: RDMs tested on the device's
// moments (the host copy is read only to word an error), comparisons NaN for every measure on a degenerate side,
// CKA NaN on degenerate responses. Workspaces are DeviceBuffers allocated here (running out of device memory is an
// OutOfMemoryError naming them).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <tuple>

#include "compare.cuh"
#include "cuda_check.cuh"
#include "device_buffer.cuh"
#include "dissimilarity.cuh"
#include "evaluate.cuh"
#include "gpu_context.cuh"
#include "grating.cuh"
#include "rdm_scale.cuh"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/cnn_gpu.h"
#include "rsa_gpu/dissimilarity.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/poison.h"
#include "measures.cuh"
#include "stats.cuh"
#include "synthetic_v1.cuh"

namespace rsa {

namespace {

// An Array's data on one device.
class GpuStore final : public DeviceStore {
public:
    GpuStore(GpuContext& ctx, size_t count, const char* what) : ctx_(ctx), buf_(count, what) {}
    int device() const override { return ctx_.device; }
    const float* data() const override { return buf_.get(); }
    float* data() { return buf_.get(); }
    void download(float* host, size_t count) const override {
        CUDA_CHECK(cudaSetDevice(ctx_.device));
        buf_.download(host, count, ctx_.stream);
    }
    DeviceBuffer<float>& buffer() { return buf_; }

private:
    GpuContext& ctx_;
    DeviceBuffer<float> buf_;
};

// Device memory owned elsewhere (a PyTorch or CuPy array), read in place; the keeper holds it alive.
class BorrowedGpuStore final : public DeviceStore {
public:
    BorrowedGpuStore(const float* data, int device, size_t count, std::shared_ptr<const void> keeper)
        : data_(data), device_(device), count_(count), keeper_(std::move(keeper)) {}
    int device() const override { return device_; }
    const float* data() const override { return data_; }
    void download(float* host, size_t count) const override {
        CUDA_CHECK(cudaSetDevice(device_));
        CUDA_CHECK(cudaMemcpy(host, data_, std::min(count, count_) * sizeof(float), cudaMemcpyDeviceToHost));
    }

private:
    const float* data_;
    int device_;
    size_t count_;
    std::shared_ptr<const void> keeper_;
};

class GpuBackend final : public Backend {
public:
    explicit GpuBackend(int device) : ctx_(gpu_context(device)) { CUDA_CHECK(cudaSetDevice(device)); }

    std::string name() const override { return "cuda:" + std::to_string(ctx_.device) + " (" + ctx_.card + ")"; }
    bool is_gpu() const override { return true; }
    int device() const override { return ctx_.device; }

    Array gratings(const std::vector<float>& angles_deg, const GratingParams& params) override {
        check_gratings_output(angles_deg.size(), params);  // InputError with the sizes, before any allocation
        const int64_t B = static_cast<int64_t>(angles_deg.size());
        auto out = fresh(B * params.pixels(), "the gratings");
        DeviceBuffer<float> d_angles;
        d_angles.upload(angles_deg, ctx_.stream);
        grating_launch(d_angles.get(), B, params, out->data(), ctx_.stream);
        CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));  // d_angles goes at return
        return Array::on_device(B, params.pixels(), out);
    }

    RowMoments row_moments(const Array& x, bool keep_on_device) override {
        const int64_t S = x.rows(), N = x.cols();
        // GPU first: for a one-shot plan a host input that fits in half the free device memory is uploaded here,
        // once, and kept with the Array (the run and any later operation on it find it there); otherwise (a plan
        // that streams it, or too large) it is summarised on the host, where it is.
        const DeviceStore* resident = x.device_copy(ctx_.device);
        const float* d_x = resident ? resident->data()
                                    : keep_on_device ? on_device_if_fits(x, "the RDM input") : nullptr;
        if (!d_x) return row_moments_ref(x.host(), S, N);
        RowMoments m;
        m.mean.resize(static_cast<size_t>(S));
        m.m2.resize(static_cast<size_t>(S));
        DeviceBuffer<double> d_mean(static_cast<size_t>(S), "row means"), d_m2(static_cast<size_t>(S), "row m2");
        row_moments_launch(d_x, S, N, N, d_mean.get(), d_m2.get(), ctx_.stream);
        d_mean.download(m.mean.data(), m.mean.size(), ctx_.stream);
        d_m2.download(m.m2.data(), m.m2.size(), ctx_.stream);
        return m;
    }

    PlanMemory rdm_memory(int64_t, int64_t) override {
        size_t free_bytes = 0, total_bytes = 0;
        CUDA_CHECK(cudaSetDevice(ctx_.device));
        CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
        return PlanMemory{free_bytes, "device memory of " + name()};
    }

    Array rdm_run(const Array& x, const MemoryPlan& plan, Precision precision, const RowMoments& moments,
                  const std::vector<int64_t>& nan_rows, RdmTileSink* sink) override {
        const int64_t S = x.rows(), N = x.cols();
        RdmInput in;
        if (const DeviceStore* d = x.device_copy(ctx_.device)) in.device = d->data();
        else in.host = x.host();
        const bool poison = poison_mode();  // tests: every buffer NaN first
        if (plan.kind == PlanKind::Tiled) {
            rdm_run_gpu(ctx_, in, S, N, plan, precision, moments, nullptr, sink, poison);
            return Array();
        }
        auto out = fresh(S * S, "the RDM");
        if (poison) out->buffer().poison(ctx_.stream);
        rdm_run_gpu(ctx_, in, S, N, plan, precision, moments, out->data(), nullptr, poison);
        if (!nan_rows.empty()) {
            DeviceBuffer<int64_t> d_rows;
            d_rows.upload(nan_rows, ctx_.stream);
            nan_rows_cols_launch(out->data(), S, d_rows.get(), static_cast<int64_t>(nan_rows.size()), ctx_.stream);
            CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
        }
        return Array::on_device(S, S, out);
    }

    Array whiten(const Array& x, const Array& factor) override {
        const int64_t S = x.rows(), N = x.cols();
        check_whiten_shapes(S, N, factor.rows(), factor.cols());
        const float* d_x = on_device(x, "the responses to whiten");
        const float* d_f = on_device(factor, "the noise precision's factor");
        auto out = fresh(S * N, "the whitened responses");
        if (poison_mode()) out->buffer().poison(ctx_.stream);
        whiten_launch(ctx_.cublas, d_x, S, N, d_f, factor.rows(), out->data(), ctx_.stream);
        CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
        return Array::on_device(S, N, out);
    }

    Array cross_gram(const Array& train, const Array& test, int64_t folds) override {
        check_cross_gram_shapes(train.rows(), train.cols(), test.rows(), test.cols(), folds);
        const int64_t C = train.rows() / folds, N = train.cols();
        const float* d_a = on_device(train, "the crossnobis train means");
        const float* d_b = on_device(test, "the crossnobis test means");
        auto out = fresh(C * C, "the crossnobis kernel");
        if (poison_mode()) out->buffer().poison(ctx_.stream);
        cross_gram_launch(ctx_.cublas, d_a, d_b, C, N, folds, out->data(), ctx_.stream);
        CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
        return Array::on_device(C, C, out);
    }

    UpperSpread rdm_spread(const Array& rdm) override {
        const int64_t S = rdm.rows();
        const float* d = on_device(rdm, "an RDM");
        DeviceBuffer<char> work(pearson_workspace_bytes(S), "the moments workspace");
        const UpperMoments m = upper_moments_launch(d, d, S, work.get(), ctx_.stream);
        UpperSpread s;
        s.values = m.pairs;
        s.nan = m.skipped;
        s.mean = m.mean_a;
        s.m2 = m.sxx;
        return s;  // min and max are not computed on the device
    }

    std::vector<std::vector<CompareResult>> compare(const Array& ref, const std::vector<Array>& models,
                                                    const std::vector<Measure>& measures) override {
        for (size_t l = 0; l < models.size(); ++l)
            check_rdm_dims(ref.rows(), ref.cols(), models[l].rows(), models[l].cols(), "reference RDM",
                           ("model " + std::to_string(l)).c_str());
        const int64_t S = ref.rows();
        size_t work_bytes = 0;
        for (Measure m : measures) work_bytes = std::max(work_bytes, compare_workspace_bytes(m, S));
        DeviceBuffer<char> work(work_bytes, "the comparison workspace");
        const float* d_ref = on_device(ref, "the reference RDM");
        std::vector<std::vector<CompareResult>> out;
        for (const Array& model : models) {
            const float* d_model = on_device(model, "a model RDM");
            std::vector<CompareResult> row;
            for (Measure m : measures) row.push_back(compare_upper_launch(m, d_ref, d_model, S, work.get(), ctx_.stream));
            out.push_back(std::move(row));
        }
        return out;
    }

    CkaResult cka(const Array& x, const Array& y) override {
        check_cka_shapes(x.rows(), x.cols(), y.rows(), y.cols(), false);
        CkaResult r;
        // Degenerate responses (every stimulus the same up to rounding): NaN before any work, as cka_linear_ref.
        if (!responses_degenerate_reason(x.view()).empty() || !responses_degenerate_reason(y.view()).empty()) {
            r.plain = r.debiased = std::nan("");
            return r;
        }
        const int64_t S = x.rows();
        DeviceBuffer<char> work(cka_workspace_bytes(S, x.cols(), y.cols()), "the CKA workspace");
        const CkaSums sums = cka_sums_launch(ctx_.cublas, on_device(x, "the CKA responses"), S, x.cols(),
                                             on_device(y, "the CKA responses"), y.cols(), work.get(), ctx_.stream);
        r.plain = cka_from_sums(sums, S, false);
        r.debiased = S >= 4 ? cka_from_sums(sums, S, true) : std::nan("");
        return r;
    }

    WeightedMoments evaluate_moments(const std::vector<double>& data, int64_t K, const std::vector<double>& models,
                                     int64_t M, int64_t S, const std::vector<double>& counts, int64_t resamples,
                                     bool centre) override {
        CUDA_CHECK(cudaSetDevice(ctx_.device));
        return evaluate_moments_launch(ctx_.cublas, data, K, models, M, S, counts, resamples, centre, ctx_.stream);
    }

    BootstrapResult bootstrap(const Array& ref, const std::vector<Array>& models, int resamples, uint64_t seed,
                              int64_t first) override {
        // The device path reads S x S from every buffer with S = ref.rows(): the pairs are checked as the CPU twin
        // checks them (degenerate RDMs tested on the device's moments).
        if (models.empty()) throw InputError("bootstrap: no model RDMs given");
        const std::vector<const float*> ptrs = checked_models(ref, models);
        return bootstrap_launch(ctx_.cublas, on_device(ref, "the reference RDM"), ptrs, ref.rows(), resamples, seed,
                                first, ctx_.stream);
    }

    std::vector<PermutationResult> permutation(const Array& ref, const std::vector<Array>& models, int permutations,
                                               uint64_t seed, int64_t first) override {
        const std::vector<const float*> ptrs = checked_models(ref, models);
        const float* d_ref = on_device(ref, "the reference RDM");
        std::vector<PermutationResult> out;
        for (const float* d_model : ptrs)
            out.push_back(permutation_launch(d_ref, d_model, ref.rows(), permutations, seed, first, ctx_.stream));
        return out;
    }

    NoiseCeilingResult noise_ceiling(const Array& resp, const std::vector<int64_t>& bins, int splits,
                                     uint64_t seed) override {
        return noise_ceiling_launch(ctx_.cublas, on_device(resp, "the trial responses"), resp.rows(), resp.cols(), bins,
                                    splits, seed, ctx_.stream);
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

    TrainResult cnn_train(std::vector<float>& params, const Array& images, const std::vector<float>& labels,
                          const TrainConfig& config, const EpochCallback& on_epoch) override {
        CnnGpu& net = cnn(std::min<int64_t>(config.batch, images.rows()));
        net.set_params(params);
        TrainResult r = net.train(images.view(), labels, config, on_epoch);
        params = net.params();
        return r;
    }

    CnnActivations cnn_forward(const std::vector<float>& params, const Array& images) override {
        // forward() copies rows x 3072 floats from the host: a narrower matrix would be read past its end.
        if (images.cols() != cnn::kPixels)
            throw InputError("CNN forward: images have " + std::to_string(images.cols()) + " columns, expected " +
                             std::to_string(cnn::kPixels));
        CnnGpu& net = cnn(static_cast<int>(std::max<int64_t>(images.rows(), 1)));
        net.set_params(params);
        CnnActivations act;
        net.forward(images.host(), static_cast<int>(images.rows()), &act);
        return act;
    }

private:
    std::shared_ptr<GpuStore> fresh(int64_t count, const char* what) {
        CUDA_CHECK(cudaSetDevice(ctx_.device));
        return std::make_shared<GpuStore>(ctx_, static_cast<size_t>(count), what);
    }

    // The Array's copy on this device, uploaded (and kept with the Array) when it has none.
    const float* on_device(const Array& a, const char* what) {
        if (const DeviceStore* d = a.device_copy(ctx_.device)) return d->data();
        auto store = fresh(a.size(), what);
        store->buffer().upload(a.host(), static_cast<size_t>(a.size()), ctx_.stream);
        a.keep_device_copy(store);
        return store->data();
    }

    // on_device when the Array is there already or fits in half the free device memory; else null.
    const float* on_device_if_fits(const Array& a, const char* what) {
        if (const DeviceStore* d = a.device_copy(ctx_.device)) return d->data();
        size_t free_bytes = 0, total_bytes = 0;
        CUDA_CHECK(cudaSetDevice(ctx_.device));  // the free memory of this backend's device
        CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
        if (static_cast<uint64_t>(a.size()) * sizeof(float) > free_bytes / 2) return nullptr;
        try {
            return on_device(a, what);
        } catch (const OutOfMemoryError&) {
            return nullptr;  // someone else took the memory meanwhile: summarise on the host
        }
    }

    // check_rdm_pair on the device for a reference and its models: shapes, then no RDM degenerate (each one's moments
    // on the device, the reference's once; the host copy is read only to word an error). Returns the models' device
    // pointers.
    std::vector<const float*> checked_models(const Array& ref, const std::vector<Array>& models) {
        for (size_t l = 0; l < models.size(); ++l)
            check_rdm_dims(ref.rows(), ref.cols(), models[l].rows(), models[l].cols(), "reference RDM",
                           ("model " + std::to_string(l)).c_str());
        const int64_t S = ref.rows();
        DeviceBuffer<char> work(pearson_workspace_bytes(S), "the moments workspace");
        auto check = [&](const Array& a, const float* d, const std::string& label) {
            const UpperMoments m = upper_moments_launch(d, d, S, work.get(), ctx_.stream);
            if (m.pairs >= 2 && !spread_degenerate(static_cast<double>(m.pairs), m.mean_a, m.sxx)) return;
            const std::string why = rdm_degenerate_reason(a.host(), S);
            if (!why.empty()) throw InputError(label + ": " + why);
        };
        check(ref, on_device(ref, "the reference RDM"), "reference RDM");
        std::vector<const float*> ptrs;
        for (size_t l = 0; l < models.size(); ++l) {
            ptrs.push_back(on_device(models[l], "a model RDM"));
            check(models[l], ptrs.back(), "model " + std::to_string(l));
        }
        return ptrs;
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

std::shared_ptr<DeviceStore> borrow_cuda_memory(const float* data, int device, size_t count,
                                                std::shared_ptr<const void> keeper) {
    CUDA_CHECK(cudaSetDevice(device));
    cudaPointerAttributes attr{};
    CUDA_CHECK(cudaPointerGetAttributes(&attr, data));
    if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
        throw InputError("the array is not in device memory (cudaPointerGetAttributes type " +
                         std::to_string(static_cast<int>(attr.type)) + ")");
    if (attr.device != device)
        throw InputError("the array is on GPU " + std::to_string(attr.device) + ", not GPU " + std::to_string(device));
    // The producer (PyTorch, CuPy) may still be writing it on its own stream: wait for the device.
    CUDA_CHECK(cudaDeviceSynchronize());
    return std::make_shared<BorrowedGpuStore>(data, device, count, std::move(keeper));
}

// The plugin's backend factory (kernels/cuda_plugin.cu hands it to the host; the host's make_gpu_backend goes through it).
std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<GpuBackend>(device); }

}  // namespace rsa

// The CPU backend: every operation of the analysis through its CPU twin (plain C++ and OpenBLAS).
#include <unistd.h>

#include <memory>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"

namespace rsa {

namespace {

class CpuBackend final : public Backend {
public:
    std::string name() const override { return "cpu"; }
    bool is_gpu() const override { return false; }

    Matrix gratings(const std::vector<float>& angles_deg, const GratingParams& params) override {
        return gratings_ref(angles_deg, params);
    }

    Matrix zscore_rows(const Matrix& x, std::vector<int64_t>* constant_rows) override {
        Matrix z(x.rows, x.cols);
        zscore_rows_ref(x.data.data(), x.rows, x.cols, z.data.data(), constant_rows);
        return z;
    }

    Matrix rdm(const Matrix& x, const RdmOptions& options, const std::string& what) override {
        check_rdm_input(x, what);
        const uint64_t host = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
        const MemoryPlan plan = plan_rdm(x.rows, x.cols, options.max_gpu_bytes, host);
        const uint64_t big = 256ull << 20;
        if (options.on_plan && (options.max_gpu_bytes != 0 || plan.input_bytes + plan.output_bytes > big))
            options.on_plan(describe(plan) + "\n(on the CPU: host memory stands in for device memory)");
        if (options.max_gpu_bytes == 0 && options.precision == Precision::FP32) {  // the plain one-shot twin
            std::vector<int64_t> constant;
            const Matrix z = zscore_rows(x, &constant);
            if (!constant.empty() && options.constant_rows == ConstantRows::Fail) throw_constant_rows(constant, what);
            Matrix m(x.rows, x.rows);
            rdm_from_zscored_ref(z.data.data(), x.rows, x.cols, m.data.data());
            return m;
        }
        // The chunked/tiled twins under the same memory plan the GPU would use with this cap.
        check_plan_output(plan, options, what);
        // Constant rows come out of the same pass; with Fail the result (and any tiled file, removed by the
        // caller) is discarded.
        Matrix m;
        std::vector<int64_t> constant;
        rdm_scaled_ref(x.data.data(), x.rows, x.cols, plan, options.precision, options.output_path, &m, &constant);
        if (!constant.empty() && options.constant_rows == ConstantRows::Fail) throw_constant_rows(constant, what);
        return m;
    }

    PearsonResult compare_pearson(const Matrix& a, const Matrix& b) override {
        check_rdm_pair(a, b, "first RDM", "second RDM");
        return pearson_upper_ref(a.data.data(), b.data.data(), a.rows);
    }

    CompareResult compare(const Matrix& a, const Matrix& b, Measure measure) override {
        check_rdm_pair(a, b, "first RDM", "second RDM");
        return compare_upper_ref(measure, a.data.data(), b.data.data(), a.rows);
    }

    double cka(const Matrix& x, const Matrix& y, bool debiased) override { return cka_linear_ref(x, y, debiased); }

    BootstrapResult bootstrap(const Matrix& ref, const std::vector<Matrix>& models, int resamples,
                              uint64_t seed) override {
        return bootstrap_ref(ref, models, resamples, seed);
    }
    PermutationResult permutation(const Matrix& ref, const Matrix& model, int permutations, uint64_t seed) override {
        return permutation_ref(ref, model, permutations, seed);
    }
    NoiseCeilingResult noise_ceiling(const Matrix& resp, const std::vector<int64_t>& bins, int splits,
                                     uint64_t seed) override {
        return noise_ceiling_ref(resp, bins, splits, seed);
    }

    SyntheticV1 synthetic_v1(const SyntheticV1Params& params) override { return synthetic_v1_ref(params); }
    SyntheticV1Trials synthetic_v1_trials(const SyntheticV1Params& params) override {
        return synthetic_v1_trials_ref(params);
    }

    TrainResult cnn_train(std::vector<float>& params, const Matrix& images, const std::vector<float>& labels,
                          const TrainConfig& config, const EpochCallback& on_epoch) override {
        return cnn_train_ref(params, images, labels, config, on_epoch);
    }

    CnnActivations cnn_forward(const std::vector<float>& params, const Matrix& images) override {
        CnnActivations act;
        cnn_forward_ref(params.data(), images.data.data(), static_cast<int>(images.rows), &act);
        return act;
    }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace rsa

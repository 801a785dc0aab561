// The CPU backend: every operation of the analysis through its CPU twin (plain C++ and OpenBLAS). Its RDMs are
// planned against the host memory budget (host_memory.h) as the GPU's are against device memory: an RDM larger
// than the budget is tiled to disk, and one that cannot be made says so, with the sizes, before any work.
#include <memory>
#include <sstream>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"

namespace rsa {

namespace {

class CpuBackend final : public Backend {
public:
    std::string name() const override { return "cpu"; }
    bool is_gpu() const override { return false; }

    Matrix gratings(const std::vector<float>& angles_deg, const GratingParams& params) override {
        check_gratings_output(angles_deg.size(), params);  // InputError with the sizes, before any work
        return gratings_ref(angles_deg, params);
    }

    Matrix zscore_rows(const Matrix& x, std::vector<int64_t>* constant_rows) override {
        Matrix z = checked_matrix(x.rows, x.cols, "z-scored responses");
        zscore_rows_ref(x.data.data(), x.rows, x.cols, z.data.data(), constant_rows);
        return z;
    }

    Matrix rdm(const Matrix& x, const RdmOptions& options, const std::string& what) override {
        check_rdm_input(x, what);
        // Sizes first (known from the shape alone), then rows without a correlation (constant up to float
        // rounding): both before any work.
        const MemoryPlan plan = plan_host_rdm(x.rows, x.cols, options, what);  // InputError when it cannot be made
        const std::vector<int64_t> flat = degenerate_rows(x);
        if (!flat.empty() && options.constant_rows == ConstantRows::Fail) throw_constant_rows(flat, what);
        const std::string rdm_what = "the " + std::to_string(x.rows) + " x " + std::to_string(x.rows) + " RDM of " + what;
        Matrix m;
        std::vector<int64_t> constant;
        if (plan.kind == PlanKind::OneShot && options.max_gpu_bytes == 0 && options.precision == Precision::FP32) {
            // The plain one-shot twin: a z-scored copy, then SYRK into the output.
            Matrix z = checked_matrix(x.rows, x.cols, "the z-scored copy of " + what);
            zscore_rows_ref(x.data.data(), x.rows, x.cols, z.data.data(), &constant);
            m = checked_matrix(x.rows, x.rows, rdm_what);
            rdm_from_zscored_ref(z.data.data(), x.rows, x.cols, m.data.data());
        } else {
            // The chunked/tiled twins under the same memory plan the GPU would use with this budget. Constant
            // rows come out of the same pass; with Fail the result (and any tiled file, removed by the caller)
            // is discarded.
            if (plan.kind != PlanKind::Tiled) check_host_alloc(plan.output_bytes, rdm_what);
            rdm_scaled_ref(x.data.data(), x.rows, x.cols, plan, options.precision, options.output_path, &m, &constant);
        }
        if (!constant.empty() && options.constant_rows == ConstantRows::Fail) throw_constant_rows(constant, what);
        // Rows constant only up to rounding were z-scored like any other: NaN them as the exact ones.
        if (!flat.empty()) {
            if (m.rows) nan_rows_and_columns(m.data.data(), m.rows, flat);
            else nan_rows_in_npy(options.output_path, x.rows, flat);
        }
        if (m.rows) check_rdm_result(m, options, what);  // a tiled RDM on disk is not read back
        return m;
    }

    // Shapes only: a degenerate RDM gives NaN for every measure (compare.h); user-facing callers name it with
    // check_rdm_pair first.
    PearsonResult compare_pearson(const Matrix& a, const Matrix& b) override {
        check_rdm_shapes(a, b, "first RDM", "second RDM");
        return pearson_upper_ref(a.data.data(), b.data.data(), a.rows);
    }

    CompareResult compare(const Matrix& a, const Matrix& b, Measure measure) override {
        check_rdm_shapes(a, b, "first RDM", "second RDM");
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

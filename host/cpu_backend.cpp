// The CPU backend: every operation of the analysis through its CPU twin (plain C++ and OpenBLAS) on host Arrays
// (borrowed memory is read in place). Its RDM plans are made against the host memory budget (host_memory.h) as the
// GPU's are against device memory: an RDM larger than the budget is tiled to disk.
#include <memory>
#include <sstream>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/dissimilarity.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/progress.h"
#include "rsa_gpu/rdm_engine.h"

namespace rsa {

namespace {

// A progress bar drawn for a twin's progress reports, created at the first report (when the total is known).
class ProgressBar {
public:
    explicit ProgressBar(const char* label) : label_(label) {}
    StatsProgress callback() {
        return [this](int64_t done, int64_t total) {
            if (!bar_ || total != total_) {
                bar_ = std::make_unique<Progress>(label_, total);
                total_ = total;
            }
            bar_->update(done);
        };
    }

private:
    const char* label_;
    std::unique_ptr<Progress> bar_;
    int64_t total_ = -1;
};

std::vector<MatrixView> views(const std::vector<Array>& arrays) {
    std::vector<MatrixView> v;
    v.reserve(arrays.size());
    for (const Array& a : arrays) v.push_back(a.view());
    return v;
}

class CpuBackend final : public Backend {
public:
    std::string name() const override { return "cpu"; }
    bool is_gpu() const override { return false; }
    int device() const override { return -1; }

    Array gratings(const std::vector<float>& angles_deg, const GratingParams& params) override {
        check_gratings_output(angles_deg.size(), params);  // InputError with the sizes, before any work
        return gratings_ref(angles_deg, params);
    }

    RowMoments row_moments(const Array& x, bool) override { return row_moments_ref(x.host(), x.rows(), x.cols()); }

    PlanMemory rdm_memory(int64_t S, int64_t N) override { return host_plan_memory(S, N); }

    Array rdm_run(const Array& x, const MemoryPlan& plan, Precision precision, const RowMoments& moments,
                  const std::vector<int64_t>& nan_rows, RdmTileSink* sink) override {
        const int64_t S = x.rows();
        if (plan.kind == PlanKind::Tiled) {
            rdm_run_ref(x.host(), S, x.cols(), plan, precision, moments, nullptr, sink);
            return Array();
        }
        Matrix m = checked_matrix(S, S, "the " + std::to_string(S) + " x " + std::to_string(S) + " RDM");
        rdm_run_ref(x.host(), S, x.cols(), plan, precision, moments, m.data.data(), nullptr);
        nan_rows_and_columns(m.data.data(), S, nan_rows);
        return Array(std::move(m));
    }

    UpperSpread rdm_spread(const Array& rdm) override { return rdm_upper_spread(rdm.host(), rdm.rows()); }

    Array whiten(const Array& x, const Array& factor) override { return whiten_ref(x.view(), factor.view()); }
    Array cross_gram(const Array& train, const Array& test, int64_t folds) override {
        return cross_gram_ref(train.view(), test.view(), folds);
    }

    std::vector<std::vector<CompareResult>> compare(const Array& ref, const std::vector<Array>& models,
                                                    const std::vector<Measure>& measures) override {
        std::vector<std::vector<CompareResult>> out;
        for (size_t l = 0; l < models.size(); ++l) {
            check_rdm_dims(ref.rows(), ref.cols(), models[l].rows(), models[l].cols(), "reference RDM",
                           ("model " + std::to_string(l)).c_str());
            std::vector<CompareResult> row;
            for (Measure m : measures) row.push_back(compare_upper_ref(m, ref.host(), models[l].host(), ref.rows()));
            out.push_back(std::move(row));
        }
        return out;
    }

    CkaResult cka(const Array& x, const Array& y) override {
        CkaResult r;
        r.plain = cka_linear_ref(x.view(), y.view(), false);
        r.debiased = x.rows() >= 4 ? cka_linear_ref(x.view(), y.view(), true) : std::nan("");
        return r;
    }

    WeightedMoments evaluate_moments(const std::vector<double>& data, int64_t K, const std::vector<double>& models,
                                     int64_t M, int64_t S, const std::vector<double>& counts, int64_t resamples,
                                     bool centre) override {
        return weighted_moments_ref(data, K, models, M, S, counts, resamples, centre);
    }

    BootstrapResult bootstrap(const Array& ref, const std::vector<Array>& models, int resamples, uint64_t seed,
                              int64_t first) override {
        ProgressBar bar("bootstrap");
        return bootstrap_ref(ref.view(), views(models), resamples, seed, first, bar.callback());
    }
    std::vector<PermutationResult> permutation(const Array& ref, const std::vector<Array>& models, int permutations,
                                               uint64_t seed, int64_t first) override {
        std::vector<PermutationResult> out;
        ProgressBar bar("permutations");
        for (const Array& m : models)
            out.push_back(permutation_ref(ref.view(), m.view(), permutations, seed, first, bar.callback()));
        return out;
    }
    NoiseCeilingResult noise_ceiling(const Array& resp, const std::vector<int64_t>& bins, int splits,
                                     uint64_t seed) override {
        return noise_ceiling_ref(resp.view(), bins, splits, seed);
    }

    SyntheticV1 synthetic_v1(const SyntheticV1Params& params) override { return synthetic_v1_ref(params); }
    SyntheticV1Trials synthetic_v1_trials(const SyntheticV1Params& params) override {
        return synthetic_v1_trials_ref(params);
    }

    TrainResult cnn_train(std::vector<float>& params, const Array& images, const std::vector<float>& labels,
                          const TrainConfig& config, const EpochCallback& on_epoch) override {
        return cnn_train_ref(params, images.view(), labels, config, on_epoch);
    }

    CnnActivations cnn_forward(const std::vector<float>& params, const Array& images) override {
        if (images.cols() != cnn::kPixels)  // the forward pass reads rows x 3072 floats
            throw InputError("CNN forward: images have " + std::to_string(images.cols()) + " columns, expected " +
                             std::to_string(cnn::kPixels));
        CnnActivations act;
        cnn_forward_ref(params.data(), images.host(), static_cast<int>(images.rows()), &act);
        return act;
    }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace rsa

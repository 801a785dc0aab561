// Helpers shared by the benchmarks: the median wall time of repeated runs, and the whole tutorial analysis
// through any backend (training set, 25-epoch training, read-out at the V1 orientations, RDMs of V1/pool/fc and
// their correlations), timed by bench_train (CPU) and bench_train_gpu (GPU) alike.
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/rdm_engine.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/v1_data.h"

namespace rsa_bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

template <typename F>
double median_ms(int repeats, F&& f) {
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = Clock::now();
        f();
        t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

struct TutorialTiming {
    double seconds = 0, r_pool = 0, r_fc = 0;
};

// The whole tutorial analysis on `v1` (already loaded or generated, as the original loads its file first).
inline TutorialTiming run_tutorial_analysis(rsa::Backend& backend, const rsa::V1Data& v1, int epochs) {
    using namespace rsa;
    const auto t0 = Clock::now();
    TrainConfig cfg;
    cfg.epochs = epochs;
    std::vector<float> angles, labels;
    cnn_training_set(cfg, &angles, &labels);
    std::vector<float> params = cnn_init_params(cfg.seed);
    backend.cnn_train(params, backend.gratings(angles, GratingParams{}), labels, cfg, nullptr);
    const CnnActivations act = backend.cnn_forward(params, backend.gratings(v1.orientation, GratingParams{}));
    const Array rv = compute_rdm(backend, v1.resp, RdmOptions{}, "v1").rdm;
    const Array pool = compute_rdm(backend, cnn_layer_matrix(act, "pool"), RdmOptions{}, "pool").rdm;
    const Array fc = compute_rdm(backend, cnn_layer_matrix(act, "fc"), RdmOptions{}, "fc").rdm;
    const auto r = backend.compare(rv, {pool, fc}, {Measure::Pearson});
    TutorialTiming t;
    t.r_pool = r[0][0].value;
    t.r_fc = r[1][0].value;
    t.seconds = seconds_since(t0);
    return t;
}

}  // namespace rsa_bench

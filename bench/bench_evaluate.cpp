// Times the evaluation engine's CPU twin (evaluate_ref, evaluate.h) on RDM files written by bench/bench_evaluate.py,
// which runs rsatoolbox on the same data in the same run: bench_evaluate DATA.npy MODELS.npy METHOD INFERENCE N
// [REPEATS]. DATA: K x S x S, MODELS: M x S x S (float64). Prints one JSON line: median seconds over the repeats
// (after one warm-up run), the point estimates, the standard errors and the noise ceiling.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "rsa_gpu/blas_setup.h"
#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/npy.h"

namespace {

std::vector<double> vectors(const rsa::NpyArray& a, int64_t* count, int64_t* S) {
    *count = a.shape.size() == 3 ? a.shape[0] : 1;
    *S = a.shape.back();
    std::vector<double> out;
    for (int64_t k = 0; k < *count; ++k)
        for (int64_t i = 0; i < *S; ++i)
            for (int64_t j = i + 1; j < *S; ++j) out.push_back(a.values[(k * *S + i) * *S + j]);
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: bench_evaluate DATA.npy MODELS.npy METHOD INFERENCE N [REPEATS]\n");
        return 2;
    }
    int64_t K = 0, M = 0, S = 0, S2 = 0;
    const std::vector<double> data = vectors(rsa::npy_load(argv[1]), &K, &S);
    const std::vector<double> models = vectors(rsa::npy_load(argv[2]), &M, &S2);
    rsa::EvaluateOptions o;
    o.method = rsa::parse_eval_method(argv[3]);
    o.inference = rsa::parse_eval_inference(argv[4]);
    o.bootstrap = std::atoi(argv[5]);
    o.seed = 1;
    const int repeats = argc > 6 ? std::atoi(argv[6]) : 3;
    rsa::EvaluateResult r;
    const double ms = rsa_bench::median_ms(repeats, [&] { r = rsa::evaluate_ref(data, K, models, M, S, o); });
    const nlohmann::json j = {{"seconds", ms / 1e3}, {"K", K},     {"M", M},
                              {"S", S},              {"point", r.point}, {"blas_kernels", rsa::blas_corename()}, {"mean", r.mean},
                              {"se", r.se},          {"nc_lower", r.ceiling.lower}, {"nc_upper", r.ceiling.upper},
                              {"point_nc_lower", r.point_ceiling.lower}, {"point_nc_upper", r.point_ceiling.upper}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
}

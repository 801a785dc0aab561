// Shared test helpers: relative L2 error, fresh random inputs (every seed printed, replayable with RSA_TEST_SEED),
// poisoning, golden-file paths, and running the rsa_gpu binary in a scratch folder.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "rsa_gpu/matrix.h"
#include "rsa_gpu/npy.h"

namespace rsa_test {

// ||a - b||_2 / ||b||_2 over n values (NaN anywhere in a or b where the other is not NaN gives +inf).
double rel_l2(const float* a, const float* b, size_t n);
inline double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() != b.size() ? 1e300 : rel_l2(a.data(), b.data(), a.size());
}

// The process's base seed: the environment variable RSA_TEST_SEED when set, else the clock; printed on first use
// ("rsa_test: base seed ..."). Draw k of the process uses a seed derived from (base, k), printed on stdout under the
// running test's "[ RUN ]" line ("rsa_test: draw k (...): seed ..."), so running the same binary with the same
// --gtest_filter and RSA_TEST_SEED=<base> replays every draw.
uint64_t base_seed();
// Fresh random values in [lo, hi) from the next draw's seed (printed; also returned in seed_used).
std::vector<float> random_uniform(size_t n, float lo, float hi, uint64_t* seed_used = nullptr);
// Random small integers in [lo, hi] as floats (exact in FP32 arithmetic), seeded likewise.
std::vector<float> random_integers(size_t n, int lo, int hi, uint64_t* seed_used = nullptr);

std::string data_path(const std::string& name);

// A fresh empty scratch folder under the test's temporary directory.
std::string scratch_dir(const std::string& name);

struct RunResult {
    int exit_code = -1;
    std::string out;  // stdout
    std::string err;  // stderr
};
// Runs `rsa_gpu <args>` (arguments as one shell string) in folder `cwd`.
RunResult run_rsa_gpu(const std::string& args, const std::string& cwd);

bool file_exists(const std::string& path);
// Names of the files in a folder (not recursive), sorted.
std::vector<std::string> list_dir(const std::string& path);

// A symmetric S x S RDM with a zero diagonal, entries uniform in [0, 2) (random_uniform's seed); with `base`,
// mix * base + (1 - mix) * fresh.
rsa::Matrix random_rdm(int64_t S, const rsa::Matrix* base = nullptr, float mix = 0.0f);

// The strict upper triangles, row by row (rsatoolbox's order), of a K x S x S array: *count = K, *S = S.
std::vector<double> upper_vectors(const rsa::NpyArray& a, int64_t* count, int64_t* S);

// The model-evaluation fixture of tests/data/evaluate (tools/make_evaluate_golden.py, rsatoolbox's data): K data RDMs
// and M model RDMs of S patterns, as upper-triangle vectors in rsatoolbox's order; loaded once.
struct EvaluateFixture {
    int64_t S = 0, K = 0, M = 0;
    std::vector<double> data, models;
};
const EvaluateFixture& evaluate_fixture();

}  // namespace rsa_test

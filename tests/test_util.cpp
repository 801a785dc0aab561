// Shared test helpers (see test_util.h). Every random draw prints its seed (and the base seed once), so a failing
// run can be replayed with RSA_TEST_SEED.
#include "test_util.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <algorithm>

namespace rsa_test {

double rel_l2(const float* a, const float* b, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; ++i) {
        const bool na = std::isnan(a[i]), nb = std::isnan(b[i]);
        if (na || nb) {
            if (na != nb) return std::numeric_limits<double>::infinity();
            continue;
        }
        const double d = static_cast<double>(a[i]) - b[i];
        num += d * d;
        den += static_cast<double>(b[i]) * b[i];
    }
    if (den == 0.0) return num == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
    return std::sqrt(num / den);
}

// The process's base seed: RSA_TEST_SEED when set (replays a run), else the clock; printed once.
uint64_t base_seed() {
    static const uint64_t base = [] {
        const char* env = std::getenv("RSA_TEST_SEED");
        const bool given = env != nullptr && *env != '\0';
        const uint64_t seed = given ? std::strtoull(env, nullptr, 10)
                                    : static_cast<uint64_t>(
                                          std::chrono::high_resolution_clock::now().time_since_epoch().count());
        std::printf("rsa_test: base seed %llu%s (replay every draw of this run with RSA_TEST_SEED=%llu and the same "
                    "--gtest_filter)\n",
                    static_cast<unsigned long long>(seed), given ? " from RSA_TEST_SEED" : " from the clock",
                    static_cast<unsigned long long>(seed));
        std::fflush(stdout);
        return seed;
    }();
    return base;
}

// Draw k of the process: splitmix64 of base + k (distinct, well-mixed seeds), printed.
static uint64_t fresh_seed(const char* what, size_t n) {
    static std::atomic<uint64_t> counter{0};
    const uint64_t k = counter++;
    uint64_t z = base_seed() + 0x9E3779B97F4A7C15ull * (k + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    const uint64_t seed = z ^ (z >> 31);
    // On stdout, under the running test's "[ RUN ] Suite.Test" line (no gtest call here: test_backend_ops links
    // this file without gtest).
    std::printf("rsa_test: draw %llu (%s, %zu values): seed %llu\n", static_cast<unsigned long long>(k), what, n,
                static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    return seed;
}

std::vector<float> random_uniform(size_t n, float lo, float hi, uint64_t* seed_used) {
    const uint64_t seed = fresh_seed("random_uniform", n);
    if (seed_used) *seed_used = seed;
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(gen);
    return v;
}

std::vector<float> random_integers(size_t n, int lo, int hi, uint64_t* seed_used) {
    const uint64_t seed = fresh_seed("random_integers", n);
    if (seed_used) *seed_used = seed;
    std::mt19937_64 gen(seed);
    std::uniform_int_distribution<int> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(dist(gen));
    return v;
}

std::string data_path(const std::string& name) { return std::string(RSA_TEST_DATA_DIR) + "/" + name; }

std::string scratch_dir(const std::string& name) {
    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / ("rsa_gpu_test_" + std::to_string(::getpid())) / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir.string();
}

[[maybe_unused]] static std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream os;
    os << in.rdbuf();
    return os.str();
}

RunResult run_rsa_gpu(const std::string& args, const std::string& cwd) {
#ifdef RSA_GPU_BINARY
    const std::string out = cwd + "/.stdout.txt", err = cwd + "/.stderr.txt";
    const std::string cmd = "cd '" + cwd + "' && '" RSA_GPU_BINARY "' " + args + " >'" + out + "' 2>'" + err + "'";
    const int status = std::system(cmd.c_str());
    RunResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    std::remove(out.c_str());
    std::remove(err.c_str());
    return r;
#else
    (void)args;
    (void)cwd;
    return RunResult{};
#endif
}

bool file_exists(const std::string& path) { return std::filesystem::exists(path); }

std::vector<std::string> list_dir(const std::string& path) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

rsa::Matrix random_rdm(int64_t S, const rsa::Matrix* base, float mix) {
    const std::vector<float> u = random_uniform(static_cast<size_t>(S * S), 0.0f, 2.0f);
    rsa::Matrix m(S, S);
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) {
            float v = u[static_cast<size_t>(i * S + j)];
            if (base) v = mix * base->at(i, j) + (1.0f - mix) * v;
            m.at(i, j) = m.at(j, i) = v;
        }
    return m;
}

std::vector<double> upper_vectors(const rsa::NpyArray& a, int64_t* count, int64_t* S) {
    *count = a.shape[0];
    *S = a.shape[1];
    std::vector<double> out;
    for (int64_t k = 0; k < *count; ++k)
        for (int64_t i = 0; i < *S; ++i)
            for (int64_t j = i + 1; j < *S; ++j) out.push_back(a.values[static_cast<size_t>((k * *S + i) * *S + j)]);
    return out;
}

const EvaluateFixture& evaluate_fixture() {
    static const EvaluateFixture f = [] {
        EvaluateFixture x;
        int64_t S2 = 0;
        x.data = upper_vectors(rsa::npy_load(data_path("evaluate/data.npy")), &x.K, &x.S);
        x.models = upper_vectors(rsa::npy_load(data_path("evaluate/models.npy")), &x.M, &S2);
        return x;
    }();
    return f;
}

}  // namespace rsa_test

// Shared test helpers (see test_util.h).
#include "test_util.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
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

static uint64_t fresh_seed() {
    const uint64_t seed = static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
    return seed;
}

std::vector<float> random_uniform(size_t n, float lo, float hi, uint64_t* seed_used) {
    const uint64_t seed = fresh_seed();
    if (seed_used) *seed_used = seed;
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(gen);
    return v;
}

std::vector<float> random_integers(size_t n, int lo, int hi, uint64_t* seed_used) {
    const uint64_t seed = fresh_seed();
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

}  // namespace rsa_test

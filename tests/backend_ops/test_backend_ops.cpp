// test_backend_ops: one harness for every Backend operation (backend.h), in the spirit of ggml's test-backend-ops.
// A table of cases {op, shapes with odd sizes and tails, precision, input generator, checks: output field, metric,
// tolerance, NaN policy} runs through two backends and compares every output. Default: the GPU backend (candidate)
// against the CPU backend (reference), exit 77 without a usable GPU (gpu_gate.h); --self-check: the CPU backend on
// both sides, plus canaries proving that the comparison fails on corrupted outputs and a coverage check that every
// Backend operation has a case; --list: the table. Outputs are poisoned first (device buffers through
// rsa::set_poison_mode, the harness's own host output storage here, tiled .npy files pre-filled with NaN), sentinel
// tails are checked, and every case draws its inputs from (run seed, case index): --seed N replays a run.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gpu_gate.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/rdm_engine.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/poison.h"
#include "rsa_gpu/rdm_plan.h"

#if defined(RSA_GPU_HAVE_CUDA)
#include "device_buffer.cuh"
#endif

namespace {

using namespace rsa;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const float kNaNf = std::numeric_limits<float>::quiet_NaN();

// ====================================================================== tolerances
// The only place tolerances are set; the case table below refers to these. Each is the number the op's GPU test
// already holds the GPU twin to (tests/test_*_gpu.cu), or the project's standard where there is none.
constexpr double kExact = 0.0;            // gratings (pixel-exact), CNN conv + pool (bit-identical conv by
                                          // construction, kernels/cnn_gpu.cu), host-side plans, counts, ids
constexpr double kFp32RelL2 = 1e-5;       // FP32 arrays: z-score, RDM (every plan), synthetic V1, CNN fc/out/training
constexpr double kTf32RelL2 = 1e-4;       // TF32 RDM vs the CPU TF32 twin, which rounds z the same way
                                          // (test_rdm_scale_gpu "vs_twin"; the standard against FP32 is 1e-3)
constexpr double kMomentsRelL2 = 1e-12;   // row means and m2, double sums in another order (block_sum on the GPU)
constexpr double kPearsonAbs = 1e-10;     // compare_pearson r, both twins double sums (test_foundation_gpu)
constexpr double kRankAbs = 1e-9;         // Spearman, Kendall through compare() (test_measures_gpu)
constexpr double kMomentAbs = 1e-6;       // Pearson, cosine through compare(): 1e-6 * max(1, |v|), |v| <= 1
constexpr double kCkaAbs = 1e-5;          // linear CKA, plain and debiased: 1e-5 * max(1, |v|), |v| <= 1
constexpr double kBootstrapRel = 1e-5;    // each resampled r, lo and hi, relative (test_stats_gpu)
constexpr double kBootstrapAbs = 1e-5;    // the same where r can be near 0 (S = 3): absolute
constexpr double kPermNullAbs = 1e-9;     // permutation null samples (test_stats_gpu)
constexpr double kPermObsAbs = 1e-12;     // permutation r_obs (test_stats_gpu); p-value exact
constexpr double kCeilingAbs = 1e-5;      // split-half r and noise ceiling (test_stats_gpu)

// ====================================================================== seeds and inputs
uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
// A case's inputs come from (run seed, index in the whole table), so --filter keeps them.
uint64_t case_seed(uint64_t run_seed, size_t index) { return splitmix64(run_seed ^ splitmix64(index + 1)); }

class Gen {
public:
    explicit Gen(uint64_t seed) : eng_(seed) {}
    float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(eng_); }
    int64_t integer(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(eng_); }
    uint64_t bits() { return eng_(); }
    std::vector<float> uniform_vector(size_t n, float lo, float hi) {
        std::vector<float> v(n);
        for (float& x : v) x = uniform(lo, hi);
        return v;
    }
    Matrix uniform_matrix(int64_t r, int64_t c, float lo, float hi) {
        Matrix m(r, c);
        m.data = uniform_vector(static_cast<size_t>(r * c), lo, hi);
        return m;
    }

private:
    std::mt19937_64 eng_;
};

// Responses with structure: rank-4 signal plus noise plus a per-row offset (as test_rdm_scale_gpu's inputs).
Matrix structured(Gen& g, int64_t S, int64_t N) {
    const Matrix a = g.uniform_matrix(S, 4, -1.0f, 1.0f), b = g.uniform_matrix(4, N, -1.0f, 1.0f);
    Matrix x = g.uniform_matrix(S, N, -0.5f, 0.5f);
    for (int64_t s = 0; s < S; ++s)
        for (int64_t n = 0; n < N; ++n) {
            float v = 0.0f;
            for (int r = 0; r < 4; ++r) v += a.at(s, r) * b.at(r, n);
            x.at(s, n) += v + 2.0f + 0.1f * static_cast<float>(s % 5);
        }
    return x;
}

// Symmetric S x S with zero diagonal; mix * base + (1 - mix) * fresh uniform when base is given.
Matrix random_rdm(Gen& g, int64_t S, const Matrix* base = nullptr, float mix = 0.0f) {
    Matrix m(S, S);
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) {
            float v = g.uniform(0.0f, 2.0f);
            if (base) v = mix * base->at(i, j) + (1.0f - mix) * v;
            m.at(i, j) = m.at(j, i) = v;
        }
    return m;
}

// Two S x S RDMs for the comparison measures: ties (few distinct values) or continuous, `nans` NaN entries in
// each at random places (both triangles and the diagonal), signed zeros (as test_measures_gpu's inputs).
void rdm_pair(Gen& g, int64_t S, bool ties, int64_t nans, Matrix* a, Matrix* b) {
    *a = Matrix(S, S);
    *b = Matrix(S, S);
    for (size_t i = 0; i < a->data.size(); ++i) {
        if (ties) {
            a->data[i] = 0.25f * static_cast<float>(g.integer(-3, 12));
            b->data[i] = 0.5f * static_cast<float>(g.integer(0, 8)) + (a->data[i] > 1.0f ? 1.0f : 0.0f);
        } else {
            a->data[i] = g.uniform(0.0f, 2.0f);
            b->data[i] = 0.5f * g.uniform(0.0f, 2.0f) + 0.5f * a->data[i];
        }
    }
    const int64_t n = S * S;
    for (int64_t k = 0; k < nans; ++k) {
        a->data[static_cast<size_t>(g.integer(0, n - 1))] = kNaNf;
        b->data[static_cast<size_t>(g.integer(0, n - 1))] = kNaNf;
    }
    if (S > 3) {
        a->at(1, 2) = -0.0f;
        a->at(1, 3) = 0.0f;
        b->at(0, 2) = -0.0f;
    }
}

uint64_t fnv1a(const void* data, size_t bytes, uint64_t h = 1469598103934665603ull) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

// ====================================================================== poisoned host storage
// n elements of T filled with kPoisonFill bytes (NaN as double), then kPoisonTailBytes of kPoisonSentinel. The
// harness records every output into one of these, so a slot nobody wrote stays NaN and a write past the end
// damages the tail.
template <typename T>
class PoisonedHost {
public:
    explicit PoisonedHost(size_t n = 0) : n_(n), v_(n + kTailElems) {
        std::memset(static_cast<void*>(v_.data()), kPoisonFill, n * sizeof(T));
        std::memset(static_cast<void*>(v_.data() + n), kPoisonSentinel, kTailElems * sizeof(T));
    }
    T* data() { return v_.data(); }
    const T* data() const { return v_.data(); }
    size_t size() const { return n_; }
    T& operator[](size_t i) { return v_[i]; }
    const T& operator[](size_t i) const { return v_[i]; }
    // Damaged tail bytes (0 when intact).
    size_t tail_damage(size_t* first = nullptr) const {
        return poison_tail_damage(v_.data() + n_, kTailElems * sizeof(T), first);
    }
    // Writes one byte just past the elements (inside the tail): the canary that the tail check works.
    void damage_tail_for_canary() { reinterpret_cast<unsigned char*>(v_.data() + n_)[3] = 0x00; }

private:
    static constexpr size_t kTailElems = (kPoisonTailBytes + sizeof(T) - 1) / sizeof(T);
    size_t n_;
    std::vector<T> v_;
};

// ====================================================================== outputs, checks, metrics
struct Field {
    std::string name;
    std::vector<int64_t> shape;   // the expected shape (problems record a different one)
    PoisonedHost<double> values;  // product of shape elements
};

struct Output {
    std::string error;                  // "InputError: ..." when the call threw
    std::vector<Field> fields;
    std::vector<std::string> problems;  // shape, consistency, poison problems found while recording
    std::set<std::string> ops;          // Backend operations called (TracingBackend)
    double seconds = 0.0;
};

std::string shape_text(const std::vector<int64_t>& s) {
    std::string t;
    for (size_t i = 0; i < s.size(); ++i) t += (i ? "x" : "") + std::to_string(s[i]);
    return s.empty() ? "scalar" : t;
}

Field& add_field(Output& out, const std::string& name, const std::vector<int64_t>& shape) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(std::max<int64_t>(d, 0));
    out.fields.push_back(Field{name, shape, PoisonedHost<double>(n)});
    return out.fields.back();
}

// A returned Matrix must be exactly rows x cols with rows * cols values.
void put_matrix(Output& out, const std::string& name, const Matrix& m, int64_t rows, int64_t cols) {
    Field& f = add_field(out, name, {rows, cols});
    const size_t want = static_cast<size_t>(rows * cols);
    if (m.rows != rows || m.cols != cols || m.data.size() != want)
        out.problems.push_back(name + ": returned " + std::to_string(m.rows) + " x " + std::to_string(m.cols) +
                               " with data.size() " + std::to_string(m.data.size()) + ", expected " +
                               std::to_string(rows) + " x " + std::to_string(cols) + " (" + std::to_string(want) + ")");
    const size_t n = std::min(want, m.data.size());
    for (size_t i = 0; i < n; ++i) f.values[i] = m.data[i];
}

template <typename V>
void put_vector(Output& out, const std::string& name, const V& v, size_t expected) {
    Field& f = add_field(out, name, {static_cast<int64_t>(expected)});
    if (v.size() != expected)
        out.problems.push_back(name + ": returned " + std::to_string(v.size()) + " values, expected " +
                               std::to_string(expected));
    const size_t n = std::min(expected, v.size());
    for (size_t i = 0; i < n; ++i) f.values[i] = static_cast<double>(v[i]);
}

void put_scalar(Output& out, const std::string& name, double value) { add_field(out, name, {}).values[0] = value; }

enum class Metric { RelL2, MaxAbs, MaxRel, Exact };
enum class Nan { Never, SameSlots };  // NaN anywhere fails / NaN allowed where both sides have it

const char* metric_name(Metric m) {
    switch (m) {
        case Metric::RelL2: return "rel_l2";
        case Metric::MaxAbs: return "max_abs";
        case Metric::MaxRel: return "max_rel";
        case Metric::Exact: return "exact";
    }
    return "?";
}

struct Check {
    std::string field;  // an output field name, or its prefix for indexed fields ("samples" -> "samples[0]", ...)
    Metric metric;
    double tol;
    Nan nan = Nan::Never;
};

bool check_matches(const Check& c, const std::string& field) {
    return field == c.field || field.rfind(c.field + "[", 0) == 0;
}

std::string num(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
}
std::string full(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

struct CheckOutcome {
    bool pass = true;
    double error = 0.0;  // the metric's value (differing slots for exact)
    std::string detail;  // set when failing
};

// a: candidate, b: reference, n values each.
CheckOutcome apply_check(const Check& c, const double* a, const double* b, size_t n) {
    CheckOutcome o;
    double num2 = 0.0, den2 = 0.0, worst = 0.0;
    size_t worst_at = 0, nan_bad = 0, nan_at = 0, differing = 0;
    bool have_worst = false;
    for (size_t i = 0; i < n; ++i) {
        const bool na = std::isnan(a[i]), nb = std::isnan(b[i]);
        if (na || nb) {
            if (c.nan == Nan::Never || na != nb) {
                if (nan_bad++ == 0) nan_at = i;
            }
            continue;
        }
        const double d = std::fabs(a[i] - b[i]);
        double e = d;
        switch (c.metric) {
            case Metric::RelL2:
                num2 += d * d;
                den2 += b[i] * b[i];
                break;
            case Metric::MaxAbs: break;
            case Metric::MaxRel: e = b[i] != 0.0 ? d / std::fabs(b[i]) : (d == 0.0 ? 0.0 : HUGE_VAL); break;
            case Metric::Exact:
                e = a[i] != b[i] ? 1.0 : 0.0;
                differing += a[i] != b[i];
                break;
        }
        if (!have_worst || e > worst || std::isnan(e)) {
            worst = e;
            worst_at = i;
            have_worst = true;
        }
    }
    switch (c.metric) {
        case Metric::RelL2: o.error = den2 > 0.0 ? std::sqrt(num2 / den2) : (num2 == 0.0 ? 0.0 : HUGE_VAL); break;
        case Metric::MaxAbs:
        case Metric::MaxRel: o.error = worst; break;
        case Metric::Exact: o.error = static_cast<double>(differing); break;
    }
    if (nan_bad) {
        o.pass = false;
        o.detail = std::to_string(nan_bad) + " NaN slot(s) not allowed" +
                   (c.nan == Nan::SameSlots ? " (NaN on one side only)" : "") + ", first at [" +
                   std::to_string(nan_at) + "]: candidate " + full(a[nan_at]) + ", reference " + full(b[nan_at]);
        return o;
    }
    o.pass = c.metric == Metric::Exact ? differing == 0 : (o.error == 0.0 || o.error < c.tol);
    if (!o.pass)
        o.detail = std::string(metric_name(c.metric)) + " " + num(o.error) +
                   (c.metric == Metric::Exact ? " slot(s) differ" : " >= " + num(c.tol)) + ", worst at [" +
                   std::to_string(worst_at) + "]: candidate " + full(a[worst_at]) + ", reference " + full(b[worst_at]);
    return o;
}

struct Case;

struct Verdict {
    bool pass = true;
    std::vector<std::string> failures;
    std::string summary;  // per check: worst error / tolerance
};

// ====================================================================== the case table's types
struct CaseEnv {
    std::string dir;  // scratch folder for this case's files
};
// Runs the case's operation on a backend with inputs drawn once by the setup; `side` 0 is the candidate, 1 the
// reference (used for distinct output file names).
using Runner = std::function<void(Backend&, Output&, int side)>;
using Setup = std::function<Runner(Gen&, const CaseEnv&)>;

struct Case {
    std::string op;             // the Backend operation
    bool rejected_above = false;  // an expected error raised by the shared layer above the backend (compute_rdm's
                                  // input checks) before the operation is reached
    std::string label;          // the variant
    std::string shapes;         // sizes as text
    std::string precision;      // fp32, tf32, fp64 (double sums), exact, ...
    std::vector<Check> checks;  // every output field is covered by at least one
    std::string expect_error;   // non-empty: both sides must throw this (e.g. "InputError")
    Setup setup;
};

Verdict compare_outputs(const Case& c, const Output& a, const Output& b) {
    Verdict v;
    auto fail = [&](const std::string& s) {
        v.pass = false;
        v.failures.push_back(s);
    };
    if (!c.expect_error.empty()) {
        const Output* sides[2] = {&a, &b};
        const char* names[2] = {"candidate", "reference"};
        for (int s = 0; s < 2; ++s)
            if (sides[s]->error.rfind(c.expect_error + ":", 0) != 0)
                fail(std::string(names[s]) + " should throw " + c.expect_error + ", got " +
                     (sides[s]->error.empty() ? std::string("no error") : sides[s]->error));
        if (v.pass) v.summary = "both threw " + c.expect_error;
        return v;
    }
    if (!a.error.empty()) fail("candidate threw " + a.error);
    if (!b.error.empty()) fail("reference threw " + b.error);
    if (!v.pass) return v;
    for (const std::string& p : a.problems) fail("candidate: " + p);
    for (const std::string& p : b.problems) fail("reference: " + p);
    if (a.fields.size() != b.fields.size()) {
        fail("candidate has " + std::to_string(a.fields.size()) + " output fields, reference " +
             std::to_string(b.fields.size()));
        return v;
    }
    std::vector<double> worst(c.checks.size(), 0.0);
    std::vector<bool> used(c.checks.size(), false);
    for (size_t i = 0; i < a.fields.size(); ++i) {
        const Field& fa = a.fields[i];
        const Field& fb = b.fields[i];
        if (fa.name != fb.name) {
            fail("output field " + std::to_string(i) + " is '" + fa.name + "' on the candidate, '" + fb.name +
                 "' on the reference");
            continue;
        }
        if (fa.shape != fb.shape || fa.values.size() != fb.values.size()) {
            fail(fa.name + ": shape " + shape_text(fa.shape) + " (candidate) vs " + shape_text(fb.shape) +
                 " (reference)");
            continue;
        }
        size_t first = 0;
        if (fa.values.tail_damage(&first)) fail(fa.name + ": candidate host storage sentinel tail damaged at +" + std::to_string(first));
        if (fb.values.tail_damage(&first)) fail(fb.name + ": reference host storage sentinel tail damaged at +" + std::to_string(first));
        bool checked = false;
        for (size_t k = 0; k < c.checks.size(); ++k) {
            if (!check_matches(c.checks[k], fa.name)) continue;
            checked = used[k] = true;
            const CheckOutcome o = apply_check(c.checks[k], fa.values.data(), fb.values.data(), fa.values.size());
            worst[k] = std::max(worst[k], o.error);
            if (!o.pass) fail(fa.name + ": " + o.detail);
        }
        if (!checked) fail(fa.name + ": no check in the case table covers this output field");
    }
    std::string s;
    for (size_t k = 0; k < c.checks.size(); ++k) {
        if (!used[k]) {
            fail("check '" + c.checks[k].field + "' matches no output field (stale table entry)");
            continue;
        }
        const Check& ck = c.checks[k];
        s += (s.empty() ? "" : ", ") + ck.field + " " + metric_name(ck.metric) + " " + num(worst[k]) +
             (ck.metric == Metric::Exact ? "" : "/" + num(ck.tol));
    }
    v.summary = s;
    return v;
}

// ====================================================================== the backend wrapper
// Forwards every Backend operation and records its name. It is `final` and instantiated, so a new pure virtual
// in backend.h stops this file from compiling until the operation is added here and to kOperations.
const std::vector<std::string> kOperations = {
    "gratings",     "row_moments",         "rdm_memory", "rdm_run",     "rdm_spread",  "whiten",
    "cross_gram",   "compare",             "cka",        "bootstrap",   "permutation", "noise_ceiling",
    "synthetic_v1", "synthetic_v1_trials", "cnn_train",  "cnn_forward", "evaluate_moments"};
// name(), is_gpu() and device() are identity queries, checked once at start-up, not compared. rdm_memory is a
// query too: the rdm cases reach it (and row_moments, rdm_run, rdm_spread) through compute_rdm, the shared layer.

class TracingBackend final : public Backend {
public:
    TracingBackend(Backend& inner, std::set<std::string>* ops) : b_(inner), ops_(ops) {}
    std::string name() const override { return b_.name(); }
    bool is_gpu() const override { return b_.is_gpu(); }
    int device() const override { return b_.device(); }
    Array gratings(const std::vector<float>& angles, const GratingParams& p) override {
        note("gratings");
        return b_.gratings(angles, p);
    }
    RowMoments row_moments(const Array& x, bool keep_on_device) override {
        note("row_moments");
        return b_.row_moments(x, keep_on_device);
    }
    PlanMemory rdm_memory(int64_t S, int64_t N) override {
        note("rdm_memory");
        return b_.rdm_memory(S, N);
    }
    Array rdm_run(const Array& x, const MemoryPlan& plan, Precision precision, const RowMoments& moments,
                  const std::vector<int64_t>& nan_rows, RdmTileSink* sink) override {
        note("rdm_run");
        return b_.rdm_run(x, plan, precision, moments, nan_rows, sink);
    }
    UpperSpread rdm_spread(const Array& rdm) override {
        note("rdm_spread");
        return b_.rdm_spread(rdm);
    }
    Array whiten(const Array& x, const Array& factor) override {
        note("whiten");
        return b_.whiten(x, factor);
    }
    Array cross_gram(const Array& train, const Array& test, int64_t folds) override {
        note("cross_gram");
        return b_.cross_gram(train, test, folds);
    }
    std::vector<std::vector<CompareResult>> compare(const Array& ref, const std::vector<Array>& models,
                                                    const std::vector<Measure>& measures) override {
        note("compare");
        return b_.compare(ref, models, measures);
    }
    CkaResult cka(const Array& x, const Array& y) override {
        note("cka");
        return b_.cka(x, y);
    }
    BootstrapResult bootstrap(const Array& ref, const std::vector<Array>& models, int resamples, uint64_t seed,
                              int64_t first) override {
        note("bootstrap");
        return b_.bootstrap(ref, models, resamples, seed, first);
    }
    std::vector<PermutationResult> permutation(const Array& ref, const std::vector<Array>& models, int permutations,
                                               uint64_t seed, int64_t first) override {
        note("permutation");
        return b_.permutation(ref, models, permutations, seed, first);
    }
    NoiseCeilingResult noise_ceiling(const Array& resp, const std::vector<int64_t>& bins, int splits,
                                     uint64_t seed) override {
        note("noise_ceiling");
        return b_.noise_ceiling(resp, bins, splits, seed);
    }
    WeightedMoments evaluate_moments(const std::vector<double>& data, int64_t K, const std::vector<double>& models,
                                     int64_t M, int64_t S, const std::vector<double>& counts, int64_t resamples,
                                     bool centre) override {
        note("evaluate_moments");
        return b_.evaluate_moments(data, K, models, M, S, counts, resamples, centre);
    }
    SyntheticV1 synthetic_v1(const SyntheticV1Params& p) override {
        note("synthetic_v1");
        return b_.synthetic_v1(p);
    }
    SyntheticV1Trials synthetic_v1_trials(const SyntheticV1Params& p) override {
        note("synthetic_v1_trials");
        return b_.synthetic_v1_trials(p);
    }
    TrainResult cnn_train(std::vector<float>& params, const Array& images, const std::vector<float>& labels,
                          const TrainConfig& config, const EpochCallback& on_epoch) override {
        note("cnn_train");
        return b_.cnn_train(params, images, labels, config, on_epoch);
    }
    CnnActivations cnn_forward(const std::vector<float>& params, const Array& images) override {
        note("cnn_forward");
        return b_.cnn_forward(params, images);
    }

private:
    void note(const char* op) { ops_->insert(op); }
    Backend& b_;
    std::set<std::string>* ops_;
};

// Inputs must come back unchanged (every operation takes them const).
class InputGuard {
public:
    void add(const std::string& name, const void* data, size_t bytes) {
        items_.push_back({name, data, bytes, fnv1a(data, bytes)});
    }
    void add(const std::string& name, const Matrix& m) { add(name, m.data.data(), m.data.size() * sizeof(float)); }
    void verify(Output& out) const {
        for (const Item& it : items_)
            if (fnv1a(it.data, it.bytes) != it.digest) out.problems.push_back("input '" + it.name + "' was modified");
    }

private:
    struct Item {
        std::string name;
        const void* data;
        size_t bytes;
        uint64_t digest;
    };
    std::vector<Item> items_;
};

// ====================================================================== case builders
std::string sz(const char* name, int64_t v) { return std::string(name) + "=" + std::to_string(v); }

// ---------------------------------------------------------------- gratings
Case gratings_case(const std::string& label, int64_t B, GratingParams p) {
    Case c;
    c.op = "gratings";
    c.label = label;
    c.shapes = sz("B", B) + " " + std::to_string(p.height()) + "x" + std::to_string(p.width()) + " sf=" + num(p.sf) +
               " res=" + num(p.res);
    c.precision = "exact";
    c.checks = {{"gratings", Metric::Exact, kExact}};
    c.setup = [B, p](Gen& g, const CaseEnv&) -> Runner {
        std::vector<float> angles;
        const float fixed[] = {-90.0f, -45.0f, 0.0f, 45.0f, 90.0f};
        for (int64_t i = 0; i < B; ++i) angles.push_back(i < 5 ? fixed[i] : g.uniform(-90.0f, 90.0f));
        return [angles, p, B](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("angles", angles.data(), angles.size() * sizeof(float));
            const Matrix m = be.gratings(angles, p).to_matrix();
            guard.verify(out);
            put_matrix(out, "gratings", m, B, p.pixels());
        };
    };
    return c;
}

// ---------------------------------------------------------------- row_moments
// Each row's mean and centred sum of squares in double (the RDM's input checks and row statistics).
Case row_moments_case(const std::string& label, int64_t S, int64_t N, std::vector<int64_t> constant) {
    Case c;
    c.op = "row_moments";
    c.label = label;
    c.shapes = sz("S", S) + " " + sz("N", N) + (constant.empty() ? "" : " constant rows " + std::to_string(constant.size()));
    c.precision = "fp64 sums";
    c.checks = {{"mean", Metric::RelL2, kMomentsRelL2}, {"m2", Metric::RelL2, kMomentsRelL2}};
    c.setup = [S, N, constant](Gen& g, const CaseEnv&) -> Runner {
        Matrix x = structured(g, S, N);
        for (int64_t r : constant) {
            const float v = g.uniform(-3.0f, 3.0f);
            for (int64_t n = 0; n < N; ++n) x.at(r, n) = v;
        }
        return [x, S, constant](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("x", x);
            const RowMoments m = be.row_moments(x, true);
            guard.verify(out);
            put_vector(out, "mean", m.mean, static_cast<size_t>(S));
            put_vector(out, "m2", m.m2, static_cast<size_t>(S));
            for (int64_t r : constant)
                if (static_cast<size_t>(r) < m.m2.size() && m.m2[static_cast<size_t>(r)] != 0.0)
                    out.problems.push_back("m2 of constant row " + std::to_string(r) + " is " +
                                           full(m.m2[static_cast<size_t>(r)]) + ", expected 0");
        };
    };
    return c;
}

// ---------------------------------------------------------------- rdm
// Device caps that force each plan (the formulas of test_rdm_scale_gpu; plan_rdm decides, the case checks it).
uint64_t streamed_cap(int64_t S, int64_t K) {
    return static_cast<uint64_t>(S * S * 4 + S * static_cast<int64_t>(kRowStatBytes) + 2 * S * 4 * K);
}
uint64_t tiled_cap(int64_t S, int64_t T, int64_t K) {
    return static_cast<uint64_t>(S * static_cast<int64_t>(kRowStatBytes) + 4 * T * K * 4 + 2 * T * T * 4);
}

// Within one side: rows and columns `rows` of the S x S `values` must be NaN (all of them when `all`).
void expect_nan_rows(Output& out, const std::string& name, const float* values, size_t n, int64_t S,
                     const std::vector<int64_t>& rows, bool all) {
    if (n != static_cast<size_t>(S * S)) return;  // a shape problem, reported already
    std::vector<char> want(static_cast<size_t>(S), all ? 1 : 0);
    for (int64_t r : rows) want[static_cast<size_t>(r)] = 1;
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < S; ++j)
            if ((want[static_cast<size_t>(i)] || want[static_cast<size_t>(j)]) && !std::isnan(values[i * S + j])) {
                out.problems.push_back(name + ": (" + std::to_string(i) + ", " + std::to_string(j) + ") is " +
                                       full(values[i * S + j]) + ", expected NaN (" +
                                       (all ? "a constant RDM" : "a constant row") + " kept as NaN)");
                return;
            }
}

int plan_kind_of(const std::string& description) {
    // describe(): "plan:      <kind> RDM of ..."
    const size_t at = description.find("plan:");
    if (at == std::string::npos) return -2;
    std::istringstream is(description.substr(at + 5));
    std::string word;
    is >> word;
    for (PlanKind k : {PlanKind::OneShot, PlanKind::Streamed, PlanKind::Tiled})
        if (word == plan_kind_name(k)) return static_cast<int>(k);
    return -2;
}

struct RdmSpec {
    std::string label;
    int64_t S = 0, N = 0;
    Precision precision = Precision::FP32;
    RdmKind kind = RdmKind::Correlation;  // the dissimilarity the engine finishes into
    uint64_t cap = 0;  // max_gpu_bytes (0: none)
    std::vector<int64_t> constant;
    std::vector<int64_t> near_constant;  // rows constant up to float rounding (degenerate_rows lists them)
    bool same_pattern = false;  // every row one pattern up to an offset and a scale: a constant RDM (check_rdm_result)
    ConstantRows policy = ConstantRows::Fail;
    bool nan_input = false;     // a NaN in the input (an InputError)
    bool no_output_path = false;  // a tiled plan without output_path (an InputError)
};

Case rdm_case(const RdmSpec& sp, const std::string& expect_error = "") {
    Case c;
    c.op = "rdm_run";  // through compute_rdm: row_moments, rdm_memory, rdm_run and rdm_spread of the backend
    c.label = sp.label;
    c.rejected_above = !expect_error.empty();
    c.expect_error = expect_error;
    // The plan both twins make under this cap (the same for any device with more memory than the cap).
    int expect_kind = -1;  // -1: no cap, on_plan not expected
    std::string plan_text = "one-shot";
    bool tiled = false;
    if (sp.S >= 1 && sp.N >= 1) {
        const MemoryPlan p = plan_rdm(sp.S, sp.N, sp.cap, 1ull << 40);
        tiled = p.tiled;
        plan_text = plan_kind_name(p.kind);
        if (p.neuron_blocks > 1) plan_text += ", " + std::to_string(p.neuron_blocks) + " blocks of " + std::to_string(p.neuron_block);
        if (p.tiled) plan_text += ", " + std::to_string(p.row_tiles) + "^2 tiles of " + std::to_string(p.row_tile);
        if (sp.cap) expect_kind = static_cast<int>(p.kind);
    }
    const bool degenerate = !sp.constant.empty() || !sp.near_constant.empty() || sp.same_pattern;
    const char* policy = sp.policy == ConstantRows::Nan ? " (nan)" : " (fail)";
    c.shapes = (sp.kind == RdmKind::Correlation ? std::string() : std::string(rdm_kind_name(sp.kind)) + " ") +
               sz("S", sp.S) + " " + sz("N", sp.N) + (sp.cap ? " cap=" + std::to_string(sp.cap) + "B" : "") + " -> " +
               plan_text + (sp.constant.empty() ? "" : ", constant rows " + std::to_string(sp.constant.size()) + policy) +
               (sp.near_constant.empty() ? ""
                                         : ", rows constant up to rounding " + std::to_string(sp.near_constant.size()) +
                                               policy) +
               (sp.same_pattern ? std::string(", all rows one pattern up to offset and scale") + policy : "");
    c.precision = precision_name(sp.precision);
    const double tol = sp.precision == Precision::TF32 ? kTf32RelL2 : kFp32RelL2;
    const Nan nan = degenerate ? Nan::SameSlots : Nan::Never;
    c.checks = {{"rdm", Metric::RelL2, tol, nan}};
    // A cap that forces streaming or tiling must be reported through on_plan by both twins, with that plan.
    // (Without one, whether on_plan is called differs by design between the twins: it is not compared.)
    const bool forced = expect_kind == static_cast<int>(PlanKind::Streamed) || expect_kind == static_cast<int>(PlanKind::Tiled);
    if (!forced) expect_kind = -1;
    if (forced) c.checks.push_back({"plan_kind", Metric::Exact, kExact});
    if (tiled && !sp.no_output_path) c.checks.push_back({"rdm_file", Metric::RelL2, tol, nan});
    c.setup = [sp, tiled, expect_kind](Gen& g, const CaseEnv& env) -> Runner {
        Matrix x = structured(g, sp.S, sp.N);
        if (sp.same_pattern) {  // row s = scale_s * pattern + offset_s: every correlation 1 up to rounding
            const std::vector<float> pattern = g.uniform_vector(static_cast<size_t>(sp.N), -1.0f, 1.0f);
            for (int64_t s = 0; s < sp.S; ++s) {
                const float scale = g.uniform(0.5f, 2.0f), offset = g.uniform(-3.0f, 3.0f);
                for (int64_t n = 0; n < sp.N; ++n) x.at(s, n) = scale * pattern[static_cast<size_t>(n)] + offset;
            }
        }
        for (int64_t r : sp.constant) {
            const float v = g.uniform(-3.0f, 3.0f);
            for (int64_t n = 0; n < sp.N; ++n) x.at(r, n) = v;
        }
        for (int64_t r : sp.near_constant) {  // v and the next float alternating: SD ~ 1 ulp / 2, not zero
            const float v = g.uniform(1.0f, 3.0f);
            for (int64_t n = 0; n < sp.N; ++n) x.at(r, n) = (n % 2) ? std::nextafter(v, 4.0f) : v;
        }
        if (sp.nan_input) x.at(sp.S / 2, sp.N / 2) = kNaNf;
        const std::string dir = env.dir;
        std::vector<int64_t> nan_rows = sp.constant;  // exact and up to rounding: NaN rows and columns with Nan
        nan_rows.insert(nan_rows.end(), sp.near_constant.begin(), sp.near_constant.end());
        return [x, sp, tiled, expect_kind, dir, nan_rows](Backend& be, Output& out, int side) {
            RdmOptions o;
            o.kind = sp.kind;
            o.precision = sp.precision;
            o.max_gpu_bytes = sp.cap;
            o.constant_rows = sp.policy;
            int kind = -1;
            o.on_plan = [&kind](const std::string& text) {
                if (kind == -1) kind = plan_kind_of(text);
            };
            const int64_t S = sp.S;
            if (tiled && !sp.no_output_path) {
                // Pre-poisoned: a file the backend did not (completely) write reads back as NaN.
                o.output_path = dir + "/rdm_side" + std::to_string(side) + ".npy";
                npy_save(o.output_path, Matrix(S, S, kNaNf));
            }
            InputGuard guard;
            guard.add("x", x);
            const RdmResult res = compute_rdm(be, x, o, "case input");
            const Matrix m = res.rdm.empty() ? Matrix() : res.rdm.to_matrix();
            guard.verify(out);
            if (tiled) {
                put_matrix(out, "rdm", m, 0, 0);  // a tiled RDM lives in the file only
                const NpyArray a = npy_load(o.output_path);
                if (a.shape != std::vector<int64_t>{S, S})
                    out.problems.push_back("rdm_file: shape " + shape_text(a.shape) + ", expected " + shape_text({S, S}));
                put_vector(out, "rdm_file", a.values, static_cast<size_t>(S * S));
                if (sp.policy == ConstantRows::Nan) {
                    const std::vector<float> f(a.values.begin(), a.values.end());
                    expect_nan_rows(out, "rdm_file", f.data(), f.size(), S, nan_rows, false);
                }
            } else {
                put_matrix(out, "rdm", m, S, S);
                if (sp.policy == ConstantRows::Nan)
                    expect_nan_rows(out, "rdm", m.data.data(), m.data.size(), S, nan_rows, sp.same_pattern);
                // Full symmetric: every twin mirrors its upper triangle.
                if (m.rows == S && m.cols == S && m.data.size() == static_cast<size_t>(S * S))
                    for (int64_t i = 0; i < S; ++i)
                        for (int64_t j = i + 1; j < S; ++j)
                            if (!(m.at(i, j) == m.at(j, i)) && !(std::isnan(m.at(i, j)) && std::isnan(m.at(j, i)))) {
                                out.problems.push_back("rdm not symmetric at (" + std::to_string(i) + ", " +
                                                       std::to_string(j) + ")");
                                i = S;
                                break;
                            }
            }
            if (expect_kind >= 0) put_scalar(out, "plan_kind", kind);
            if (expect_kind >= 0 && kind != expect_kind)
                out.problems.push_back("plan_kind " + std::to_string(kind) + " reported through on_plan, expected " +
                                       std::to_string(expect_kind) + " (" +
                                       plan_kind_name(static_cast<PlanKind>(expect_kind)) + ")");
        };
    };
    return c;
}

// ---------------------------------------------------------------- rdm_spread / rdm_memory
// The spread of an RDM's strict upper triangle (compute_rdm's constant-result test): values and NaN counted exactly,
// mean and m2 in double. min and max are the CPU's only (not compared).
Case rdm_spread_case(const std::string& label, int64_t S, int64_t nans, bool constant) {
    Case c;
    c.op = "rdm_spread";
    c.label = label;
    c.shapes = sz("S", S) + " NaN entries " + std::to_string(nans);
    c.precision = "fp64 sums";
    c.checks = {{"values", Metric::Exact, kExact}, {"nan", Metric::Exact, kExact},
                {"mean", Metric::MaxAbs, kMomentAbs}, {"m2", Metric::MaxRel, kMomentAbs}};
    c.setup = [S, nans, constant](Gen& g, const CaseEnv&) -> Runner {
        Matrix a = random_rdm(g, S);
        if (constant) std::fill(a.data.begin(), a.data.end(), 0.75f);
        for (int64_t k = 0; k < nans; ++k) {
            const int64_t i = g.integer(0, S - 2), j = g.integer(i + 1, S - 1);
            a.at(i, j) = a.at(j, i) = kNaNf;
        }
        return [a](Backend& be, Output& out, int) {
            const UpperSpread sp = be.rdm_spread(a);
            put_scalar(out, "values", static_cast<double>(sp.values));
            put_scalar(out, "nan", static_cast<double>(sp.nan));
            put_scalar(out, "mean", sp.mean);
            put_scalar(out, "m2", sp.m2);
        };
    };
    return c;
}

// ---------------------------------------------------------------- whiten / cross_gram (dissimilarity.h)
// Rows whitened by a precision factor: a full lower-triangular N x N factor (one GEMM) or a diagonal (1 x N).
Case whiten_case(const std::string& label, int64_t S, int64_t N, bool diagonal) {
    Case c;
    c.op = "whiten";
    c.label = label;
    c.shapes = sz("S", S) + " " + sz("N", N) + (diagonal ? " factor 1xN" : " factor NxN");
    c.precision = "fp32";
    c.checks = {{"y", Metric::RelL2, kFp32RelL2}};
    c.setup = [S, N, diagonal](Gen& g, const CaseEnv&) -> Runner {
        const Matrix x = structured(g, S, N);
        Matrix f = diagonal ? g.uniform_matrix(1, N, 0.2f, 2.0f) : g.uniform_matrix(N, N, -1.0f, 1.0f);
        if (!diagonal)
            for (int64_t i = 0; i < N; ++i) {
                for (int64_t j = i + 1; j < N; ++j) f.at(i, j) = 0.0f;  // lower triangular, as a Cholesky factor
                f.at(i, i) = 1.0f + std::fabs(f.at(i, i));
            }
        return [x, f, S, N](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("x", x);
            guard.add("factor", f);
            const Matrix y = be.whiten(x, f).to_matrix();
            guard.verify(out);
            put_matrix(out, "y", y, S, N);
        };
    };
    return c;
}

// The crossnobis kernel: sum over folds of A_f B_f^T.
Case cross_gram_case(const std::string& label, int64_t folds, int64_t C, int64_t N) {
    Case c;
    c.op = "cross_gram";
    c.label = label;
    c.shapes = sz("folds", folds) + " " + sz("C", C) + " " + sz("N", N);
    c.precision = "fp32";
    c.checks = {{"k", Metric::RelL2, kFp32RelL2}};
    c.setup = [folds, C, N](Gen& g, const CaseEnv&) -> Runner {
        const Matrix a = structured(g, folds * C, N), b = structured(g, folds * C, N);
        return [a, b, folds, C](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("train", a);
            guard.add("test", b);
            const Matrix k = be.cross_gram(a, b, folds).to_matrix();
            guard.verify(out);
            put_matrix(out, "k", k, C, C);
        };
    };
    return c;
}

// What the plan may use: free device memory or the host budget. Not compared (the twins' memories differ by
// design); both must report some memory and name it.
Case rdm_memory_case() {
    Case c;
    c.op = "rdm_memory";
    c.label = "reports memory";
    c.shapes = "S=181 N=23589";
    c.precision = "-";
    c.setup = [](Gen&, const CaseEnv&) -> Runner {
        return [](Backend& be, Output& out, int) {
            const PlanMemory m = be.rdm_memory(181, 23589);
            if (m.free_bytes == 0) out.problems.push_back("rdm_memory: no free memory reported");
            if (m.name.empty()) out.problems.push_back("rdm_memory: the memory has no name");
        };
    };
    return c;
}

// ---------------------------------------------------------------- compare_pearson / compare
int64_t upper_pairs(int64_t S) { return S * (S - 1) / 2; }

// Input pairs for the comparisons. The last four are degenerate (compare.h: compare_degenerate): every measure is
// NaN on both sides by definition, and the backends take them without an InputError (shapes only).
enum class PairKind { Ties, Continuous, ConstantSide, AllNan, NearConstantSide, OnePair };
const char* const kPairKindNames[] = {"ties + NaN", "continuous + NaN", "constant side", "all NaN",
                                      "side constant up to rounding", "one used pair"};
bool degenerate_pair(PairKind k) { return k != PairKind::Ties && k != PairKind::Continuous; }

void compare_inputs(Gen& g, PairKind kind, int64_t S, int64_t nans, Matrix* a, Matrix* b) {
    switch (kind) {
        case PairKind::Ties: rdm_pair(g, S, true, nans, a, b); break;
        case PairKind::Continuous: rdm_pair(g, S, false, nans, a, b); break;
        case PairKind::ConstantSide:
            rdm_pair(g, S, true, 0, a, b);
            std::fill(b->data.begin(), b->data.end(), 2.0f);
            break;
        case PairKind::AllNan:
            rdm_pair(g, S, false, 0, a, b);
            std::fill(a->data.begin(), a->data.end(), kNaNf);
            break;
        case PairKind::NearConstantSide: {  // v and the next float alternating: SD ~ 1 ulp / 2 of v
            rdm_pair(g, S, false, nans, a, b);
            const float v = g.uniform(0.5f, 2.0f);
            for (size_t i = 0; i < b->data.size(); ++i) b->data[i] = (i % 2) ? std::nextafter(v, 4.0f) : v;
            break;
        }
        case PairKind::OnePair: {  // every upper-triangle pair NaN on one side but one: fewer than 2 used pairs
            rdm_pair(g, S, false, 0, a, b);
            const int64_t keep_i = g.integer(0, S - 2), keep_j = g.integer(keep_i + 1, S - 1);
            for (int64_t i = 0; i < S; ++i)
                for (int64_t j = i + 1; j < S; ++j)
                    if (i != keep_i || j != keep_j) (((i + j) % 2) ? a : b)->at(i, j) = kNaNf;
            break;
        }
    }
}

Case pearson_case(const std::string& label, int64_t S, int64_t nans, PairKind kind = PairKind::Continuous) {
    Case c;
    c.op = "compare";
    c.label = label;
    c.shapes = sz("S", S) + " NaN entries " + std::to_string(nans) + " per RDM";
    c.precision = "fp64 sums";
    const Nan nan = degenerate_pair(kind) ? Nan::SameSlots : Nan::Never;
    c.checks = {{"r", Metric::MaxAbs, kPearsonAbs, nan}, {"pairs", Metric::Exact, kExact},
                {"skipped", Metric::Exact, kExact}};
    c.setup = [S, nans, kind](Gen& g, const CaseEnv&) -> Runner {
        Matrix a, b;
        compare_inputs(g, kind, S, nans, &a, &b);
        return [a, b, S, kind](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("a", a);
            guard.add("b", b);
            const CompareResult c = be.compare(a, {Array(b)}, {Measure::Pearson}).at(0).at(0);
            const PearsonResult r{c.value, c.pairs, c.skipped};
            guard.verify(out);
            put_scalar(out, "r", r.r);
            if (degenerate_pair(kind) && !std::isnan(r.r))
                out.problems.push_back("r is " + full(r.r) + " on degenerate inputs (" +
                                       kPairKindNames[static_cast<int>(kind)] + "), expected NaN");
            put_scalar(out, "pairs", static_cast<double>(r.pairs));
            put_scalar(out, "skipped", static_cast<double>(r.skipped));
            if (r.pairs + r.skipped != upper_pairs(S))
                out.problems.push_back("pairs + skipped = " + std::to_string(r.pairs + r.skipped) + ", expected " +
                                       std::to_string(upper_pairs(S)));
        };
    };
    return c;
}

Case compare_case(Measure m, PairKind kind, int64_t S) {
    Case c;
    c.op = "compare";
    c.label = std::string(measure_name(m)) + " " + kPairKindNames[static_cast<int>(kind)];
    c.shapes = sz("S", S);
    const bool ranks = m == Measure::Spearman || m == Measure::Kendall;
    c.precision = ranks ? "fp64 ranks" : "fp64 sums";
    // Degenerate inputs make the value NaN on both sides by definition (compare.h / measures.h).
    const Nan nan = degenerate_pair(kind) ? Nan::SameSlots : Nan::Never;
    c.checks = {{"value", Metric::MaxAbs, ranks ? kRankAbs : kMomentAbs, nan},
                {"pairs", Metric::Exact, kExact},
                {"skipped", Metric::Exact, kExact}};
    c.setup = [m, kind, S](Gen& g, const CaseEnv&) -> Runner {
        Matrix a, b;
        compare_inputs(g, kind, S, S / 3 + 1, &a, &b);
        return [a, b, m, S, kind](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("a", a);
            guard.add("b", b);
            const CompareResult r = be.compare(a, {Array(b)}, {m}).at(0).at(0);
            guard.verify(out);
            put_scalar(out, "value", r.value);
            if (degenerate_pair(kind) && !std::isnan(r.value))
                out.problems.push_back("value is " + full(r.value) + " on degenerate inputs (" +
                                       kPairKindNames[static_cast<int>(kind)] + "), expected NaN for every measure");
            put_scalar(out, "pairs", static_cast<double>(r.pairs));
            put_scalar(out, "skipped", static_cast<double>(r.skipped));
            if (r.pairs + r.skipped != upper_pairs(S))
                out.problems.push_back("pairs + skipped = " + std::to_string(r.pairs + r.skipped) + ", expected " +
                                       std::to_string(upper_pairs(S)));
        };
    };
    return c;
}

// An RDM comparison with inputs that must be rejected (InputError on both sides).
Case compare_error_case(const std::string& op, const std::string& label, int64_t Sa, int64_t Ca, int64_t Sb, int64_t Cb) {
    Case c;
    c.op = "compare";
    c.label = op + " " + label;
    c.shapes = "a " + std::to_string(Sa) + "x" + std::to_string(Ca) + ", b " + std::to_string(Sb) + "x" + std::to_string(Cb);
    c.precision = "-";
    c.expect_error = "InputError";
    c.setup = [op, Sa, Ca, Sb, Cb](Gen& g, const CaseEnv&) -> Runner {
        const Matrix a = g.uniform_matrix(Sa, Ca, 0.0f, 2.0f), b = g.uniform_matrix(Sb, Cb, 0.0f, 2.0f);
        return [a, b, op](Backend& be, Output& out, int) {
            const Measure m = op == "pearson" ? Measure::Pearson : Measure::Spearman;
            put_scalar(out, "value", be.compare(a, {Array(b)}, {m}).at(0).at(0).value);
        };
    };
    return c;
}

// One reference RDM against several models with every measure in one call: result[model][measure].
Case compare_batch_case(int64_t S, int models) {
    Case c;
    c.op = "compare";
    c.label = "batch of " + std::to_string(models) + " models x 4 measures";
    c.shapes = sz("S", S);
    c.precision = "fp64 sums and ranks";
    c.checks = {{"value", Metric::MaxAbs, kMomentAbs}, {"pairs", Metric::Exact, kExact}};
    c.setup = [S, models](Gen& g, const CaseEnv&) -> Runner {
        Matrix ref, first;
        rdm_pair(g, S, false, S / 4, &ref, &first);
        std::vector<Matrix> ms = {first};
        for (int l = 1; l < models; ++l) {
            Matrix a, b;
            rdm_pair(g, S, l % 2 == 1, 0, &a, &b);
            ms.push_back(b);
        }
        return [ref, ms, S](Backend& be, Output& out, int) {
            const std::vector<Measure> measures = {Measure::Pearson, Measure::Spearman, Measure::Kendall,
                                                   Measure::Cosine};
            const std::vector<Array> arrays(ms.begin(), ms.end());
            const auto table = be.compare(ref, arrays, measures);
            std::vector<double> values, pairs;
            for (const auto& row : table)
                for (const CompareResult& r : row) {
                    values.push_back(r.value);
                    pairs.push_back(static_cast<double>(r.pairs));
                }
            put_vector(out, "value", values, ms.size() * measures.size());
            put_vector(out, "pairs", pairs, ms.size() * measures.size());
            // Each entry is what a call with that one model and measure gives.
            for (size_t l = 0; l < ms.size() && l < table.size(); ++l)
                for (size_t k = 0; k < measures.size() && k < table[l].size(); ++k) {
                    const double one = be.compare(ref, {Array(ms[l])}, {measures[k]}).at(0).at(0).value;
                    if (!(one == table[l][k].value) && !(std::isnan(one) && std::isnan(table[l][k].value)))
                        out.problems.push_back("batch entry [" + std::to_string(l) + "][" + std::to_string(k) + "] " +
                                               full(table[l][k].value) + " differs from the single call " + full(one));
                }
            (void)S;
        };
    };
    return c;
}

// ---------------------------------------------------------------- cka
// Degenerate responses (measures.h: responses_degenerate_reason): every stimulus the same response, exactly (X) or
// up to float rounding (Y): NaN on both sides by definition, no InputError (the backends check shapes only).
enum class CkaInput { Related, ConstantX, NearConstantY };

Case cka_case(int64_t S, int64_t N1, int64_t N2, bool debiased, const std::string& expect_error = "",
              int64_t S2 = -1, CkaInput input = CkaInput::Related) {
    Case c;
    c.op = "cka";
    c.label = std::string(debiased ? "debiased" : "plain") +
              (input == CkaInput::ConstantX       ? ", X constant"
               : input == CkaInput::NearConstantY ? ", Y constant up to rounding"
                                                  : "");
    if (S2 < 0) S2 = S;
    c.shapes = "X " + std::to_string(S) + "x" + std::to_string(N1) + ", Y " + std::to_string(S2) + "x" + std::to_string(N2);
    c.precision = "fp32 Gram, fp64 sums";
    c.expect_error = expect_error;
    // Debiased CKA of fewer than 4 stimuli is undefined: NaN beside the plain form on both sides.
    const bool nan_expected = input != CkaInput::Related || (debiased && S < 4 && S == S2);
    c.checks = {{"cka", Metric::MaxAbs, kCkaAbs, nan_expected ? Nan::SameSlots : Nan::Never}};
    c.setup = [S, S2, N1, N2, debiased, input, nan_expected](Gen& g, const CaseEnv&) -> Runner {
        Matrix x = g.uniform_matrix(S, N1, -1.0f, 1.0f);
        Matrix y = g.uniform_matrix(S2, N2, -1.0f, 1.0f);
        for (int64_t i = 0; i < std::min(S, S2); ++i)  // Y shares part of X's structure: CKA well away from 0
            for (int64_t j = 0; j < std::min(N1, N2); ++j) y.at(i, j) = 0.8f * x.at(i, j) + 0.3f * y.at(i, j);
        if (input == CkaInput::ConstantX)  // every row the first one
            for (int64_t i = 1; i < S; ++i)
                for (int64_t j = 0; j < N1; ++j) x.at(i, j) = x.at(0, j);
        if (input == CkaInput::NearConstantY)  // every row the first one, odd rows one float up
            for (int64_t i = 1; i < S2; ++i)
                for (int64_t j = 0; j < N2; ++j) y.at(i, j) = (i % 2) ? std::nextafter(y.at(0, j), 4.0f) : y.at(0, j);
        return [x, y, debiased, input, nan_expected](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("x", x);
            guard.add("y", y);
            const CkaResult both = be.cka(x, y);
            const double v = debiased ? both.debiased : both.plain;
            guard.verify(out);
            put_scalar(out, "cka", v);
            if (nan_expected && !std::isnan(v))
                out.problems.push_back("cka is " + full(v) + (input != CkaInput::Related ? " on degenerate responses"
                                                                                         : " with fewer than 4 stimuli") +
                                       ", expected NaN");
        };
    };
    return c;
}

// ---------------------------------------------------------------- bootstrap
// first: the index of the first resample (a rank's range of a distributed run).
Case bootstrap_case(const std::string& label, int64_t S, int models, int R, bool nan_model = false, int64_t first = 0) {
    Case c;
    c.op = "bootstrap";
    c.label = label;
    c.shapes = sz("S", S) + " models=" + std::to_string(models) + " " + sz("R", R) +
               (first ? " first=" + std::to_string(first) : std::string());
    c.precision = "fp64 (GPU fp32 GEMM)";
    // S = 3: a resample with fewer than 3 distinct stimuli is NaN on both twins (stats.h), and r can sit near 0.
    const bool tiny = S < 5;
    const Nan nan = tiny ? Nan::SameSlots : Nan::Never;
    const Metric metric = tiny ? Metric::MaxAbs : Metric::MaxRel;
    const double tol = tiny ? kBootstrapAbs : kBootstrapRel;
    c.checks = {{"samples", metric, tol, nan}, {"lo", metric, tol, nan}, {"hi", metric, tol, nan},
                {"nan_samples", Metric::Exact, kExact}};
    if (nan_model) {
        c.expect_error = "InputError";
        c.checks.clear();
    }
    c.setup = [S, models, R, nan_model, first](Gen& g, const CaseEnv&) -> Runner {
        const Matrix ref = random_rdm(g, S);
        std::vector<Matrix> ms;
        const float mixes[] = {0.8f, 0.5f, 0.65f};
        for (int l = 0; l < models; ++l) ms.push_back(random_rdm(g, S, &ref, mixes[l % 3]));
        if (nan_model) ms.back().at(0, S - 1) = kNaNf;
        const uint64_t seed = g.bits();
        return [ref, ms, R, seed, first](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("ref", ref);
            for (size_t l = 0; l < ms.size(); ++l) guard.add("model " + std::to_string(l), ms[l]);
            const BootstrapResult r = be.bootstrap(ref, std::vector<Array>(ms.begin(), ms.end()), R, seed, first);
            guard.verify(out);
            const size_t M = ms.size();
            if (r.samples.size() != M)
                out.problems.push_back("samples: " + std::to_string(r.samples.size()) + " models, expected " + std::to_string(M));
            for (size_t l = 0; l < M; ++l)
                put_vector(out, "samples[" + std::to_string(l) + "]",
                           l < r.samples.size() ? r.samples[l] : std::vector<double>(), static_cast<size_t>(R));
            put_vector(out, "lo", r.lo, M);
            put_vector(out, "hi", r.hi, M);
            put_vector(out, "nan_samples", r.nan_samples, M);
        };
    };
    return c;
}

// ---------------------------------------------------------------- evaluate_moments
// The weighted sums of the evaluation bootstrap (evaluate.h): K data RDMs and M models (float64 vectors), R pattern
// resamples' counts drawn with the engine's bootstrap_draw; both twins in double (the GPU with DGEMM in another
// summation order).
Case evaluate_moments_case(const std::string& label, int64_t S, int64_t K, int64_t M, int64_t R, bool centre) {
    Case c;
    c.op = "evaluate_moments";
    c.label = label;
    c.shapes = sz("S", S) + " K=" + std::to_string(K) + " M=" + std::to_string(M) + " " + sz("R", R);
    c.precision = "fp64";
    c.checks = {{"n", Metric::MaxRel, 1e-12}, {"sx", Metric::RelL2, 1e-11}, {"G", Metric::RelL2, 1e-11},
                {"sy", Metric::RelL2, 1e-11}, {"syy", Metric::RelL2, 1e-11}, {"C", Metric::RelL2, 1e-11}};
    c.setup = [S, K, M, R, centre](Gen& g, const CaseEnv&) -> Runner {
        const int64_t P = S * (S - 1) / 2;
        std::vector<double> data(static_cast<size_t>(K * P)), models(static_cast<size_t>(M * P));
        for (double& v : data) v = g.uniform(0.0f, 2.0f);
        for (double& v : models) v = g.uniform(0.0f, 2.0f);
        const uint64_t seed = g.bits();
        std::vector<double> counts(static_cast<size_t>(R * S), 0.0);
        for (int64_t r = 0; r < R; ++r)
            for (int64_t k = 0; k < S; ++k) counts[r * S + bootstrap_draw(seed, S, r, k)] += 1.0;
        return [=](Backend& be, Output& out, int) {
            const WeightedMoments w = be.evaluate_moments(data, K, models, M, S, counts, R, centre);
            put_vector(out, "n", w.n, static_cast<size_t>(R));
            put_vector(out, "sx", w.sx, static_cast<size_t>(R * K));
            put_vector(out, "G", w.G, static_cast<size_t>(R * K * K));
            put_vector(out, "sy", w.sy, static_cast<size_t>(R * M));
            put_vector(out, "syy", w.syy, static_cast<size_t>(R * M));
            put_vector(out, "C", w.C, static_cast<size_t>(R * K * M));
        };
    };
    return c;
}

// ---------------------------------------------------------------- permutation
// first: the index of the first permutation (a rank's range of a distributed run).
Case permutation_case(const std::string& label, int64_t S, int P, float mix, bool nan_input = false,
                      int64_t first = 0) {
    Case c;
    c.op = "permutation";
    c.label = label;
    c.shapes = sz("S", S) + " " + sz("P", P) + (first ? " first=" + std::to_string(first) : std::string());
    c.precision = "fp64";
    c.checks = {{"r_obs", Metric::MaxAbs, kPermObsAbs}, {"p_value", Metric::Exact, kExact},
                {"null", Metric::MaxAbs, kPermNullAbs}};
    if (nan_input) {
        c.expect_error = "InputError";
        c.checks.clear();
    }
    c.setup = [S, P, mix, nan_input, first](Gen& g, const CaseEnv&) -> Runner {
        const Matrix ref = random_rdm(g, S);
        Matrix model = random_rdm(g, S, &ref, mix);
        if (nan_input) model.at(1, 2) = kNaNf;
        const uint64_t seed = g.bits();
        return [ref, model, P, seed, first](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("ref", ref);
            guard.add("model", model);
            const std::vector<PermutationResult> all = be.permutation(ref, {Array(model), Array(ref)}, P, seed, first);
            const PermutationResult& r = all.at(0);
            if (all.size() != 2 || all[1].r_obs < 1.0 - 1e-9)  // the reference against itself: r = 1
                out.problems.push_back("permutation batch: the second model (the reference itself) gave r_obs " +
                                       (all.size() == 2 ? full(all[1].r_obs) : std::string("(missing)")));
            guard.verify(out);
            put_scalar(out, "r_obs", r.r_obs);
            put_scalar(out, "p_value", r.p_value);
            put_vector(out, "null", r.null, static_cast<size_t>(P));
        };
    };
    return c;
}

// ---------------------------------------------------------------- noise_ceiling
Case noise_ceiling_case(const std::string& label, int64_t bins_n, int64_t T, int64_t N, int splits,
                        const std::string& expect_error = "", bool short_bins = false) {
    Case c;
    c.op = "noise_ceiling";
    c.label = label;
    c.shapes = "bins=" + std::to_string(bins_n) + " " + sz("T", T) + " " + sz("N", N) + " splits=" + std::to_string(splits);
    c.precision = "fp32 RDMs, fp64 r";
    c.expect_error = expect_error;
    c.checks = {{"ceiling", Metric::MaxAbs, kCeilingAbs}, {"r_half_mean", Metric::MaxAbs, kCeilingAbs},
                {"r_half", Metric::MaxAbs, kCeilingAbs},  {"bins_kept", Metric::Exact, kExact},
                {"bins_dropped", Metric::Exact, kExact},  {"kept_ids", Metric::Exact, kExact}};
    c.setup = [bins_n, T, N, splits, short_bins](Gen& g, const CaseEnv&) -> Runner {
        const Matrix signal = g.uniform_matrix(bins_n, N, -1.0f, 1.0f);
        Matrix resp(T, N);
        std::vector<int64_t> bins(static_cast<size_t>(T));
        std::vector<int64_t> count(static_cast<size_t>(bins_n), 0);
        for (int64_t t = 0; t < T; ++t) {
            // every bin at least once, the rest at random (some bins end up with one trial: dropped)
            const int64_t b = t < bins_n ? t : g.integer(0, bins_n - 1);
            ++count[static_cast<size_t>(b)];
            bins[static_cast<size_t>(t)] = 3 * b + 11;
            for (int64_t n = 0; n < N; ++n) resp.at(t, n) = g.uniform(-1.0f, 1.0f) + signal.at(b, n);
        }
        int64_t kept = 0;
        for (int64_t k : count) kept += k >= 2;
        if (short_bins) bins.pop_back();  // bins.size() != T: an InputError
        return [resp, bins, splits, kept, bins_n, seed = g.bits()](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("resp", resp);
            guard.add("bins", bins.data(), bins.size() * sizeof(int64_t));
            const NoiseCeilingResult r = be.noise_ceiling(resp, bins, splits, seed);
            guard.verify(out);
            put_scalar(out, "ceiling", r.ceiling);
            put_scalar(out, "r_half_mean", r.r_half_mean);
            put_vector(out, "r_half", r.r_half, static_cast<size_t>(splits));
            put_scalar(out, "bins_kept", static_cast<double>(r.bins_kept));
            put_scalar(out, "bins_dropped", static_cast<double>(r.bins_dropped));
            put_vector(out, "kept_ids", r.kept_ids, static_cast<size_t>(kept));
            if (r.bins_kept != kept || r.bins_dropped != bins_n - kept)
                out.problems.push_back("bins kept/dropped " + std::to_string(r.bins_kept) + "/" +
                                       std::to_string(r.bins_dropped) + ", the input has " + std::to_string(kept) +
                                       "/" + std::to_string(bins_n - kept));
        };
    };
    return c;
}

// ---------------------------------------------------------------- synthetic V1
SyntheticV1Params v1_params(int64_t neurons, int64_t trials, int bins, int factors) {
    SyntheticV1Params p;
    p.neurons = neurons;
    p.trials = trials;
    p.bins = bins;
    p.shared_factors = factors;
    return p;
}

std::string v1_shapes(const SyntheticV1Params& p) {
    return sz("neurons", p.neurons) + " " + sz("trials", p.trials) + " bins=" + std::to_string(p.bins) +
           " factors=" + std::to_string(p.shared_factors);
}

Case synthetic_v1_case(const std::string& label, SyntheticV1Params p, const std::string& expect_error = "") {
    Case c;
    c.op = "synthetic_v1";
    c.label = label;
    c.shapes = v1_shapes(p);
    c.precision = "fp32";
    c.expect_error = expect_error;
    c.checks = {{"resp", Metric::RelL2, kFp32RelL2}, {"stimuli", Metric::Exact, kExact}};
    c.setup = [p](Gen& g, const CaseEnv&) -> Runner {
        SyntheticV1Params q = p;
        q.seed = g.bits() % 100000;
        return [q](Backend& be, Output& out, int) {
            const SyntheticV1 v = be.synthetic_v1(q);
            put_matrix(out, "resp", v.resp, q.bins, q.neurons);
            put_vector(out, "stimuli", v.stimuli, static_cast<size_t>(q.bins));
        };
    };
    return c;
}

Case synthetic_v1_trials_case(const std::string& label, SyntheticV1Params p) {
    Case c;
    c.op = "synthetic_v1_trials";
    c.label = label;
    c.shapes = v1_shapes(p);
    c.precision = "fp32";
    c.checks = {{"resp", Metric::RelL2, kFp32RelL2}, {"orientation", Metric::Exact, kExact},
                {"bin", Metric::Exact, kExact}};
    c.setup = [p](Gen& g, const CaseEnv&) -> Runner {
        SyntheticV1Params q = p;
        q.seed = g.bits() % 100000;
        return [q](Backend& be, Output& out, int) {
            const SyntheticV1Trials v = be.synthetic_v1_trials(q);
            put_matrix(out, "resp", v.resp, q.trials, q.neurons);
            put_vector(out, "orientation", v.orientation, static_cast<size_t>(q.trials));
            put_vector(out, "bin", v.bin, static_cast<size_t>(q.trials));
        };
    };
    return c;
}

// ---------------------------------------------------------------- CNN
Case cnn_forward_case(const std::string& label, int B, bool gratings) {
    Case c;
    c.op = "cnn_forward";
    c.label = label;
    c.shapes = sz("B", B) + " 48x64 -> conv 6x48x64, pool 288, fc 10, out 1";
    c.precision = "fp32 (conv bit-exact)";
    c.checks = {{"batch", Metric::Exact, kExact},          {"conv", Metric::Exact, kExact},
                {"pool", Metric::Exact, kExact},           {"fc", Metric::RelL2, kFp32RelL2},
                {"fc_relu", Metric::RelL2, kFp32RelL2},    {"logit", Metric::RelL2, kFp32RelL2},
                {"prob", Metric::RelL2, kFp32RelL2}};
    c.setup = [B, gratings](Gen& g, const CaseEnv&) -> Runner {
        const std::vector<float> params = cnn_init_params(g.bits() % (1u << 30));
        Matrix images;
        if (gratings) {
            std::vector<float> angles;
            for (int i = 0; i < B; ++i) angles.push_back(g.uniform(-90.0f, 90.0f));
            images = gratings_ref(angles, GratingParams{});
        } else {
            images = g.uniform_matrix(B, cnn::kPixels, 0.0f, 1.0f);
        }
        return [params, images, B](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("params", params.data(), params.size() * sizeof(float));
            guard.add("images", images);
            const CnnActivations act = be.cnn_forward(params, images);
            guard.verify(out);
            const size_t b = static_cast<size_t>(B);
            put_scalar(out, "batch", act.batch);
            put_vector(out, "conv", act.conv, b * cnn::kChannels * cnn::kPixels);
            put_vector(out, "pool", act.pool, b * cnn::kPooled);
            put_vector(out, "fc", act.fc, b * cnn::kHidden);
            put_vector(out, "fc_relu", act.fc_relu, b * cnn::kHidden);
            put_vector(out, "logit", act.logit, b);
            put_vector(out, "prob", act.prob, b);
        };
    };
    return c;
}

// Training on the tutorial's gratings (tie_free: on fixed random images instead) through `kernels`' GPU path. The
// gratings' pool windows tie exactly, so the cuDNN path (which routes a tied window's gradient its own way) is
// compared at FP32 tolerance only on the tie-free images: std::mt19937(2037) U(-1, 1), 40 images, batch 16, 2
// epochs, seed 12, the trajectory that tests/test_cnn_gpu.cu checks for near ties (tie_free_config, kTieFreeSeed).
Case cnn_train_case(const std::string& label, int train_size, int batch, int epochs, CnnKernels kernels,
                    bool tie_free = false) {
    Case c;
    c.op = "cnn_train";
    c.label = label;
    const int steps = (train_size + batch - 1) / batch;
    c.shapes = "images=" + std::to_string(train_size) + " batch=" + std::to_string(batch) + " epochs=" +
               std::to_string(epochs) + " (" + std::to_string(steps * epochs) + " steps) kernels=" +
               cnn_kernels_name(kernels) + (tie_free ? " tie-free random images" : " gratings");
    c.precision = "fp32";
    c.checks = {{"step_losses", Metric::RelL2, kFp32RelL2},    {"epoch_losses", Metric::RelL2, kFp32RelL2},
                {"params", Metric::RelL2, kFp32RelL2},         {"callback_epoch", Metric::Exact, kExact},
                {"callback_loss", Metric::RelL2, kFp32RelL2}};
    c.setup = [train_size, batch, epochs, steps, kernels, tie_free](Gen& g, const CaseEnv&) -> Runner {
        TrainConfig config;
        config.train_size = train_size;
        config.batch = batch;
        config.epochs = epochs;
        config.kernels = kernels;
        config.seed = tie_free ? 12 : g.bits() % 100000;
        std::vector<float> angles, labels;
        Matrix images;
        if (tie_free) {
            std::mt19937 gen(2037);
            std::uniform_real_distribution<float> pixel(-1.0f, 1.0f);
            images = Matrix(train_size, cnn::kPixels);
            for (float& v : images.data) v = pixel(gen);
            for (int i = 0; i < train_size; ++i) labels.push_back(static_cast<float>(i % 2));
        } else {
            cnn_training_set(config, &angles, &labels);
            images = gratings_ref(angles, GratingParams{});
        }
        const std::vector<float> params0 = cnn_init_params(config.seed);
        return [config, images, labels, params0, steps](Backend& be, Output& out, int) {
            InputGuard guard;
            guard.add("images", images);
            guard.add("labels", labels.data(), labels.size() * sizeof(float));
            std::vector<float> params = params0;
            std::vector<double> cb_epoch, cb_loss;
            const TrainResult r = be.cnn_train(params, images, labels, config, [&](int epoch, float loss) {
                cb_epoch.push_back(epoch);
                cb_loss.push_back(loss);
            });
            guard.verify(out);
            const size_t E = static_cast<size_t>(config.epochs);
            put_vector(out, "step_losses", r.step_losses, E * static_cast<size_t>(steps));
            put_vector(out, "epoch_losses", r.epoch_losses, E);
            put_vector(out, "params", params, static_cast<size_t>(cnn::kParams));
            put_vector(out, "callback_epoch", cb_epoch, E);
            put_vector(out, "callback_loss", cb_loss, E);
            // Within one side: the callback sees epoch e + 1 and that epoch's loss, which is its last step's loss.
            for (size_t e = 0; e < E && e < cb_epoch.size() && e < r.epoch_losses.size(); ++e) {
                if (cb_epoch[e] != static_cast<double>(e + 1) || cb_loss[e] != r.epoch_losses[e])
                    out.problems.push_back("on_epoch call " + std::to_string(e) + " got (" + full(cb_epoch[e]) + ", " +
                                           full(cb_loss[e]) + "), epoch_losses says " + full(r.epoch_losses[e]));
                const size_t last = (e + 1) * static_cast<size_t>(steps) - 1;
                if (last < r.step_losses.size() && r.epoch_losses[e] != r.step_losses[last])
                    out.problems.push_back("epoch_losses[" + std::to_string(e) + "] is not the epoch's last step loss");
            }
        };
    };
    return c;
}

// ====================================================================== the case table
std::vector<Case> build_cases() {
    std::vector<Case> t;
    // gratings: the tutorial's 48x64, a coarse 12x16 and odd 16x22 images; batch tails 1, 7, 33.
    t.push_back(gratings_case("tutorial", 7, GratingParams{}));
    t.push_back(gratings_case("coarse", 33, GratingParams{1.0 / 20.0, 0.025}));
    t.push_back(gratings_case("odd size", 1, GratingParams{1.0 / 13.0, 0.033}));
    t.push_back(gratings_case("odd size", 257, GratingParams{1.0 / 28.0, 0.033}));

    t.push_back(rdm_spread_case("random", 33, 0, false));
    t.push_back(rdm_spread_case("NaN entries", 257, 40, false));
    t.push_back(rdm_spread_case("constant", 9, 2, true));
    t.push_back(rdm_memory_case());
    // row_moments: tiny N, few S, constant rows (m2 exactly 0), wide rows.
    t.push_back(row_moments_case("constant row", 3, 1000, {1}));
    t.push_back(row_moments_case("tiny N, constant rows", 37, 5, {0, 36}));
    t.push_back(row_moments_case("no constant row", 257, 333, {}));
    t.push_back(row_moments_case("wide rows", 181, 4099, {}));

    // rdm: one-shot / streamed / tiled, FP32 and TF32, constant rows kept as NaN or rejected, input errors.
    auto rs = [](std::string label, int64_t S, int64_t N, Precision p, uint64_t cap) {
        RdmSpec s;
        s.label = std::move(label);
        s.S = S;
        s.N = N;
        s.precision = p;
        s.cap = cap;
        return s;
    };
    const Precision F = Precision::FP32, T32 = Precision::TF32;
    t.push_back(rdm_case(rs("one-shot", 3, 7, F, 0)));
    t.push_back(rdm_case(rs("one-shot", 181, 1001, F, 0)));
    t.push_back(rdm_case(rs("one-shot", 257, 1999, F, 0)));
    t.push_back(rdm_case(rs("one-shot", 257, 1999, T32, 0)));
    t.push_back(rdm_case(rs("one-shot", 513, 3001, F, 0)));
    t.push_back(rdm_case(rs("one-shot", 513, 3001, T32, 0)));
    t.push_back(rdm_case(rs("one-shot capped", 33, 257, F, 1ull << 30)));
    t.push_back(rdm_case(rs("streamed", 257, 1999, F, streamed_cap(257, 300))));
    t.push_back(rdm_case(rs("streamed", 3, 1000, F, streamed_cap(3, 64))));
    t.push_back(rdm_case(rs("streamed", 100, 1500, T32, streamed_cap(100, 400))));
    t.push_back(rdm_case(rs("tiled", 257, 1999, F, tiled_cap(257, 40, 500))));
    t.push_back(rdm_case(rs("tiled", 7, 100, F, tiled_cap(7, 3, 8))));
    t.push_back(rdm_case(rs("tiled", 129, 777, T32, tiled_cap(129, 33, 200))));
    // rdm, euclidean (the Gram path with row norms): every plan kind, FP32 and TF32.
    for (RdmSpec s : {rs("one-shot", 3, 7, F, 0), rs("one-shot", 257, 1999, F, 0), rs("one-shot", 181, 1001, T32, 0),
                      rs("streamed", 257, 1999, F, streamed_cap(257, 300)),
                      rs("tiled", 257, 1999, F, tiled_cap(257, 40, 500)), rs("tiled", 7, 100, F, tiled_cap(7, 3, 8))}) {
        s.kind = RdmKind::Euclidean;
        t.push_back(rdm_case(s));
    }
    // whiten and cross_gram (mahalanobis and crossnobis).
    t.push_back(whiten_case("full factor", 37, 129, false));
    t.push_back(whiten_case("full factor", 3, 1, false));
    t.push_back(whiten_case("diagonal factor", 257, 333, true));
    t.push_back(cross_gram_case("two folds", 2, 9, 257));
    t.push_back(cross_gram_case("five folds", 5, 33, 1001));
    t.push_back(cross_gram_case("one fold", 1, 3, 7));
    {
        RdmSpec s = rs("one-shot, constant rows kept", 33, 257, F, 0);
        s.constant = {0, 17};
        s.policy = ConstantRows::Nan;
        t.push_back(rdm_case(s));
        s = rs("tiled, constant rows kept", 100, 1500, F, tiled_cap(100, 16, 100));
        s.constant = {3, 64};
        s.policy = ConstantRows::Nan;
        t.push_back(rdm_case(s));
        s = rs("streamed TF32, constant row kept", 65, 700, T32, streamed_cap(65, 200));
        s.constant = {64};
        s.policy = ConstantRows::Nan;
        t.push_back(rdm_case(s));
        s = rs("one-shot, constant row rejected", 7, 33, F, 0);
        s.constant = {2};
        t.push_back(rdm_case(s, "InputError"));
        s = rs("streamed, constant row rejected", 33, 700, F, streamed_cap(33, 128));
        s.constant = {32};
        t.push_back(rdm_case(s, "InputError"));
        // Rows constant only up to float rounding (degenerate_rows, before any work): NaN rows and columns on every
        // plan (a tiled RDM's file included), or an InputError.
        s = rs("one-shot, rows constant up to rounding kept", 33, 257, F, 0);
        s.near_constant = {4, 20};
        s.policy = ConstantRows::Nan;
        t.push_back(rdm_case(s));
        s = rs("streamed, row constant up to rounding kept", 65, 700, F, streamed_cap(65, 200));
        s.near_constant = {1};
        s.policy = ConstantRows::Nan;
        t.push_back(rdm_case(s));
        s = rs("tiled, constant rows kept (exact and up to rounding)", 100, 1500, F, tiled_cap(100, 16, 100));
        s.constant = {64};
        s.near_constant = {3, 99};
        s.policy = ConstantRows::Nan;
        t.push_back(rdm_case(s));
        s = rs("one-shot, row constant up to rounding rejected", 9, 40, F, 0);
        s.near_constant = {8};
        t.push_back(rdm_case(s, "InputError"));
        s = rs("tiled, row constant up to rounding rejected", 65, 300, F, tiled_cap(65, 16, 64));
        s.near_constant = {0};
        t.push_back(rdm_case(s, "InputError"));
        // Every row one pattern up to an offset and a scale: the RDM is constant (check_rdm_result): all NaN, or an
        // InputError.
        s = rs("one-shot, rows equal up to offset and scale kept", 40, 300, F, 0);
        s.same_pattern = true;
        s.policy = ConstantRows::Nan;
        t.push_back(rdm_case(s));
        s = rs("streamed, rows equal up to offset and scale kept", 33, 700, F, streamed_cap(33, 128));
        s.same_pattern = true;
        s.policy = ConstantRows::Nan;
        t.push_back(rdm_case(s));
        s = rs("one-shot, rows equal up to offset and scale rejected", 40, 300, F, 0);
        s.same_pattern = true;
        t.push_back(rdm_case(s, "InputError"));
        s = rs("too few stimuli", 2, 50, F, 0);
        t.push_back(rdm_case(s, "InputError"));
        s = rs("NaN input", 9, 40, F, 0);
        s.nan_input = true;
        t.push_back(rdm_case(s, "InputError"));
        s = rs("tiled without output path", 65, 300, F, tiled_cap(65, 16, 64));
        s.no_output_path = true;
        t.push_back(rdm_case(s, "InputError"));
    }

    // compare_pearson: S = 3 (3 pairs), NaN pairs in both triangles, large S.
    t.push_back(pearson_case("tiny", 3, 0));
    t.push_back(pearson_case("NaN pairs", 33, 12));
    t.push_back(pearson_case("NaN pairs", 1001, 40));
    t.push_back(pearson_case("large", 2000, 3));
    t.push_back(pearson_case("constant side", 9, 0, PairKind::ConstantSide));
    t.push_back(pearson_case("side constant up to rounding", 33, 4, PairKind::NearConstantSide));
    t.push_back(pearson_case("one used pair", 5, 0, PairKind::OnePair));
    t.push_back(compare_error_case("pearson", "size mismatch", 5, 5, 6, 6));

    // compare: every measure on ties, continuous values, and the degenerate pairs (NaN by definition): a constant
    // side, an all-NaN side, a side constant up to rounding, one used pair.
    for (Measure m : {Measure::Pearson, Measure::Spearman, Measure::Kendall, Measure::Cosine}) {
        t.push_back(compare_case(m, PairKind::Ties, 33));
        t.push_back(compare_case(m, PairKind::Continuous, 257));
        t.push_back(compare_case(m, PairKind::ConstantSide, 7));
        t.push_back(compare_case(m, PairKind::AllNan, 4));
        t.push_back(compare_case(m, PairKind::NearConstantSide, 33));
        t.push_back(compare_case(m, PairKind::OnePair, 6));
    }
    t.push_back(compare_case(Measure::Spearman, PairKind::Ties, 1001));
    t.push_back(compare_case(Measure::Kendall, PairKind::Ties, 1001));
    t.push_back(compare_error_case("spearman", "too few stimuli", 2, 2, 2, 2));
    t.push_back(compare_error_case("spearman", "not square", 6, 5, 6, 5));
    // Batches: one reference, several models, every measure in one call.
    t.push_back(compare_batch_case(33, 3));
    t.push_back(compare_batch_case(257, 2));

    // cka: plain and debiased at small and odd sizes; S too small for debiased, mismatched stimuli.
    for (bool deb : {false, true}) {
        t.push_back(cka_case(5, 3, 4, deb));
        t.push_back(cka_case(181, 37, 23, deb));
        t.push_back(cka_case(257, 33, 7, deb));
        t.push_back(cka_case(1000, 300, 120, deb));
    }
    // cka of degenerate responses (NaN by definition), plain and debiased.
    for (bool deb : {false, true}) {
        t.push_back(cka_case(33, 7, 5, deb, "", -1, CkaInput::ConstantX));
        t.push_back(cka_case(33, 7, 5, deb, "", -1, CkaInput::NearConstantY));
    }
    t.push_back(cka_case(3, 4, 5, true));  // debiased NaN (fewer than 4 stimuli), plain defined
    t.push_back(cka_case(7, 4, 5, false, "InputError", 8));

    // bootstrap: one and two models, S = 3 (degenerate resamples NaN), odd S; a NaN model is rejected.
    t.push_back(bootstrap_case("two models", 50, 2, 200));
    t.push_back(bootstrap_case("one model", 33, 1, 100));
    t.push_back(bootstrap_case("odd S", 257, 1, 64));
    t.push_back(bootstrap_case("S=3 degenerate resamples", 3, 1, 50));
    t.push_back(bootstrap_case("large", 600, 2, 300));
    t.push_back(bootstrap_case("NaN in model", 9, 2, 10, true));
    t.push_back(bootstrap_case("a rank's range", 50, 2, 120, false, 1000));

    // evaluate_moments: corr (centred) and cosine sums, one pair block and several (S = 200: 19,900 pairs), R across
    // the 64-resample chunks.
    t.push_back(evaluate_moments_case("corr, small", 12, 3, 2, 10, true));
    t.push_back(evaluate_moments_case("cosine, several blocks and chunks", 200, 4, 5, 130, false));

    // permutation: weak and strong relations, a small S (7! labels), a NaN is rejected.
    t.push_back(permutation_case("weak relation", 50, 300, 0.05f));
    t.push_back(permutation_case("strong relation", 33, 100, 0.7f));
    t.push_back(permutation_case("tiny S", 7, 50, 0.3f));
    t.push_back(permutation_case("large", 600, 400, 0.05f));
    t.push_back(permutation_case("NaN input", 9, 10, 0.3f, true));
    t.push_back(permutation_case("a rank's range", 50, 150, 0.05f, false, 1000));

    // noise_ceiling: bins dropped (one trial), several splits; mismatched bins and too few bins are rejected.
    t.push_back(noise_ceiling_case("2 splits", 50, 260, 120, 2));
    t.push_back(noise_ceiling_case("3 splits, odd sizes", 13, 41, 33, 3));
    t.push_back(noise_ceiling_case("large", 600, 1500, 300, 2));
    t.push_back(noise_ceiling_case("bins shorter than trials", 13, 41, 33, 1, "InputError", true));
    t.push_back(noise_ceiling_case("fewer than 3 bins kept", 2, 5, 10, 1, "InputError"));

    // synthetic V1: small odd recordings, the tutorial's 360 bins with few neurons, no shared factors.
    t.push_back(synthetic_v1_case("small", v1_params(257, 400, 37, 3)));
    t.push_back(synthetic_v1_case("360 bins", v1_params(1001, 4598, 360, 3)));
    t.push_back(synthetic_v1_case("no shared factors", v1_params(33, 111, 37, 0)));
    t.push_back(synthetic_v1_case("3000 neurons", v1_params(3000, 4598, 360, 3)));
    t.push_back(synthetic_v1_case("fewer trials than bins", v1_params(10, 20, 37, 3), "InputError"));
    t.push_back(synthetic_v1_trials_case("small", v1_params(257, 400, 37, 3)));
    t.push_back(synthetic_v1_trials_case("full trials", v1_params(129, 4598, 360, 4)));

    // CNN: forward on random images and gratings with odd batches; a few training steps with a smaller last
    // batch, with whole batches only, and with a batch larger than the set.
    t.push_back(cnn_forward_case("random images", 37, false));
    t.push_back(cnn_forward_case("gratings", 64, true));
    t.push_back(cnn_forward_case("one image", 1, true));
    t.push_back(cnn_train_case("smaller last batch", 40, 16, 2, CnnKernels::exact));
    t.push_back(cnn_train_case("whole batches", 50, 25, 2, CnnKernels::exact));
    t.push_back(cnn_train_case("batch > images", 20, 32, 2, CnnKernels::exact));
    t.push_back(cnn_train_case("cuDNN path, no ties", 40, 16, 2, CnnKernels::cudnn, true));
    return t;
}

// ====================================================================== running
struct Options {
    bool list = false, self_check = false, small = false;
    std::string filter;
    bool have_seed = false;
    uint64_t seed = 0;
};

std::string error_text(const char* kind, const std::exception& e) { return std::string(kind) + ": " + e.what(); }

void run_side(const Runner& run, Backend& be, Output& out, int side) {
    TracingBackend tb(be, &out.ops);
    const uint64_t before = poison_violations();
    const auto t0 = std::chrono::steady_clock::now();
    try {
        run(tb, out, side);
    } catch (const InputError& e) {
        out.error = error_text("InputError", e);
    } catch (const OutOfMemoryError& e) {
        out.error = error_text("OutOfMemoryError", e);
    } catch (const RuntimeError& e) {
        out.error = error_text("RuntimeError", e);
    } catch (const std::exception& e) {
        out.error = error_text("exception", e);
    }
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t after = poison_violations();
    if (after != before)
        out.problems.push_back(std::to_string(after - before) +
                               " device sentinel tail(s) damaged during the call (see the poison lines above)");
}

// ---------------------------------------------------------------- canaries: the comparison must be able to fail
struct CanaryTally {
    int run = 0, detected = 0;
    std::vector<std::string> missed;
    void expect_fail(bool failed, const std::string& what) {
        ++run;
        if (failed) ++detected;
        else missed.push_back(what);
    }
};

Output copy_output(const Output& o) {
    Output c;
    c.error = o.error;
    c.problems = o.problems;
    for (const Field& f : o.fields) {
        Field& g = add_field(c, f.name, f.shape);
        std::memcpy(g.values.data(), f.values.data(), f.values.size() * sizeof(double));
    }
    return c;
}

// Corrupt the candidate's output of a passing case in every way the harness must notice: for every field, one
// slot NaN; one slot moved past each check's tolerance; one slot left as poison (unwritten); a changed shape;
// the field's storage tail damaged; the field removed; an error thrown on one side.
void mutation_canaries(const Case& c, const Output& a, const Output& b, CanaryTally& tally) {
    const std::string tag = c.op + " " + c.label;
    if (!c.expect_error.empty()) {
        Output ok = copy_output(b);
        ok.error.clear();
        tally.expect_fail(!compare_outputs(c, ok, b).pass, tag + ": an expected error missing on one side");
        return;
    }
    for (size_t i = 0; i < a.fields.size(); ++i) {
        const Field& fb = b.fields[i];
        const size_t n = fb.values.size();
        if (n == 0) continue;
        // The slot to corrupt: the largest finite |reference| value (a non-NaN slot in any case).
        size_t k = n;
        for (size_t j = 0; j < n; ++j)
            if (!std::isnan(fb.values[j]) && (k == n || std::fabs(fb.values[j]) > std::fabs(fb.values[k]))) k = j;
        const std::string ftag = tag + " / " + fb.name;
        if (k < n) {
            Output m = copy_output(a);
            m.fields[i].values[k] = kNaN;
            tally.expect_fail(!compare_outputs(c, m, b).pass, ftag + ": one slot NaN");
            Output u = copy_output(a);  // re-recorded with the last slot never written: stays poison
            Field& f = u.fields[i];
            PoisonedHost<double> fresh(n);
            for (size_t j = 0; j < n; ++j)
                if (j != k) fresh[j] = f.values[j];
            f.values = std::move(fresh);
            tally.expect_fail(!compare_outputs(c, u, b).pass, ftag + ": one slot left unwritten (poison)");
            for (const Check& ck : c.checks) {
                if (!check_matches(ck, fb.name)) continue;
                double norm = 0.0;
                for (size_t j = 0; j < n; ++j)
                    if (!std::isnan(fb.values[j])) norm += fb.values[j] * fb.values[j];
                norm = std::sqrt(norm);
                const double ref = fb.values[k];
                double moved = ref;
                switch (ck.metric) {
                    case Metric::Exact: moved = std::nextafter(ref, ref >= 0 ? HUGE_VAL : -HUGE_VAL); break;
                    case Metric::MaxAbs: moved = ref + 4.0 * ck.tol + 1e-300; break;
                    case Metric::MaxRel: moved = ref + (ref != 0.0 ? 4.0 * ck.tol * std::fabs(ref) : 1.0); break;
                    case Metric::RelL2: moved = ref + (norm > 0.0 ? 4.0 * ck.tol * norm : 1.0); break;
                }
                Output p = copy_output(a);
                p.fields[i].values[k] = moved;
                tally.expect_fail(!compare_outputs(c, p, b).pass,
                                  ftag + ": one slot moved past " + metric_name(ck.metric) + " " + num(ck.tol));
            }
        }
        {
            Output s = copy_output(a);  // a field one element short
            Field& f = s.fields[i];
            std::vector<int64_t> shape = f.shape;
            if (shape.empty()) shape = {0};
            else shape.back() -= 1;
            Field g{f.name, shape, PoisonedHost<double>(n - 1)};
            std::memcpy(g.values.data(), f.values.data(), (n - 1) * sizeof(double));
            f = std::move(g);
            tally.expect_fail(!compare_outputs(c, s, b).pass, ftag + ": shape changed");
        }
        {
            Output d = copy_output(a);
            d.fields[i].values.damage_tail_for_canary();
            tally.expect_fail(!compare_outputs(c, d, b).pass, ftag + ": host sentinel tail damaged");
        }
        {
            Output r = copy_output(a);
            r.fields.erase(r.fields.begin() + static_cast<std::ptrdiff_t>(i));
            tally.expect_fail(!compare_outputs(c, r, b).pass, ftag + ": field missing");
        }
    }
    Output e = copy_output(a);
    e.error = "RuntimeError: injected";
    tally.expect_fail(!compare_outputs(c, e, b).pass, tag + ": an error on the candidate only");
}

// Canaries that do not depend on a case's outputs: the recording helpers, the metrics, the table checks.
void standalone_canaries(CanaryTally& tally) {
    Case c;
    c.op = "canary";
    c.label = "standalone";
    c.checks = {{"m", Metric::RelL2, kFp32RelL2}};
    Matrix good(3, 4, 1.0f);
    Output ref;
    put_matrix(ref, "m", good, 3, 4);
    {
        Output ok;
        put_matrix(ok, "m", good, 3, 4);
        tally.expect_fail(compare_outputs(c, ok, ref).pass, "identical outputs compare equal");  // the control
    }
    {
        Matrix wrong(4, 3, 1.0f);  // the right number of values in the wrong shape
        Output o;
        put_matrix(o, "m", wrong, 3, 4);
        tally.expect_fail(!compare_outputs(c, o, ref).pass, "Matrix 4 x 3 where 3 x 4 is expected");
    }
    {
        Matrix short_data(3, 4, 1.0f);  // rows and cols right, data.size() one short
        short_data.data.pop_back();
        Output o;
        put_matrix(o, "m", short_data, 3, 4);
        tally.expect_fail(!compare_outputs(c, o, ref).pass, "Matrix data.size() one short");
    }
    {
        Matrix nan_both(3, 4, 1.0f);  // NaN in the same slot on both sides, the case does not allow it
        nan_both.at(1, 2) = kNaNf;
        Output o, r;
        put_matrix(o, "m", nan_both, 3, 4);
        put_matrix(r, "m", nan_both, 3, 4);
        tally.expect_fail(!compare_outputs(c, o, r).pass, "NaN in both at the same slot without permission");
        Case allowed = c;
        allowed.checks[0].nan = Nan::SameSlots;
        tally.expect_fail(compare_outputs(allowed, o, r).pass, "NaN in both at the same slot with permission");
    }
    {
        Output o;  // an output field no check covers
        put_matrix(o, "m", good, 3, 4);
        put_scalar(o, "extra", 1.0);
        Output r = copy_output(o);
        tally.expect_fail(!compare_outputs(c, o, r).pass, "an output field without a check");
        Case stale = c;  // a check that matches no field
        stale.checks.push_back({"gone", Metric::Exact, kExact});
        tally.expect_fail(!compare_outputs(stale, ref, ref).pass, "a check matching no field");
    }
    {
        Output o;  // the right error on one side only
        o.error = "InputError: x";
        Case err = c;
        err.expect_error = "InputError";
        tally.expect_fail(!compare_outputs(err, o, ref).pass, "an expected error on one side only");
        Output p;
        p.error = "RuntimeError: x";
        tally.expect_fail(!compare_outputs(err, o, p).pass, "a different error type");
    }
    {
        PoisonedHost<float> h(10);  // the host poison: fresh slots NaN, the tail intact, then damaged
        bool all_nan = true;
        for (size_t i = 0; i < h.size(); ++i) all_nan = all_nan && std::isnan(h[i]);
        tally.expect_fail(all_nan, "fresh poisoned host slots read as NaN");
        tally.expect_fail(h.tail_damage() == 0, "fresh poisoned host tail intact");
        h.damage_tail_for_canary();
        tally.expect_fail(h.tail_damage() != 0, "a damaged host tail detected");
    }
    {
        // Exact metric: one ulp; MaxAbs: just past; -0 vs +0 counts as equal values.
        const double a1[] = {1.0, 2.0}, b1[] = {1.0, std::nextafter(2.0, 3.0)};
        tally.expect_fail(!apply_check({"x", Metric::Exact, 0.0}, a1, b1, 2).pass, "exact: one ulp apart");
        const double a2[] = {0.0, 1.0 + 2e-6}, b2[] = {-0.0, 1.0};
        tally.expect_fail(!apply_check({"x", Metric::MaxAbs, 1e-6}, a2, b2, 2).pass, "max_abs: 2e-6 > 1e-6");
        tally.expect_fail(apply_check({"x", Metric::Exact, 0.0}, a2, a2, 2).pass, "exact: equal values pass");
        const double a3[] = {HUGE_VAL}, b3[] = {1.0};
        tally.expect_fail(!apply_check({"x", Metric::RelL2, 1e-5}, a3, b3, 1).pass, "rel_l2: an infinity");
    }
    {
        // The coverage check itself: a set missing one operation is reported.
        std::set<std::string> partial(kOperations.begin(), kOperations.end());
        partial.erase("cnn_train");
        bool missing = false;
        for (const std::string& op : kOperations) missing = missing || !partial.count(op);
        tally.expect_fail(missing, "coverage: a missing operation is noticed");
    }
}

#if defined(RSA_GPU_HAVE_CUDA)
// Device poison canary (GPU runs): a fresh DeviceBuffer reads back as NaN, and a byte written just past its end is
// reported as a violation on download().
void device_canaries(CanaryTally& tally) {
    const uint64_t before = poison_violations();
    {
        DeviceBuffer<float> d(100);
        std::vector<float> h(100, 0.0f);
        d.download(h.data(), h.size(), nullptr);
        bool all_nan = true;
        for (float v : h) all_nan = all_nan && std::isnan(v);
        tally.expect_fail(all_nan, "device: a fresh DeviceBuffer reads back as NaN");
        tally.expect_fail(poison_violations() == before, "device: an intact tail is not reported");
        CUDA_CHECK(cudaMemset(d.get() + 100, 0, 1));  // one byte past the end: inside the sentinel tail
        CUDA_CHECK(cudaDeviceSynchronize());
        d.download(h.data(), h.size(), nullptr);
        tally.expect_fail(poison_violations() == before + 1, "device: a damaged tail is reported on download");
    }  // release() reports it once more
    tally.expect_fail(poison_violations() == before + 2, "device: a damaged tail is reported on release");
}
#endif

void print_usage(const char* prog) {
    std::printf(
        "usage: %s [--list] [--self-check] [--small] [--filter SUBSTRING] [--seed N]\n"
        "  (default)      every case, GPU backend (candidate) against the CPU backend (reference);\n"
        "                 exit 77 without a usable GPU (1 with RSA_GPU_REQUIRE=1)\n"
        "  --self-check   every case, CPU backend on both sides, plus canaries and the coverage check\n"
        "  --list         print the case table (op, label, shapes, precision, checks) and exit\n"
        "  --filter S     only cases whose operation name contains S\n"
        "  --small        only cases whose sizes are all at most 1,000 (for compute-sanitizer runs)\n"
        "  --seed N       the run seed (default: fresh); each case's inputs come from (seed, case index)\n",
        prog);
}

std::string checks_text(const Case& c) {
    if (!c.expect_error.empty()) return "expects " + c.expect_error + " on both sides";
    std::string s;
    for (const Check& k : c.checks) {
        s += (s.empty() ? "" : "; ") + k.field + " " + metric_name(k.metric);
        if (k.metric != Metric::Exact) s += " < " + num(k.tol);
        if (k.nan == Nan::SameSlots) s += " (NaN allowed in the same slots)";
    }
    return s;
}

// Whether every number in the case's shapes text is at most 1,000 (--small: cases that stay quick under
// compute-sanitizer, which slows kernels ~100x).
bool is_small(const Case& c) {
    const std::string& t = c.shapes;
    for (size_t i = 0; i < t.size();) {
        if (!std::isdigit(static_cast<unsigned char>(t[i]))) { ++i; continue; }
        size_t j = i;
        while (j < t.size() && (std::isdigit(static_cast<unsigned char>(t[j])) || t[j] == ',')) ++j;
        std::string digits;
        for (size_t k = i; k < j; ++k) if (t[k] != ',') digits += t[k];
        if (digits.size() > 6 || std::stoll(digits) > 1000) return false;
        i = j;
    }
    return true;
}

int run_main(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--list") opt.list = true;
        else if (a == "--self-check") opt.self_check = true;
        else if (a == "--small") opt.small = true;
        else if (a == "--filter" && i + 1 < argc) opt.filter = argv[++i];
        else if (a == "--seed" && i + 1 < argc) {
            char* end = nullptr;
            opt.seed = std::strtoull(argv[++i], &end, 0);
            if (!end || *end) {
                std::fprintf(stderr, "--seed: expected an unsigned integer, got '%s'\n", argv[i]);
                return 2;
            }
            opt.have_seed = true;
        } else if (a == "--help" || a == "-h") {
            print_usage(argv[0]);
            return 0;
        } else {
            std::fprintf(stderr, "unknown argument '%s'\n", a.c_str());
            print_usage(argv[0]);
            return 2;
        }
    }

    const std::vector<Case> cases = build_cases();
    std::vector<size_t> selected;
    for (size_t i = 0; i < cases.size(); ++i)
        if (cases[i].op.find(opt.filter) != std::string::npos && (!opt.small || is_small(cases[i])))
            selected.push_back(i);

    if (opt.list) {
        for (size_t i : selected) {
            const Case& c = cases[i];
            std::printf("[%3zu] %-20s %-36s | %s | %s | %s\n", i, c.op.c_str(), c.label.c_str(), c.shapes.c_str(),
                        c.precision.c_str(), checks_text(c).c_str());
        }
        std::printf("%zu cases\n", selected.size());
        return 0;
    }

    if (selected.empty()) {
        std::fprintf(stderr, "--filter '%s' matches no operation name\n", opt.filter.c_str());
        return 2;
    }
    // Without a usable GPU the default run stops here (exit 77, or 1 under RSA_GPU_REQUIRE=1).
    if (!opt.self_check) {
        const int gate = rsa_test::gpu_gate_exit_code("test_backend_ops");
        if (gate >= 0) return gate;
    }
    if (!opt.have_seed) {
        std::random_device rd;
        opt.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                   static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
    }
    std::printf("test_backend_ops: run seed %llu (replay: --seed %llu)\n", static_cast<unsigned long long>(opt.seed),
                static_cast<unsigned long long>(opt.seed));
    std::fflush(stdout);

    set_poison_mode(true);  // before any backend exists, so every DeviceBuffer of the run is poisoned
    std::unique_ptr<Backend> candidate, reference = make_cpu_backend();
    if (opt.self_check) {
        candidate = make_cpu_backend();
    } else {
#if defined(RSA_GPU_HAVE_CUDA)
        try {
            candidate = make_gpu_backend(0);
        } catch (const std::exception& e) {
            std::printf("FAILED: test_backend_ops: the GPU backend cannot be made: %s\n", e.what());
            return 1;
        }
#else
        std::printf("SKIPPED: no usable GPU: this build has no CUDA\n");
        return 77;
#endif
    }
    std::printf("mode: %s; candidate %s, reference %s; poison mode on\n", opt.self_check ? "self-check" : "gpu vs cpu",
                candidate->name().c_str(), reference->name().c_str());
    if (candidate->is_gpu() == opt.self_check || reference->is_gpu()) {
        std::printf("FAILED: is_gpu() of the backends is not what this mode needs\n");
        return 1;
    }

    namespace fs = std::filesystem;
    std::string tmp_template = (fs::temp_directory_path() / "rsa_backend_ops_XXXXXX").string();
    if (!mkdtemp(tmp_template.data())) {
        std::printf("FAILED: cannot create a scratch folder under %s\n", fs::temp_directory_path().c_str());
        return 1;
    }
    const std::string scratch = tmp_template;

    CanaryTally canaries;
    std::set<std::string> covered;
    int passed = 0, failed = 0;
    for (size_t i : selected) {
        const Case& c = cases[i];
        const uint64_t seed = case_seed(opt.seed, i);
        CaseEnv env;
        env.dir = scratch + "/case" + std::to_string(i);
        fs::create_directories(env.dir);
        Output out[2];
        Runner run;
        std::string setup_error;
        try {
            Gen gen(seed);
            run = c.setup(gen, env);
        } catch (const std::exception& e) {
            setup_error = e.what();
        }
        Verdict v;
        if (!setup_error.empty()) {
            v.pass = false;
            v.failures.push_back("input setup failed: " + setup_error);
        } else {
            run_side(run, *candidate, out[0], 0);
            run_side(run, *reference, out[1], 1);
            v = compare_outputs(c, out[0], out[1]);
            for (int s = 0; s < 2; ++s)
                if (!out[s].ops.count(c.op) && !c.rejected_above)
                    v.pass = false, v.failures.push_back("the case did not call Backend::" + c.op);
            if (v.pass && c.expect_error.empty()) covered.insert(c.op);
            if (v.pass) mutation_canaries(c, out[0], out[1], canaries);
        }
        std::printf("[%3zu] %s %-20s %-36s %s | %s | seed %llu | %.3fs + %.3fs | %s\n", i, v.pass ? "PASS" : "FAIL",
                    c.op.c_str(), c.label.c_str(), c.shapes.c_str(), c.precision.c_str(),
                    static_cast<unsigned long long>(seed), out[0].seconds, out[1].seconds, v.summary.c_str());
        for (const std::string& f : v.failures) std::printf("        FAIL: %s\n", f.c_str());
        std::fflush(stdout);
        (v.pass ? passed : failed) += 1;
        std::error_code ec;
        fs::remove_all(env.dir, ec);
    }
    std::error_code ec;
    fs::remove_all(scratch, ec);

    standalone_canaries(canaries);
#if defined(RSA_GPU_HAVE_CUDA)
    if (!opt.self_check) {
        try {
            device_canaries(canaries);
        } catch (const std::exception& e) {
            canaries.expect_fail(false, std::string("device canaries threw: ") + e.what());
        }
    }
#endif
    bool ok = failed == 0;
    for (const std::string& m : canaries.missed) std::printf("CANARY NOT DETECTED: %s\n", m.c_str());
    if (!canaries.missed.empty()) ok = false;
    std::printf("canaries: %d of %d detected\n", canaries.detected, canaries.run);

    std::string missing;
    size_t have = 0;
    for (const std::string& op : kOperations) {
        if (covered.count(op)) ++have;
        else missing += (missing.empty() ? "" : ", ") + op;
    }
    if (opt.filter.empty()) {
        std::printf("coverage: %zu of %zu Backend operations have a passing case%s%s\n", have, kOperations.size(),
                    missing.empty() ? "" : "; missing: ", missing.c_str());
        if (!missing.empty()) ok = false;
    } else {
        std::printf("coverage: not checked (--filter %s)\n", opt.filter.c_str());
    }
    if (poison_violations() != 0 && opt.self_check) {
        std::printf("poison violations: %llu\n", static_cast<unsigned long long>(poison_violations()));
        ok = false;
    }
    std::printf("summary: %zu cases run, %d passed, %d failed; canaries %d/%d detected; seed %llu -> %s\n",
                selected.size(), passed, failed, canaries.detected, canaries.run,
                static_cast<unsigned long long>(opt.seed), ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run_main(argc, argv);
    } catch (const std::exception& e) {
        std::printf("FAILED: test_backend_ops: %s\n", e.what());
        return 1;
    }
}

// rsa_gpu._core: the nanobind module behind the Python package (python/rsa_gpu/*.py holds the documented public
// API; these functions are its thin native layer). Three concerns, each in one place:
//   1. arrays: to_engine() / from_engine() are the ONLY conversions between Python arrays and the engine's Arrays.
//      Inputs arrive as C-contiguous float32 arrays (the Python layer converts other dtypes and layouts once, in
//      python/rsa_gpu/_arrays.py), on the host (numpy) or on a GPU (PyTorch, CuPy: DLPack), and are read in place:
//      to_engine() wraps the memory in a borrowed rsa::Array (a device array through the CUDA plugin), no copy.
//      Host results are moved out of the engine's std::vector into a numpy array whose capsule owns that vector; an
//      RDM of a GPU input stays on the GPU and goes back as a DLPack array whose capsule owns the engine's Array.
//   2. calls: engine_call() releases the GIL, serialises calls on one backend, and arms Ctrl-C
//      (rsa::request_interrupt from a SIGINT handler during the call; rsa::clear_interrupt before the next).
//   3. errors: rsa::InputError -> ValueError, OutOfMemoryError -> MemoryError, RuntimeError -> RuntimeError,
//      Interrupted -> KeyboardInterrupt; messages as the command line prints them.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>
#include <pythread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "rsa_gpu/analysis.h"
#include "rsa_gpu/analysis_stages.h"
#include "rsa_gpu/backend.h"
#include "rsa_gpu/dissimilarity.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/evaluate.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/progress.h"
#include "rsa_gpu/rdm_engine.h"
#include "rsa_gpu/rdm_set.h"
#include "rsa_gpu/results.h"
#include "rsa_gpu/train_network.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using rsa::Array;
using rsa::Backend;
using rsa::Matrix;

// ================================================================ 1. arrays (the one place)
// A 2-D C-contiguous float32 host array, as the Python layer hands it over (rsa_gpu/_arrays.py, as_host_f32).
using HostF32 = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
// A 2-D input of the operations that take GPU arrays too (RDMs, comparisons, statistics).
using InF32 = nb::ndarray<const float, nb::ndim<2>, nb::c_contig>;
using HostF32Vec = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using HostI64Vec = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using HostF64 = nb::ndarray<const double, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using HostF64Cube = nb::ndarray<const double, nb::ndim<3>, nb::c_contig, nb::device::cpu>;

// The engine's view of an input: the numpy memory itself (borrowed; the caller keeps the array alive for the call).
Array to_engine(const HostF32& x) {
    return Array::borrow(x.data(), static_cast<int64_t>(x.shape(0)), static_cast<int64_t>(x.shape(1)));
}
bool on_gpu(const InF32& x) { return x.device_type() == nb::device::cuda::value; }
Array to_engine(const InF32& x) {
    const int64_t r = static_cast<int64_t>(x.shape(0)), c = static_cast<int64_t>(x.shape(1));
    if (on_gpu(x)) return rsa::borrow_device_array(x.data(), r, c, x.device_id(), nullptr);
    if (x.device_type() != nb::device::cpu::value)
        throw rsa::InputError("an array on DLPack device type " + std::to_string(x.device_type()) +
                              ": rsa_gpu takes host (numpy) and CUDA arrays");
    return Array::borrow(x.data(), r, c);
}
std::vector<Array> to_engine(const std::vector<InF32>& xs) {
    std::vector<Array> out;
    out.reserve(xs.size());
    for (const InF32& x : xs) out.push_back(to_engine(x));
    return out;
}
bool any_on_gpu(const InF32& a, const std::vector<InF32>& bs = {}) {
    bool any = on_gpu(a);
    for (const InF32& b : bs) any = any || on_gpu(b);
    return any;
}
std::vector<float> to_engine(const HostF32Vec& v) { return std::vector<float>(v.data(), v.data() + v.size()); }

// A result handed to numpy without a copy: the vector moves into a heap object that the array's capsule owns.
// Needs the GIL.
template <class T>
nb::ndarray<nb::numpy, T> from_engine(std::vector<T>&& v, std::vector<size_t> shape) {
    auto* owner = new std::vector<T>(std::move(v));
    nb::capsule cap(owner, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
    return nb::ndarray<nb::numpy, T>(owner->data(), shape.size(), shape.data(), cap);
}
nb::ndarray<nb::numpy, float> from_engine(Matrix&& m) {
    const size_t r = static_cast<size_t>(m.rows), c = static_cast<size_t>(m.cols);
    return from_engine<float>(std::move(m.data), {r, c});
}
// An engine result (host or device) as an owned host Matrix: moved out when the Array owns it, else copied or
// downloaded once. Called with the GIL released.
Matrix host_matrix(Array&& a) { return a.take_matrix(); }

// Where a host array's data is as this module sees it (tests: an input is read in place, not copied on the way).
uintptr_t input_address(const HostF32& x) { return reinterpret_cast<uintptr_t>(x.data()); }

// ================================================================ 2. calls
// ---- backends, one per device string, made on first use and kept (a GPU backend holds its context).
struct Engine {
    std::unique_ptr<Backend> backend;
    std::string note;  // which device auto took and why
    std::mutex mu;     // one call at a time per backend
};
std::mutex g_engines_mu;
std::map<std::string, std::shared_ptr<Engine>>* g_engines = new std::map<std::string, std::shared_ptr<Engine>>();

std::shared_ptr<Engine> engine_for(const std::string& device) {  // GIL released
    const rsa::DeviceRequest req = rsa::parse_device(device);
    const std::string key = req.cpu ? "cpu" : req.automatic ? "auto" : std::to_string(req.index);
    std::lock_guard<std::mutex> lock(g_engines_mu);
    auto it = g_engines->find(key);
    if (it != g_engines->end()) return it->second;
    auto e = std::make_shared<Engine>();
    e->backend = rsa::make_backend(req, &e->note);
    (*g_engines)[key] = e;
    return e;
}

// ---- Ctrl-C. While a call runs (GIL released, main thread), SIGINT goes to on_sigint, which sets the engine's
// interrupt flag through the bridge (the engine throws Interrupted at its next safe point) and remembers it; when
// the call returns, Python's handler is back and the call raises KeyboardInterrupt (even when the engine finished
// before a safe point). Not armed off the main thread or when the user's SIGINT handler is not Python's default
// (their handler then runs when the call returns, as for any C call).
std::atomic<int> g_sigint{0};
void on_sigint(int) {
    g_sigint.store(1, std::memory_order_relaxed);
    rsa::request_interrupt(SIGINT);
}
unsigned long g_main_thread = 0;
nb::object* g_getsignal = nullptr;
nb::object* g_default_int_handler = nullptr;

class InterruptScope {  // constructed and finished with the GIL held
public:
    InterruptScope() {
        rsa::clear_interrupt();
        g_sigint.store(0);
        if (PyThread_get_thread_ident() != g_main_thread) return;
        if (!(*g_getsignal)(SIGINT).is(*g_default_int_handler)) return;
        struct sigaction sa;
        std::memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        armed_ = ::sigaction(SIGINT, &sa, &old_) == 0;
    }
    ~InterruptScope() { disarm(); }
    void disarm() {
        if (armed_) ::sigaction(SIGINT, &old_, nullptr);
        armed_ = false;
    }
    // After a call that returned normally: KeyboardInterrupt when a SIGINT arrived during it.
    void finish() {
        disarm();
        if (g_sigint.exchange(0)) {
            rsa::clear_interrupt();
            PyErr_SetString(PyExc_KeyboardInterrupt, "interrupted (SIGINT)");
            throw nb::python_error();
        }
    }

private:
    bool armed_ = false;
    struct sigaction old_;
};

// Runs f(backend) on `device` with the GIL released and Ctrl-C armed; returns its value.
template <class F>
auto engine_call(const std::string& device, F&& f) -> decltype(f(std::declval<Backend&>())) {
    using R = decltype(f(std::declval<Backend&>()));
    InterruptScope scope;
    std::optional<R> out;
    {
        nb::gil_scoped_release release;
        std::shared_ptr<Engine> e = engine_for(device);
        std::lock_guard<std::mutex> lock(e->mu);
        out.emplace(f(*e->backend));
    }
    scope.finish();
    return std::move(*out);
}

// ---- progress: the engine's bars handed to a Python callable (rsa_gpu._api draws them with tqdm), only while set.
nb::object* g_progress_cb = nullptr;  // never freed (module lifetime)
std::mutex g_progress_mu;

void progress_to_python(const std::string& label, int64_t done, int64_t total, bool finished) {
    nb::gil_scoped_acquire gil;
    std::lock_guard<std::mutex> lock(g_progress_mu);
    if (!g_progress_cb || g_progress_cb->is_none()) return;
    try {
        (*g_progress_cb)(label, done, total, finished);
    } catch (nb::python_error& e) {
        e.discard_as_unraisable("rsa_gpu progress callback");  // a drawing problem must not stop the work
    }
}

void py_set_progress(nb::object callback) {
    std::lock_guard<std::mutex> lock(g_progress_mu);
    if (!g_progress_cb) g_progress_cb = new nb::object();
    *g_progress_cb = std::move(callback);
    rsa::set_progress_sink(g_progress_cb->is_none() ? nullptr : &progress_to_python);
}

// ================================================================ operations
rsa::RdmOptions rdm_options(const std::string& precision, uint64_t max_gpu_mem, const std::string& constant_rows) {
    rsa::RdmOptions o;
    o.precision = rsa::parse_precision(precision);
    o.max_gpu_bytes = max_gpu_mem;
    if (constant_rows == "fail")
        o.constant_rows = rsa::ConstantRows::Fail;
    else if (constant_rows == "nan")
        o.constant_rows = rsa::ConstantRows::Nan;
    else
        throw rsa::InputError("constant_rows: expected 'fail' or 'nan', got '" + constant_rows + "'");
    return o;
}

// The RDM: a numpy array, or for a GPU input an array on that GPU (DLPack; the Python layer makes it a torch/cupy
// array) when the engine left the result there.
nb::object py_rdm(const InF32& x, const std::string& device, const std::string& precision, uint64_t max_gpu_mem,
                  const std::string& constant_rows, const std::string& what) {
    const rsa::RdmOptions opts = rdm_options(precision, max_gpu_mem, constant_rows);
    const bool gpu_input = on_gpu(x);
    const int gpu = gpu_input ? static_cast<int>(x.device_id()) : -1;
    using Out = std::pair<Array, Matrix>;  // the device result, or the host one
    Out out = engine_call(device, [&](Backend& b) {
        rsa::RdmResult r = rsa::compute_rdm(b, to_engine(x), opts, what);
        rsa::check_interrupt("the RDM");
        if (gpu_input && r.rdm.device_copy(gpu)) return Out{std::move(r.rdm), Matrix()};
        return Out{Array(), host_matrix(std::move(r.rdm))};
    });
    if (!out.first.empty()) {
        const Array* keep = new Array(std::move(out.first));
        nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<const Array*>(p); });
        const size_t shape[2] = {static_cast<size_t>(keep->rows()), static_cast<size_t>(keep->cols())};
        const float* data = keep->device_copy(gpu)->data();
        return nb::cast(nb::ndarray<float, nb::ndim<2>>(const_cast<float*>(data), 2, shape, owner, nullptr,
                                                        nb::dtype<float>(), nb::device::cuda::value, gpu));
    }
    return nb::cast(from_engine(std::move(out.second)));
}

// The boundary check of an RDM pair: host inputs get check_rdm_pair (full: shapes, Inf, degenerate) or
// check_rdm_shapes; GPU inputs get their shapes here (reading their values would copy them to the host), their values
// are checked on the device by the backend where it needs them (the statistics' NaN/Inf and degenerate tests).
void check_pair(const Array& a, const Array& b, bool gpu, bool full, const char* name_a, const char* name_b) {
    if (gpu)
        rsa::check_rdm_dims(a.rows(), a.cols(), b.rows(), b.cols(), name_a, name_b);
    else if (full)
        rsa::check_rdm_pair(a.view(), b.view(), name_a, name_b);
    else
        rsa::check_rdm_shapes(a.view(), b.view(), name_a, name_b);
}

std::vector<rsa::Measure> parse_measures(const std::vector<std::string>& names) {
    std::vector<rsa::Measure> ms;
    for (const auto& n : names) ms.push_back(rsa::parse_measure(n));
    return ms;
}

// value, pairs, skipped
std::tuple<double, int64_t, int64_t> py_compare(const InF32& a, const InF32& b, const std::string& method,
                                                const std::string& device, bool check) {
    const rsa::Measure measure = rsa::parse_measure(method);
    const rsa::CompareResult r = engine_call(device, [&](Backend& be) {
        const Array ma = to_engine(a), mb = to_engine(b);
        check_pair(ma, mb, any_on_gpu(a, {b}), check, "a", "b");
        return be.compare(ma, {mb}, {measure}).at(0).at(0);
    });
    return {r.value, r.pairs, r.skipped};
}

// Many models against one reference: values [model x measure], pairs and skipped [model x measure].
nb::tuple py_compare_many(const InF32& ref, const std::vector<InF32>& models,
                          const std::vector<std::string>& methods, const std::string& device, bool check) {
    const std::vector<rsa::Measure> measures = parse_measures(methods);
    using Out = std::tuple<std::vector<double>, std::vector<int64_t>, std::vector<int64_t>>;
    Out out = engine_call(device, [&](Backend& be) {
        Out o;
        const Array mr = to_engine(ref);
        const std::vector<Array> mm = to_engine(models);
        for (size_t i = 0; i < models.size(); ++i) {
            const std::string name = "models[" + std::to_string(i) + "]";
            check_pair(mr, mm[i], any_on_gpu(ref, models), check, "ref", name.c_str());
        }
        for (const auto& row : be.compare(mr, mm, measures))  // one batched call
            for (const rsa::CompareResult& r : row) {
                std::get<0>(o).push_back(r.value);
                std::get<1>(o).push_back(r.pairs);
                std::get<2>(o).push_back(r.skipped);
            }
        rsa::check_interrupt("the comparisons");
        return o;
    });
    const std::vector<size_t> shape = {models.size(), measures.size()};
    return nb::make_tuple(from_engine(std::move(std::get<0>(out)), shape),
                          from_engine(std::move(std::get<1>(out)), shape),
                          from_engine(std::move(std::get<2>(out)), shape));
}

double py_cka(const InF32& x, const InF32& y, bool debiased, const std::string& device) {
    return engine_call(device, [&](Backend& be) {
        const Array mx = to_engine(x), my = to_engine(y);
        if (any_on_gpu(x, {y}))  // the backend tests degenerate responses (on their host copies: the one copy)
            rsa::check_cka_shapes(mx.rows(), mx.cols(), my.rows(), my.cols(), debiased);
        else
            rsa::check_cka_inputs(mx.view(), my.view(), debiased, "x", "y");
        const rsa::CkaResult r = be.cka(mx, my);
        return debiased ? r.debiased : r.plain;
    });
}

// samples [model x n] (float64), lo [model], hi [model], nan_samples [model]
nb::tuple py_bootstrap(const InF32& ref, const std::vector<InF32>& models, int n, uint64_t seed,
                       const std::string& device) {
    if (n < 1) throw rsa::InputError("n: the number of bootstrap resamples must be at least 1, got " + std::to_string(n));
    rsa::BootstrapResult r = engine_call(device, [&](Backend& be) {
        const Array mr = to_engine(ref);
        const std::vector<Array> mm = to_engine(models);
        for (size_t i = 0; i < models.size(); ++i)
            check_pair(mr, mm[i], any_on_gpu(ref, models), true, "ref", ("models[" + std::to_string(i) + "]").c_str());
        rsa::BootstrapResult out = be.bootstrap(mr, mm, n, seed, 0);
        rsa::check_interrupt("the bootstrap");
        return out;
    });
    std::vector<double> flat;
    flat.reserve(models.size() * static_cast<size_t>(n));
    for (auto& s : r.samples) flat.insert(flat.end(), s.begin(), s.end());
    const size_t M = r.samples.size();
    return nb::make_tuple(from_engine(std::move(flat), {M, static_cast<size_t>(n)}),
                          from_engine(std::move(r.lo), {M}), from_engine(std::move(r.hi), {M}),
                          from_engine(std::move(r.nan_samples), {M}));
}

// r_obs [model], p_value [model], null [model x n]
nb::tuple py_permutation(const InF32& ref, const std::vector<InF32>& models, int n, uint64_t seed,
                         const std::string& device) {
    if (n < 1) throw rsa::InputError("n: the number of permutations must be at least 1, got " + std::to_string(n));
    using Out = std::tuple<std::vector<double>, std::vector<double>, std::vector<double>>;
    Out out = engine_call(device, [&](Backend& be) {
        Out o;
        const Array mr = to_engine(ref);
        const std::vector<Array> mm = to_engine(models);
        for (size_t i = 0; i < models.size(); ++i)
            check_pair(mr, mm[i], any_on_gpu(ref, models), true, "ref", ("models[" + std::to_string(i) + "]").c_str());
        for (const rsa::PermutationResult& r : be.permutation(mr, mm, n, seed, 0)) {  // one batched call
            std::get<0>(o).push_back(r.r_obs);
            std::get<1>(o).push_back(r.p_value);
            std::get<2>(o).insert(std::get<2>(o).end(), r.null.begin(), r.null.end());
        }
        rsa::check_interrupt("the permutation test");
        return o;
    });
    const size_t M = models.size();
    return nb::make_tuple(from_engine(std::move(std::get<0>(out)), {M}), from_engine(std::move(std::get<1>(out)), {M}),
                          from_engine(std::move(std::get<2>(out)), {M, static_cast<size_t>(n)}));
}

nb::dict py_noise_ceiling(const InF32& resp, const HostI64Vec& bins, int splits, uint64_t seed,
                          const std::string& device) {
    rsa::NoiseCeilingResult r = engine_call(device, [&](Backend& be) {
        const Array m = to_engine(resp);
        const std::vector<int64_t> b(bins.data(), bins.data() + bins.size());
        rsa::check_noise_ceiling_input(m.rows(), m.cols(), b, splits);
        return be.noise_ceiling(m, b, splits, seed);
    });
    nb::dict d;
    d["ceiling"] = r.ceiling;
    d["r_half_mean"] = r.r_half_mean;
    const size_t splits_n = r.r_half.size(), kept = r.kept_ids.size();
    d["r_half"] = from_engine(std::move(r.r_half), {splits_n});
    d["bins_kept"] = r.bins_kept;
    d["bins_dropped"] = r.bins_dropped;
    d["kept_ids"] = from_engine(std::move(r.kept_ids), {kept});
    return d;
}

// ---- dissimilarities beyond correlation (dissimilarity.h): euclidean, mahalanobis, crossnobis, or correlation with
// conditions. noise_kind "" (identity), "diag" or "given" (`noise`, N x N float64); empty label arrays: not given.
// The input is copied once into the engine's Matrix (the stage centres and averages it anyway).
// Returns the RDM (C x C float32) and the conditions in its order (empty without conditions).
nb::tuple py_rdm_dissimilarity(const HostF32& x, const std::string& method, const std::string& noise_kind,
                               const HostF64& noise, const HostI64Vec& conditions, const HostI64Vec& runs,
                               const std::string& device, const std::string& precision, uint64_t max_gpu_mem,
                               const std::string& constant_rows) {
    const rsa::RdmOptions opts = rdm_options(precision, max_gpu_mem, constant_rows);
    rsa::DissimilaritySpec spec;
    spec.method = rsa::parse_dissimilarity(method, "method");
    if (noise_kind == "diag") {
        spec.noise.kind = rsa::NoiseSource::Diag;
    } else if (noise_kind == "given") {
        spec.noise.kind = rsa::NoiseSource::Given;
        spec.noise.path = "noise";
        spec.noise.given.descr = "<f8";
        spec.noise.given.shape = {static_cast<int64_t>(noise.shape(0)), static_cast<int64_t>(noise.shape(1))};
        spec.noise.given.values.assign(noise.data(), noise.data() + noise.size());
    } else if (!noise_kind.empty()) {
        throw rsa::InputError("noise: expected None, 'diag' or an N x N precision matrix, got '" + noise_kind + "'");
    }
    spec.conditions.assign(conditions.data(), conditions.data() + conditions.size());
    spec.runs.assign(runs.data(), runs.data() + runs.size());
    spec.conditions_what = "conditions";
    spec.runs_what = "runs";
    using Out = std::pair<Matrix, std::vector<int64_t>>;
    Out out = engine_call(device, [&](Backend& b) {
        const int64_t S = static_cast<int64_t>(x.shape(0)), N = static_cast<int64_t>(x.shape(1));
        rsa::check_dissimilarity_spec(spec, S, N);
        Matrix m(S, N);
        std::memcpy(m.data.data(), x.data(), static_cast<size_t>(S * N) * sizeof(float));
        rsa::DissimilarityResult r = rsa::compute_dissimilarity_rdm(b, m, spec, opts, "x");
        rsa::check_interrupt("the RDM");
        return Out{host_matrix(std::move(r.rdm.rdm)), std::move(r.condition_values)};
    });
    const size_t c = out.second.size();
    return nb::make_tuple(from_engine(std::move(out.first)), from_engine(std::move(out.second), {c}));
}

// ---- model evaluation (evaluate.h): data (K x S x S) against models (M x S x S), float64, checked as RDM files are
// (rdm_set.h). test_type: rsatoolbox's (evaluate.h EvalTest); max_gpu_mem caps the resamples' memory plan (0: none).
// Returns the command line's JSON text, the bootstrap samples [resample x model], their noise ceilings (lower, upper:
// [resample]), the per-data-RDM evaluations [model x data RDM] and the intervals ci_low, ci_high [model] (get_ci of
// test_type, with the infinities a percentile interval can have, which the JSON writes as null).
nb::tuple py_evaluate(const HostF64Cube& data, const HostF64Cube& models, const std::vector<std::string>& names,
                      const std::string& method, const std::string& inference, int bootstrap, int permutations,
                      uint64_t seed, const std::string& correction, double ci, const std::string& device,
                      const std::string& test_type, uint64_t max_gpu_mem) {
    rsa::EvaluateOptions o;
    o.method = rsa::parse_eval_method(method);
    o.inference = rsa::parse_eval_inference(inference);
    o.correction = rsa::parse_correction(correction);
    o.test = rsa::parse_eval_test(test_type);
    rsa::check_eval_test(o.test, o.inference, "test_type", "inference");
    o.max_memory_bytes = max_gpu_mem;
    o.bootstrap = bootstrap;
    o.permutations = permutations;
    o.seed = seed;
    o.ci = ci;
    if (bootstrap < 1 && o.inference != rsa::EvalInference::Fixed)
        throw rsa::InputError("bootstrap: the number of resamples must be at least 1, got " + std::to_string(bootstrap));
    if (permutations < 0)
        throw rsa::InputError("permutations: expected 0 or more, got " + std::to_string(permutations));
    if (!(ci > 0.0 && ci < 1.0)) throw rsa::InputError("ci: expected a level between 0 and 1, got " + std::to_string(ci));
    const int64_t M = static_cast<int64_t>(models.shape(0));
    if (static_cast<int64_t>(names.size()) != M)
        throw rsa::InputError("names: " + std::to_string(names.size()) + " names for " + std::to_string(M) + " models");
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < i; ++j)
            if (names[i] == names[j]) throw rsa::InputError("duplicate model name '" + names[i] + "'; rename one");
    using Out = std::pair<rsa::EvaluateResult, std::string>;
    Out out = engine_call(device, [&](Backend& b) {
        const std::vector<int64_t> dshape = {static_cast<int64_t>(data.shape(0)), static_cast<int64_t>(data.shape(1)),
                                             static_cast<int64_t>(data.shape(2))};
        const rsa::RdmSet d = rsa::rdm_set_from_array(data.data(), dshape, "data", "data");
        std::vector<double> mv;
        const int64_t S = static_cast<int64_t>(models.shape(1));
        for (int64_t i = 0; i < M; ++i) {
            const std::vector<int64_t> shape = {S, static_cast<int64_t>(models.shape(2))};
            const rsa::RdmSet m = rsa::rdm_set_from_array(models.data() + i * S * shape[1], shape,
                                                          "models[" + std::to_string(i) + "] ('" + names[i] + "')",
                                                          names[i]);
            if (m.patterns != d.patterns)
                throw rsa::InputError("models[" + std::to_string(i) + "] ('" + names[i] + "') is " + std::to_string(S) +
                                      " x " + std::to_string(S) + " but the data RDMs are " +
                                      std::to_string(d.patterns) + " x " + std::to_string(d.patterns));
            mv.insert(mv.end(), m.upper.begin(), m.upper.end());
        }
        const int64_t work = (o.inference == rsa::EvalInference::Fixed ? 0 : o.bootstrap) + o.permutations;
        std::unique_ptr<rsa::Progress> bar;
        if (work > 0) bar = std::make_unique<rsa::Progress>("evaluate", work);
        rsa::EvaluateResult r = rsa::evaluate_rdms(b, d.upper, d.count, mv, M, d.patterns, o,
                                                   [&](int64_t done, int64_t) {
                                                       if (bar) bar->update(done);
                                                   });
        bar.reset();
        rsa::check_interrupt("the evaluation");
        std::string j = rsa::evaluate_json(r, names, o).dump();
        return Out{std::move(r), std::move(j)};
    });
    rsa::EvaluateResult& r = out.first;
    const size_t n = r.samples.size() / static_cast<size_t>(std::max<int64_t>(M, 1));
    return nb::make_tuple(out.second, from_engine(std::move(r.samples), {n, static_cast<size_t>(M)}),
                          from_engine(std::move(r.sample_lower), {r.sample_lower.size()}),
                          from_engine(std::move(r.sample_upper), {r.sample_upper.size()}),
                          from_engine(std::move(r.per_rdm), {static_cast<size_t>(M), static_cast<size_t>(r.n_rdm)}),
                          from_engine(std::move(r.ci_low), {static_cast<size_t>(M)}),
                          from_engine(std::move(r.ci_high), {static_cast<size_t>(M)}));
}

// ---- rsatoolbox's compare (evaluate.h compare_rdm_vectors, float64) of RDM vectors v1 (n1 x P) and v2 (n2 x P) of
// S patterns: entries NaN in any of them are left out (rsatoolbox's _parse_input_rdms), the covariance-weighted
// methods told which pairs remain. Returns [n1 x n2].
nb::ndarray<nb::numpy, double> py_compare_vectors(const std::string& method, const HostF64& v1, const HostF64& v2,
                                                  int64_t S) {
    const rsa::EvalMethod m = rsa::parse_eval_method(method);
    const int64_t n1 = static_cast<int64_t>(v1.shape(0)), n2 = static_cast<int64_t>(v2.shape(0));
    const int64_t P = static_cast<int64_t>(v1.shape(1));
    if (S < 3 || P != S * (S - 1) / 2 || static_cast<int64_t>(v2.shape(1)) != P || n1 < 1 || n2 < 1)
        throw rsa::InputError("compare: RDM vectors of " + std::to_string(v1.shape(1)) + " and " +
                              std::to_string(v2.shape(1)) + " entries for " + std::to_string(S) + " patterns");
    std::vector<double> out = engine_call("cpu", [&](Backend&) {
        rsa::RdmStructure st;
        st.conditions = S;
        std::vector<int64_t> keep;
        for (int64_t i = 0, e = 0; i < S; ++i)
            for (int64_t j = i + 1; j < S; ++j, ++e) {
                bool ok = true;
                for (int64_t a = 0; a < n1 && ok; ++a) ok = std::isfinite(v1.data()[a * P + e]);
                for (int64_t b = 0; b < n2 && ok; ++b) ok = std::isfinite(v2.data()[b * P + e]);
                if (!ok) continue;
                keep.push_back(e);
                st.pair_i.push_back(static_cast<int32_t>(i));
                st.pair_j.push_back(static_cast<int32_t>(j));
            }
        st.all_pairs = static_cast<int64_t>(keep.size()) == P;
        const int64_t L = static_cast<int64_t>(keep.size());
        std::vector<double> a(static_cast<size_t>(n1 * L)), b(static_cast<size_t>(n2 * L));
        for (int64_t r = 0; r < n1; ++r)
            for (int64_t k = 0; k < L; ++k) a[r * L + k] = v1.data()[r * P + keep[k]];
        for (int64_t r = 0; r < n2; ++r)
            for (int64_t k = 0; k < L; ++k) b[r * L + k] = v2.data()[r * P + keep[k]];
        return rsa::compare_rdm_vectors(m, a, n1, b, n2, st);
    });
    return from_engine(std::move(out), {static_cast<size_t>(n1), static_cast<size_t>(n2)});
}

nb::ndarray<nb::numpy, float> py_gratings(const HostF32Vec& angles, double sf, double res, const std::string& device) {
    rsa::GratingParams p;
    p.sf = sf;
    p.res = res;
    rsa::check_gratings_output(static_cast<size_t>(angles.size()), p);
    const size_t h = static_cast<size_t>(p.height()), w = static_cast<size_t>(p.width());
    Matrix g = engine_call(device, [&](Backend& be) { return host_matrix(be.gratings(to_engine(angles), p)); });
    const size_t count = static_cast<size_t>(g.rows);
    return from_engine<float>(std::move(g.data), {count, h, w});
}

// ---- the CNN: a flat float32 parameter buffer of cnn::kParams in PyTorch state_dict order.
rsa::TrainConfig train_config(int epochs, int batch, int train_size, double lr, double momentum, uint64_t seed,
                             const std::string& kernels = "cudnn") {
    rsa::TrainConfig c;
    c.kernels = rsa::parse_cnn_kernels(kernels);
    c.epochs = epochs;
    c.batch = batch;
    c.train_size = train_size;
    c.lr = static_cast<float>(lr);
    c.momentum = static_cast<float>(momentum);
    c.seed = seed;
    return c;
}

nb::ndarray<nb::numpy, float> py_cnn_init_params(uint64_t seed) {
    return from_engine<float>(rsa::cnn_init_params(seed), {static_cast<size_t>(rsa::cnn::kParams)});
}

// The tutorial's training (its training gratings and initial weights from `seed`): params, step and epoch losses,
// training-set correct, total, misclassified angles.
nb::tuple py_cnn_train_tutorial(int epochs, int batch, int train_size, double lr, double momentum, uint64_t seed,
                                const std::string& device, const std::string& kernels) {
    const rsa::TrainConfig cfg = train_config(epochs, batch, train_size, lr, momentum, seed, kernels);
    rsa::TrainedNetwork net = engine_call(device, [&](Backend& be) {
        double stimuli_ms = 0, training_ms = 0;
        return rsa::train_tutorial_network(be, cfg, rsa::GratingParams{}, true, &stimuli_ms, &training_ms);
    });
    const size_t steps = net.result.step_losses.size(), ep = net.result.epoch_losses.size(),
                 mis = net.misclassified_angles.size();
    return nb::make_tuple(from_engine(std::move(net.params), {static_cast<size_t>(rsa::cnn::kParams)}),
                          from_engine(std::move(net.result.step_losses), {steps}),
                          from_engine(std::move(net.result.epoch_losses), {ep}), net.correct, net.total,
                          from_engine(std::move(net.misclassified_angles), {mis}));
}

// Training from given weights on given images (n x 3072) and labels (n): new params, step and epoch losses.
nb::tuple py_cnn_train(const HostF32Vec& params, const HostF32& images, const HostF32Vec& labels, int epochs,
                       int batch, double lr, double momentum, uint64_t seed, const std::string& device,
                       const std::string& kernels) {
    rsa::TrainConfig cfg = train_config(epochs, batch, static_cast<int>(images.shape(0)), lr, momentum, seed, kernels);
    using Out = std::pair<std::vector<float>, rsa::TrainResult>;
    Out out = engine_call(device, [&](Backend& be) {
        Out o;
        o.first = to_engine(params);
        const Array im = to_engine(images);
        const std::vector<float> lab = to_engine(labels);
        o.second = be.cnn_train(o.first, im, lab, cfg, [](int, float) { rsa::check_interrupt("training"); });
        return o;
    });
    const size_t np_ = out.first.size(), steps = out.second.step_losses.size(),
                 ep = out.second.epoch_losses.size();
    return nb::make_tuple(from_engine(std::move(out.first), {np_}),
                          from_engine(std::move(out.second.step_losses), {steps}),
                          from_engine(std::move(out.second.epoch_losses), {ep}));
}

nb::dict py_cnn_forward(const HostF32Vec& params, const HostF32& images, const std::vector<std::string>& layers,
                        const std::string& device) {
    if (params.size() != static_cast<size_t>(rsa::cnn::kParams))
        throw rsa::InputError("params: expected " + std::to_string(rsa::cnn::kParams) + " values, got " +
                              std::to_string(params.size()));
    if (images.shape(1) != static_cast<size_t>(rsa::cnn::kPixels))
        throw rsa::InputError("images: the CNN takes 48 x 64 images (3072 pixels), got " +
                              std::to_string(images.shape(1)) + " pixels per image");
    for (const auto& l : layers) {
        const auto& names = rsa::cnn_layer_names();
        if (std::find(names.begin(), names.end(), l) == names.end()) {
            std::string valid;
            for (const auto& n : names) valid += (valid.empty() ? "" : ", ") + n;
            throw rsa::InputError("layers: unknown layer '" + l + "' (valid: " + valid + ")");
        }
    }
    std::vector<Matrix> mats = engine_call(device, [&](Backend& be) {
        const rsa::CnnActivations act = be.cnn_forward(to_engine(params), to_engine(images));
        std::vector<Matrix> out;
        for (const auto& l : layers) out.push_back(rsa::cnn_layer_matrix(act, l));
        return out;
    });
    nb::dict d;
    for (size_t i = 0; i < layers.size(); ++i) d[layers[i].c_str()] = from_engine(std::move(mats[i]));
    return d;
}

// ---- the main job. With out_dir empty: the stages of analysis_stages.h in this process (nothing written); else
// run_analysis (the command line's job: claimed, staged, renamed output folder). Returns results.json's text and,
// in-process, the RDMs by name ("v1", then the representations).
struct TutorialArgs {
    std::string device = "auto", out_dir, v1_path, responses_path, orientations_path, load_model, save_model;
    std::vector<std::string> layers, measures;
    bool no_cnn = false, cka = false, noise_ceiling = false, force = false, figures = false, verbose = false;
    int epochs = 25, batch = 100, train_size = 1000, bootstrap = -1, permutations = -1;
    double lr = 5e-4, momentum = 0.99;
    uint64_t seed = 12, stats_seed = 1, v1_seed = 2021;
    std::string constant_rows = "fail", precision = "fp32", cnn_kernels = "cudnn";
    uint64_t max_gpu_mem = 0;
};

nb::tuple py_run_tutorial(const nb::dict& kw) {
    TutorialArgs a;
    auto get = [&](const char* k, auto& dst) {
        if (kw.contains(k) && !kw[k].is_none()) dst = nb::cast<std::decay_t<decltype(dst)>>(kw[k]);
    };
    get("device", a.device); get("out", a.out_dir); get("v1", a.v1_path); get("responses", a.responses_path);
    get("orientations", a.orientations_path); get("load_model", a.load_model); get("save_model", a.save_model);
    get("layers", a.layers); get("measures", a.measures); get("no_cnn", a.no_cnn); get("cka", a.cka);
    get("noise_ceiling", a.noise_ceiling); get("force", a.force); get("figures", a.figures);
    get("verbose", a.verbose); get("epochs", a.epochs); get("batch", a.batch); get("train_size", a.train_size);
    get("bootstrap", a.bootstrap); get("permutations", a.permutations); get("lr", a.lr); get("momentum", a.momentum);
    get("seed", a.seed); get("stats_seed", a.stats_seed); get("v1_seed", a.v1_seed);
    get("constant_rows", a.constant_rows); get("precision", a.precision); get("max_gpu_mem", a.max_gpu_mem);
    get("cnn_kernels", a.cnn_kernels);

    rsa::AnalysisConfig cfg;
    cfg.out_dir = a.out_dir;
    cfg.force = a.force;
    cfg.v1_path = a.v1_path;
    cfg.responses_path = a.responses_path;
    cfg.orientations_path = a.orientations_path;
    cfg.synthetic.seed = a.v1_seed;
    cfg.rdm = rdm_options(a.precision, a.max_gpu_mem, a.constant_rows);
    cfg.train = train_config(a.epochs, a.batch, a.train_size, a.lr, a.momentum, a.seed, a.cnn_kernels);
    cfg.load_model = a.load_model;
    cfg.save_model = a.save_model;
    if (!a.layers.empty()) cfg.layers = a.layers;
    cfg.no_cnn = a.no_cnn;
    if (!a.measures.empty()) cfg.measures = parse_measures(a.measures);
    cfg.cka = a.cka;
    cfg.bootstrap = a.bootstrap;
    cfg.permutations = a.permutations;
    cfg.noise_ceiling = a.noise_ceiling;
    cfg.stats_seed = a.stats_seed;
    cfg.no_figures = !a.figures;
    cfg.quiet = !a.verbose;
    cfg.command_line = "rsa_gpu.run_tutorial (Python)";
    rsa::check_analysis_config(cfg);

    using Out = std::pair<std::string, std::vector<std::pair<std::string, Matrix>>>;
    Out out = engine_call(a.device, [&](Backend& be) {
        Out o;
        if (!cfg.out_dir.empty()) {
            rsa::run_analysis(be, cfg);
            std::ifstream in(cfg.out_dir + "/results.json");
            std::stringstream ss;
            ss << in.rdbuf();
            o.first = ss.str();
            return o;
        }
        const rsa::Say say = [&](const std::string& line) {
            if (!cfg.quiet) std::printf("%s\n", line.c_str());
        };
        rsa::JobState job = rsa::run_job_stages(be, cfg, say);
        o.first = rsa::results_to_json(job.results).dump();
        o.second.emplace_back("v1", host_matrix(std::move(job.rdms.v1.rdm)));
        for (size_t i = 0; i < job.reps.reps.size(); ++i)
            o.second.emplace_back(job.reps.reps[i].name, host_matrix(std::move(job.rdms.reps[i].rdm)));
        return o;
    });
    nb::dict rdms;
    for (auto& [name, m] : out.second) rdms[name.c_str()] = from_engine(std::move(m));
    return nb::make_tuple(out.first, rdms);
}

// ---- devices and versions
nb::tuple py_devices() {
    std::string why;
    bool usable = false;
    {
        nb::gil_scoped_release release;
        usable = rsa::gpu_usable(&why);
    }
    std::vector<std::string> names = {"cpu"};
    if (usable) names.push_back(engine_call("0", [](Backend& be) { return be.name(); }));
    return nb::make_tuple(names, why);
}

std::string py_versions() {
    nb::gil_scoped_release release;
    return rsa::version_report(true);
}

std::string py_device_note(const std::string& device) {
    return engine_call(device, [](Backend& be) { return be.name(); });
}

}  // namespace

NB_MODULE(_core, m) {
    m.doc() = "rsa_gpu's native layer (use the documented functions of the rsa_gpu package)";

    // ================================================================ 3. errors
    nb::register_exception_translator([](const std::exception_ptr& p, void*) {
        try {
            std::rethrow_exception(p);
        } catch (const rsa::InputError& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        } catch (const rsa::OutOfMemoryError& e) {
            PyErr_SetString(PyExc_MemoryError, e.what());
        } catch (const rsa::RuntimeError& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
        } catch (const rsa::Interrupted& e) {
            rsa::clear_interrupt();
            PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
        }
    });

    nb::module_ signal_mod = nb::module_::import_("signal");
    g_getsignal = new nb::object(signal_mod.attr("getsignal"));
    g_default_int_handler = new nb::object(signal_mod.attr("default_int_handler"));
    g_main_thread = nb::cast<unsigned long>(nb::module_::import_("threading").attr("main_thread")().attr("ident"));
    rsa::set_progress_enabled(false);

    m.attr("__version__") = RSA_GPU_VERSION;
#if defined(RSA_GPU_HAVE_CUDA)
    m.attr("built_with_cuda") = true;
#else
    m.attr("built_with_cuda") = false;
#endif
    m.def("rdm", &py_rdm, "x"_a, "device"_a, "precision"_a, "max_gpu_mem"_a, "constant_rows"_a, "what"_a);
    m.def("compare", &py_compare, "a"_a, "b"_a, "method"_a, "device"_a, "check"_a);
    m.def("compare_many", &py_compare_many, "ref"_a, "models"_a, "methods"_a, "device"_a, "check"_a);
    m.def("cka", &py_cka, "x"_a, "y"_a, "debiased"_a, "device"_a);
    m.def("bootstrap", &py_bootstrap, "ref"_a, "models"_a, "n"_a, "seed"_a, "device"_a);
    m.def("permutation", &py_permutation, "ref"_a, "models"_a, "n"_a, "seed"_a, "device"_a);
    m.def("noise_ceiling", &py_noise_ceiling, "resp"_a, "bins"_a, "splits"_a, "seed"_a, "device"_a);
    m.def("rdm_dissimilarity", &py_rdm_dissimilarity, "x"_a, "method"_a, "noise_kind"_a, "noise"_a, "conditions"_a,
          "runs"_a, "device"_a, "precision"_a, "max_gpu_mem"_a, "constant_rows"_a);
    m.def("evaluate", &py_evaluate, "data"_a, "models"_a, "names"_a, "method"_a, "inference"_a, "bootstrap"_a,
          "permutations"_a, "seed"_a, "correction"_a, "ci"_a, "device"_a, "test_type"_a, "max_gpu_mem"_a);
    m.def("compare_vectors", &py_compare_vectors, "method"_a, "v1"_a, "v2"_a, "patterns"_a);
    m.def("gratings", &py_gratings, "angles"_a, "sf"_a, "res"_a, "device"_a);
    m.def("set_progress", &py_set_progress, "callback"_a.none(),
          "callback(label, done, total, finished) for the engine's progress, or None");
    m.def("cnn_init_params", &py_cnn_init_params, "seed"_a);
    m.def("cnn_train_tutorial", &py_cnn_train_tutorial, "epochs"_a, "batch"_a, "train_size"_a, "lr"_a, "momentum"_a,
          "seed"_a, "device"_a, "kernels"_a = "cudnn");
    m.def("cnn_train", &py_cnn_train, "params"_a, "images"_a, "labels"_a, "epochs"_a, "batch"_a, "lr"_a,
          "momentum"_a, "seed"_a, "device"_a, "kernels"_a = "cudnn");
    m.def("cnn_forward", &py_cnn_forward, "params"_a, "images"_a, "layers"_a, "device"_a);
    m.def("run_tutorial", &py_run_tutorial, "kwargs"_a);
    m.def("devices", &py_devices);
    m.def("versions", &py_versions);
    m.def("device_name", &py_device_note, "device"_a);
    m.def("input_address", &input_address, "x"_a);
    m.def("layer_names", [] { return rsa::cnn_layer_names(); });
    m.def("cnn_param_count", [] { return rsa::cnn::kParams; });
}

// Device selection (--device auto|cpu|N), the backend factory and the CUDA plugin loader. No CUDA header and no
// CUDA library here: the GPU backend lives in librsa_gpu_cuda.so (include/rsa_gpu/cuda_plugin.h), opened with
// dlopen the first time a GPU is asked for or looked for. In a CPU-only build (-DRSA_GPU_CUDA=OFF) there is no
// plugin and every request for a GPU says so.
#include <algorithm>
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/blas_setup.h"
#include "rsa_gpu/cuda_plugin.h"
#include "rsa_gpu/error.h"

#include <cblas.h>

namespace rsa {

namespace {

#if defined(RSA_GPU_HAVE_CUDA)
constexpr const char* kPluginName = "librsa_gpu_cuda.so";

std::string folder_of(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string executable_dir() {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0) return ".";
    return folder_of(std::string(buf, static_cast<size_t>(n)));
}

// The folder of librsa_core.so itself (where an installed Python package keeps the plugin beside it).
std::string core_library_dir() {
    Dl_info info{};
    if (::dladdr(reinterpret_cast<void*>(&core_library_dir), &info) == 0 || !info.dli_fname) return "";
    return folder_of(info.dli_fname);
}
#endif

struct PluginState {
    const CudaPlugin* plugin = nullptr;
    std::string why;
};

PluginState load_plugin() {
    PluginState st;
#if !defined(RSA_GPU_HAVE_CUDA)
    st.why = "this rsa_gpu was built without CUDA (-DRSA_GPU_CUDA=OFF)";
    return st;
#else
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("RSA_GPU_CUDA_PLUGIN"); env && *env) {
        candidates.push_back(env);  // an explicit choice is the only one tried
    } else {
        // Beside librsa_core.so (an installed Python package, a lib/ folder), then beside the program.
        const std::string core = core_library_dir();
        if (!core.empty()) candidates.push_back(core + "/" + kPluginName);
        const std::string dir = executable_dir();
        for (const std::string& c : {dir + "/" + kPluginName, dir + "/../lib/" + kPluginName, dir + "/../" + kPluginName})
            if (candidates.empty() || c != candidates.front()) candidates.push_back(c);
#if defined(RSA_GPU_PLUGIN_BUILD_DIR)
        candidates.push_back(std::string(RSA_GPU_PLUGIN_BUILD_DIR) + "/" + kPluginName);
#endif
    }
    std::string errors;
    for (const std::string& path : candidates) {
        if (::access(path.c_str(), F_OK) != 0) continue;
        void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            // The plugin is there but a library it needs is not (libcudart, cuBLAS, cuDNN, ...): say which.
            const char* e = ::dlerror();
            errors = "the CUDA backend " + path + " cannot be loaded: " + (e ? e : "unknown dlopen error");
            break;
        }
        using Entry = const CudaPlugin* (*)();
        auto entry = reinterpret_cast<Entry>(::dlsym(handle, "rsa_gpu_cuda_plugin"));
        if (!entry) {
            errors = path + " is not an rsa_gpu CUDA backend (no rsa_gpu_cuda_plugin symbol)";
            break;
        }
        const CudaPlugin* p = entry();
        if (!p || p->abi != kCudaPluginAbi) {
            errors = path + " is from another rsa_gpu build (plugin ABI " + std::to_string(p ? p->abi : -1) +
                     ", expected " + std::to_string(kCudaPluginAbi) + ")";
            break;
        }
        st.plugin = p;  // never dlclose'd: backends and static state live until exit
        return st;
    }
    if (errors.empty()) {
        errors = "the CUDA backend (" + std::string(kPluginName) + ") was not found (looked in";
        for (const std::string& c : candidates) errors += " " + c;
        errors += "; RSA_GPU_CUDA_PLUGIN names it explicitly)";
    }
    st.why = errors;
    return st;
#endif
}

// Whether the NVIDIA driver library can be loaded: checked before the plugin, so that --device auto on a machine
// without a driver does not pay for loading the CUDA libraries (~0.2 s, ~200 MB) only to learn that.
bool driver_present(std::string* why) {
#if !defined(RSA_GPU_HAVE_CUDA)
    *why = "this rsa_gpu was built without CUDA (-DRSA_GPU_CUDA=OFF)";
    return false;
#else
    static std::once_flag once;
    static std::string missing;
    std::call_once(once, [] {
        void* h = ::dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
        if (!h) {
            const char* e = ::dlerror();
            missing = std::string("no NVIDIA driver (libcuda.so.1 cannot be loaded: ") + (e ? e : "unknown") + ")";
        } else {
            ::dlclose(h);
        }
    });
    if (!missing.empty()) *why = missing;
    return missing.empty();
#endif
}

bool probe(int index, std::string* why) {
    if (!driver_present(why)) return false;
    std::string reason;
    const CudaPlugin* p = cuda_plugin(&reason);
    if (!p) {
        *why = reason;
        return false;
    }
    return p->probe(index, why);
}

}  // namespace

namespace {
std::once_flag plugin_once;
PluginState plugin_state;
std::atomic<bool> plugin_tried{false};
bool plugin_loaded() { return plugin_tried.load() && plugin_state.plugin != nullptr; }
}  // namespace

const CudaPlugin* cuda_plugin(std::string* why) {
    std::call_once(plugin_once, [] {
        plugin_state = load_plugin();
        plugin_tried.store(true);
    });
    if (!plugin_state.plugin && why) *why = plugin_state.why;
    return plugin_state.plugin;
}

DeviceRequest parse_device(const std::string& text) {
    DeviceRequest r;
    if (text == "auto" || text.empty()) return r;
    r.automatic = false;
    if (text == "cpu") {
        r.cpu = true;
        return r;
    }
    char* end = nullptr;
    const long index = std::strtol(text.c_str(), &end, 10);
    if (end == text.c_str() || *end != '\0' || index < 0 || index > 1024)
        throw InputError("--device: expected auto, cpu or a GPU index (0, 1, ...), got '" + text + "'");
    r.index = static_cast<int>(index);
    return r;
}

bool gpu_usable(std::string* why) {
    std::string reason;
    const bool ok = probe(0, &reason);
    if (why) *why = reason;
    return ok;
}

std::string version_report(bool load_cuda) {
    std::string out = std::string("rsa_gpu ") + RSA_GPU_VERSION + "\n";
    out += std::string("OpenBLAS: ") + openblas_get_config() + " (kernels: " + blas_corename() +
           (std::getenv("RSA_GPU_BLAS_RESTARTED") ? ", chosen by rsa_gpu through OPENBLAS_CORETYPE" : "") + ")\n";
    std::string why;
    if (!load_cuda && !plugin_loaded())
        out += "CUDA: not loaded (this run used the CPU)\n";
    else if (const CudaPlugin* p = cuda_plugin(&why))
        out += p->versions() + "\n";
    else
        out += "CUDA: not available (" + why + ")\n";
    if (!out.empty()) out.pop_back();
    return out;
}

Array borrow_device_array(const float* data, int64_t rows, int64_t cols, int device,
                          std::shared_ptr<const void> keeper) {
    if (rows < 0 || cols < 0) throw InputError("a device array with a negative shape");
    std::string why;
    const CudaPlugin* p = cuda_plugin(&why);
    if (!p) throw RuntimeError("cannot read an array on GPU " + std::to_string(device) + ": " + why);
    return Array::on_device(rows, cols,
                            p->borrow_device(data, device, static_cast<size_t>(rows * cols), std::move(keeper)));
}

std::unique_ptr<Backend> make_gpu_backend(int device) {
    std::string why;
    const CudaPlugin* p = cuda_plugin(&why);
    if (!p) throw RuntimeError("cannot use GPU " + std::to_string(device) + ": " + why);
    return p->make_backend(device);
}

int usable_gpu_count() {
    std::string why;
    int count = 0;
    while (count < 1024 && probe(count, &why)) ++count;
    return count;
}

std::unique_ptr<Backend> make_backend(const DeviceRequest& request, std::string* note) {
    if (request.cpu) {
        if (note) *note = "device: cpu (requested)";
        return make_cpu_backend();
    }
    std::string why;
    int index = request.index;
    if (request.automatic) {
        if (!probe(0, &why)) {
            if (note) *note = "device: cpu (auto: " + why + ")";
            return make_cpu_backend();
        }
        // auto with an index (a rank's local rank, distributed.h): that GPU, ranks beyond the GPUs sharing them.
        if (index > 0) index %= std::max(usable_gpu_count(), 1);  // only then: a plain start probes one device
    } else if (!probe(request.index, &why)) {
        throw RuntimeError("cannot use --device " + std::to_string(request.index) + ": " + why +
                           ". Run with --device cpu to use the CPU instead.");
    }
    auto backend = make_gpu_backend(index);
    if (note) *note = "device: " + backend->name() + (request.automatic ? " (auto)" : "");
    return backend;
}

}  // namespace rsa

// Host memory budget (sysconf physical memory less a margin, or RSA_GPU_HOST_MEM_BYTES) and the checks behind
// checked_alloc / checked_matrix (see rsa_gpu/host_memory.h).
#include "rsa_gpu/host_memory.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/rdm_plan.h"

namespace rsa {

namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kLargeRequest = 64 * kMiB;  // requests from here on are checked against MemAvailable too

// The override in bytes; false when the variable is unset or empty. InputError when it does not parse.
bool env_budget(uint64_t* bytes) {
    const char* v = std::getenv(kHostMemEnv);
    if (!v || !*v) return false;
    const std::string text(v);
    char* end = nullptr;
    const double x = std::strtod(text.c_str(), &end);
    std::string unit(end ? end : "");
    for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    double mult = -1;
    if (unit.empty() || unit == "B") mult = 1;
    else if (unit == "K" || unit == "KB" || unit == "KIB") mult = 1024.0;
    else if (unit == "M" || unit == "MB" || unit == "MIB") mult = 1024.0 * 1024;
    else if (unit == "G" || unit == "GB" || unit == "GIB") mult = 1024.0 * 1024 * 1024;
    else if (unit == "T" || unit == "TB" || unit == "TIB") mult = 1024.0 * 1024 * 1024 * 1024;
    if (end == text.c_str() || mult < 0 || !(x > 0) || !std::isfinite(x) || x * mult >= 1.8e19)
        throw InputError(std::string(kHostMemEnv) + ": expected a positive size in bytes such as 512M or 8G, got '" +
                         text + "'");
    *bytes = static_cast<uint64_t>(x * mult);
    return true;
}

uint64_t margin_for(uint64_t physical) { return std::max<uint64_t>(512 * kMiB, physical / 10); }

// MemAvailable + SwapFree from /proc/meminfo; false when the file cannot be read.
bool system_available(uint64_t* bytes) {
    std::ifstream in("/proc/meminfo");
    if (!in) return false;
    std::string key;
    uint64_t value = 0, avail = 0, swap = 0;
    bool have_avail = false;
    std::string unit;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        if (!(ls >> key >> value)) continue;
        if (key == "MemAvailable:") avail = value * 1024, have_avail = true;
        else if (key == "SwapFree:") swap = value * 1024;
    }
    if (!have_avail) return false;
    *bytes = avail + swap;
    return true;
}

}  // namespace

uint64_t host_physical_bytes() {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page <= 0) return 0;
    return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
}

uint64_t host_memory_budget() {
    uint64_t b = 0;
    if (env_budget(&b)) return b;
    const uint64_t phys = host_physical_bytes();
    if (phys == 0) return std::numeric_limits<uint64_t>::max() / 4;  // the system does not say: no budget
    const uint64_t margin = margin_for(phys);
    return phys > margin ? phys - margin : 0;
}

std::string host_budget_text() {
    uint64_t b = 0;
    if (env_budget(&b)) return format_bytes(b) + " (set by " + std::string(kHostMemEnv) + ")";
    const uint64_t phys = host_physical_bytes();
    if (phys == 0) return "unknown (the system does not report its physical memory)";
    return format_bytes(host_memory_budget()) + " (physical memory " + format_bytes(phys) + " less a " +
           format_bytes(margin_for(phys)) + " margin; set " + kHostMemEnv + " to change it)";
}

uint64_t checked_bytes(uint64_t count, uint64_t size, const std::string& what) {
    if (size != 0 && count > std::numeric_limits<uint64_t>::max() / size) {
        std::ostringstream os;
        os << "out of host memory: cannot allocate " << what << ": " << count << " values of " << size
           << " bytes overflow 64 bits";
        throw OutOfMemoryError(os.str());
    }
    return count * size;
}

void throw_host_oom(const std::string& what, uint64_t bytes, const std::string& why) {
    throw OutOfMemoryError("out of host memory: cannot allocate " + format_bytes(bytes) + " for " + what + ": " + why);
}

void check_host_alloc(uint64_t bytes, const std::string& what) {
    const uint64_t budget = host_memory_budget();
    if (bytes > budget)
        throw_host_oom(what, bytes, "more than the host memory budget of " + host_budget_text());
    uint64_t dummy = 0;
    if (bytes < kLargeRequest || env_budget(&dummy)) return;
    uint64_t avail = 0;
    if (system_available(&avail) && bytes > avail)
        throw_host_oom(what, bytes, "only " + format_bytes(avail) +
                                        " of memory is available on this machine now (MemAvailable + SwapFree)");
}

Matrix checked_matrix(int64_t rows, int64_t cols, const std::string& what, float fill) {
    if (rows < 0 || cols < 0)
        throw RuntimeError(what + ": negative matrix shape (" + std::to_string(rows) + " x " + std::to_string(cols) + ")");
    const uint64_t n = checked_bytes(static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), what);
    Matrix m;
    m.data = checked_alloc<float>(static_cast<size_t>(n), what + " (" + std::to_string(rows) + " x " +
                                                              std::to_string(cols) + " float32)", fill);
    m.rows = rows;
    m.cols = cols;
    return m;
}

}  // namespace rsa

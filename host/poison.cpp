// Poison mode (include/rsa_gpu/poison.h): the process-wide switch, the violation counter and the tail check.
#include "rsa_gpu/poison.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rsa {

namespace {

bool env_poison() {
    const char* v = std::getenv("RSA_GPU_POISON");
    return v && std::strcmp(v, "1") == 0;
}

std::atomic<bool>& mode() {
    static std::atomic<bool> on{env_poison()};
    return on;
}

std::atomic<uint64_t> g_violations{0};

}  // namespace

void set_poison_mode(bool on) { mode().store(on); }
bool poison_mode() { return mode().load(std::memory_order_relaxed); }

uint64_t poison_violations() { return g_violations.load(); }

void poison_report_violation(const char* kind, const char* where, size_t elements, size_t element_bytes,
                             size_t first_bad, size_t bad_bytes) noexcept {
    g_violations.fetch_add(1);
    std::fprintf(stderr,
                 "rsa_gpu poison: sentinel tail damaged after a %s of %zu bytes (%zu elements x %zu bytes), found on "
                 "%s: %zu of %zu tail bytes overwritten, the first at +%zu past the end\n",
                 kind ? kind : "buffer", elements * element_bytes, elements, element_bytes, where ? where : "check",
                 bad_bytes, kPoisonTailBytes, first_bad);
}

size_t poison_tail_damage(const void* tail, size_t bytes, size_t* first_bad) noexcept {
    const unsigned char* p = static_cast<const unsigned char*>(tail);
    size_t bad = 0;
    for (size_t i = 0; i < bytes; ++i) {
        if (p[i] == kPoisonSentinel) continue;
        if (bad == 0 && first_bad) *first_bad = i;
        ++bad;
    }
    return bad;
}

}  // namespace rsa

// The Ctrl-C bridge between Python and the engine (librsa_py_interrupt.so, loaded RTLD_GLOBAL by rsa_gpu/__init__.py
// before the module). The engine stops long work at safe points through rsa::check_interrupt() /
// rsa::interrupt_signal() (interrupt.h), which read a flag that only the command line's signal handler can set and
// that nothing can clear: right for a process that exits, wrong for a Python session that must go on after a
// KeyboardInterrupt. This library defines those two functions itself, over a flag the module sets (from its SIGINT
// handler, during a call) and clears (at the start of each call). Being loaded first and globally, its definitions
// take precedence over librsa_core's for every caller in librsa_core and in the CUDA plugin (ELF symbol
// interposition: calls between shared objects go through the PLT).
//
// Interim: once interrupt.h offers rsa::request_interrupt(int) and rsa::clear_interrupt() (or an equivalent), the
// module calls those and this library goes away (see python/src/core.cpp, interrupt section).
#include <atomic>

#include "rsa_gpu/interrupt.h"

namespace {
std::atomic<int> g_py_signal{0};
}

extern "C" {
__attribute__((visibility("default"))) void rsa_py_set_interrupt(int signal) {
    g_py_signal.store(signal, std::memory_order_relaxed);  // async-signal-safe (lock-free int)
}
__attribute__((visibility("default"))) int rsa_py_interrupt_bridge_active() { return 1; }
}

namespace rsa {

__attribute__((visibility("default"))) int interrupt_signal() {
    return g_py_signal.load(std::memory_order_relaxed);
}

__attribute__((visibility("default"))) void check_interrupt(const char* during) {
    const int sig = g_py_signal.load(std::memory_order_relaxed);
    if (sig) throw Interrupted(sig, during);
}

}  // namespace rsa

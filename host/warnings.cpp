// report_warning (error.h): warnings of the engine's lower layers, printed to stderr or handed to a handler.
#include <atomic>
#include <cstdio>
#include <mutex>

#include "rsa_gpu/error.h"

namespace rsa {

namespace {
std::atomic<WarningHandler> g_handler{nullptr};
std::mutex g_print;
}  // namespace

void set_warning_handler(WarningHandler handler) noexcept { g_handler = handler; }

void report_warning(const std::string& message) noexcept {
    try {
        if (WarningHandler h = g_handler.load()) {
            h(message);
            return;
        }
        std::lock_guard<std::mutex> g(g_print);
        std::fprintf(stderr, "rsa_gpu: %s\n", message.c_str());
    } catch (...) {
        // a warning must never become a failure
    }
}

}  // namespace rsa

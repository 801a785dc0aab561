// Progress bars (see progress.h): one line redrawn in place with a carriage return, at most ten times a second.
#include "rsa_gpu/progress.h"

#include <atomic>
#include <cstdio>

namespace rsa {

namespace {
std::atomic<bool> g_enabled{false};
std::atomic<ProgressSink> g_sink{nullptr};
}

void set_progress_enabled(bool enabled) { g_enabled = enabled; }
bool progress_enabled() { return g_enabled; }
void set_progress_sink(ProgressSink sink) { g_sink = sink; }

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total > 0 ? total : 1), active_(g_enabled), sink_(g_sink), last_() {}

Progress::~Progress() {
    if (sink_) {
        sink_(label_, done_, total_, true);
        return;
    }
    if (active_) {
        std::fprintf(stdout, "\r\033[K");
        std::fflush(stdout);
    }
}

void Progress::update(int64_t done, const std::string& note) {
    if (!active_ && !sink_) return;
    done_ = done;
    const auto now = std::chrono::steady_clock::now();
    if (done < total_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    if (sink_) {
        sink_(label_, done, total_, false);
        return;
    }
    const int width = 30;
    const int filled = static_cast<int>(width * (done > total_ ? total_ : done) / total_);
    std::fprintf(stdout, "\r  %s [%s%s] %lld/%lld %s\033[K", label_.c_str(), std::string(filled, '#').c_str(),
                 std::string(width - filled, ' ').c_str(), static_cast<long long>(done),
                 static_cast<long long>(total_), note.c_str());
    std::fflush(stdout);
}

}  // namespace rsa

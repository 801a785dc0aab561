// Progress bars for long work (training epochs, RDM tiles, bootstrap chunks, permutations): drawn on stdout when
// it is a terminal and the run is not --quiet/--json; silent otherwise (the driver prints plain stage lines). A host
// that draws its own (the Python package: tqdm) sets a sink instead: every bar's updates then go to it.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace rsa {

// Set once by the command line: whether bars may be drawn (stdout is a terminal, not quiet, not JSON).
void set_progress_enabled(bool enabled);
bool progress_enabled();

// Receives (label, done, total, finished) at most ten times a second per bar, and once with finished = true when the
// bar ends; nullptr: back to drawing (when enabled). Called on the thread doing the work; must not throw.
using ProgressSink = void (*)(const std::string& label, int64_t done, int64_t total, bool finished);
void set_progress_sink(ProgressSink sink);

class Progress {
public:
    Progress(std::string label, int64_t total);
    ~Progress();  // clears the bar
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;
    // `done` of `total` units finished; `note` is shown after the counter (e.g. a loss).
    void update(int64_t done, const std::string& note = "");

private:
    std::string label_;
    int64_t total_;
    bool active_;
    ProgressSink sink_;
    int64_t done_ = 0;
    std::chrono::steady_clock::time_point last_;
};

}  // namespace rsa

// Child processes of the host: the figures script (tools/make_figures.py) and the benchmark peers
// (tools/bench_peer.py, tools/bench_plot.py), run with fork/exec in their own process group so that an interrupt
// (SIGINT/SIGTERM) or our death takes them down too.
#pragma once
#include <string>
#include <vector>

namespace rsa {

struct ChildResult {
    int status = 0;            // waitpid status
    bool interrupted = false;  // we received SIGINT/SIGTERM while it ran (it was killed)
};

// Runs argv[0] with argv, the environment plus `extra_env` ("NAME=value", replacing any NAME), stdin from
// /dev/null and stdout+stderr to `output` (/dev/null when empty), in its own process group; waits for it, polling
// for interrupts. On an interrupt the child's group gets SIGTERM, then SIGKILL after two seconds. RuntimeError
// (starting with `what`) when it cannot start.
ChildResult run_child(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                      const std::string& output, const std::string& what = "figures");

// "exit code 1", "killed by SIGKILL", ...
std::string describe_status(int status);

}  // namespace rsa

// Figures and report.html for an output folder: runs tools/make_figures.py (matplotlib, t-SNE) as a child process
// (fork/exec, its own process group, killed when we are interrupted or die) and reports what happened; missing
// tools are not an error (the run says how to get them); an interrupt during the figures is an interruption.
#include "rsa_gpu/figures.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "rsa_gpu/child_process.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"

namespace rsa {


// Figures and report.html by tools/make_figures.py (Debian's python3-matplotlib and python3-sklearn), run on
// the staging folder before it is committed. Missing tools are not an error: say how to get them.
nlohmann::json make_figures(const std::string& folder, const std::string& final_folder, const std::string& results_json,
                            const std::function<void(const std::string&)>& say, const std::string& script_name) {
    const char* env = std::getenv("RSA_GPU_TOOLS_DIR");
    const std::string script = std::string(env ? env : RSA_GPU_TOOLS_DIR) + "/" + script_name;
    const std::string python = "/usr/bin/python3";
    if (access(script.c_str(), R_OK) != 0) {
        say("figures: skipped (" + script + " not found; set RSA_GPU_TOOLS_DIR to the rsa_gpu tools/ folder)");
        return {{"made", false}, {"reason", "script not found"}};
    }
    if (access(python.c_str(), X_OK) != 0) {
        say("figures: skipped (they need /usr/bin/python3 with Debian's python3-matplotlib and python3-sklearn: "
            "sudo apt-get install python3-matplotlib python3-sklearn)");
        return {{"made", false}, {"reason", "python3 missing"}};
    }
    check_interrupt("figures");
    ChildResult probe, run;
    try {
        probe = run_child({python, "-c", "import matplotlib, sklearn"}, {}, "");
    } catch (const RuntimeError& e) {  // fork or open failed: no figures, the results are kept
        say(std::string(e.what()) + "; the figures are skipped, the results kept");
        return {{"made", false}, {"reason", e.what()}};
    }
    if (probe.interrupted) check_interrupt("figures");
    if (!(WIFEXITED(probe.status) && WEXITSTATUS(probe.status) == 0)) {
        say("figures: skipped (they need Debian's python3-matplotlib and python3-sklearn: "
            "sudo apt-get install python3-matplotlib python3-sklearn)");
        return {{"made", false}, {"reason", "python3-matplotlib or python3-sklearn missing"}};
    }
    const std::string log = folder + "/figures.log";
    // The report names the folder it will live in, not the staging folder it is drawn in.
    std::error_code ec;
    const std::string shown = std::filesystem::absolute(final_folder, ec).string();
    // The results for the script, beside the system's temporary files (not in the user's folder), removed on return.
    const char* tmpdir = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/rsa_gpu_results_XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) {
        say(std::string("figures: skipped (cannot create a temporary file in ") + (tmpdir ? tmpdir : "/tmp") + ": " +
            std::strerror(errno) + "); the results are kept");
        return {{"made", false}, {"reason", "no temporary file for the results"}};
    }
    struct RemoveTemp {
        std::string path;
        ~RemoveTemp() { ::unlink(path.c_str()); }
    } remove_temp{tmpl};
    const bool written = ::write(fd, results_json.data(), results_json.size()) == static_cast<ssize_t>(results_json.size());
    ::close(fd);
    if (!written) {
        say("figures: skipped (cannot write the results to " + tmpl + "); the results are kept");
        return {{"made", false}, {"reason", "cannot write the results for the script"}};
    }
    try {
        run = run_child({python, script, folder, "--results", tmpl}, {"RSA_GPU_OUT_DIR=" + shown}, log);
    } catch (const RuntimeError& e) {
        say(std::string(e.what()) + "; the figures are skipped, the results kept");
        return {{"made", false}, {"reason", e.what()}};
    }
    if (run.interrupted) check_interrupt("figures");  // throws: an interruption, not a figures failure
    if (!(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)) {
        say("figures: " + script_name + " failed (" + describe_status(run.status) +
            "; see figures.log in the output folder); the results are kept");
        return {{"made", false}, {"reason", script_name + " failed (" + describe_status(run.status) + ")"}};
    }
    std::remove(log.c_str());
    return {{"made", true}, {"report", "report.html"}, {"folder", "figures/"}};
}

}  // namespace rsa

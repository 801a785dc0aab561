// Figures and report.html for an output folder: runs tools/make_figures.py (matplotlib, t-SNE) and reports what
// happened; missing tools are not an error (the run says how to get them).
#include "rsa_gpu/figures.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace rsa {

// A string as one single-quoted shell word.
static std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// Figures and report.html by tools/make_figures.py (Debian's python3-matplotlib and python3-sklearn), run on
// the staging folder before it is committed. Missing tools are not an error: say how to get them.
nlohmann::json make_figures(const std::string& folder, const std::string& final_folder,
                            const std::function<void(const std::string&)>& say) {
    const char* env = std::getenv("RSA_GPU_TOOLS_DIR");
    const std::string script = std::string(env ? env : RSA_GPU_TOOLS_DIR) + "/make_figures.py";
    const std::string python = "/usr/bin/python3";
    if (access(script.c_str(), R_OK) != 0) {
        say("figures: skipped (" + script + " not found; set RSA_GPU_TOOLS_DIR to the rsa_gpu tools/ folder)");
        return {{"made", false}, {"reason", "script not found"}};
    }
    if (std::system((python + " -c 'import matplotlib, sklearn' >/dev/null 2>&1").c_str()) != 0) {
        say("figures: skipped (they need Debian's python3-matplotlib and python3-sklearn: "
            "sudo apt-get install python3-matplotlib python3-sklearn)");
        return {{"made", false}, {"reason", "python3-matplotlib or python3-sklearn missing"}};
    }
    const std::string log = folder + "/figures.log";
    // The report names the folder it will live in, not the staging folder it is drawn in.
    std::error_code ec;
    const std::string shown = std::filesystem::absolute(final_folder, ec).string();
    const std::string cmd = "RSA_GPU_OUT_DIR=" + shell_quote(shown) + " " + python + " " + shell_quote(script) + " " +
                            shell_quote(folder) + " >" + shell_quote(log) + " 2>&1";
    const int status = std::system(cmd.c_str());
    if (status != 0) {
        say("figures: make_figures.py failed (see figures.log in the output folder); the results are kept");
        return {{"made", false}, {"reason", "make_figures.py failed"}};
    }
    std::remove(log.c_str());
    return {{"made", true}, {"report", "report.html"}, {"folder", "figures/"}};
}

}  // namespace rsa

// Figures and report.html (tools/make_figures.py, Debian's python3-matplotlib and python3-sklearn) for an output
// folder. `folder` is where the files are now (the staging folder), `final_folder` where they will live (named in
// the report). results_json: the run's results (results_to_json), handed to the script in a temporary file outside
// the folder (results.json is written once, after the figures, with their outcome). Returns {"made": true/false,
// "reason"/"report"/"folder"}; says one line through `say` when skipped.
// The script runs as a child process (its own process group, killed if we die); a SIGINT/SIGTERM meanwhile kills it
// and throws Interrupted (an interruption, not a figures failure).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace rsa {

// `script`: the script in tools/ that draws them (make_figures.py for the main job, evaluate_figure.py for evaluate).
nlohmann::json make_figures(const std::string& folder, const std::string& final_folder, const std::string& results_json,
                            const std::function<void(const std::string&)>& say,
                            const std::string& script = "make_figures.py");

}  // namespace rsa

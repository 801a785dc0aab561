// The main job (see analysis.h): load or generate V1, draw gratings at its orientations, compute every RDM,
// correlate each representation's RDM with V1's, print the table and write the output folder atomically.
#include "rsa_gpu/analysis.h"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/output_dir.h"
#include "rsa_gpu/v1_data.h"

namespace rsa {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Representation {
    std::string name;   // file-name friendly: "pixels", "pool", ...
    std::string label;  // for the table
    Matrix resp;
};

}  // namespace

int run_analysis(Backend& backend, const AnalysisConfig& cfg) {
    OutputDir out(cfg.out_dir, cfg.force);  // refuses an existing folder before any work
    nlohmann::json timings = nlohmann::json::object();
    auto say = [&](const std::string& line) {
        if (!cfg.quiet && !cfg.json) std::printf("%s\n", line.c_str());
        std::fflush(stdout);
    };
    if (!cfg.device_note.empty()) say(cfg.device_note);

    // 1. V1 data.
    auto t0 = Clock::now();
    V1Data v1;
    nlohmann::json data_json;
    if (!cfg.v1_path.empty()) {
        v1 = load_v1_npz(cfg.v1_path);
        data_json = {{"kind", "npz"}, {"path", cfg.v1_path}};
    } else if (!cfg.responses_path.empty()) {
        v1 = load_responses(cfg.responses_path, cfg.orientations_path);
        data_json = {{"kind", "responses"}, {"responses", cfg.responses_path}, {"orientations", cfg.orientations_path}};
    } else {
        const SyntheticV1 syn = backend.synthetic_v1(cfg.synthetic);
        v1 = v1_from_synthetic(syn, cfg.synthetic);
        data_json = {{"kind", "embedded synthetic"},
                     {"seed", cfg.synthetic.seed},
                     {"neurons", cfg.synthetic.neurons},
                     {"trials", cfg.synthetic.trials},
                     {"bins", cfg.synthetic.bins},
                     {"shared_factors", cfg.synthetic.shared_factors},
                     {"noise_sd", cfg.synthetic.noise_sd}};
    }
    timings["v1_data_ms"] = ms_since(t0);
    check_rdm_input(v1.resp, "V1 responses (" + v1.source + ")");
    {
        std::ostringstream os;
        os << "V1: " << v1.resp.rows << " stimuli x " << v1.resp.cols << " neurons from " << v1.source;
        say(os.str());
    }

    // 2. Stimuli: gratings at the V1 orientations.
    t0 = Clock::now();
    std::vector<Representation> reps;
    reps.push_back({"pixels", "pixels (control)", backend.gratings(v1.orientation, cfg.grating)});
    timings["stimuli_ms"] = ms_since(t0);

    // 3. RDMs.
    t0 = Clock::now();
    const Matrix rdm_v1 = backend.rdm(v1.resp, cfg.rdm, "V1 responses");
    std::vector<Matrix> rdms;
    for (const auto& r : reps) rdms.push_back(backend.rdm(r.resp, cfg.rdm, "'" + r.name + "' representation"));
    timings["rdm_ms"] = ms_since(t0);

    // 4. Comparison with V1.
    t0 = Clock::now();
    std::vector<PearsonResult> corr;
    for (const auto& m : rdms) corr.push_back(backend.compare_pearson(rdm_v1, m));
    timings["compare_ms"] = ms_since(t0);

    // 5. Table.
    say("");
    say("representation        Pearson r with V1 RDM   pairs");
    for (size_t i = 0; i < reps.size(); ++i) {
        char line[256];
        std::snprintf(line, sizeof(line), "%-21s %20.6f   %lld%s", reps[i].label.c_str(), corr[i].r,
                      static_cast<long long>(corr[i].pairs),
                      corr[i].skipped ? (" (" + std::to_string(corr[i].skipped) + " NaN pairs skipped)").c_str() : "");
        say(line);
    }

    // 6. Output folder.
    t0 = Clock::now();
    npy_save(out.path("orientations.npy"), v1.orientation);
    npy_save(out.path("rdm_v1.npy"), rdm_v1);
    std::ostringstream csv;
    csv << "layer,measure,value,pairs,skipped_pairs\n";
    nlohmann::json results = nlohmann::json::array();
    for (size_t i = 0; i < reps.size(); ++i) {
        npy_save(out.path("rdm_" + reps[i].name + ".npy"), rdms[i]);
        char value[64];
        std::snprintf(value, sizeof(value), "%.9g", corr[i].r);
        csv << reps[i].name << ",pearson," << value << "," << corr[i].pairs << "," << corr[i].skipped << "\n";
        results.push_back({{"layer", reps[i].name},
                           {"measure", "pearson"},
                           {"value", corr[i].r},
                           {"pairs", corr[i].pairs},
                           {"skipped_pairs", corr[i].skipped}});
    }
    write_file_atomic(out.path("correlations.csv"), csv.str());
    timings["write_ms"] = ms_since(t0);

    nlohmann::json doc = {
        {"tool", "rsa_gpu"},
        {"version", RSA_GPU_VERSION},
        {"command", cfg.command_line},
        {"device", backend.name()},
        {"data", data_json},
        {"stimuli", {{"count", v1.resp.rows}, {"height", cfg.grating.height()}, {"width", cfg.grating.width()},
                     {"sf", cfg.grating.sf}, {"res", cfg.grating.res}}},
        {"v1", {{"stimuli", v1.resp.rows}, {"neurons", v1.resp.cols}, {"source", v1.source}}},
        {"rdm", {{"method", "1 - Pearson correlation (z-score rows, ddof 0; SYRK)"},
                 {"constant_rows", cfg.rdm.constant_rows == ConstantRows::Nan ? "nan" : "fail"}}},
        {"correlations", results},
        {"timings_ms", timings},
        {"files", {"orientations.npy", "rdm_v1.npy", "correlations.csv", "results.json"}},
    };
    for (const auto& r : reps) doc["files"].push_back("rdm_" + r.name + ".npy");
    write_file_atomic(out.path("results.json"), doc.dump(2) + "\n");
    out.commit();
    say("");
    say("results written to " + out.target() + "/");
    if (cfg.json) {
        nlohmann::json line = {{"device", backend.name()}, {"out", out.target()}, {"correlations", results},
                               {"timings_ms", timings}};
        std::printf("%s\n", line.dump().c_str());
    }
    return kExitOk;
}

}  // namespace rsa

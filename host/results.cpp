// results.json: the one serialisation of the main job's Results (schema in results.h) and its inverse.
#include "rsa_gpu/results.h"

#include <cmath>

#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"

namespace rsa {

using nlohmann::json;

std::string representation_label(const std::string& layer) {
    return layer == "pixels" ? "pixels (control)" : "model '" + layer + "' layer";
}

namespace {

json number_or_null(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

json data_to_json(const DataDescription& d) {
    json j = {{"kind", d.kind}};
    if (!d.path.empty()) j["path"] = d.path;
    if (!d.sresp.empty()) j["sresp"] = d.sresp;
    if (!d.istim.empty()) j["istim"] = d.istim;
    if (!d.responses.empty()) j["responses"] = d.responses;
    if (!d.orientations.empty()) j["orientations"] = d.orientations;
    if (d.synthetic) {
        j["seed"] = d.synthetic->seed;
        j["neurons"] = d.synthetic->neurons;
        j["trials"] = d.synthetic->trials;
        j["bins"] = d.synthetic->bins;
        j["shared_factors"] = d.synthetic->shared_factors;
        j["noise_sd"] = d.synthetic->noise_sd;
    }
    if (d.trials >= 0) j["trials"] = d.trials;  // a trial-level recording's own size
    if (d.neurons >= 0) j["neurons"] = d.neurons;
    return j;
}

json cnn_to_json(const std::optional<CnnDescription>& cnn) {
    if (!cnn) return nullptr;
    if (!cnn->weights.empty()) return {{"weights", cnn->weights}};
    return {{"epochs", cnn->train.epochs},
            {"batch", cnn->train.batch},
            {"train_size", cnn->train.train_size},
            {"lr", cnn->train.lr},
            {"momentum", cnn->train.momentum},
            {"seed", cnn->train.seed},
            {"kernels", cnn_kernels_name(cnn->train.kernels)},
            {"step_losses", cnn->losses.step_losses},
            {"epoch_losses", cnn->losses.epoch_losses},
            {"train_correct", cnn->train_correct},
            {"train_total", cnn->train_total},
            {"misclassified_angles", cnn->misclassified_angles}};
}

json statistics_to_json(const std::optional<StatisticsDescription>& s) {
    if (!s) return nullptr;
    json j = {{"seed", s->seed}, {"bootstrap_resamples", s->bootstrap_resamples}, {"permutations", s->permutations}};
    if (s->noise_ceiling) {
        const NoiseCeilingDescription& c = *s->noise_ceiling;
        j["noise_ceiling"] = {{"ceiling", c.ceiling},     {"r_half", c.r_half},         {"bins_kept", c.bins_kept},
                              {"bins_dropped", c.bins_dropped}, {"method", c.method}};
    }
    return j;
}

json correlation_to_json(const CorrelationRow& r) {
    json j = {{"layer", r.layer},
              {"measure", r.measure},
              {"value", number_or_null(r.value)},
              {"pairs", r.pairs},
              {"skipped_pairs", r.skipped_pairs}};
    if (!std::isnan(r.ci_low)) j["ci_low"] = r.ci_low, j["ci_high"] = r.ci_high;
    if (!std::isnan(r.p_value)) j["p_value"] = r.p_value;
    if (!std::isnan(r.ceiling)) j["ceiling"] = r.ceiling;
    return j;
}

// ---- reading back

const json& need(const json& j, const char* key, const std::string& where) {
    if (!j.is_object() || !j.contains(key))
        throw InputError("results.json: " + where + (where.empty() ? "" : ": ") + "missing key '" + key + "'");
    return j.at(key);
}

template <typename T>
T get(const json& j, const char* key, const std::string& where = "") {
    return need(j, key, where).get<T>();
}

template <typename T>
void get_if(const json& j, const char* key, T* out) {
    if (j.contains(key) && !j.at(key).is_null()) *out = j.at(key).get<T>();
}

double number_or_nan(const json& j, const char* key) {
    return j.contains(key) && j.at(key).is_number() ? j.at(key).get<double>() : NAN;
}

DataDescription data_from_json(const json& j) {
    DataDescription d;
    d.kind = get<std::string>(j, "kind", "data");
    get_if(j, "path", &d.path);
    get_if(j, "sresp", &d.sresp);
    get_if(j, "istim", &d.istim);
    get_if(j, "responses", &d.responses);
    get_if(j, "orientations", &d.orientations);
    const bool embedded = d.kind.rfind("embedded synthetic", 0) == 0;
    const bool trial_level = d.kind.find("trial") != std::string::npos;
    if (embedded) {
        SyntheticV1Params p;
        get_if(j, "seed", &p.seed);
        get_if(j, "neurons", &p.neurons);
        get_if(j, "trials", &p.trials);
        get_if(j, "bins", &p.bins);
        get_if(j, "shared_factors", &p.shared_factors);
        get_if(j, "noise_sd", &p.noise_sd);
        d.synthetic = p;
    }
    if (trial_level) {
        get_if(j, "trials", &d.trials);
        get_if(j, "neurons", &d.neurons);
    }
    return d;
}

}  // namespace

json results_to_json(const Results& r) {
    json correlations = json::array();
    for (const CorrelationRow& row : r.correlations) correlations.push_back(correlation_to_json(row));
    json timings = json::object();
    for (const auto& [stage, ms] : r.timings_ms) timings[stage] = ms;
    json doc = {
        {"schema", r.schema},
        {"tool", r.tool},
        {"version", r.version},
        {"command", r.command},
        {"device", r.device},
        {"versions", r.versions},
        {"data", data_to_json(r.data)},
        {"stimuli",
         {{"count", r.stimuli.count}, {"height", r.stimuli.height}, {"width", r.stimuli.width}, {"sf", r.stimuli.sf},
          {"res", r.stimuli.res}}},
        {"v1", {{"stimuli", r.v1.stimuli}, {"neurons", r.v1.neurons}, {"source", r.v1.source}}},
        {"rdm", {{"method", r.rdm_method}, {"constant_rows", r.constant_rows == ConstantRows::Nan ? "nan" : "fail"}}},
        {"cnn", cnn_to_json(r.cnn)},
        {"statistics", statistics_to_json(r.statistics)},
        {"correlations", correlations},
        {"timings_ms", timings},
        {"files", r.files},
    };
    if (!r.figures.is_null()) doc["figures"] = r.figures;
    return doc;
}

Results results_from_json(const json& doc) {
    try {
        Results r;
        r.schema = get<int>(doc, "schema");
        if (r.schema != kResultsSchema)
            throw InputError("results.json: schema " + std::to_string(r.schema) + ", this rsa_gpu reads schema " +
                             std::to_string(kResultsSchema));
        r.tool = get<std::string>(doc, "tool");
        r.version = get<std::string>(doc, "version");
        r.command = get<std::string>(doc, "command");
        r.device = get<std::string>(doc, "device");
        r.versions = get<std::string>(doc, "versions");
        r.data = data_from_json(need(doc, "data", ""));

        const json& st = need(doc, "stimuli", "");
        r.stimuli = {get<int64_t>(st, "count", "stimuli"), get<int>(st, "height", "stimuli"),
                     get<int>(st, "width", "stimuli"), get<double>(st, "sf", "stimuli"),
                     get<double>(st, "res", "stimuli")};
        const json& v1 = need(doc, "v1", "");
        r.v1 = {get<int64_t>(v1, "stimuli", "v1"), get<int64_t>(v1, "neurons", "v1"),
                get<std::string>(v1, "source", "v1")};
        const json& rdm = need(doc, "rdm", "");
        r.rdm_method = get<std::string>(rdm, "method", "rdm");
        r.constant_rows = get<std::string>(rdm, "constant_rows", "rdm") == "nan" ? ConstantRows::Nan : ConstantRows::Fail;

        const json& cnn = need(doc, "cnn", "");
        if (!cnn.is_null()) {
            CnnDescription c;
            if (cnn.contains("weights")) {
                c.weights = get<std::string>(cnn, "weights", "cnn");
            } else {
                c.train.epochs = get<int>(cnn, "epochs", "cnn");
                c.train.batch = get<int>(cnn, "batch", "cnn");
                c.train.train_size = get<int>(cnn, "train_size", "cnn");
                c.train.lr = get<float>(cnn, "lr", "cnn");
                c.train.momentum = get<float>(cnn, "momentum", "cnn");
                c.train.seed = get<uint64_t>(cnn, "seed", "cnn");
                // Written since --cnn-kernels exists; older files trained with the exact kernels.
                c.train.kernels = cnn.contains("kernels") ? parse_cnn_kernels(get<std::string>(cnn, "kernels", "cnn"))
                                                          : CnnKernels::exact;
                c.losses.step_losses = get<std::vector<float>>(cnn, "step_losses", "cnn");
                c.losses.epoch_losses = get<std::vector<float>>(cnn, "epoch_losses", "cnn");
                c.train_correct = get<int>(cnn, "train_correct", "cnn");
                c.train_total = get<int>(cnn, "train_total", "cnn");
                c.misclassified_angles = get<std::vector<float>>(cnn, "misclassified_angles", "cnn");
            }
            r.cnn = c;
        }

        const json& stats = need(doc, "statistics", "");
        if (!stats.is_null()) {
            StatisticsDescription s;
            s.seed = get<uint64_t>(stats, "seed", "statistics");
            s.bootstrap_resamples = get<int>(stats, "bootstrap_resamples", "statistics");
            s.permutations = get<int>(stats, "permutations", "statistics");
            if (stats.contains("noise_ceiling")) {
                const json& c = stats.at("noise_ceiling");
                NoiseCeilingDescription n;
                n.ceiling = number_or_nan(c, "ceiling");
                for (const json& v : need(c, "r_half", "statistics.noise_ceiling"))
                    n.r_half.push_back(v.is_number() ? v.get<double>() : NAN);
                n.bins_kept = get<int64_t>(c, "bins_kept", "statistics.noise_ceiling");
                n.bins_dropped = get<int64_t>(c, "bins_dropped", "statistics.noise_ceiling");
                n.method = get<std::string>(c, "method", "statistics.noise_ceiling");
                s.noise_ceiling = n;
            }
            r.statistics = s;
        }

        // `representation` is not in the file: it stays 0.
        for (const json& c : need(doc, "correlations", "")) {
            CorrelationRow row;
            row.layer = get<std::string>(c, "layer", "correlations");
            row.measure = get<std::string>(c, "measure", "correlations");
            row.value = number_or_nan(c, "value");
            row.pairs = get<int64_t>(c, "pairs", "correlations");
            row.skipped_pairs = get<int64_t>(c, "skipped_pairs", "correlations");
            row.ci_low = number_or_nan(c, "ci_low");
            row.ci_high = number_or_nan(c, "ci_high");
            row.p_value = number_or_nan(c, "p_value");
            row.ceiling = number_or_nan(c, "ceiling");
            r.correlations.push_back(row);
        }
        for (const auto& [stage, ms] : need(doc, "timings_ms", "").items()) r.timings_ms[stage] = ms.get<double>();
        r.files = get<std::vector<std::string>>(doc, "files");
        if (doc.contains("figures")) r.figures = doc.at("figures");
        return r;
    } catch (const json::exception& e) {
        throw InputError(std::string("results.json: ") + e.what());
    }
}

void write_results_json(const std::string& path, const Results& results) {
    write_file_atomic(path, results_to_json(results).dump(2) + "\n");
}

}  // namespace rsa

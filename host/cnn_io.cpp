// Saving and loading the CNN's weights as an .npz with PyTorch's state_dict names and shapes (conv.weight
// 6x1x7x7, conv.bias 6, fc.weight 10x288, fc.bias 10, out.weight 1x10, out.bias 1), so a network trained in
// PyTorch loads here (np.savez(path, **{k: v.numpy() for k, v in net.state_dict().items()})) and back. Loading
// reads only the six members it uses, each bounded by its expected shape.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "rsa_gpu/cnn.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"

namespace rsa {

namespace {

struct Entry {
    const char* key;
    std::vector<int64_t> shape;
    int offset;
};

const std::vector<Entry>& entries() {
    using namespace cnn;
    static const std::vector<Entry> e = {
        {"conv.weight", {kChannels, 1, kKernel, kKernel}, kConvW}, {"conv.bias", {kChannels}, kConvB},
        {"fc.weight", {kHidden, kPooled}, kFcW},                   {"fc.bias", {kHidden}, kFcB},
        {"out.weight", {1, kHidden}, kOutW},                       {"out.bias", {1}, kOutB},
    };
    return e;
}

std::string shape_text(const std::vector<int64_t>& s) {
    std::ostringstream os;
    os << "(";
    for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
    os << (s.size() == 1 ? ",)" : ")");
    return os.str();
}

}  // namespace

void cnn_save_npz(const std::string& path, const std::vector<float>& params) {
    if (params.size() != static_cast<size_t>(cnn::kParams))
        throw RuntimeError("cnn_save_npz: expected " + std::to_string(cnn::kParams) + " parameters");
    std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> members;
    for (const Entry& e : entries()) {
        int64_t n = 1;
        for (int64_t d : e.shape) n *= d;
        members[e.key] = {e.shape, std::vector<float>(params.begin() + e.offset, params.begin() + e.offset + n)};
    }
    npz_save(path, members);
}

std::vector<float> cnn_load_npz(const std::string& path) {
    // Only the six members used are read, each checked by its .npy header (shape) before its body is inflated,
    // and inflated no further than the expected shape at 8 bytes a value; other members are never inflated.
    NpzReader npz(path);
    std::vector<float> params(cnn::kParams);
    for (const Entry& e : entries()) {
        if (!npz.has(e.key)) {
            std::vector<std::string> keys = npz.keys();
            std::sort(keys.begin(), keys.end());
            std::ostringstream os;
            os << path << ": missing key '" << e.key << "' (a model file holds conv.weight, conv.bias, fc.weight, "
               << "fc.bias, out.weight, out.bias); keys present:";
            for (const auto& k : keys) os << " " << k;
            throw InputError(os.str());
        }
        const NpyHeader header = npz.header(e.key);
        if (header.shape != e.shape)
            throw InputError(path + ": '" + e.key + "' has shape " + shape_text(header.shape) + ", expected " +
                             shape_text(e.shape));
        uint64_t n = 1;
        for (int64_t d : e.shape) n *= static_cast<uint64_t>(d);
        const NpyArray a = npz.read(e.key, header.header_bytes + n * sizeof(double));
        if (a.shape != e.shape)  // the member changed between the two reads
            throw InputError(path + ": '" + e.key + "' has shape " + shape_text(a.shape) + ", expected " +
                             shape_text(e.shape));
        for (size_t i = 0; i < a.values.size(); ++i) {
            const double v = a.values[i];
            if (!std::isfinite(v))
                throw InputError(path + ": '" + e.key + "' has a non-finite value at flat index " + std::to_string(i));
            params[static_cast<size_t>(e.offset) + i] = static_cast<float>(v);
        }
    }
    return params;
}

}  // namespace rsa

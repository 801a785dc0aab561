// Model files in PyTorch's state_dict names and shapes: the oracle's np.savez of a PyTorch state_dict loads
// here and reproduces PyTorch's activations; save/load round-trips; bad model files are clear errors.
#include <gtest/gtest.h>

#include <cmath>

#include "rsa_gpu/cnn.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using namespace rsa;

namespace {

std::vector<float> golden(const std::string& name) {
    const NpyArray a = npy_load(rsa_test::data_path("cnn/" + name));
    return std::vector<float>(a.values.begin(), a.values.end());
}

void expect_error_mentions(const std::string& path, const std::string& needle) {
    try {
        cnn_load_npz(path);
        FAIL() << "expected InputError for " << path;
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
}

}  // namespace

TEST(CnnIo, PyTorchStateDictLoadsAndReproducesActivations) {
    const std::vector<float> params = cnn_load_npz(rsa_test::data_path("cnn/state_dict.npz"));
    EXPECT_EQ(params, golden("params0.npy"));
    const std::vector<float> images = golden("images.npy");
    const int batch = 8;  // the oracle's fixed batch: images[0:8]
    CnnActivations act;
    cnn_forward_ref(params.data(), images.data(), batch, &act);
    const std::vector<float> pool = golden("pool.npy"), fc = golden("fc.npy"), logit = golden("logit.npy");
    EXPECT_LT(rsa_test::rel_l2(act.pool, pool), 1e-5);
    EXPECT_LT(rsa_test::rel_l2(act.fc, fc), 1e-5);
    EXPECT_LT(rsa_test::rel_l2(act.logit, logit), 1e-5);
}

TEST(CnnIo, SaveLoadRoundTrip) {
    const std::string d = rsa_test::scratch_dir("cnn_io");
    const std::vector<float> p = cnn_init_params(12);
    cnn_save_npz(d + "/net.npz", p);
    EXPECT_EQ(cnn_load_npz(d + "/net.npz"), p);
    EXPECT_EQ(npz_load_key(d + "/net.npz", "conv.weight").shape, (std::vector<int64_t>{6, 1, 7, 7}));
    EXPECT_EQ(npz_load_key(d + "/net.npz", "out.weight").shape, (std::vector<int64_t>{1, 10}));
}

TEST(CnnIo, BadModelFiles) {
    const std::string d = rsa_test::scratch_dir("cnn_io_bad");
    const std::vector<float> p = cnn_init_params(12);
    std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> m = {
        {"conv.weight", {{6, 1, 7, 7}, std::vector<float>(p.begin(), p.begin() + 294)}},
        {"conv.bias", {{6}, std::vector<float>(6, 0.0f)}},
        {"fc.weight", {{10, 288}, std::vector<float>(2880, 0.01f)}},
        {"fc.bias", {{10}, std::vector<float>(10, 0.0f)}},
        {"out.weight", {{1, 10}, std::vector<float>(10, 0.1f)}},
    };
    npz_save(d + "/missing.npz", m);
    expect_error_mentions(d + "/missing.npz", "out.bias");
    m["out.bias"] = {{1}, {0.0f}};
    m["fc.weight"] = {{288, 10}, std::vector<float>(2880, 0.01f)};
    npz_save(d + "/shape.npz", m);
    expect_error_mentions(d + "/shape.npz", "(10, 288)");
    m["fc.weight"] = {{10, 288}, std::vector<float>(2880, 0.01f)};
    m["fc.weight"].second[17] = NAN;
    npz_save(d + "/nan.npz", m);
    expect_error_mentions(d + "/nan.npz", "fc.weight");
}

// Model files in PyTorch's state_dict names and shapes: the oracle's np.savez of a PyTorch state_dict loads
// here and reproduces PyTorch's activations; save/load round-trips; bad model files are clear errors; only the
// six members used are read (an extra huge member is never inflated), each checked by its header's shape
// before its body is inflated; hostile members fail by name.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "rsa_gpu/cnn.h"
#include "rsa_gpu/error.h"
#include "fuzz/bounded_run.h"
#include "fuzz/zip_craft.h"
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

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// The model's six members as float32 arrays (stored, or deflated when compress).
void save_model_members(const std::string& path, const std::vector<float>& p, bool compress,
                        const std::string& skip = "") {
    const std::vector<std::pair<std::string, std::vector<int64_t>>> layout = {
        {"conv.weight", {6, 1, 7, 7}}, {"conv.bias", {6}}, {"fc.weight", {10, 288}},
        {"fc.bias", {10}},             {"out.weight", {1, 10}}, {"out.bias", {1}}};
    std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> m;
    size_t at = 0;
    for (const auto& [key, shape] : layout) {
        size_t n = 1;
        for (int64_t d : shape) n *= static_cast<size_t>(d);
        if (key != skip) m[key] = {shape, std::vector<float>(p.begin() + at, p.begin() + at + n)};
        at += n;
    }
    npz_save(path, m, compress);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST(CnnIo, ExtraHugeUnusedMemberIsNeverInflated) {
    // The model plus 'junk': 200 MB of zeros (about 200 KB deflated) whose CRC is wrong, so that inflating it
    // would fail; loading the model must not touch it, and must stay fast and small.
    const std::string d = rsa_test::scratch_dir("cnn_io_junk");
    const std::string path = d + "/net.npz";
    const std::vector<float> p = cnn_init_params(12);
    cnn_save_npz(path, p);
    const uint64_t n = 50 * kMiB;
    ASSERT_EQ(zip_craft::write_streamed(path, {{"junk.npy", zip_craft::npy_header("<f4", {n}), 4 * n}}, true), "");
    std::string bytes = zip_craft::read_bytes(path);
    ASSERT_TRUE(zip_craft::patch_crc(bytes, "junk.npy", 0xDEADBEEF));
    ASSERT_TRUE(zip_craft::write_bytes(path, bytes));
    ASSERT_LT(bytes.size(), 2 * kMiB);

    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(cnn_load_npz(path), p);
    EXPECT_LT(seconds_since(t0), 0.5);
    if (bounded_run::kLimitWorks) {  // not under AddressSanitizer
        const bounded_run::Result r = bounded_run::run([&] { cnn_load_npz(path); }, 64 * kMiB);
        EXPECT_EQ(r.outcome, bounded_run::Outcome::Returned) << bounded_run::outcome_name(r.outcome) << ": " << r.message;
    }
    // Inflating 'junk' (as npz_load of every member would) does fail.
    try {
        npz_load_key(path, "junk", 512 * kMiB);
        ADD_FAILURE() << "expected the junk member to fail its CRC check";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("'junk.npy'"), std::string::npos) << e.what();
    }
}

TEST(CnnIo, ShapeIsCheckedBeforeTheBodyIsInflated) {
    // fc.weight of shape (10, 5242880): 200 MB of zeros, CRC wrong. The shape error must come from the header,
    // without inflating (a CRC error would mean the body was read).
    const std::string d = rsa_test::scratch_dir("cnn_io_shape_first");
    const std::string path = d + "/net.npz";
    save_model_members(path, cnn_init_params(12), false, "fc.weight");
    ASSERT_EQ(zip_craft::write_streamed(path, {{"fc.weight.npy", zip_craft::npy_header("<f4", {10, 5 * kMiB}),
                                                 200 * kMiB}}, true), "");
    std::string bytes = zip_craft::read_bytes(path);
    ASSERT_TRUE(zip_craft::patch_crc(bytes, "fc.weight.npy", 0xDEADBEEF));
    ASSERT_TRUE(zip_craft::write_bytes(path, bytes));
    const auto t0 = std::chrono::steady_clock::now();
    expect_error_mentions(path, "'fc.weight' has shape (10, 5242880), expected (10, 288)");
    EXPECT_LT(seconds_since(t0), 0.5);
}

TEST(CnnIo, HostileMembersFailByName) {
    const std::string d = rsa_test::scratch_dir("cnn_io_hostile");
    const std::vector<float> p = cnn_init_params(12);
    // A deflated member whose declared size disagrees with its header.
    save_model_members(d + "/lie.npz", p, true);
    std::string bytes = zip_craft::read_bytes(d + "/lie.npz");
    const uint64_t size = zip_craft::get_le(bytes, zip_craft::locate(bytes, "fc.bias.npy").central + 24, 4);
    ASSERT_TRUE(zip_craft::patch_size(bytes, "fc.bias.npy", size + 4));
    ASSERT_TRUE(zip_craft::write_bytes(d + "/lie.npz", bytes));
    expect_error_mentions(d + "/lie.npz", "member 'fc.bias.npy' declares");
    // The same member twice.
    const std::string bias = zip_craft::npy_f32(std::vector<float>(6, 0.0f), {6});
    ASSERT_TRUE(zip_craft::write_bytes(d + "/dup.npz", zip_craft::build_zip({{"conv.bias.npy", bias},
                                                                             {"conv.bias.npy", bias}})));
    expect_error_mentions(d + "/dup.npz", "duplicate member 'conv.bias.npy'");
    // The shared reproducers.
    for (const char* name : {"oom_lying_size_116B.npz", "zip64_claims_1TiB.npz"})
        expect_error_mentions(rsa_test::data_path(std::string("fuzz/") + name), "'resp.npy'");
}

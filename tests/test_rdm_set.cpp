// RDM sets (rdm_set.h): reading .npy, .npz and rsatoolbox's HDF5 files against what the oracle
// (tools/make_rdm_files.py: rsatoolbox, numpy, h5py) says they hold (tests/data/rdm_files/expected.json); every
// refusal (shapes, asymmetry, NaN, diagonal, S < 3, mixed S, duplicate names, hostile HDF5) an InputError naming the
// file; writing .npy and HDF5 and reading back; atomicity and overwrite; `rsa_gpu rdm --out x.h5`.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include "fuzz/bounded_run.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/rdm_set.h"
#include "test_util.h"

namespace {

using rsa::InputError;
using rsa::RdmSet;
using nlohmann::json;

std::string rdm_file(const std::string& name) { return rsa_test::data_path("rdm_files/" + name); }

json expected(const std::string& name) {
    std::ifstream in(rdm_file("expected.json"));
    json all = json::parse(in);
    return all.at(name);
}

void expect_equal_sets(const RdmSet& got, const RdmSet& want) {
    EXPECT_EQ(got.count, want.count);
    EXPECT_EQ(got.patterns, want.patterns);
    ASSERT_EQ(got.upper.size(), want.upper.size());
    for (size_t i = 0; i < want.upper.size(); ++i) EXPECT_EQ(got.upper[i], want.upper[i]) << "value " << i;
    EXPECT_EQ(got.names, want.names);
    EXPECT_EQ(got.dissimilarity_measure, want.dissimilarity_measure);
    EXPECT_EQ(got.descriptors, want.descriptors);
    EXPECT_EQ(got.rdm_descriptors, want.rdm_descriptors);
    EXPECT_EQ(got.pattern_descriptors, want.pattern_descriptors);
}

RdmSet from_expected(const json& e) {
    RdmSet s;
    s.count = e.at("count");
    s.patterns = e.at("patterns");
    s.upper = e.at("upper").get<std::vector<double>>();
    s.names = e.at("names").get<std::vector<std::string>>();
    s.dissimilarity_measure = e.at("dissimilarity_measure");
    s.descriptors = e.at("descriptors");
    s.rdm_descriptors = e.at("rdm_descriptors");
    s.pattern_descriptors = e.at("pattern_descriptors");
    return s;
}

// The InputError's message of reading `name`, which must mention every one of `parts` (and the file).
void expect_refused(const std::string& name, const std::vector<std::string>& parts) {
    const std::string path = rdm_file(name);
    const auto t0 = std::chrono::steady_clock::now();
    try {
        (void)rsa::read_rdm_set(path);
        ADD_FAILURE() << name << ": read without error";
    } catch (const InputError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
        for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(s, 1.0) << name << " took " << s << " s to refuse";
}

TEST(RdmSetRead, ReadsEveryFormatAsTheOracleSays) {
    for (const char* name : {"three_rdms.h5", "one_rdm.hdf5", "unnamed.h5", "one.npy", "pair.npy", "models.npz"}) {
        SCOPED_TRACE(name);
        const RdmSet got = rsa::read_rdm_set(rdm_file(name));
        const json e = expected(name);
        const RdmSet want = from_expected(e);
        EXPECT_EQ(got.count, want.count);
        EXPECT_EQ(got.patterns, want.patterns);
        ASSERT_EQ(got.upper.size(), want.upper.size());
        for (size_t i = 0; i < want.upper.size(); ++i) {
            // .npy float32 files hold float32 values; everything else float64: equal to the last bit either way.
            EXPECT_EQ(got.upper[i], want.upper[i]) << "value " << i;
        }
        EXPECT_EQ(got.names, want.names);
        EXPECT_EQ(got.dissimilarity_measure, want.dissimilarity_measure);
        EXPECT_EQ(got.descriptors, want.descriptors);
        EXPECT_EQ(got.rdm_descriptors, want.rdm_descriptors);
        EXPECT_EQ(got.pattern_descriptors, want.pattern_descriptors);
        EXPECT_EQ(got.pairs(), got.patterns * (got.patterns - 1) / 2);
        EXPECT_EQ(got.rdm(got.count - 1), got.upper.data() + (got.count - 1) * got.pairs());
    }
}

TEST(RdmSetRead, TellsFormatsByContentNotExtension) {
    const std::string dir = rsa_test::scratch_dir("rdm_set_sniff");
    std::ifstream in(rdm_file("three_rdms.h5"), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir + "/renamed.npy", std::ios::binary) << bytes;
    const RdmSet s = rsa::read_rdm_set(dir + "/renamed.npy");
    EXPECT_EQ(s.count, 3);
    EXPECT_EQ(s.names, (std::vector<std::string>{"x", "y", "z"}));
}

TEST(RdmSetRead, RefusesBadRdms) {
    expect_refused("bad_nonsquare.npy", {"(4, 5)", "S x S"});
    expect_refused("bad_rank.npy", {"(6,)"});
    expect_refused("bad_asymmetric.npy", {"not symmetric", "[0, 2]", "bad_asymmetric"});
    expect_refused("bad_nan.npy", {"NaN", "[1, 3]"});
    expect_refused("bad_diagonal.npy", {"diagonal", "[2, 2]"});
    expect_refused("bad_small.npy", {"(2, 2)", "at least 3"});
    expect_refused("bad_mixed_sizes.npz", {":b", "(5, 5)", "same patterns"});
    expect_refused("bad_duplicate_names.npz", {"'a[0]'", "unique"});
    expect_refused("bad_empty.npz", {"no arrays"});
    expect_refused("bad_text.h5", {"not an RDM file"});
    try {
        (void)rsa::read_rdm_set(rdm_file("no_such_file.npy"));
        ADD_FAILURE() << "a missing file was read";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos) << e.what();
    }
}

TEST(RdmSetRead, RefusesHostileHdf5QuicklyAndCheaply) {
    expect_refused("hostile_huge_shape.h5", {"dissimilarities"});
    expect_refused("hostile_unwritten_chunks.h5", {"dissimilarities", "549755289600", "stores only 0 bytes"});
    expect_refused("hostile_string_dtype.h5", {"dissimilarities", "string"});
    expect_refused("hostile_rank3.h5", {"(1, 4, 4)"});
    expect_refused("hostile_pairs.h5", {"(2, 7)", "S(S-1)/2"});
    expect_refused("hostile_two_patterns.h5", {"(1, 1)", "2 patterns", "at least 3"});
    expect_refused("hostile_nan.h5", {"NaN", "[0, 1]"});
    expect_refused("hostile_no_dissimilarities.h5", {"no dataset 'dissimilarities'", "rdms"});
    expect_refused("hostile_descriptor_length.h5", {"pattern_descriptors 'index'", "5 values for 4 patterns"});
    expect_refused("hostile_duplicate_names.h5", {"'m'", "unique"});
    expect_refused("hostile_truncated.h5", {"cannot read"});
    // In a child limited to 100 MB of address space beyond what it has mapped: an InputError, never an allocation.
    if (!bounded_run::kLimitWorks) return;  // under AddressSanitizer
    for (const char* name : {"hostile_huge_shape.h5", "hostile_unwritten_chunks.h5", "hostile_truncated.h5"}) {
        const bounded_run::Result r = bounded_run::run([&] { (void)rsa::read_rdm_set(rdm_file(name)); },
                                                       uint64_t{100} << 20);
        EXPECT_EQ(r.outcome, bounded_run::Outcome::InputError)
            << name << ": " << bounded_run::outcome_name(r.outcome) << ": " << r.message;
    }
}

TEST(RdmSetRead, ACrashOfTheHdf5LibraryIsAnInputErrorAndTheProcessGoesOn) {
    // The library reads in a child process (host/rdm_hdf5.cpp); the hook makes that child crash as the library does
    // on some corrupt files.
    ::setenv("RSA_GPU_TEST_HDF5_CRASH", "1", 1);
    try {
        (void)rsa::read_rdm_set(rdm_file("three_rdms.h5"));
        ADD_FAILURE() << "no error";
    } catch (const rsa::InputError& e) {
        EXPECT_NE(std::string(e.what()).find("three_rdms.h5"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("the HDF5 library crashed reading it"), std::string::npos) << e.what();
    }
    ::unsetenv("RSA_GPU_TEST_HDF5_CRASH");
    EXPECT_EQ(rsa::read_rdm_set(rdm_file("three_rdms.h5")).count, 3);
}

RdmSet sample_set() {
    RdmSet s;
    s.count = 2;
    s.patterns = 4;
    for (int i = 0; i < 12; ++i) s.upper.push_back(0.125 * (i + 1) + 1e-9 * i);
    s.names = {"model one", "model two"};
    s.dissimilarity_measure = "correlation";
    s.descriptors = {{"subject", "s01"}, {"run", 2}, {"weight", 0.25}, {"note", nullptr}};
    s.rdm_descriptors = {{"fold", json::array({1, 2})}, {"score", json::array({0.5, 1.5})}};
    s.pattern_descriptors = {{"stimulus", json::array({"a", "bb", "ccc", "d"})}};
    return s;
}

TEST(RdmSetWrite, Hdf5RoundTripKeepsValuesNamesAndDescriptors) {
    const std::string dir = rsa_test::scratch_dir("rdm_set_write_h5");
    const RdmSet s = sample_set();
    rsa::write_rdm_set(dir + "/set.h5", s, false);
    RdmSet want = s;
    want.rdm_descriptors["name"] = s.names;  // the writer adds rsatoolbox's name and index descriptors
    want.rdm_descriptors["index"] = {0, 1};
    want.pattern_descriptors["index"] = {0, 1, 2, 3};
    expect_equal_sets(rsa::read_rdm_set(dir + "/set.h5"), want);
    EXPECT_EQ(rsa_test::list_dir(dir), (std::vector<std::string>{"set.h5"}));  // no staging file left

    // Written again from what was read: the same file contents as far as the reader can tell.
    rsa::write_rdm_set(dir + "/again.hdf5", rsa::read_rdm_set(dir + "/set.h5"), false);
    expect_equal_sets(rsa::read_rdm_set(dir + "/again.hdf5"), want);

    // No measure: written as rsatoolbox's None and read back as "".
    RdmSet none = s;
    none.dissimilarity_measure = "";
    rsa::write_rdm_set(dir + "/none.h5", none, false);
    EXPECT_EQ(rsa::read_rdm_set(dir + "/none.h5").dissimilarity_measure, "");
}

TEST(RdmSetWrite, NpyRoundTripAndShapes) {
    const std::string dir = rsa_test::scratch_dir("rdm_set_write_npy");
    const RdmSet s = sample_set();
    rsa::write_rdm_set(dir + "/set.npy", s, false);
    const rsa::NpyArray a = rsa::npy_load(dir + "/set.npy");
    EXPECT_EQ(a.descr, "<f8");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 4, 4}));
    const RdmSet back = rsa::read_rdm_set(dir + "/set.npy");
    EXPECT_EQ(back.upper, s.upper);
    EXPECT_EQ(back.names, (std::vector<std::string>{"set[0]", "set[1]"}));

    RdmSet one = s;
    one.count = 1;
    one.upper.resize(6);
    one.names = {"only"};
    rsa::write_rdm_set(dir + "/one.npy", one, false);
    EXPECT_EQ(rsa::npy_load(dir + "/one.npy").shape, (std::vector<int64_t>{4, 4}));
    EXPECT_EQ(rsa::read_rdm_set(dir + "/one.npy").upper, one.upper);
}

TEST(RdmSetWrite, RefusesToReplaceUnlessAskedAndChecksTheSet) {
    const std::string dir = rsa_test::scratch_dir("rdm_set_overwrite");
    RdmSet s = sample_set();
    for (const std::string name : {"x.h5", "x.npy"}) {
        std::ofstream(dir + "/" + name) << "precious";
        EXPECT_THROW(rsa::write_rdm_set(dir + "/" + name, s, false), InputError);
        std::ifstream in(dir + "/" + name);
        std::string text;
        in >> text;
        EXPECT_EQ(text, "precious");
        rsa::write_rdm_set(dir + "/" + name, s, true);
        EXPECT_EQ(rsa::read_rdm_set(dir + "/" + name).upper, s.upper);
    }
    EXPECT_EQ(rsa_test::list_dir(dir), (std::vector<std::string>{"x.h5", "x.npy"}));
    RdmSet bad = s;
    bad.upper.pop_back();
    EXPECT_THROW(rsa::write_rdm_set(dir + "/bad.h5", bad, false), InputError);
    EXPECT_THROW(rsa::write_rdm_set(dir + "/missing_folder/x.h5", s, false), rsa::RuntimeError);
    EXPECT_EQ(rsa_test::list_dir(dir), (std::vector<std::string>{"x.h5", "x.npy"}));
}

TEST(RdmSetWrite, SquareRdmToHdf5TakesTheUpperTriangleInRsatoolboxOrder) {
    const std::string dir = rsa_test::scratch_dir("rdm_set_square");
    const int64_t S = 7;
    std::vector<float> m(S * S, 0.0f);
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) m[i * S + j] = m[j * S + i] = static_cast<float>(i * 10 + j);
    rsa::write_square_rdm_hdf5(dir + "/r.hdf5", m.data(), S, "r", "correlation", false);
    const RdmSet s = rsa::read_rdm_set(dir + "/r.hdf5");
    ASSERT_EQ(s.count, 1);
    ASSERT_EQ(s.patterns, S);
    size_t p = 0;
    for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j) EXPECT_EQ(s.upper[p++], i * 10 + j);
    EXPECT_EQ(s.names, (std::vector<std::string>{"r"}));
    EXPECT_EQ(s.dissimilarity_measure, "correlation");
    EXPECT_EQ(s.pattern_descriptors.at("index").size(), static_cast<size_t>(S));
    EXPECT_TRUE(rsa::is_hdf5_path("a/B.H5") && rsa::is_hdf5_path("x.hdf5") && !rsa::is_hdf5_path("x.npy"));
}

}  // namespace

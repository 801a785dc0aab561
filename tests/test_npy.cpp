// Tests of the .npy/.npz reader and writers (host/npy.cpp): round trips, every supported dtype and order,
// npz members stored and deflated, each kind of bad input (InputError naming the file), and atomic writes that
// leave nothing behind on failure. The straight-to-float32 readers (npy_load_matrix, npy_load_vector,
// NpzReader::read_matrix / read_vector) must give exactly what the double path gives (values bit for bit, or the
// same InputError) on every fixture, on seeded mutations of them, across read chunks and in every layout; the
// writers' one writev must give numpy's image bytes. Fixtures come from tools/make_npy_fixtures.py. Hostile
// archives (sizes that lie, zip64 claims, deflate bombs, truncated central directories, duplicate names;
// tests/data/fuzz and ones crafted here with tests/fuzz/zip_craft.h) must fail fast, in little memory, with an
// InputError naming the file and member, through the library and through the CLI (exit 2). place_rdm_tile (the
// placement of RDM tiles every S x S writer uses) against its definition.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <type_traits>
#include <vector>

#include "fuzz/bounded_run.h"
#include "fuzz/zip_craft.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/v1_data.h"
#include "test_util.h"

extern char** environ;

namespace {

using rsa::InputError;
using rsa::NpyArray;
using rsa::RuntimeError;
using rsa_test::data_path;

std::string fixture(const std::string& name) { return data_path("npy/" + name); }

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs f, expects an InputError whose message contains every one of `parts`; returns the message.
template <typename F>
std::string expect_input_error(F&& f, const std::vector<std::string>& parts) {
    try {
        f();
    } catch (const InputError& e) {
        const std::string msg = e.what();
        for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
        return msg;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "expected InputError, got another exception: " << e.what();
        return "";
    }
    ADD_FAILURE() << "expected InputError, nothing thrown";
    return "";
}

template <typename F>
std::string expect_runtime_error(F&& f, const std::vector<std::string>& parts) {
    try {
        f();
    } catch (const RuntimeError& e) {
        const std::string msg = e.what();
        for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
        return msg;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "expected RuntimeError, got another exception: " << e.what();
        return "";
    }
    ADD_FAILURE() << "expected RuntimeError, nothing thrown";
    return "";
}

std::vector<double> float_2x3() { return {-1.0, -0.5, 0.0, 0.5, 1.0, 1.5}; }

// ---- round trips -----------------------------------------------------------------------------------------

TEST(Npy, RoundTripFloat32Matrix) {
    const std::string dir = rsa_test::scratch_dir("npy_rt_f32");
    rsa::Matrix m(3, 4);
    const std::vector<float> r = rsa_test::random_uniform(12, -5.0f, 5.0f);
    m.data = r;
    m.at(1, 2) = std::numeric_limits<float>::denorm_min();
    m.at(2, 3) = -std::numeric_limits<float>::max();
    const std::string path = dir + "/m.npy";
    rsa::npy_save(path, m);
    EXPECT_EQ(rsa_test::list_dir(dir), std::vector<std::string>{"m.npy"});

    const std::string bytes = slurp(path);
    ASSERT_GT(bytes.size(), 10u);
    const size_t header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    EXPECT_EQ((10 + header_len) % 64, 0u);
    EXPECT_EQ(bytes[10 + header_len - 1], '\n');
    EXPECT_EQ(bytes.size(), 10 + header_len + 12 * 4);

    const NpyArray a = rsa::npy_load(path);
    EXPECT_EQ(a.descr, "<f4");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 4}));
    const rsa::Matrix back = rsa::npy_to_matrix(a, path);
    EXPECT_EQ(back.rows, 3);
    EXPECT_EQ(back.cols, 4);
    EXPECT_EQ(back.data, m.data);  // bit-exact
}

TEST(Npy, RoundTripFloat32Vector) {
    const std::string dir = rsa_test::scratch_dir("npy_rt_vec");
    const std::vector<float> v = rsa_test::random_uniform(7, -1.0f, 1.0f);
    rsa::npy_save(dir + "/v.npy", v);
    const NpyArray a = rsa::npy_load(dir + "/v.npy");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{7}));
    EXPECT_EQ(rsa::npy_to_vector(a, "v"), v);
}

TEST(Npy, RoundTripFloat64) {
    const std::string dir = rsa_test::scratch_dir("npy_rt_f64");
    std::vector<double> v(24);
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sqrt(static_cast<double>(i)) * 1e-300 + i * 0.1;
    const std::string path = dir + "/d.npy";
    rsa::npy_save_f64(path, v, {2, 3, 4});
    const NpyArray a = rsa::npy_load(path);
    EXPECT_EQ(a.descr, "<f8");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3, 4}));
    EXPECT_EQ(a.values, v);

    // 0-d and empty shapes survive too.
    rsa::npy_save_f64(dir + "/s.npy", {2.5}, {});
    const NpyArray s = rsa::npy_load(dir + "/s.npy");
    EXPECT_TRUE(s.shape.empty());
    EXPECT_EQ(s.count(), 1);
    EXPECT_EQ(s.values, std::vector<double>{2.5});
    rsa::npy_save_f64(dir + "/e.npy", {}, {0, 5});
    EXPECT_EQ(rsa::npy_load(dir + "/e.npy").shape, (std::vector<int64_t>{0, 5}));
}

TEST(Npy, BytesMatchNumpyLayout) {
    const std::vector<float> v = {1, 2, 3, 4, 5, 6};
    const std::vector<char> ours = rsa::npy_bytes_f32(v.data(), {2, 3});
    const std::string header(ours.data() + 10, ours.data() + 10 + 118);
    EXPECT_EQ(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0), 0u) << header;
    EXPECT_EQ(std::string(ours.data(), 8), std::string("\x93NUMPY\x01\x00", 8));
    const NpyArray a = rsa::npy_parse(ours, "bytes");
    EXPECT_EQ(a.values, (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

TEST(Npz, RoundTripStoredAndCompressed) {
    const std::string dir = rsa_test::scratch_dir("npz_rt");
    std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> members;
    members["rdm"] = {{2, 2}, {0, 1, 1, 0}};
    members["vec"] = {{3}, {1.5f, -2.5f, 3.5f}};
    for (bool compress : {false, true}) {
        const std::string path = dir + (compress ? "/c.npz" : "/s.npz");
        rsa::npz_save(path, members, compress);
        const auto all = rsa::npz_load(path);
        ASSERT_EQ(all.size(), 2u);
        EXPECT_EQ(all.at("rdm").shape, (std::vector<int64_t>{2, 2}));
        EXPECT_EQ(all.at("rdm").values, (std::vector<double>{0, 1, 1, 0}));
        EXPECT_EQ(rsa::npy_to_vector(rsa::npz_load_key(path, "vec"), path), members["vec"].second);
    }
    EXPECT_EQ(rsa_test::list_dir(dir), (std::vector<std::string>{"c.npz", "s.npz"}));

    rsa::npz_save(dir + "/empty.npz", {});
    EXPECT_TRUE(rsa::npz_load(dir + "/empty.npz").empty());
}

TEST(WriteFileAtomic, WritesAndReplaces) {
    const std::string dir = rsa_test::scratch_dir("atomic");
    rsa::write_file_atomic(dir + "/a.json", "{\"x\": 1}\n");
    rsa::write_file_atomic(dir + "/a.json", "{}\n");
    EXPECT_EQ(slurp(dir + "/a.json"), "{}\n");
    EXPECT_EQ(rsa_test::list_dir(dir), std::vector<std::string>{"a.json"});
}

// ---- fixtures written by numpy ---------------------------------------------------------------------------

TEST(NpyFixtures, FloatC) {
    for (const char* name : {"f4_2x3.npy", "f8_2x3.npy", "v2_f4_2x3.npy", "v3_f4_2x3.npy"}) {
        SCOPED_TRACE(name);
        const NpyArray a = rsa::npy_load(fixture(name));
        EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
        EXPECT_EQ(a.values, float_2x3());
        const rsa::Matrix m = rsa::npy_to_matrix(a, name);
        EXPECT_FLOAT_EQ(m.at(1, 2), 1.5f);
    }
    EXPECT_EQ(rsa::npy_load(fixture("f4_2x3.npy")).descr, "<f4");
    EXPECT_EQ(rsa::npy_load(fixture("f8_2x3.npy")).descr, "<f8");
}

TEST(NpyFixtures, FortranOrder) {
    const NpyArray a = rsa::npy_load(fixture("f8_fortran_3x4.npy"));
    EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 4}));
    const rsa::Matrix m = rsa::npy_to_matrix(a, "f");
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 4; ++j) EXPECT_EQ(m.at(i, j), i * 4 + j + 0.25f) << i << "," << j;

    const NpyArray b = rsa::npy_load(fixture("i2_fortran_2x3x2.npy"));
    EXPECT_EQ(b.descr, "<i2");
    EXPECT_EQ(b.shape, (std::vector<int64_t>{2, 3, 2}));
    for (size_t i = 0; i < 12; ++i) EXPECT_EQ(b.values[i], static_cast<double>(i));
}

TEST(NpyFixtures, Integers) {
    for (const char* code : {"i1", "i2", "i4", "i8"}) {
        SCOPED_TRACE(code);
        const NpyArray a = rsa::npy_load(fixture(std::string(code) + ".npy"));
        EXPECT_EQ(a.shape, std::vector<int64_t>{6});
        EXPECT_EQ(a.values, (std::vector<double>{-3, -2, -1, 0, 1, 2}));
    }
    EXPECT_EQ(rsa::npy_load(fixture("i1.npy")).descr, "|i1");
    for (const char* code : {"u1", "u2", "u4", "u8"}) {
        SCOPED_TRACE(code);
        const NpyArray a = rsa::npy_load(fixture(std::string(code) + ".npy"));
        EXPECT_EQ(a.values, (std::vector<double>{0, 7, 14, 21, 28, 35}));
        EXPECT_EQ(rsa::npy_to_vector(a, code)[5], 35.0f);
    }
    EXPECT_EQ(rsa::npy_load(fixture("u1.npy")).descr, "|u1");
    EXPECT_EQ(rsa::npy_load(fixture("i8_big.npy")).values, (std::vector<double>{-1099511627776.0, 1099511627776.0}));
}

TEST(NpyFixtures, BoolScalarVectorColumnEmpty) {
    const NpyArray b = rsa::npy_load(fixture("b1.npy"));
    EXPECT_EQ(b.descr, "|b1");
    EXPECT_EQ(b.values, (std::vector<double>{1, 0, 1, 1}));

    const NpyArray s = rsa::npy_load(fixture("scalar_0d.npy"));
    EXPECT_TRUE(s.shape.empty());
    EXPECT_EQ(s.count(), 1);
    EXPECT_EQ(s.values, std::vector<double>{3.5});

    EXPECT_EQ(rsa::npy_to_vector(rsa::npy_load(fixture("vec_f4_5.npy")), "v"), (std::vector<float>{0, 2, 4, 6, 8}));
    const NpyArray col = rsa::npy_load(fixture("col_f4_4x1.npy"));
    EXPECT_EQ(col.shape, (std::vector<int64_t>{4, 1}));
    EXPECT_EQ(rsa::npy_to_vector(col, "c"), (std::vector<float>{1, 2, 3, 4}));

    const NpyArray e = rsa::npy_load(fixture("empty_0x3.npy"));  // the parser allows empty arrays
    EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 3}));
    EXPECT_EQ(e.count(), 0);
    EXPECT_TRUE(e.values.empty());
}

TEST(NpzFixtures, StoredAndDeflated) {
    const auto stored = rsa::npz_load(fixture("stored.npz"));
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored.at("a").shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(stored.at("a").values, (std::vector<double>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(stored.at("b").descr, "<f8");
    EXPECT_EQ(stored.at("b").values, (std::vector<double>{0, 1, 2}));

    const auto deflated = rsa::npz_load(fixture("deflated.npz"));
    ASSERT_EQ(deflated.size(), 2u);
    EXPECT_EQ(deflated.at("x").values, std::vector<double>(64, 0.0));
    const NpyArray y = rsa::npz_load_key(fixture("deflated.npz"), "y");
    EXPECT_EQ(y.descr, "<i4");
    EXPECT_EQ(y.values, (std::vector<double>{0, 1, 2, 3}));
}

// ---- bad inputs ------------------------------------------------------------------------------------------

TEST(NpyErrors, MissingFile) {
    const std::string path = fixture("does_not_exist.npy");
    expect_input_error([&] { rsa::npy_load(path); }, {path, "no such file"});
    const std::string npz = fixture("does_not_exist.npz");
    expect_input_error([&] { rsa::npz_load(npz); }, {npz, "no such file"});
    expect_input_error([&] { rsa::npz_load_key(npz, "a"); }, {npz, "no such file"});
}

TEST(NpyErrors, UnsupportedDtypes) {
    expect_input_error([] { rsa::npy_load(fixture("be_f4.npy")); }, {"be_f4.npy", "'>f4'", "big-endian"});
    expect_input_error([] { rsa::npy_load(fixture("f2.npy")); }, {"f2.npy", "'<f2'", "float16"});
    expect_input_error([] { rsa::npy_load(fixture("c8.npy")); }, {"c8.npy", "'<c8'", "complex64"});
    expect_input_error([] { rsa::npy_load(fixture("str_u3.npy")); }, {"str_u3.npy", "'<U3'"});
    expect_input_error([] { rsa::npy_load(fixture("object.npy")); }, {"object.npy", "'|O'", "object"});
}

TEST(NpyErrors, TruncatedAndCorrupt) {
    expect_input_error([] { rsa::npy_load(fixture("truncated.npy")); },
                       {"truncated.npy", "truncated: expected 48 bytes of data, found 43"});
    expect_input_error([] { rsa::npy_load(fixture("bad_magic.npy")); }, {"bad_magic.npy", "magic"});
    expect_input_error([] { rsa::npy_load(fixture("corrupt_header.npy")); }, {"corrupt_header.npy", "header"});

    // Damaged images built in memory: header cut short, bad version, empty file, shape not a tuple.
    std::vector<char> good = rsa::npy_bytes_f32(std::vector<float>{1, 2}.data(), {2});
    expect_input_error([&] { rsa::npy_parse(std::vector<char>(good.begin(), good.begin() + 40), "cut"); },
                       {"cut", "truncated"});
    std::vector<char> v9 = good;
    v9[6] = 9;
    expect_input_error([&] { rsa::npy_parse(v9, "v9"); }, {"v9", "version 9.0"});
    expect_input_error([&] { rsa::npy_parse({}, "nothing"); }, {"nothing"});
    std::string text(good.begin(), good.end());
    text.replace(text.find("(2,)"), 4, "[2] ");
    expect_input_error([&] { rsa::npy_parse(std::vector<char>(text.begin(), text.end()), "list"); },
                       {"list", "shape"});
}

TEST(NpzErrors, NotZipTruncatedMissingKey) {
    expect_input_error([] { rsa::npz_load(fixture("not_zip.npz")); }, {"not_zip.npz"});
    expect_input_error([] { rsa::npz_load(fixture("truncated.npz")); }, {"truncated.npz"});
    expect_input_error([] { rsa::npz_load_key(fixture("truncated.npz"), "a"); }, {"truncated.npz"});
    expect_input_error([] { rsa::npz_load_key(fixture("stored.npz"), "zz"); },
                       {"stored.npz", "'zz'", "keys present: a, b"});
}

TEST(NpzErrors, CorruptMemberData) {
    // Flip a byte inside member b's data (its 1.0, stored uncompressed): the CRC check must catch it.
    std::string bytes = slurp(fixture("stored.npz"));
    const std::string one("\x00\x00\x00\x00\x00\x00\xf0\x3f", 8);
    const size_t at = bytes.find(one);
    ASSERT_NE(at, std::string::npos);
    bytes[at + 6] = 0x70;
    const std::string path = rsa_test::scratch_dir("npz_crc") + "/crc.npz";
    { std::ofstream(path, std::ios::binary) << bytes; }
    expect_input_error([&] { rsa::npz_load(path); }, {"crc.npz", "b.npy"});
    expect_input_error([&] { rsa::npz_load_key(path, "b"); }, {"crc.npz", "b.npy"});
    EXPECT_EQ(rsa::npz_load_key(path, "a").values, (std::vector<double>{0, 1, 2, 3, 4, 5}));
}

TEST(NpyErrors, NonFiniteValues) {
    const NpyArray nan = rsa::npy_load(fixture("nan_2x3.npy"));
    expect_input_error([&] { rsa::npy_to_matrix(nan, fixture("nan_2x3.npy")); },
                       {"nan_2x3.npy", "NaN", "row 1, column 2"});
    const NpyArray inf = rsa::npy_load(fixture("inf_vec5.npy"));
    expect_input_error([&] { rsa::npy_to_vector(inf, fixture("inf_vec5.npy")); }, {"inf_vec5.npy", "Inf", "index 3"});
    // A float64 beyond the float32 range is refused too.
    NpyArray big;
    big.descr = "<f8";
    big.shape = {1, 1};
    big.values = {1e300};
    expect_input_error([&] { rsa::npy_to_matrix(big, "big.npy"); }, {"big.npy", "float32 range"});
}

TEST(NpyErrors, WrongShapeAndEmpty) {
    const std::string vec = fixture("vec_f4_5.npy");
    expect_input_error([&] { rsa::npy_to_matrix(rsa::npy_load(vec), vec); },
                       {"vec_f4_5.npy", "expected a 2-D array, got shape (5,)"});
    const std::string mat = fixture("f4_2x3.npy");
    expect_input_error([&] { rsa::npy_to_vector(rsa::npy_load(mat), mat); }, {"f4_2x3.npy", "(2, 3)"});
    const std::string empty = fixture("empty_0x3.npy");
    expect_input_error([&] { rsa::npy_to_matrix(rsa::npy_load(empty), empty); }, {"empty_0x3.npy", "is empty"});
    NpyArray e1;
    e1.descr = "<f4";
    e1.shape = {0};
    expect_input_error([&] { rsa::npy_to_vector(e1, "e1.npy"); }, {"e1.npy", "is empty"});
}

// ---- failed writes ---------------------------------------------------------------------------------------

TEST(NpyWriteErrors, MissingFolder) {
    const std::string dir = rsa_test::scratch_dir("write_missing");
    const std::string path = dir + "/no/such/folder/m.npy";
    expect_runtime_error([&] { rsa::npy_save(path, rsa::Matrix(2, 2, 1.0f)); }, {path, "No such file"});
    expect_runtime_error([&] { rsa::npy_save_f64(path, {1.0}, {1}); }, {path});
    expect_runtime_error([&] { rsa::write_file_atomic(path, "x"); }, {path});
    const std::string npz = dir + "/no/such/folder/m.npz";
    expect_runtime_error([&] { rsa::npz_save(npz, {{"a", {{1}, {1.0f}}}}); }, {npz});
    EXPECT_TRUE(rsa_test::list_dir(dir).empty());
}

TEST(NpyWriteErrors, RenameFailsLeavesNoTemporary) {
    // The target is an existing folder: the temporary is written, the rename fails, and it must be removed.
    // (Works as root too, unlike a read-only folder.)
    const std::string dir = rsa_test::scratch_dir("write_rename");
    const std::string target = rsa_test::scratch_dir("write_rename/target");
    { std::ofstream(target + "/keep") << "x"; }  // non-empty, so rename cannot replace it
    expect_runtime_error([&] { rsa::npy_save(target, std::vector<float>{1, 2}); }, {target});
    expect_runtime_error([&] { rsa::write_file_atomic(target, "abc"); }, {target});
    expect_runtime_error([&] { rsa::npz_save(target, {{"a", {{1}, {1.0f}}}}, true); }, {target});
    EXPECT_EQ(rsa_test::list_dir(dir), std::vector<std::string>{"target"});
    EXPECT_EQ(rsa_test::list_dir(target), std::vector<std::string>{"keep"});
}

TEST(NpyWriteErrors, ParentIsAFile) {
    const std::string dir = rsa_test::scratch_dir("write_notdir");
    { std::ofstream(dir + "/file") << "x"; }
    const std::string path = dir + "/file/out.npy";
    expect_runtime_error([&] { rsa::npy_save(path, std::vector<float>{1}); }, {path, "Not a directory"});
    EXPECT_EQ(rsa_test::list_dir(dir), std::vector<std::string>{"file"});
}

// ---- hostile archives --------------------------------------------------------------------------------------

using bounded_run::Outcome;

constexpr uint64_t kMiB = uint64_t{1} << 20;
// What a hostile file may make the reader map beyond what the process already holds.
constexpr uint64_t kHostileMemory = 64 * kMiB;

std::string hostile(const std::string& name) { return data_path("fuzz/" + name); }
const std::vector<std::string>& hostile_files() {
    static const std::vector<std::string> files = {"oom_lying_size_116B.npz", "v1_lying_size_4GiB.npz",
                                                   "zip64_claims_1TiB.npz"};
    return files;
}

template <typename F>
double seconds_of(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// f() under an address-space limit of what is mapped now plus `extra`: must end with `want`, and the message
// must hold every part.
template <typename F>
void expect_bounded(F&& f, Outcome want, const std::vector<std::string>& parts, uint64_t extra = kHostileMemory) {
    if (!bounded_run::kLimitWorks) return;  // under AddressSanitizer
    const bounded_run::Result r = bounded_run::run(f, extra);
    EXPECT_EQ(r.outcome, want) << "ended with " << bounded_run::outcome_name(r.outcome) << ": " << r.message;
    for (const auto& p : parts) EXPECT_NE(r.message.find(p), std::string::npos) << "'" << p << "' not in: " << r.message;
}

std::string write_scratch(const std::string& dir, const std::string& name, const std::string& bytes) {
    const std::string path = dir + "/" + name;
    EXPECT_TRUE(zip_craft::write_bytes(path, bytes)) << path;
    return path;
}

// Two float32 members a (2x3) and b (3,), written by our own npz_save (libzip), stored or deflated.
std::string saved_npz(const std::string& dir, bool compress) {
    const std::string path = dir + (compress ? "/base_deflated.npz" : "/base_stored.npz");
    rsa::npz_save(path, {{"a", {{2, 3}, {0, 1, 2, 3, 4, 5}}}, {"b", {{3}, {7, 8, 9}}}}, compress);
    return zip_craft::read_bytes(path);
}

// An npz with one deflated member `name`: an .npy header for `shape` float32, then `zeros` zero bytes.
std::string zeros_npz(const std::string& dir, const std::string& file, const std::string& name,
                      const std::vector<uint64_t>& shape, uint64_t zeros) {
    const std::string path = dir + "/" + file;
    const std::string why = zip_craft::write_streamed(path, {{name, zip_craft::npy_header("<f4", shape), zeros}});
    EXPECT_EQ(why, "");
    return zip_craft::read_bytes(path);
}

TEST(NpzHostile, SharedReproducersFailFastThroughTheLibrary) {
    for (const std::string& name : hostile_files()) {
        SCOPED_TRACE(name);
        const std::string path = hostile(name);
        const double s = seconds_of([&] {
            expect_input_error([&] { rsa::npz_load(path); }, {path, "'resp.npy'", "more than deflate can expand"});
            expect_input_error([&] { rsa::npz_load_key(path, "resp"); }, {path, "'resp.npy'"});
            expect_input_error([&] { rsa::npz_keys(path); }, {path, "'resp.npy'"});
            expect_input_error([&] { rsa::v1_npz_kind(path); }, {path, "'resp.npy'"});
            expect_input_error([&] { rsa::load_v1_npz(path); }, {path, "'resp.npy'"});
            expect_input_error([&] { rsa::cnn_load_npz(path); }, {path, "'resp.npy'"});
        });
        EXPECT_LT(s, 1.0);
        expect_bounded([&] { rsa::load_v1_npz(path); }, Outcome::InputError, {path, "'resp.npy'"});
    }
}

#ifdef RSA_GPU_BINARY
struct Measured {
    int exit_code = -1;
    std::string err;
    double seconds = 0.0;
    long max_rss_kb = 0;
};

// rsa_gpu with `args`, its stderr, wall time and peak resident memory (wait4's rusage of the child alone).
Measured run_measured(const std::vector<std::string>& args, const std::string& dir) {
    const std::string out = dir + "/.stdout.txt", err = dir + "/.stderr.txt";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> all = {RSA_GPU_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    Measured m;
    pid_t pid = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = posix_spawn(&pid, RSA_GPU_BINARY, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        m.err = std::string("cannot start " RSA_GPU_BINARY ": ") + std::strerror(rc);
        return m;
    }
    int status = 0;
    struct rusage ru {};
    if (::wait4(pid, &status, 0, &ru) != pid) return m;
    m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    m.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    m.max_rss_kb = ru.ru_maxrss;
    m.err = slurp(err);
    return m;
}

TEST(NpzHostile, SharedReproducersFailFastThroughTheCli) {
    for (const std::string& name : hostile_files()) {
        SCOPED_TRACE(name);
        const std::string path = hostile(name);
        const std::string dir = rsa_test::scratch_dir("npz_hostile_cli");
        const Measured m =
            run_measured({"--v1", path, "--device", "cpu", "--no-figures", "--out", dir + "/x"}, dir);
        EXPECT_EQ(m.exit_code, 2) << m.err;
        EXPECT_NE(m.err.find(path + ": member 'resp.npy'"), std::string::npos) << m.err;
        EXPECT_NE(m.err.find("more than deflate can expand"), std::string::npos) << m.err;
        EXPECT_LT(m.seconds, 1.0);
        EXPECT_LT(m.max_rss_kb, 100 * 1024);
        EXPECT_FALSE(rsa_test::file_exists(dir + "/x"));
        std::printf("%s: exit %d in %.3f s, max RSS %ld KB\n", name.c_str(), m.exit_code, m.seconds, m.max_rss_kb);
    }
}

TEST(NpzHostile, DuplicateKeysThroughTheCli) {
    const std::string dir = rsa_test::scratch_dir("npz_dup_cli");
    const std::string image = zip_craft::npy_f32({1, 2, 3, 4, 5, 6}, {3, 2});
    const std::string path = write_scratch(dir, "dup.npz",
                                           zip_craft::build_zip({{"resp.npy", image}, {"stimuli.npy", image},
                                                                 {"resp.npy", image}}));
    const Measured m = run_measured({"--v1", path, "--device", "cpu", "--no-figures", "--out", dir + "/x"}, dir);
    EXPECT_EQ(m.exit_code, 2) << m.err;
    EXPECT_NE(m.err.find(path + ": duplicate member 'resp.npy'"), std::string::npos) << m.err;
}
#endif

TEST(NpzLies, StoredMemberLargerThanTheFile) {
    const std::string dir = rsa_test::scratch_dir("npz_lie_stored");
    std::string bytes = saved_npz(dir, false);
    ASSERT_TRUE(zip_craft::patch_sizes(bytes, "a.npy", 1000000000, 1000000000));
    const std::string path = write_scratch(dir, "big.npz", bytes);
    expect_input_error([&] { rsa::npz_load_key(path, "a"); },
                       {path, "member 'a.npy' claims 1000000000 bytes of data", "before its central directory"});
    expect_bounded([&] { rsa::npz_load(path); }, Outcome::InputError, {path, "'a.npy'"});

    // Stored, so the two sizes must agree.
    bytes = saved_npz(dir, false);
    const uint64_t size = zip_craft::get_le(bytes, zip_craft::locate(bytes, "b.npy").central + 24, 4);
    ASSERT_TRUE(zip_craft::patch_size(bytes, "b.npy", size - 4));
    const std::string odd = write_scratch(dir, "odd.npz", bytes);
    expect_input_error([&] { rsa::npz_load_key(odd, "b"); },
                       {odd, "member 'b.npy' is stored (not compressed) but declares"});
}

TEST(NpzLies, DeflatedMemberDeclaresMoreOrLessThanItsHeaderNeeds) {
    const std::string dir = rsa_test::scratch_dir("npz_lie_header");
    for (const int delta : {+100, -8}) {
        SCOPED_TRACE(delta);
        std::string bytes = saved_npz(dir, true);
        ASSERT_TRUE(zip_craft::patch_size(bytes, "a.npy", 152 + delta));  // 128-byte header + 6 float32
        const std::string path = write_scratch(dir, "lie.npz", bytes);
        expect_input_error([&] { rsa::npz_load_key(path, "a"); },
                           {path, "member 'a.npy' declares " + std::to_string(152 + delta) + " bytes",
                            "needs 128 bytes + 24 bytes = 152 bytes"});
        expect_input_error([&] { rsa::NpzReader(path).header("a"); }, {path, "'a.npy'"});
        EXPECT_EQ(rsa::npz_load_key(path, "b").values, (std::vector<double>{7, 8, 9}));  // the other member reads
    }
}

TEST(NpzLies, DeflatedMemberHoldsMoreThanItDeclares) {
    // A deflate bomb declaring what its header asks for (1,000 float32) that inflates to 200 MB.
    const std::string dir = rsa_test::scratch_dir("npz_lie_more");
    std::string bytes = zeros_npz(dir, "bomb.npz", "x.npy", {1000}, 200 * kMiB);
    ASSERT_TRUE(zip_craft::patch_size(bytes, "x.npy", 128 + 4000));
    const std::string path = write_scratch(dir, "small_claim.npz", bytes);
    double s = seconds_of([&] {
        expect_input_error([&] { rsa::npz_load_key(path, "x"); },
                           {path, "member 'x.npy' holds more data than the 4128 bytes it declares"});
    });
    EXPECT_LT(s, 0.5);
    expect_bounded([&] { rsa::npz_load(path); }, Outcome::InputError, {path, "'x.npy'", "more data"});
}

TEST(NpzLies, DeflatedMemberHoldsLessThanItDeclares) {
    const std::string dir = rsa_test::scratch_dir("npz_lie_less");
    std::string bytes = zeros_npz(dir, "short.npz", "x.npy", {1000}, 10);  // header for 4000 bytes, 10 present
    ASSERT_TRUE(zip_craft::patch_size(bytes, "x.npy", 128 + 4000));
    const std::string path = write_scratch(dir, "long_claim.npz", bytes);
    expect_input_error([&] { rsa::npz_load_key(path, "x"); },
                       {path, "member 'x.npy' holds only 138 bytes of data, fewer than the 4128 bytes it declares"});
    // Its header alone is fine: listing does not inflate the body.
    EXPECT_EQ(rsa::NpzReader(path).header("x").shape, (std::vector<int64_t>{1000}));
}

TEST(NpzLies, HugeClaimWithinDeflatesRatioAllocatesOnlyWhatInflates) {
    // 200 KB of incompressible bytes after a header for 50M float32, declared as the 200 MB the header asks for:
    // within deflate's ratio, so only reading finds the lie; the buffer must grow with what actually inflates.
    const std::string dir = rsa_test::scratch_dir("npz_lie_grow");
    const uint64_t n = 50 * kMiB;
    std::string head = zip_craft::npy_header("<f4", {n});
    uint64_t state = 88172645463325252ull;
    for (int i = 0; i < 200 * 1024; ++i) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        head.push_back(static_cast<char>(state & 0xFF));
    }
    const std::string path = dir + "/grow.npz";
    ASSERT_EQ(zip_craft::write_streamed(path, {{"x.npy", head, 0}}), "");
    std::string bytes = zip_craft::read_bytes(path);
    ASSERT_TRUE(zip_craft::patch_size(bytes, "x.npy", 128 + 4 * n));
    write_scratch(dir, "grow.npz", bytes);
    expect_bounded([&] { rsa::npz_load_key(path, "x"); }, Outcome::InputError,
                   {path, "member 'x.npy' holds only " + std::to_string(head.size()) + " bytes of data, fewer than the " +
                              std::to_string(128 + 4 * n) + " bytes it declares"});
}

TEST(NpzBomb, DeclaredBeyondDeflatesRatioIsRefusedBeforeInflating) {
    const std::string dir = rsa_test::scratch_dir("npz_bomb_ratio");
    std::string bytes = zeros_npz(dir, "zeros.npz", "x.npy", {1 << 20}, 4 * kMiB);
    const uint64_t comp = zip_craft::get_le(bytes, zip_craft::locate(bytes, "x.npy").central + 20, 4);
    ASSERT_TRUE(zip_craft::patch_size(bytes, "x.npy", comp * 2000));
    const std::string path = write_scratch(dir, "ratio.npz", bytes);
    expect_input_error([&] { rsa::npz_keys(path); },
                       {path, "member 'x.npy' declares " + std::to_string(comp * 2000) + " bytes inflated from " +
                                  std::to_string(comp) + " bytes", "at most 1032:1"});
}

TEST(NpzBomb, HonestButHugeIsBoundedByTheCallersCap) {
    // 200 MB of zeros declared honestly as float32 (52428800,): about 200 KB on disk.
    const std::string dir = rsa_test::scratch_dir("npz_bomb_honest");
    const uint64_t n = 50 * kMiB;
    const std::string bytes = zeros_npz(dir, "honest.npz", "big.npy", {n}, 4 * n);
    const std::string path = dir + "/honest.npz";
    EXPECT_LT(bytes.size(), 1 * kMiB);
    double s = seconds_of([&] {
        rsa::NpzReader npz(path);
        ASSERT_EQ(npz.members().size(), 1u);
        EXPECT_EQ(npz.members()[0].key, "big");
        EXPECT_TRUE(npz.members()[0].deflated);
        EXPECT_EQ(npz.members()[0].size, 128 + 4 * n);
        const rsa::NpyHeader h = npz.header("big");  // the first bytes only
        EXPECT_EQ(h.shape, (std::vector<int64_t>{static_cast<int64_t>(n)}));
        EXPECT_EQ(h.descr, "<f4");
        EXPECT_EQ(h.header_bytes, 128u);
        EXPECT_EQ(h.data_bytes, 4 * n);
        expect_input_error([&] { npz.read("big", kMiB); },
                           {path, "member 'big.npy' declares " + std::to_string(128 + 4 * n) + " bytes",
                            "more than the 1048576 bytes allowed"});
        expect_input_error([&] { rsa::npz_load_key(path, "big", kMiB); }, {path, "'big.npy'"});
    });
    EXPECT_LT(s, 0.5);
    expect_bounded([&] { rsa::npz_load_key(path, "big", kMiB); }, Outcome::InputError, {"'big.npy'"});
    // Without a cap it is a legitimate file too large for the memory allowed: an OutOfMemoryError naming the
    // member, never std::bad_alloc.
    expect_bounded([&] { rsa::npz_load_key(path, "big"); }, Outcome::OutOfMemory, {path, "'big.npy'", "bytes"});
}

TEST(NpzZip64, HonestZip64ArchiveLoads) {
    const std::string dir = rsa_test::scratch_dir("npz_zip64_ok");
    zip_craft::Member a{"a.npy", zip_craft::npy_f32({1, 2, 3}, {3})};
    a.zip64 = true;
    zip_craft::Member b{"b.npy", zip_craft::npy_f32({4, 5}, {2})};
    zip_craft::Options opt;
    opt.zip64_end = true;
    const std::string path = write_scratch(dir, "z64.npz", zip_craft::build_zip({a, b}, opt));
    const auto all = rsa::npz_load(path);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all.at("a").values, (std::vector<double>{1, 2, 3}));
    EXPECT_EQ(all.at("b").values, (std::vector<double>{4, 5}));
}

TEST(NpzZip64, LyingClaimsAreRefused) {
    const std::string dir = rsa_test::scratch_dir("npz_zip64_lies");
    const std::string image = zip_craft::npy_f32({1, 2, 3}, {3});
    {  // a zip64 stored member claiming 1 TiB
        zip_craft::Member m{"a.npy", image};
        m.zip64 = true;
        m.size = m.comp_size = uint64_t{1} << 40;
        const std::string path = write_scratch(dir, "tib.npz", zip_craft::build_zip({m}));
        expect_input_error([&] { rsa::npz_load(path); }, {path, "member 'a.npy' claims 1099511627776 bytes"});
        expect_bounded([&] { rsa::npz_load(path); }, Outcome::InputError, {"'a.npy'"});
    }
    {  // a zip64 deflated member claiming 1 TiB out of a few bytes
        zip_craft::Member m{"a.npy", std::string("\x03\x00", 2)};
        m.method = 8;
        m.zip64 = true;
        m.size = uint64_t{1} << 40;
        const std::string path = write_scratch(dir, "tib_deflate.npz", zip_craft::build_zip({m}));
        expect_input_error([&] { rsa::npz_load(path); }, {path, "'a.npy'", "more than deflate can expand"});
    }
    {  // a zip64 field too short for the sizes it replaces
        zip_craft::Member m{"a.npy", image};
        m.zip64 = true;
        m.zip64_extra_len = 8;
        const std::string path = write_scratch(dir, "short_field.npz", zip_craft::build_zip({m}));
        expect_input_error([&] { rsa::npz_load(path); }, {path, "'a.npy'", "zip64 field lacks the compressed size"});
    }
    zip_craft::Options opt;
    opt.zip64_end = true;
    {  // a zip64 end record said to lie outside the file
        opt.zip64_end_offset = int64_t{1} << 40;
        const std::string path = write_scratch(dir, "locator.npz", zip_craft::build_zip({{"a.npy", image}}, opt));
        expect_input_error([&] { rsa::npz_keys(path); }, {path, "zip64 end record's offset 1099511627776"});
        opt.zip64_end_offset = -1;
    }
    {  // 2^40 members in a directory of one record
        opt.entries = int64_t{1} << 40;
        const std::string path = write_scratch(dir, "count.npz", zip_craft::build_zip({{"a.npy", image}}, opt));
        expect_input_error([&] { rsa::npz_keys(path); }, {path, "declares 1099511627776 members"});
        expect_bounded([&] { rsa::npz_keys(path); }, Outcome::InputError, {path});
        opt.entries = -1;
    }
    {  // a central directory said to be 1 TiB
        opt.cd_size_delta = int64_t{1} << 40;
        const std::string path = write_scratch(dir, "cd.npz", zip_craft::build_zip({{"a.npy", image}}, opt));
        expect_input_error([&] { rsa::npz_keys(path); }, {path, "central directory", "truncated or corrupt"});
    }
}

TEST(NpzTruncated, CentralDirectory) {
    const std::string dir = rsa_test::scratch_dir("npz_truncated_cd");
    const std::string image = zip_craft::npy_f32({1, 2, 3}, {3});
    const std::string whole = zip_craft::build_zip({{"a.npy", image}, {"b.npy", image}});
    const size_t cd = static_cast<size_t>(zip_craft::get_le(whole, whole.size() - 22 + 16, 4));
    // Cut inside the central directory: no end record.
    for (const size_t cut : {cd + 10, cd + 60, whole.size() - 1}) {
        SCOPED_TRACE(cut);
        const std::string path = write_scratch(dir, "cut.npz", whole.substr(0, cut));
        expect_input_error([&] { rsa::npz_load(path); }, {path, "not a zip archive, or a truncated one"});
    }
    // The end record survives but the directory it describes does not.
    zip_craft::Options opt;
    opt.entries = 3;
    std::string path = write_scratch(dir, "count.npz", zip_craft::build_zip({{"a.npy", image}, {"b.npy", image}}, opt));
    expect_input_error([&] { rsa::npz_load(path); }, {path, "declares 3 members"});
    opt.entries = 2;
    path = write_scratch(dir, "one_record.npz", zip_craft::build_zip({{"a.npy", image}}, opt));
    expect_input_error([&] { rsa::npz_load(path); }, {path, "declares 2 members"});
    opt.entries = 1;
    path = write_scratch(dir, "extra_record.npz", zip_craft::build_zip({{"a.npy", image}, {"b.npy", image}}, opt));
    expect_input_error([&] { rsa::npz_load(path); }, {path, "after its last record"});
    opt.entries = -1;
    opt.cd_size_delta = -10;
    path = write_scratch(dir, "short_cd.npz", zip_craft::build_zip({{"a.npy", image}, {"b.npy", image}}, opt));
    expect_input_error([&] { rsa::npz_load(path); }, {path, "does not end where the end record begins"});
    // A record cut short inside the directory (its name runs past the end).
    std::string bad = whole;
    zip_craft::set_le(bad, zip_craft::locate(bad, "b.npy").central + 28, 400, 2);
    path = write_scratch(dir, "name_past_end.npz", bad);
    expect_input_error([&] { rsa::npz_load(path); }, {path, "central directory is truncated", "member #2"});
}

TEST(NpzDuplicates, RejectedByName) {
    const std::string dir = rsa_test::scratch_dir("npz_dup");
    const std::string image = zip_craft::npy_f32({1, 2, 3}, {3});
    const std::string path =
        write_scratch(dir, "dup.npz", zip_craft::build_zip({{"resp.npy", image}, {"stimuli.npy", image},
                                                            {"resp.npy", image}}));
    const std::string want = path + ": duplicate member 'resp.npy'";
    expect_input_error([&] { rsa::npz_load(path); }, {want});
    expect_input_error([&] { rsa::npz_keys(path); }, {want});
    expect_input_error([&] { rsa::npz_load_key(path, "stimuli"); }, {want});
    expect_input_error([&] { rsa::load_v1_npz(path); }, {want});
}

TEST(NpzStructure, OverlapEncryptionMethodAndNames) {
    const std::string dir = rsa_test::scratch_dir("npz_structure");
    const std::string image = zip_craft::npy_f32({1, 2, 3}, {3});
    zip_craft::Member second{"b.npy", image};
    second.central_offset = 0;  // b's record points at a's local header
    std::string path = write_scratch(dir, "overlap.npz", zip_craft::build_zip({{"a.npy", image}, second}));
    expect_input_error([&] { rsa::npz_load(path); }, {path, "members 'a.npy' and 'b.npy' overlap"});

    zip_craft::Member enc{"a.npy", image};
    enc.flags = 1;
    path = write_scratch(dir, "encrypted.npz", zip_craft::build_zip({enc}));
    expect_input_error([&] { rsa::npz_load(path); }, {path, "member 'a.npy' is encrypted"});

    zip_craft::Member bz{"a.npy", image};
    bz.method = 12;
    path = write_scratch(dir, "bzip2.npz", zip_craft::build_zip({bz}));
    expect_input_error([&] { rsa::npz_load(path); }, {path, "member 'a.npy' uses compression method 12"});

    path = write_scratch(dir, "nul.npz", zip_craft::build_zip({{std::string("a\0b.npy", 7), image}}));
    expect_input_error([&] { rsa::npz_load(path); }, {path, "NUL byte"});

    // Member data cut off by a lying local header (its extra field runs into the central directory).
    std::string bytes = zip_craft::build_zip({{"a.npy", image}});
    zip_craft::set_le(bytes, 28, 60000, 2);
    path = write_scratch(dir, "local.npz", bytes);
    expect_input_error([&] { rsa::npz_load(path); }, {path, "'a.npy'", "local header runs into the central directory"});
}

TEST(NpzHeaderFirst, HeaderLongerThanTheMember) {
    const std::string dir = rsa_test::scratch_dir("npz_header_first");
    std::string image("\x93NUMPY\x01\x00", 8);
    zip_craft::put16(image, 60000);  // a 60,000-byte header in a 40-byte member
    image.append(30, ' ');
    std::string path = write_scratch(dir, "long_header.npz", zip_craft::build_zip({{"a.npy", image}}));
    expect_input_error([&] { rsa::npz_load(path); }, {path, "'a.npy' declares 40 bytes, too few for its .npy header"});

    std::string v2("\x93NUMPY\x02\x00", 8);
    zip_craft::put32(v2, 0x7FFFFFFF);  // a 2 GiB header
    v2.append(30, ' ');
    path = write_scratch(dir, "huge_header.npz", zip_craft::build_zip({{"a.npy", v2}}));
    expect_input_error([&] { rsa::npz_load(path); }, {path + ":a", "longer than the 1048576 bytes allowed"});

    // An empty member, and one holding only a piece of the magic string.
    path = write_scratch(dir, "empty.npz", zip_craft::build_zip({{"a.npy", ""}, {"b.npy", "\x93NUM"}}));
    expect_input_error([&] { rsa::npz_load_key(path, "a"); }, {path + ":a", "bad magic"});
    expect_input_error([&] { rsa::npz_load_key(path, "b"); }, {path + ":b", "bad magic"});
}

TEST(NpzReaderApi, ListsMembersAndHeadersWithoutInflatingBodies) {
    const std::string dir = rsa_test::scratch_dir("npz_reader");
    std::string bytes = saved_npz(dir, true);
    ASSERT_TRUE(zip_craft::patch_crc(bytes, "a.npy", 0x12345678));  // a's body would fail its CRC check
    const std::string path = write_scratch(dir, "crc.npz", bytes);
    rsa::NpzReader npz(path);
    EXPECT_EQ(npz.path(), path);
    EXPECT_EQ(npz.keys(), (std::vector<std::string>{"a", "b"}));
    ASSERT_EQ(npz.members().size(), 2u);
    EXPECT_EQ(npz.members()[0].name, "a.npy");
    EXPECT_TRUE(npz.members()[0].deflated);
    EXPECT_EQ(npz.members()[0].size, 152u);
    EXPECT_TRUE(npz.has("a"));
    EXPECT_TRUE(npz.has("b.npy"));
    EXPECT_FALSE(npz.has("c"));
    const rsa::NpyHeader h = npz.header("a");
    EXPECT_EQ(h.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(h.count(), 6);
    EXPECT_EQ(h.descr, "<f4");
    EXPECT_FALSE(h.fortran_order);
    EXPECT_EQ(h.header_bytes + h.data_bytes, 152u);
    expect_input_error([&] { npz.read("a"); }, {path, "member 'a.npy'", "CRC"});
    EXPECT_EQ(npz.read("b").values, (std::vector<double>{7, 8, 9}));
    expect_input_error([&] { npz.header("zz"); }, {path, "no key 'zz'; keys present: a, b"});

    // npy_parse_header on the first bytes of an image.
    const std::vector<char> image = rsa::npy_bytes_f32(std::vector<float>{1, 2, 3, 4}.data(), {2, 2});
    const rsa::NpyHeader ih = rsa::npy_parse_header(image.data(), 128, "img");
    EXPECT_EQ(ih.shape, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(ih.data_bytes, 16u);
    expect_input_error([&] { rsa::npy_parse_header(image.data(), 60, "img"); }, {"img", "truncated: header of"});
}

// ---- straight-to-float32 readers (npy_load_matrix / npy_load_vector, NpzReader::read_matrix / read_vector) ----

// The outcome of a load: the floats, or the InputError's message.
struct Loaded {
    std::vector<float> values;
    int64_t rows = -1, cols = -1;
    std::string error;
};

template <typename F>
Loaded loaded_of(F&& f) {
    Loaded l;
    try {
        auto r = f();
        if constexpr (std::is_same_v<decltype(r), rsa::Matrix>) {
            l.rows = r.rows;
            l.cols = r.cols;
            l.values = std::move(r.data);
        } else {
            l.values = std::move(r);
        }
    } catch (const InputError& e) {
        l.error = e.what();
    }
    return l;
}

// The same values bit for bit (NaN included) and the same error message.
void expect_same(const Loaded& direct, const Loaded& reference) {
    EXPECT_EQ(direct.error, reference.error);
    EXPECT_EQ(direct.rows, reference.rows);
    EXPECT_EQ(direct.cols, reference.cols);
    ASSERT_EQ(direct.values.size(), reference.values.size());
    if (!direct.values.empty())  // memcmp of two empty vectors would pass null pointers (undefined behaviour)
        EXPECT_EQ(std::memcmp(direct.values.data(), reference.values.data(), direct.values.size() * sizeof(float)), 0);
}

// A float32 .npy image in Fortran order of the rows x cols matrix m (row-major).
std::string fortran_f32(const std::vector<float>& m, uint64_t rows, uint64_t cols) {
    std::string image = zip_craft::npy_header("<f4", {rows, cols});
    const size_t at = image.find("False");
    image.replace(at, 5, "True");
    image.insert(image.size() - 1, " ");  // the header keeps its length
    for (uint64_t j = 0; j < cols; ++j)
        for (uint64_t i = 0; i < rows; ++i)
            image.append(reinterpret_cast<const char*>(&m[i * cols + j]), sizeof(float));
    return image;
}

TEST(NpyDirect, EveryFixtureMatchesTheDoublePath) {
    const rsa::MatrixRules rdm{false, false, "an RDM must be a 2-D array"};
    for (const char* name :
         {"b1.npy", "bad_magic.npy", "be_f4.npy", "c8.npy", "col_f4_4x1.npy", "corrupt_header.npy", "empty_0x3.npy",
          "f2.npy", "f4_2x3.npy", "f8_2x3.npy", "f8_fortran_3x4.npy", "i1.npy", "i2.npy", "i2_fortran_2x3x2.npy",
          "i4.npy", "i8.npy", "i8_big.npy", "inf_vec5.npy", "nan_2x3.npy", "object.npy", "scalar_0d.npy", "str_u3.npy",
          "truncated.npy", "u1.npy", "u2.npy", "u4.npy", "u8.npy", "v2_f4_2x3.npy", "v3_f4_2x3.npy", "vec_f4_5.npy",
          "does_not_exist.npy"}) {
        SCOPED_TRACE(name);
        const std::string path = fixture(name);
        expect_same(loaded_of([&] { return rsa::npy_load_matrix(path); }),
                    loaded_of([&] { return rsa::npy_to_matrix(rsa::npy_load(path), path); }));
        expect_same(loaded_of([&] { return rsa::npy_load_matrix(path, rdm); }),
                    loaded_of([&] { return rsa::npy_to_matrix(rsa::npy_load(path), path, rdm); }));
        expect_same(loaded_of([&] { return rsa::npy_load_vector(path); }),
                    loaded_of([&] { return rsa::npy_to_vector(rsa::npy_load(path), path); }));
    }
    EXPECT_TRUE(std::isnan(rsa::npy_load_matrix(fixture("nan_2x3.npy"), rdm).at(1, 2)));  // kept when allowed
    expect_input_error([] { rsa::npy_load_matrix(fixture("vec_f4_5.npy"), {false, false, "an RDM must be a 2-D array"}); },
                       {"vec_f4_5.npy: an RDM must be a 2-D array"});
}

TEST(NpyDirect, MutatedFilesGiveTheDoublePathsOutcome) {
    // Seeded byte edits of the fixtures (header bytes, lengths, cut or padded bodies): the direct readers must give
    // the same values or the same InputError as npy_to_matrix / npy_to_vector of npy_load.
    const std::string dir = rsa_test::scratch_dir("npy_direct_mutated");
    std::vector<std::string> seeds;
    for (const char* name : {"f4_2x3.npy", "f8_2x3.npy", "f8_fortran_3x4.npy", "i2_fortran_2x3x2.npy", "i8_big.npy",
                             "b1.npy", "u2.npy", "nan_2x3.npy", "inf_vec5.npy", "col_f4_4x1.npy", "v2_f4_2x3.npy"})
        seeds.push_back(slurp(fixture(name)));
    std::mt19937_64 rng(20261130);
    const rsa::MatrixRules rdm{false, false, "an RDM must be a 2-D array"};
    int errors = 0;
    for (int k = 0; k < 1500; ++k) {
        std::string b = seeds[rng() % seeds.size()];
        switch (rng() % 5) {
            case 0: b[rng() % b.size()] = static_cast<char>(rng()); break;                        // any byte
            case 1: b[6 + rng() % std::min<size_t>(b.size() - 6, 120)] = "0123456789(),:' TF<>fiub"[rng() % 24]; break;
            case 2: b.resize(rng() % b.size()); break;                                            // cut
            case 3: b.append(rng() % 64, static_cast<char>(rng())); break;                        // padded
            default: b[8] = static_cast<char>(rng()); b[9] = static_cast<char>(rng() % 2); break;  // header length
        }
        const std::string path = dir + "/m" + std::to_string(k % 8) + ".npy";
        ASSERT_TRUE(zip_craft::write_bytes(path, b));
        SCOPED_TRACE(k);
        const Loaded direct = loaded_of([&] { return rsa::npy_load_matrix(path); });
        expect_same(direct, loaded_of([&] { return rsa::npy_to_matrix(rsa::npy_load(path), path); }));
        expect_same(loaded_of([&] { return rsa::npy_load_matrix(path, rdm); }),
                    loaded_of([&] { return rsa::npy_to_matrix(rsa::npy_load(path), path, rdm); }));
        expect_same(loaded_of([&] { return rsa::npy_load_vector(path); }),
                    loaded_of([&] { return rsa::npy_to_vector(rsa::npy_load(path), path); }));
        errors += !direct.error.empty();
    }
    EXPECT_GT(errors, 500);  // the edits reach the error paths ...
    EXPECT_LT(errors, 1450);  // ... and leave loadable files too
}

TEST(NpyDirect, LargeBodiesAcrossChunksEveryLayout) {
    // 1,100 x 1,000 values: more than one 4 MiB chunk as float32, two as float64.
    const std::string dir = rsa_test::scratch_dir("npy_direct_large");
    const int64_t R = 1100, C = 1000;
    rsa::Matrix m(R, C);
    m.data = rsa_test::random_uniform(static_cast<size_t>(R * C), -3.0f, 3.0f);
    rsa::npy_save(dir + "/f4.npy", m);
    EXPECT_EQ(rsa::npy_load_matrix(dir + "/f4.npy").data, m.data);

    std::vector<double> d(m.data.begin(), m.data.end());
    for (size_t i = 0; i < d.size(); i += 7) d[i] += 1e-9;  // rounds to float32 on the way in
    rsa::npy_save_f64(dir + "/f8.npy", d, {R, C});
    expect_same(loaded_of([&] { return rsa::npy_load_matrix(dir + "/f8.npy"); }),
                loaded_of([&] { return rsa::npy_to_matrix(rsa::npy_load(dir + "/f8.npy"), dir + "/f8.npy"); }));

    ASSERT_TRUE(zip_craft::write_bytes(dir + "/fortran.npy", fortran_f32(m.data, R, C)));
    const rsa::Matrix f = rsa::npy_load_matrix(dir + "/fortran.npy");
    EXPECT_EQ(f.rows, R);
    EXPECT_EQ(f.cols, C);
    EXPECT_EQ(f.data, m.data);

    // Bad values: the first in C order is named, wherever it lies in the file and whatever chunk holds it.
    rsa::Matrix bad = m;
    bad.at(1, 0) = std::numeric_limits<float>::quiet_NaN();    // early in the file in Fortran order, late in C order
    bad.at(900, 3) = std::numeric_limits<float>::infinity();   // the first in C order
    bad.at(1099, 999) = std::numeric_limits<float>::quiet_NaN();
    rsa::npy_save(dir + "/bad.npy", bad);
    expect_input_error([&] { rsa::npy_load_matrix(dir + "/bad.npy"); },
                       {dir + "/bad.npy: non-finite value NaN at row 1, column 0 (0-based)"});
    ASSERT_TRUE(zip_craft::write_bytes(dir + "/bad_fortran.npy", fortran_f32(bad.data, R, C)));
    bad.at(1, 0) = 0.0f;
    ASSERT_TRUE(zip_craft::write_bytes(dir + "/bad_fortran2.npy", fortran_f32(bad.data, R, C)));
    expect_input_error([&] { rsa::npy_load_matrix(dir + "/bad_fortran.npy"); },
                       {"bad_fortran.npy: non-finite value NaN at row 1, column 0 (0-based)"});
    expect_input_error([&] { rsa::npy_load_matrix(dir + "/bad_fortran2.npy"); },
                       {"bad_fortran2.npy: non-finite value +Inf at row 900, column 3 (0-based)"});
    d[static_cast<size_t>(1000 * C + 17)] = 1e300;  // in the last float64 chunk
    rsa::npy_save_f64(dir + "/range.npy", d, {R, C});
    expect_input_error([&] { rsa::npy_load_matrix(dir + "/range.npy"); },
                       {"range.npy: value 1e+300 at row 1000, column 17 (0-based) is outside the float32 range"});
    EXPECT_TRUE(std::isinf(rsa::npy_load_matrix(dir + "/range.npy", {false, true, ""}).at(1000, 17)));

    // Data cut short: refused from the file's size, before anything is allocated.
    std::string cut = slurp(dir + "/f4.npy");
    cut.resize(cut.size() - 3);
    ASSERT_TRUE(zip_craft::write_bytes(dir + "/cut.npy", cut));
    expect_input_error([&] { rsa::npy_load_matrix(dir + "/cut.npy"); },
                       {"cut.npy: truncated: expected 4400000 bytes of data, found 4399997"});
}

TEST(NpyDirect, APipeIsReadWhole) {
    const std::string dir = rsa_test::scratch_dir("npy_direct_pipe");
    const std::string path = dir + "/fifo.npy";
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
    const std::vector<float> v = rsa_test::random_uniform(100000, -1.0f, 1.0f);
    const std::vector<char> image = rsa::npy_bytes_f32(v.data(), {static_cast<int64_t>(v.size())});
    std::thread writer([&] { zip_craft::write_bytes(path, std::string(image.begin(), image.end())); });
    const std::vector<float> got = rsa::npy_load_vector(path);
    writer.join();
    EXPECT_EQ(got, v);
}

TEST(NpzDirect, MembersStraightIntoFloat) {
    const std::string dir = rsa_test::scratch_dir("npz_direct");
    const int64_t R = 1100, C = 1000;
    std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> members;
    members["resp"] = {{R, C}, rsa_test::random_uniform(static_cast<size_t>(R * C), -2.0f, 2.0f)};
    members["stimuli"] = {{R}, rsa_test::random_uniform(static_cast<size_t>(R), 0.0f, 360.0f)};
    std::vector<float> zeros(static_cast<size_t>(R * C), 0.0f);  // deflates far beyond 8:1: the buffer grows
    zeros.back() = 5.0f;
    members["zeros"] = {{R, C}, zeros};
    for (bool compress : {false, true}) {
        SCOPED_TRACE(compress);
        const std::string path = dir + (compress ? "/c.npz" : "/s.npz");
        rsa::npz_save(path, members, compress);
        rsa::NpzReader npz(path);
        const rsa::Matrix resp = npz.read_matrix("resp");
        EXPECT_EQ(resp.rows, R);
        EXPECT_EQ(resp.cols, C);
        EXPECT_EQ(resp.data, members["resp"].second);
        EXPECT_EQ(npz.read_vector("stimuli"), members["stimuli"].second);
        EXPECT_EQ(npz.read_matrix("zeros").data, zeros);
        expect_input_error([&] { npz.read_vector("resp"); },
                           {path + ":resp: expected a 1-D array (or one row/column), got shape (1100, 1000)"});
        expect_input_error([&] { npz.read_matrix("stimuli"); }, {path + ":stimuli: expected a 2-D array"});
        expect_input_error([&] { npz.read_matrix("nope"); }, {path + ": no key 'nope'"});
    }
    // NaN in a deflated member past its first chunks; Fortran order and float64 in stored members.
    std::vector<float> with_nan = zeros;
    with_nan[static_cast<size_t>(1050 * C + 9)] = std::numeric_limits<float>::quiet_NaN();
    rsa::npz_save(dir + "/nan.npz", {{"resp", {{R, C}, with_nan}}}, true);
    expect_input_error([&] { rsa::NpzReader(dir + "/nan.npz").read_matrix("resp"); },
                       {dir + "/nan.npz:resp: non-finite value NaN at row 1050, column 9 (0-based)"});
    EXPECT_TRUE(std::isnan(rsa::NpzReader(dir + "/nan.npz").read_matrix("resp", {false, true, ""}).at(1050, 9)));

    const std::vector<float>& r = members["resp"].second;
    std::vector<double> d(r.begin(), r.end());
    std::string f8 = zip_craft::npy_header("<f8", {static_cast<uint64_t>(R), static_cast<uint64_t>(C)});
    f8.append(reinterpret_cast<const char*>(d.data()), d.size() * sizeof(double));
    const std::string path = write_scratch(dir, "layouts.npz",
                                           zip_craft::build_zip({{"fortran.npy", fortran_f32(r, R, C)}, {"f8.npy", f8}}));
    rsa::NpzReader npz(path);
    EXPECT_EQ(npz.read_matrix("fortran").data, r);
    EXPECT_EQ(npz.read_matrix("f8").data, r);
    expect_same(loaded_of([&] { return npz.read_matrix("f8"); }),
                loaded_of([&] { return rsa::npy_to_matrix(npz.read("f8"), path + ":f8"); }));
}

TEST(NpyWrite, OneWritevGivesTheImageBytes) {
    const std::string dir = rsa_test::scratch_dir("npy_writev");
    const std::vector<float> v = rsa_test::random_uniform(2 * 3 * 5, -1.0f, 1.0f);
    rsa::npy_save_f32(dir + "/g.npy", v.data(), {2, 3, 5});
    const std::vector<char> image = rsa::npy_bytes_f32(v.data(), {2, 3, 5});
    EXPECT_EQ(slurp(dir + "/g.npy"), std::string(image.begin(), image.end()));
    rsa::Matrix m(3, 10);
    m.data = v;
    rsa::npy_save(dir + "/m.npy", m);
    const std::vector<char> mi = rsa::npy_bytes_f32(v.data(), {3, 10});
    EXPECT_EQ(slurp(dir + "/m.npy"), std::string(mi.begin(), mi.end()));
    rsa::npy_save_f32(dir + "/e.npy", nullptr, {0, 4});
    EXPECT_EQ(rsa::npy_load(dir + "/e.npy").shape, (std::vector<int64_t>{0, 4}));
    EXPECT_EQ(rsa_test::list_dir(dir), (std::vector<std::string>{"e.npy", "g.npy", "m.npy"}));
}

}  // namespace

// place_rdm_tile (the one placement of every S x S writer) against the definition, element by element: tiles of
// sizes around the 32-row strip, on and off the diagonal, with and without the mirror, in a larger leading dimension.
TEST(PlaceRdmTile, MatchesTheDefinition) {
    const uint32_t seed = 20261201;
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    const int64_t S = 150;
    for (const int64_t tr : {1, 31, 32, 33, 70}) {
        for (const int64_t tc : {1, 32, 45}) {
            for (const int mode : {0, 1, 2}) {  // 0: plain, 1: mirror, 2: diagonal
                const int64_t rows = tr, cols = mode == 2 ? tr : tc, ld = cols + 3;
                const int64_t r0 = 7, c0 = mode == 2 ? r0 : 80;
                std::vector<float> tile(static_cast<size_t>(rows * ld));
                for (auto& v : tile) v = u(rng);
                std::vector<float> got(static_cast<size_t>(S * S), -9.0f), want = got;
                rsa::place_rdm_tile(tile.data(), ld, r0, rows, c0, cols, mode == 1, mode == 2,
                               [&](const float* data, int64_t count, int64_t row, int64_t col) {
                                   ASSERT_LE(col + count, S);
                                   std::memcpy(got.data() + row * S + col, data, static_cast<size_t>(count) * sizeof(float));
                               });
                for (int64_t a = 0; a < rows; ++a)
                    for (int64_t b = 0; b < cols; ++b) {
                        if (mode == 2) {
                            const float v = b >= a ? tile[a * ld + b] : tile[b * ld + a];
                            want[(r0 + a) * S + c0 + b] = v;
                            continue;
                        }
                        want[(r0 + a) * S + c0 + b] = tile[a * ld + b];
                        if (mode == 1) want[(c0 + b) * S + r0 + a] = tile[a * ld + b];
                    }
                ASSERT_EQ(got, want) << "tile " << rows << " x " << cols << ", mode " << mode << ", seed " << seed;
            }
        }
    }
}

// Tests of the .npy/.npz reader and writers (host/npy.cpp): round trips, every supported dtype and order,
// npz members stored and deflated, each kind of bad input (InputError naming the file), and atomic writes that
// leave nothing behind on failure. Fixtures come from tools/make_npy_fixtures.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

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

}  // namespace

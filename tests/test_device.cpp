// Device selection: --device parsing, auto falls back to the CPU and says why, an explicit GPU index without a
// usable GPU fails with the cause and suggests --device cpu.
#include <gtest/gtest.h>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"

using namespace rsa;

TEST(Device, Parse) {
    EXPECT_TRUE(parse_device("auto").automatic);
    EXPECT_TRUE(parse_device("cpu").cpu);
    EXPECT_EQ(parse_device("3").index, 3);
    EXPECT_FALSE(parse_device("3").automatic);
    EXPECT_THROW(parse_device("gpu"), InputError);
    EXPECT_THROW(parse_device("-1"), InputError);
    EXPECT_THROW(parse_device("1x"), InputError);
}

TEST(Device, AutoSaysWhichItTook) {
    std::string note;
    auto b = make_backend(parse_device("auto"), &note);
    std::string why;
    if (gpu_usable(&why)) {
        EXPECT_TRUE(b->is_gpu());
    } else {
        EXPECT_FALSE(b->is_gpu());
        EXPECT_NE(note.find("cpu"), std::string::npos) << note;
        EXPECT_NE(note.find(why), std::string::npos) << note;
    }
}

TEST(Device, ExplicitGpuWithoutOneFailsClearly) {
    std::string why;
    if (gpu_usable(&why)) GTEST_SKIP() << "a GPU is usable here";
    try {
        make_backend(parse_device("0"));
        FAIL() << "expected RuntimeError";
    } catch (const RuntimeError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("--device cpu"), std::string::npos) << msg;
        EXPECT_NE(msg.find(why), std::string::npos) << msg;
    }
}

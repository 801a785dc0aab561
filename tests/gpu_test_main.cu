// main() of every GPU test: probe for a usable GPU first; without one, say why and exit 77 (CTest's
// SKIP_RETURN_CODE), so a skipped GPU test is never mistaken for a pass.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "gpu_context.cuh"

int main(int argc, char** argv) {
    std::string why;
    if (!rsa::gpu_probe(0, &why)) {
        std::printf("SKIPPED: no usable GPU: %s\n", why.c_str());
        return 77;
    }
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

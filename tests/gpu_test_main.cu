// main() of every GPU gtest program: the GPU gate first (gpu_gate.h: exit 77 only on a machine with no driver or
// no device, and never under RSA_GPU_REQUIRE=1; a broken or too-old driver fails), so a skipped GPU test is never
// mistaken for a pass. Then the seed of this run's random inputs is printed (test_util.h) and the tests run.
#include <gtest/gtest.h>

#include "gpu_gate.h"

int main(int argc, char** argv) {
    const int gate = rsa_test::gpu_gate_exit_code(argc > 0 ? argv[0] : "gpu test");
    if (gate >= 0) return gate;
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

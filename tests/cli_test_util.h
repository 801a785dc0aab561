// Helpers shared by the tests that run the rsa_gpu binary (test_cli, test_degenerate_cli): random response
// matrices and the check of an expected failure (exit code and a phrase of the message).
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rsa_gpu/matrix.h"
#include "test_util.h"

namespace rsa_test {

// S x N responses, uniform in [-1, 1) from a fresh printed seed.
inline rsa::Matrix random_responses(int64_t S, int64_t N) {
    rsa::Matrix m(S, N);
    m.data = random_uniform(static_cast<size_t>(S * N), -1.0f, 1.0f);
    return m;
}

// The run failed with `code` and its stderr names `needle`.
inline void expect_error(const RunResult& r, int code, const std::string& needle) {
    EXPECT_EQ(r.exit_code, code) << r.err << r.out;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
}

}  // namespace rsa_test

// OpenBLAS's kernel choice (blas_setup.h): its core name, and the OPENBLAS_CORETYPE that corrects a generic fallback
// on an AVX-512 CPU it does not recognise.
#include "rsa_gpu/blas_setup.h"

#include <cblas.h>

#include <cstdlib>
#include <cstring>
#include <strings.h>

namespace rsa {

std::string blas_corename() {
    const char* name = openblas_get_corename();
    return name ? name : "";
}

std::string blas_coretype_fix() {
    if (std::getenv("OPENBLAS_CORETYPE")) return "";  // the user's choice
    if (const char* keep = std::getenv("RSA_GPU_BLAS_CORETYPE"); keep && std::strcmp(keep, "keep") == 0) return "";
    if (strcasecmp(blas_corename().c_str(), "prescott") != 0) return "";
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
#endif
    return "";
}

}  // namespace rsa

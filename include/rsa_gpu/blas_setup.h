// OpenBLAS's kernel choice. OpenBLAS picks its kernels from the CPU model; one it does not know (OpenBLAS 0.3.21 and
// model 207, Emerald Rapids) falls back to the generic "Prescott" kernels, about 6x slower for SYRK and GEMM, although
// the CPU runs the SkylakeX (AVX-512) kernels. OpenBLAS's documented remedy is OPENBLAS_CORETYPE, read once when the
// library loads; the command line applies it by restarting itself once (host/main.cpp) when this says so.
#pragma once
#include <string>

namespace rsa {

// The OPENBLAS_CORETYPE that fixes a wrong fallback ("SkylakeX" when OpenBLAS runs "Prescott" kernels on a CPU with
// AVX-512 F, CD, BW, DQ and VL), or "" when OpenBLAS's choice stands (it knows the CPU, the user set
// OPENBLAS_CORETYPE, or RSA_GPU_BLAS_CORETYPE=keep asks to leave it alone).
std::string blas_coretype_fix();

// The kernels OpenBLAS runs ("SkylakeX", "Prescott", ...), for messages and benchmarks.
std::string blas_corename();

}  // namespace rsa

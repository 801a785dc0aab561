// The CNN's transcendental functions, written once for both twins (host/cnn_ref.cpp and the GPU's exact path in
// kernels/cnn_gpu.cu) so that they give the same bits on the CPU and on the GPU. Neither side's library functions can
// be used for that: glibc's expf/exp/log1p and CUDA's expf (2 ulp), exp and log1p (1 ulp) are different
// approximations, none correctly rounded everywhere, so std::exp on the host and expf on the device disagree in the
// last bit for some inputs (and glibc's own expf differs between CPUs with and without FMA). These functions use
// only IEEE-754 basic operations (+, -, *, / and fma, rounded to nearest), floor, comparisons, bit moves and exact
// power-of-two scaling, each the same on both sides: on the device as the explicit _rn intrinsics (nvcc would
// otherwise contract a * b + c into an FMA of its choosing), on the host as plain operators in a file compiled with
// -ffp-contract=off (host/cnn_ref.cpp) and std::fma. Include it only from such files.
//
//   exp_f(z)      e^z in float: glibc's expf (FMA variant) operation for operation, so the twin computes exactly
//                 what it computed with std::exp before (its tutorial run is unchanged bit for bit), now on any CPU.
//   exp_d(x)      e^x in double: Cody-Waite reduction x = k ln2 + r (|r| <= ln2 / 2), Taylor degree 13 (truncation
//                 < 5e-18 relative), times 2^k; within 2 double ulp of e^x. x > 709 gives +inf, x < -707 gives +0 (no
//                 subnormal results), NaN stays NaN.
//   log1p_d(u)    log(1 + u) in double for u >= 0 (the loss needs u = e^-|z| in (0, 1]): 2 atanh(s), s = u / (2 + u)
//                 (<= 1/3 for u <= 1), odd series to s^37 (truncation < 1e-18 relative for u <= 1; less accurate for
//                 u > 1, unused); within 2 double ulp.
//   sigmoid_f(z)  the twin's stable float sigmoid: z >= 0 ? 1 / (1 + e^-z) : e^z / (1 + e^z), e from exp_f.
//   bce_term_d(z, y)  max(z, 0) - z y + log1p(e^-|z|) in double (the mean BCE's per-image term). Its exp and log1p
//                 differ from glibc's by a few double ulp, far below the float the mean is rounded to: the tutorial's
//                 250 losses are unchanged bit for bit.
#pragma once
#include <cstdint>
#include <cstring>
#if !defined(__CUDA_ARCH__)
#include <cmath>
#endif

#if defined(__CUDACC__)
#define RSA_CNN_HD __host__ __device__ inline
#else
#define RSA_CNN_HD inline
#endif

namespace rsa {
namespace cnn_math {

// ---- basic operations, rounded to nearest, never contracted ----
#if defined(__CUDA_ARCH__)
RSA_CNN_HD double dadd(double a, double b) { return __dadd_rn(a, b); }
RSA_CNN_HD double dsub(double a, double b) { return __dsub_rn(a, b); }
RSA_CNN_HD double dmul(double a, double b) { return __dmul_rn(a, b); }
RSA_CNN_HD double ddiv(double a, double b) { return __ddiv_rn(a, b); }
RSA_CNN_HD float fadd(float a, float b) { return __fadd_rn(a, b); }
RSA_CNN_HD float fdiv(float a, float b) { return __fdiv_rn(a, b); }
RSA_CNN_HD float to_float(double x) { return __double2float_rn(x); }
RSA_CNN_HD double dfloor(double x) { return ::floor(x); }
RSA_CNN_HD double dfma(double a, double b, double c) { return __fma_rn(a, b, c); }
RSA_CNN_HD double from_bits(uint64_t bits) { return __longlong_as_double(static_cast<long long>(bits)); }
RSA_CNN_HD uint64_t to_bits(double x) { return static_cast<uint64_t>(__double_as_longlong(x)); }
RSA_CNN_HD uint32_t to_bits(float x) { return static_cast<uint32_t>(__float_as_uint(x)); }
#else
RSA_CNN_HD double dadd(double a, double b) { return a + b; }
RSA_CNN_HD double dsub(double a, double b) { return a - b; }
RSA_CNN_HD double dmul(double a, double b) { return a * b; }
RSA_CNN_HD double ddiv(double a, double b) { return a / b; }
RSA_CNN_HD float fadd(float a, float b) { return a + b; }
RSA_CNN_HD float fdiv(float a, float b) { return a / b; }
RSA_CNN_HD float to_float(double x) { return static_cast<float>(x); }
RSA_CNN_HD double dfloor(double x) { return std::floor(x); }
RSA_CNN_HD double dfma(double a, double b, double c) { return std::fma(a, b, c); }  // exact, then one rounding
RSA_CNN_HD double from_bits(uint64_t bits) {
    double x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}
RSA_CNN_HD uint64_t to_bits(double x) {
    uint64_t bits;
    std::memcpy(&bits, &x, sizeof x);
    return bits;
}
RSA_CNN_HD uint32_t to_bits(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof x);
    return bits;
}
#endif

// ---- e^x ----
RSA_CNN_HD double exp_d(double x) {
    if (x != x) return x;                                    // NaN
    if (x > 709.0) return from_bits(0x7ff0000000000000ull);  // +inf
    if (x < -707.0) return 0.0;
    const double log2e = 0x1.71547652b82fep+0;
    const double ln2_hi = 0x1.62e42fee00000p-1;  // fdlibm's split of ln 2: k ln2_hi is exact for |k| < 2^20
    const double ln2_lo = 0x1.a39ef35793c76p-33;
    const double k = dfloor(dadd(dmul(x, log2e), 0.5));  // nearest integer to x / ln 2, in [-1020, 1023]
    const double r = dsub(dsub(x, dmul(k, ln2_hi)), dmul(k, ln2_lo));
    double p = 0x1.6124613a86d09p-33;  // 1/13!
    p = dadd(0x1.1eed8eff8d898p-29, dmul(r, p));  // 1/12!
    p = dadd(0x1.ae64567f544e4p-26, dmul(r, p));  // 1/11!
    p = dadd(0x1.27e4fb7789f5cp-22, dmul(r, p));  // 1/10!
    p = dadd(0x1.71de3a556c734p-19, dmul(r, p));  // 1/9!
    p = dadd(0x1.a01a01a01a01ap-16, dmul(r, p));  // 1/8!
    p = dadd(0x1.a01a01a01a01ap-13, dmul(r, p));  // 1/7!
    p = dadd(0x1.6c16c16c16c17p-10, dmul(r, p));  // 1/6!
    p = dadd(0x1.1111111111111p-7, dmul(r, p));   // 1/5!
    p = dadd(0x1.5555555555555p-5, dmul(r, p));   // 1/4!
    p = dadd(0x1.5555555555555p-3, dmul(r, p));   // 1/3!
    p = dadd(0x1.0000000000000p-1, dmul(r, p));   // 1/2!
    p = dadd(1.0, dmul(r, p));
    p = dadd(1.0, dmul(r, p));
    // 2^k as a double (k + 1023 in [3, 2046]: a normal number), an exact scaling of p.
    const uint64_t biased = static_cast<uint64_t>(static_cast<int64_t>(k) + 1023);
    return dmul(p, from_bits(biased << 52));
}

// ---- e^z in float: glibc's expf, operation for operation ----
// 2^(i/32) as double bits minus i << 47 (glibc's __exp2f_data.tab; recomputed and checked against glibc's expf).
RSA_CNN_HD uint64_t exp2f_table(uint64_t i) {
    switch (i) {
        case 0: return 0x3ff0000000000000ull;  case 1: return 0x3fefd9b0d3158574ull;
        case 2: return 0x3fefb5586cf9890full;  case 3: return 0x3fef9301d0125b51ull;
        case 4: return 0x3fef72b83c7d517bull;  case 5: return 0x3fef54873168b9aaull;
        case 6: return 0x3fef387a6e756238ull;  case 7: return 0x3fef1e9df51fdee1ull;
        case 8: return 0x3fef06fe0a31b715ull;  case 9: return 0x3feef1a7373aa9cbull;
        case 10: return 0x3feedea64c123422ull; case 11: return 0x3feece086061892dull;
        case 12: return 0x3feebfdad5362a27ull; case 13: return 0x3feeb42b569d4f82ull;
        case 14: return 0x3feeab07dd485429ull; case 15: return 0x3feea47eb03a5585ull;
        case 16: return 0x3feea09e667f3bcdull; case 17: return 0x3fee9f75e8ec5f74ull;
        case 18: return 0x3feea11473eb0187ull; case 19: return 0x3feea589994cce13ull;
        case 20: return 0x3feeace5422aa0dbull; case 21: return 0x3feeb737b0cdc5e5ull;
        case 22: return 0x3feec49182a3f090ull; case 23: return 0x3feed503b23e255dull;
        case 24: return 0x3feee89f995ad3adull; case 25: return 0x3feeff76f2fb5e47ull;
        case 26: return 0x3fef199bdd85529cull; case 27: return 0x3fef3720dcef9069ull;
        case 28: return 0x3fef5818dcfba487ull; case 29: return 0x3fef7c97337b9b5full;
        case 30: return 0x3fefa4afa2a490daull; default: return 0x3fefd0765b6e4540ull;
    }
}

// glibc (2.27 and later) expf as x86-64 runs it on a CPU with FMA (its ifunc's __expf_fma, built with -mfma: the
// compiler fuses the reduction's two uses of x 32 / ln 2 and the three polynomial steps into FMAs): x = (k + r) ln2 / 32, e^x = 2^(k/32) (1 + C2 r + (C1 + C0 r) r^2) in double, rounded
// once to float; <= 0.502 ulp, and NOT correctly rounded (about 1 input in 1,000 lands on the other side of a
// midpoint), which is why a correctly rounded exp would change the twin's trajectory and CUDA's expf (2 ulp) cannot
// match it. Repeated here with explicit fma on both sides, it gives glibc's bits everywhere (checked over every
// float in [-104, 89] against this machine's glibc) and makes the twin independent of the CPU it runs on.
RSA_CNN_HD float exp_f(float x) {
    const uint32_t ix = to_bits(x);
    const uint32_t abstop = (ix >> 20) & 0x7ffu;
    if (abstop >= 0x42bu) {                      // |x| >= 88 or NaN
        if (ix == 0xff800000u) return 0.0f;      // -inf
        if (abstop >= 0x7f8u) return x + x;      // +inf, NaN
        if (x > 0x1.62e42ep6f) return static_cast<float>(from_bits(0x7ff0000000000000ull));  // overflow: +inf
        if (x < -0x1.9fe368p6f) return 0.0f;     // underflow
    }
    const double inv_ln2_n = 0x1.71547652b82fep+5;  // 32 / ln 2
    const double shift = 0x1.8p+52;
    const double c0 = 0x1.c6af84b912394p-20, c1 = 0x1.ebfce50fac4f3p-13, c2 = 0x1.62e42ff0c52d6p-6;
    // z = x 32 / ln 2 is never rounded on its own: the compiler fuses both of its uses (z + shift, z - kd) into FMAs.
    const double xd = static_cast<double>(x);
    double kd = dfma(inv_ln2_n, xd, shift);  // z rounded to an integer (ties to even) in the low bits of kd
    const uint64_t ki = to_bits(kd);
    kd = dsub(kd, shift);
    const double r = dfma(inv_ln2_n, xd, -kd);
    const uint64_t t = exp2f_table(ki % 32u) + (ki << 47);
    const double s = from_bits(t);  // 2^(k/32)
    const double zc = dfma(c0, r, c1);
    const double r2 = dmul(r, r);
    double y = dfma(c2, r, 1.0);
    y = dfma(zc, r2, y);
    y = dmul(y, s);
    return to_float(y);
}

// ---- log(1 + u), u >= 0 ----
RSA_CNN_HD double log1p_d(double u) {
    if (u != u || u == 0.0) return u;  // NaN, +-0
    if (u > 1.7976931348623157e308) return u;  // +inf
    const double s = ddiv(u, dadd(2.0, u));
    const double s2 = dmul(s, s);
    double p = 0x1.bacf914c1bad0p-6;         // 1/37
    p = dadd(0x1.d41d41d41d41dp-6, dmul(s2, p));  // 1/35
    p = dadd(0x1.f07c1f07c1f08p-6, dmul(s2, p));  // 1/33
    p = dadd(0x1.0842108421084p-5, dmul(s2, p));  // 1/31
    p = dadd(0x1.1a7b9611a7b96p-5, dmul(s2, p));  // 1/29
    p = dadd(0x1.2f684bda12f68p-5, dmul(s2, p));  // 1/27
    p = dadd(0x1.47ae147ae147bp-5, dmul(s2, p));  // 1/25
    p = dadd(0x1.642c8590b2164p-5, dmul(s2, p));  // 1/23
    p = dadd(0x1.8618618618618p-5, dmul(s2, p));  // 1/21
    p = dadd(0x1.af286bca1af28p-5, dmul(s2, p));  // 1/19
    p = dadd(0x1.e1e1e1e1e1e1ep-5, dmul(s2, p));  // 1/17
    p = dadd(0x1.1111111111111p-4, dmul(s2, p));  // 1/15
    p = dadd(0x1.3b13b13b13b14p-4, dmul(s2, p));  // 1/13
    p = dadd(0x1.745d1745d1746p-4, dmul(s2, p));  // 1/11
    p = dadd(0x1.c71c71c71c71cp-4, dmul(s2, p));  // 1/9
    p = dadd(0x1.2492492492492p-3, dmul(s2, p));  // 1/7
    p = dadd(0x1.999999999999ap-3, dmul(s2, p));  // 1/5
    p = dadd(0x1.5555555555555p-2, dmul(s2, p));  // 1/3
    p = dadd(1.0, dmul(s2, p));
    return dmul(dmul(2.0, s), p);  // 2 s exactly, then one rounding
}

// ---- the network's uses ----
RSA_CNN_HD float sigmoid_f(float z) {
    if (z >= 0.0f) return fdiv(1.0f, fadd(1.0f, exp_f(-z)));
    const float e = exp_f(z);
    return fdiv(e, fadd(1.0f, e));
}

// max(z, 0) - z y + log1p(e^-|z|) (std::max's rule: z itself unless z < 0, so NaN and -0 pass through).
RSA_CNN_HD double bce_term_d(double z, double y) {
    const double relu = z < 0.0 ? 0.0 : z;
    const double abs_z = z < 0.0 ? -z : z;  // -|z| for the exponent (|-0| = 0 either way: e^-0 = e^0 = 1)
    return dadd(dsub(relu, dmul(z, y)), log1p_d(exp_d(-abs_z)));
}

}  // namespace cnn_math
}  // namespace rsa

// Philox4x32-10 counter-based random numbers, identical on the host and the device.
// Every random number is a pure function of (seed, stream, index), so the GPU kernels and their CPU twins draw
// the same stream without sharing state, in any order (Salmon et al., SC'11; the constants of Random123).
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RSA_HD __host__ __device__ __forceinline__
#else
#define RSA_HD inline
#endif

namespace rsa {

struct Philox4 {
    uint32_t v[4];
};

RSA_HD uint32_t philox_mulhi(uint32_t a, uint32_t b, uint32_t* lo) {
    const uint64_t p = static_cast<uint64_t>(a) * b;
    *lo = static_cast<uint32_t>(p);
    return static_cast<uint32_t>(p >> 32);
}

// counter = (index_lo, index_hi, stream, 0), key = seed.
RSA_HD Philox4 philox4x32_10(uint64_t seed, uint32_t stream, uint64_t index) {
    uint32_t c0 = static_cast<uint32_t>(index), c1 = static_cast<uint32_t>(index >> 32), c2 = stream, c3 = 0;
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (int round = 0; round < 10; ++round) {
        uint32_t lo0, lo1;
        const uint32_t hi0 = philox_mulhi(0xD2511F53u, c0, &lo0);
        const uint32_t hi1 = philox_mulhi(0xCD9E8D57u, c2, &lo1);
        const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return Philox4{{c0, c1, c2, c3}};
}

// Uniform in (0, 1), never 0 or 1: 24 random bits, centred in their bin.
RSA_HD float philox_uniform(uint32_t bits) { return (static_cast<float>(bits >> 8) + 0.5f) * (1.0f / 16777216.0f); }

// Uniform in (0, 1) with 53 bits from two words.
RSA_HD double philox_uniform_double(uint32_t a, uint32_t b) {
    const uint64_t bits = (static_cast<uint64_t>(a) << 21) ^ static_cast<uint64_t>(b >> 11);
    return (static_cast<double>(bits & ((1ull << 53) - 1)) + 0.5) * (1.0 / 9007199254740992.0);
}

// Standard normal number `index` of (seed, stream), by Box-Muller in double (host and device round alike).
RSA_HD double philox_normal(uint64_t seed, uint32_t stream, uint64_t index) {
    const Philox4 r = philox4x32_10(seed, stream, index);
    const double u1 = philox_uniform_double(r.v[0], r.v[1]);
    const double u2 = philox_uniform_double(r.v[2], r.v[3]);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// Uniform double in (0, 1) number `index` of (seed, stream).
RSA_HD double philox_uniform01(uint64_t seed, uint32_t stream, uint64_t index) {
    const Philox4 r = philox4x32_10(seed, stream, index);
    return philox_uniform_double(r.v[0], r.v[1]);
}

}  // namespace rsa

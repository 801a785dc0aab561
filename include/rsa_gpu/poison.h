// Poison mode: a process-wide debug switch for tests. While it is on, every fresh DeviceBuffer allocation
// (kernels/device_buffer.cuh) is filled with kPoisonFill bytes (NaN for float and double, -1 for integers), so a
// value a kernel forgot to write shows up as NaN, and gets kPoisonTailBytes of kPoisonSentinel after its elements,
// checked on download() and on release(): a damaged tail (a kernel wrote past the end) counts as a violation and
// prints the buffer's size. Off by default, when DeviceBuffer behaves exactly as without it; the environment
// variable RSA_GPU_POISON=1 turns it on at start-up (for any program, e.g. the GPU tests). Host code that owns
// output memory can use the same fill, sentinel and poison_tail_damage (tests/backend_ops does).
#pragma once
#include <cstddef>
#include <cstdint>

namespace rsa {

constexpr unsigned char kPoisonFill = 0xFF;      // fresh allocations: NaN as float / double, -1 as integers
constexpr unsigned char kPoisonSentinel = 0xA5;  // the tail after the elements
constexpr size_t kPoisonTailBytes = 256;

void set_poison_mode(bool on);
bool poison_mode();

// Number of damaged sentinel tails found so far in this process (device buffers and host callers alike).
uint64_t poison_violations();

// Records one damaged tail: increments the counter and prints to stderr which buffer (`kind`, e.g. "device
// buffer"), where it was found (`where`, e.g. "download"), its size (elements x element bytes) and the damage.
void poison_report_violation(const char* kind, const char* where, size_t elements, size_t element_bytes,
                             size_t first_bad, size_t bad_bytes) noexcept;

// How many of the `bytes` tail bytes at `tail` differ from kPoisonSentinel; the first one's offset in *first_bad.
size_t poison_tail_damage(const void* tail, size_t bytes, size_t* first_bad) noexcept;

}  // namespace rsa

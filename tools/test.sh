#!/usr/bin/env bash
# Run every test: CPU tests always; GPU tests report SKIPPED with the reason on a machine with no NVIDIA driver or
# no CUDA device (and fail there under RSA_GPU_REQUIRE=1). Parallel (-j) is safe: GPU tests hold the CTest
# resource lock `gpu` and the out-of-memory test runs alone. Extra arguments go to ctest (e.g. -L cpu, -R rdm).
set -euo pipefail
cd "$(dirname "$0")/.."
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"

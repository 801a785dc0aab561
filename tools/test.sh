#!/usr/bin/env bash
# Run every test: CPU tests always; GPU tests report SKIPPED with the reason on a machine with no NVIDIA driver or
# no CUDA device (and fail there under RSA_GPU_REQUIRE=1). Parallel (-j) is safe: GPU tests hold the CTest
# resource lock `gpu` and the out-of-memory test runs alone. Extra arguments go to ctest (e.g. -L cpu, -R rdm).
# Then the Python package's tests (pytest tests/python in .venv, made by tools/setup.sh; RSA_GPU_SKIP_PYTHON=1 skips
# them).
set -euo pipefail
cd "$(dirname "$0")/.."
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
if [ "${RSA_GPU_SKIP_PYTHON:-0}" != 1 ]; then
  if [ ! -x .venv/bin/python ]; then echo "test: .venv not found: run tools/setup.sh first" >&2; exit 1; fi
  .venv/bin/python -m pytest tests/python -q -rs
fi

#!/usr/bin/env bash
# Install rsa_gpu's build dependencies from Debian's packages (the CUDA toolkit is expected at /usr/local/cuda
# or on PATH; without it configure with -DRSA_GPU_CUDA=OFF), then configure and build into build/; then the Python
# package into the virtual environment .venv (made with Debian's /usr/bin/python3; the package and the test
# requirements pytest, numpy, scipy and rsatoolbox from PyPI). The package is built CPU-only (build/ already compiles
# the CUDA code) unless RSA_GPU_PYTHON_CUDA=1; RSA_GPU_SKIP_PYTHON=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
packages="cmake ninja-build g++ pkg-config libopenblas-dev libzip-dev libhdf5-dev libcli11-dev nlohmann-json3-dev libgtest-dev libopenmpi-dev openmpi-bin python3-venv python3-dev python3-numpy python3-matplotlib python3-sklearn chromium"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
cuda_flag="-DRSA_GPU_CUDA=ON"
if ! command -v nvcc >/dev/null 2>&1; then
  if [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH
  else echo "setup: nvcc not found: building the CPU-only engine (-DRSA_GPU_CUDA=OFF)"; cuda_flag="-DRSA_GPU_CUDA=OFF"; fi
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release $cuda_flag ${RSA_GPU_CMAKE_ARGS:-}
cmake --build build -j "$(nproc)"

if [ "${RSA_GPU_SKIP_PYTHON:-0}" != 1 ]; then
  [ -x .venv/bin/python ] || /usr/bin/python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q pytest numpy scipy rsatoolbox
  py_flags="-Ccmake.define.RSA_GPU_CUDA=OFF"
  if [ "${RSA_GPU_PYTHON_CUDA:-0}" = 1 ]; then py_flags=""; fi
  .venv/bin/python -m pip install -q . $py_flags
fi

#!/usr/bin/env bash
# Run HERE (Debian 12, with network to its package registry), before a device call: download the Debian packages
# the build needs that the GPU machine's image lacks (OpenBLAS, libzip, CLI11, nlohmann-json, GoogleTest) into
# .deps/ (ignored by git, ~13 MB). Name ".deps" in the device call's carry; tools/device_check.sh unpacks them into
# /tmp/deps (never into /) and points CMake and the loader there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps
cd .deps
apt-get download libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libgfortran5 \
  libzip-dev libzip4 libcli11-dev nlohmann-json3-dev libgtest-dev 2>&1 | grep -v "unsandboxed" || true
ls -la

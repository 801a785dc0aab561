#!/usr/bin/env bash
# Run HERE (Debian 12, with network to its package registry), before a device call: download the Debian packages
# the build needs that the GPU machine's image (Ubuntu 24.04 with CUDA, PyTorch; no network) lacks (OpenBLAS and
# its Fortran runtime, libzip, CLI11, nlohmann-json, GoogleTest) into .deps/ (ignored by git, ~14 MB), then check
# that they can load there: no glibc symbol newer than Ubuntu 24.04's 2.39, and every library they need either
# carried or part of that image. Name ".deps" in the device call's carry; tools/device_check.sh unpacks them into
# /tmp/deps (never into /), points CMake and the loader there, and checks with ldd that every binary resolves.
#   bash tools/device_deps.sh           download, then check
#   bash tools/device_deps.sh --check   check what .deps/ holds
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--check" ]; then
  mkdir -p .deps
  (cd .deps && apt-get download libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 \
     libgfortran5 libquadmath0 libzip-dev libzip4 libcli11-dev nlohmann-json3-dev libgtest-dev 2>&1 |
     grep -v "unsandboxed" || true)
fi
ls .deps/*.deb >/dev/null 2>&1 || { echo "device_deps: no .deb files in .deps/"; exit 1; }

# Unpack into a scratch root and inspect every shared library the packages carry.
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
for d in .deps/*.deb; do dpkg -x "$d" "$root"; done
# What Ubuntu 24.04 (noble) provides without these packages: its glibc and gcc runtime, and the compression and
# crypto libraries its Python (the image's python3 holds PyTorch) needs.
glibc_max=2.39
provided="libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 ld-linux-x86-64.so.2 libgcc_s.so.1 libstdc++.so.6
          libz.so.1 libbz2.so.1.0 liblzma.so.5 libzstd.so.1 libcrypto.so.3"
carried=$(find "$root" -name '*.so*' -type f -printf '%f\n' ; find "$root" -name '*.so*' -type l -printf '%f\n')
status=0
while IFS= read -r so; do
  name=$(basename "$so")
  # Newest glibc symbol version the library asks for.
  newest=$(objdump -T "$so" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
  if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$newest" "$glibc_max" | sort -V | tail -1)" != "$glibc_max" ]; then
    echo "device_deps: $name needs glibc $newest, newer than Ubuntu 24.04's $glibc_max"; status=1
  fi
  for need in $(objdump -p "$so" 2>/dev/null | awk '/NEEDED/ {print $2}'); do
    if ! grep -qxF "$need" <<<"$carried" && ! grep -qw -- "$need" <<<"$provided"; then
      echo "device_deps: $name needs $need, which is neither carried in .deps/ nor part of Ubuntu 24.04"; status=1
    fi
  done
  echo "device_deps: ok $name (glibc <= ${newest:-none})"
done < <(find "$root" -name '*.so*' -type f)
[ $status = 0 ] && echo "device_deps: every carried library can load on Ubuntu 24.04 ($(ls .deps/*.deb | wc -l) packages)"
exit $status

#!/usr/bin/env bash
# End-to-end report test: run the main job on the CPU (small embedded V1, full tutorial training), then
# tests/report_check.sh opens report.html in headless Chromium and checks every figure. Exit 77 (skipped, with
# the reason) when matplotlib/sklearn or Chromium is missing. Usage: report_test.sh RSA_GPU_BINARY
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin" --device cpu --v1-neurons 3000 --out "$dir/out" --no-figures --bootstrap 200 --permutations 200 --quiet || {
  echo "rsa_gpu failed"; exit 1; }
bash "$here/report_check.sh" "$dir/out"

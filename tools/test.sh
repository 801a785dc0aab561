#!/usr/bin/env bash
# Run every test (CPU tests always; GPU tests report SKIPPED with the reason when no GPU is usable).
set -euo pipefail
cd "$(dirname "$0")/.."
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"

#!/usr/bin/env bash
# The AddressSanitizer + UndefinedBehaviorSanitizer build of the CPU engine, and its tests: the CPU tests, the
# reliability suite and the fuzz smoke run under both sanitizers (any report fails the run). Run by CI after the
# plain tests (.ci/run) and before each release. CPU only (-DRSA_GPU_CUDA=OFF): device code is checked by
# compute-sanitizer in tools/device_check.sh. The headless-Chromium report test is left to the plain run; the
# benchmark programs are not built (no test runs them). Built without MPI: OpenMPI's own allocations at exit would be
# leak reports; the distributed layer itself runs here through test_distributed_stats' in-process ranks, and under
# mpirun in the plain run (mpi_rdm, mpi_stats).
#   bash tools/sanitize.sh           every CPU and reliability test (before a release; ~30 min on 2 busy cores)
#   bash tools/sanitize.sh --quick   leaves out the slowest whole-program runs (test_cli, the output races, the
#                                    figures and converter runs: each repeats paths the others cover); CI runs this
#   extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRSA_GPU_CUDA=OFF -DRSA_GPU_BENCH=OFF -DRSA_GPU_MPI=OFF \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null
cmake --build build-asan -j "$(nproc)"
# Leaks are reported too; OpenBLAS keeps its thread pool until exit, which LeakSanitizer does not count.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
exclude="^report_html$"
if [ "${1:-}" = "--quick" ]; then
  shift
  exclude="^(report_html|test_cli|reliability_outputs|reliability_figures|convert_stringer)$"
fi
ctest --test-dir build-asan --output-on-failure -j "$(nproc)" -L "cpu|reliability" -E "$exclude" "$@"

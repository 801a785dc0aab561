#!/usr/bin/env bash
# The one prepared check for a machine with a GPU (nvcc, cmake, ninja, PyTorch; no network). It fails loudly:
#   1. preflight (seconds): nvidia-smi sees a GPU, the driver's CUDA version is at least the toolkit's major, the
#      carried Debian packages and cuDNN are found (cuDNN built for the toolkit's CUDA major); otherwise it stops
#      at once, non-zero, naming the cause;
#   2. builds for the local card only what it runs (sm_90 on an H200);
#   3. runs every GPU test (ctest -L gpu) with RSA_GPU_REQUIRE=1 (a GPU test that finds no usable GPU fails),
#      --timeout 240, one GPU test at a time (CTest resource lock `gpu`), the out-of-memory test alone;
#   4. compute-sanitizer memcheck on every GPU test binary and racecheck on the reduction, statistics and
#      measures kernels, one after another, small cases only;
#   5. the benchmarks (`rsa_gpu bench --device 0 --peer torch`: every standard workload against PyTorch on the same
#      card, results in $OUT/bench), the TF32 variants (bench_rdm_scale_gpu), and the main job on the GPU;
# then prints one summary table (each step: PASS, FAIL, SKIP, TIMEOUT or NOT RUN) and exits non-zero on any
# failure, skip, sanitizer error or timeout. The whole run fits in 8 minutes (DEVICE_CHECK_BUDGET_S, default
# 470): a step that no longer fits is NOT RUN, which also fails the check. Logs go to $OUT (default
# ./device_check_out): summary.txt, and every log in logs.tar.gz.
#   DEVICE_CHECK_BUILD_ONLY=1: stop after the build (used on the development machine to prove the configure line
#   with the carried packages).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/device_check_out}; mkdir -p "$OUT"
LOGS=$OUT/logs; mkdir -p "$LOGS"
SUMMARY=$OUT/summary.txt; : > "$SUMMARY"
START=$(date +%s); BUDGET=${DEVICE_CHECK_BUDGET_S:-470}; DEADLINE=$((START + BUDGET))
BUILD=${DEVICE_CHECK_BUILD_DIR:-build-device}
JOBS=$(nproc 2>/dev/null || echo 4)
export RSA_GPU_REQUIRE=1
ROWS=()      # "step|status|seconds|detail"
FAILED=0

say() { echo "== $*" | tee -a "$SUMMARY"; }
row() {  # row STEP STATUS SECONDS DETAIL
  ROWS+=("$1|$2|$3|$4")
  [ "$2" = PASS ] || FAILED=1
  printf '%-44s %-8s %5ss  %s\n' "$1" "$2" "$3" "$4" | tee -a "$SUMMARY"
}
remaining() { echo $((DEADLINE - $(date +%s))); }
finish() {
  {
    echo
    echo "device_check summary ($(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(( $(date +%s) - START )) s)"
    printf '%-44s %-8s %6s  %s\n' STEP STATUS TIME DETAIL
    for r in "${ROWS[@]}"; do IFS='|' read -r a b c d <<<"$r"; printf '%-44s %-8s %5ss  %s\n' "$a" "$b" "$c" "$d"; done
    if [ $FAILED = 0 ]; then echo "RESULT: PASS (every step passed)"; else echo "RESULT: FAIL (see the rows above)"; fi
  } | tee -a "$SUMMARY"
  (cd "$OUT" && tar -czf logs.tar.gz logs 2>/dev/null && rm -rf logs)
  exit $FAILED
}
# run_step NAME MIN_SECONDS MAX_SECONDS LOG COMMAND...: runs under a timeout that fits the budget; records the row.
run_step() {
  local name=$1 min=$2 max=$3 log=$4; shift 4
  local left; left=$(remaining)
  if [ "$left" -lt "$min" ]; then row "$name" "NOT RUN" 0 "only ${left}s of the budget left (needs ${min}s)"; return 1; fi
  local limit=$(( left < max ? left : max )) t0 rc
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" > "$log" 2>&1; rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if [ $rc = 124 ] || [ $rc = 137 ]; then row "$name" TIMEOUT "$dt" "killed after ${limit}s (log: $(basename "$log"))"; return 1; fi
  if [ $rc != 0 ]; then row "$name" FAIL "$dt" "exit $rc: $(grep -m1 -iE 'error|fail|FATAL' "$log" | cut -c1-120)"; return 1; fi
  row "$name" PASS "$dt" "${STEP_DETAIL:-}"; STEP_DETAIL=""
  return 0
}
trap 'row "interrupted" FAIL 0 "device_check was interrupted"; finish' INT TERM

# ---------------------------------------------------------------- 1. preflight
say "preflight $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
[ -x "$NVCC" ] || { row "preflight: nvcc" FAIL 0 "nvcc not found (PATH, /usr/local/cuda/bin)"; finish; }
export PATH=$(dirname "$NVCC"):$PATH
TOOLKIT=$("$NVCC" --version | grep -o 'release [0-9.]*' | awk '{print $2}')
TK_MAJOR=${TOOLKIT%%.*}
if [ "${DEVICE_CHECK_BUILD_ONLY:-0}" = 1 ]; then
  row "preflight: GPU" PASS 0 "not needed: DEVICE_CHECK_BUILD_ONLY=1 (toolkit CUDA $TOOLKIT)"
else
if ! command -v nvidia-smi >/dev/null 2>&1; then
  row "preflight: nvidia-smi" FAIL 0 "nvidia-smi not found: no NVIDIA driver on this machine"; finish
fi
if ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$LOGS/nvidia-smi.txt" 2>&1 ||
   ! grep -q . "$LOGS/nvidia-smi.txt"; then
  row "preflight: nvidia-smi" FAIL 0 "nvidia-smi lists no GPU: $(head -c 200 "$LOGS/nvidia-smi.txt")"; finish
fi
nvidia-smi >> "$LOGS/nvidia-smi.txt" 2>&1
GPU_LINE=$(head -1 "$LOGS/nvidia-smi.txt")
DRIVER_CUDA=$(grep -o 'CUDA Version: [0-9.]*' "$LOGS/nvidia-smi.txt" | head -1 | awk '{print $3}')
row "preflight: GPU" PASS 0 "$GPU_LINE; driver supports CUDA ${DRIVER_CUDA:-?}"
DRV_MAJOR=${DRIVER_CUDA%%.*}
if [ -z "$DRIVER_CUDA" ] || [ "${DRV_MAJOR:-0}" -lt "${TK_MAJOR:-0}" ]; then
  row "preflight: driver vs toolkit" FAIL 0 "driver supports CUDA ${DRIVER_CUDA:-unknown}, toolkit is CUDA $TOOLKIT: the driver is too old"; finish
fi
row "preflight: driver vs toolkit" PASS 0 "driver CUDA $DRIVER_CUDA >= toolkit CUDA $TOOLKIT"
fi

# Debian packages the image lacks, carried in .deps/ (tools/device_deps.sh): unpacked into /tmp/deps, never /.
DEPS_ARGS=()
if ls .deps/*.deb >/dev/null 2>&1; then
  mkdir -p /tmp/deps
  for d in .deps/*.deb; do
    if command -v dpkg >/dev/null; then dpkg -x "$d" /tmp/deps
    else (t=$(mktemp -d); cd "$t" && ar x "$ROOT/$d" && tar -xf data.tar.* -C /tmp/deps; rm -rf "$t"); fi
  done
  arch=x86_64-linux-gnu
  export CMAKE_PREFIX_PATH=/tmp/deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/$arch/openblas-pthread:/tmp/deps/usr/lib/$arch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  DEPS_ARGS=(-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON -DBLA_VENDOR=OpenBLAS
             -DCMAKE_LIBRARY_PATH=/tmp/deps/usr/lib/$arch/openblas-pthread
             -DCBLAS_INCLUDE_DIR=/tmp/deps/usr/include/$arch/openblas-pthread)
  row "preflight: carried packages" PASS 0 "$(ls .deps/*.deb | wc -l) .deb unpacked into /tmp/deps"
fi

# cuDNN: the toolkit's (or the system's) when its header exists, else the one inside PyTorch's Python packages.
CUDNN_ROOT=${CUDNN_ROOT:-}
CUDA_HOME=$(dirname "$(dirname "$NVCC")")
if [ -z "$CUDNN_ROOT" ]; then
  if [ -e "$CUDA_HOME/include/cudnn.h" ] || [ -e /usr/include/cudnn.h ] || [ -e /usr/include/x86_64-linux-gnu/cudnn.h ]; then
    CUDNN_FROM="the toolkit/system (header in $(ls "$CUDA_HOME/include/cudnn.h" /usr/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h 2>/dev/null | head -1))"
  else
    pkg=$(python3 -c "import nvidia.cudnn as m; print(list(m.__path__)[0])" 2>/dev/null || true)
    if [ -n "$pkg" ] && [ -e "$pkg/include/cudnn.h" ]; then
      # The wheel ships libcudnn.so.9 only: a private root with the unversioned link CMake looks for.
      CUDNN_ROOT=/tmp/cudnn_root; mkdir -p $CUDNN_ROOT/lib
      ln -sfn "$pkg/include" $CUDNN_ROOT/include
      for f in "$pkg"/lib/libcudnn*.so.*; do ln -sf "$f" $CUDNN_ROOT/lib/; done
      so=$(ls "$pkg"/lib/libcudnn.so.* | head -1); ln -sf "$so" $CUDNN_ROOT/lib/libcudnn.so
      wheel=$(python3 -m pip list 2>/dev/null | grep -oE 'nvidia-cudnn-cu[0-9]+' | head -1)
      CUDNN_FROM="PyTorch's wheel ${wheel:-nvidia-cudnn} ($pkg)"
    else
      row "preflight: cuDNN" FAIL 0 "no cudnn.h in $CUDA_HOME/include, /usr/include or PyTorch's nvidia.cudnn package"; finish
    fi
  fi
else
  CUDNN_FROM="CUDNN_ROOT=$CUDNN_ROOT"
fi
export LD_LIBRARY_PATH=${CUDNN_ROOT:+$CUDNN_ROOT/lib:}${LD_LIBRARY_PATH:-}
say "cuDNN from $CUDNN_FROM"

# ---------------------------------------------------------------- 2. build (only what runs)
ARCH=${DEVICE_CHECK_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ' || true)}
ARCH=${ARCH:-90}
# HDF5 (rsatoolbox's RDM files) only when the machine has it: nothing GPU-side reads HDF5, and Debian's libhdf5 needs
# libcurl and its closure, which the GPU image may lack (DEVICE_CHECK_HDF5=ON forces it).
HDF5_FLAG=-DRSA_GPU_HDF5=${DEVICE_CHECK_HDF5:-$( { [ -e /usr/include/hdf5/serial/hdf5.h ] || [ -e /usr/include/hdf5.h ]; } && echo ON || echo OFF)}
run_step "configure (sm_$ARCH)" 20 120 "$LOGS/configure.log" \
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "$HDF5_FLAG" \
  ${CUDNN_ROOT:+-DCUDNN_ROOT=$CUDNN_ROOT} "${DEPS_ARGS[@]}" || finish
GPU_TESTS=$(cd tests && ls test_*_gpu.cu | sed 's/\.cu$//')
BENCHES="bench_rdm_scale_gpu"
run_step "build ($JOBS jobs)" 30 300 "$LOGS/build.log" \
  cmake --build "$BUILD" -j "$JOBS" --target rsa_gpu test_backend_ops $GPU_TESTS $BENCHES || finish
# Every binary must resolve every library (the carried Debian packages and cuDNN on this image).
missing=$(for b in "$BUILD/rsa_gpu" "$BUILD"/tests/test_*_gpu "$BUILD/tests/test_backend_ops"; do
            ldd "$b" 2>&1 | grep 'not found' | sed "s|^|$(basename "$b"): |"; done)
if [ -n "$missing" ]; then row "libraries resolve (ldd)" FAIL 0 "$(echo "$missing" | head -3 | tr '\n' ';')"; finish; fi
row "libraries resolve (ldd)" PASS 0 "rsa_gpu, GPU tests, test_backend_ops"
"$BUILD/rsa_gpu" --version > "$LOGS/version.txt" 2>&1
CUDNN_FOR=$(sed -n 's/^cuDNN: .*built for CUDA \([0-9]*\).*/\1/p' "$LOGS/version.txt")
if [ -n "$CUDNN_FOR" ] && [ "$CUDNN_FOR" != "$TK_MAJOR" ]; then
  row "cuDNN matches the toolkit" FAIL 0 "cuDNN from $CUDNN_FROM was built for CUDA $CUDNN_FOR, the toolkit is CUDA $TK_MAJOR"; finish
fi
row "cuDNN matches the toolkit" "$([ -n "$CUDNN_FOR" ] && echo PASS || echo FAIL)" 0 \
  "$(grep '^cuDNN' "$LOGS/version.txt" | head -1) from $CUDNN_FROM"
cat "$LOGS/version.txt" >> "$SUMMARY"
[ "${DEVICE_CHECK_BUILD_ONLY:-0}" = 1 ] && finish

# ---------------------------------------------------------------- 3. GPU tests (RSA_GPU_REQUIRE=1)
run_step "GPU tests (ctest -L gpu)" 60 330 "$LOGS/gpu_tests.log" \
  ctest --test-dir "$BUILD" -L gpu --timeout 240 --output-on-failure
while IFS= read -r line; do
  name=$(awk '{print $4}' <<<"$line"); secs=$(grep -o '[0-9.]* sec' <<<"$line" | awk '{printf "%d", $1}')
  if grep -q 'Passed' <<<"$line"; then st=PASS; elif grep -q 'Skipped\|Not Run' <<<"$line"; then st=SKIP
  elif grep -q 'Timeout' <<<"$line"; then st=TIMEOUT; else st=FAIL; fi
  row "  gpu test $name" $st "${secs:-0}" "$(sed 's/.*\*\*\*//; s/  */ /g' <<<"$line" | cut -c1-60)"
done < <(grep -E '^ *[0-9]+/[0-9]+ Test +#' "$LOGS/gpu_tests.log")

# ---------------------------------------------------------------- 4. compute-sanitizer, one binary at a time
SANITIZER=$(command -v compute-sanitizer || ls "$CUDA_HOME"/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)
# Small cases only: the full-size ones (S = 4,598, the 25-epoch training) run in the plain pass; memcheck slows
# kernels ~100x.
SMALL='-*FullSize*:*Full*:*OutOfMemory*:*Large*'
if [ -z "$SANITIZER" ]; then
  row "compute-sanitizer" FAIL 0 "compute-sanitizer not found (PATH, $CUDA_HOME/bin, /opt/nvidia)"
else
  for t in $GPU_TESTS; do
    log="$LOGS/memcheck_$t.log"
    run_step "memcheck $t" 15 60 "$log" "$SANITIZER" --tool memcheck --error-exitcode 9 --leak-check full \
      "$BUILD/tests/$t" --gtest_brief=1 --gtest_filter="$SMALL"
  done
  run_step "memcheck test_backend_ops" 15 60 "$LOGS/memcheck_backend_ops.log" "$SANITIZER" --tool memcheck \
    --error-exitcode 9 "$BUILD/tests/test_backend_ops" --small
  # Shared-memory races in the block reductions (compare, measures, statistics kernels).
  for t in test_foundation_gpu test_measures_gpu test_stats_gpu; do
    run_step "racecheck $t" 15 60 "$LOGS/racecheck_$t.log" "$SANITIZER" --tool racecheck --error-exitcode 9 \
      "$BUILD/tests/$t" --gtest_brief=1 --gtest_filter="$SMALL"
  done
fi

# ---------------------------------------------------------------- 5. benchmarks (rsa_gpu bench) and the main job
# The standard workloads of `rsa_gpu bench` on the card with PyTorch on the same card as the peer (python3 on PATH):
# the table goes into the summary, bench.json and bench.csv into $OUT/bench (bench/RESULTS.md is written from them).
PEER_PY=$(command -v python3 || echo /usr/bin/python3)
if run_step "rsa_gpu bench (--device 0, PyTorch peer)" 60 240 "$LOGS/bench.log" \
     env RSA_GPU_PEER_PYTHON="$PEER_PY" "$BUILD/rsa_gpu" bench --device 0 --peer torch --out "$OUT/bench"; then :; fi
sed -n '/^rsa_gpu bench on/,$p' "$LOGS/bench.log" | tee -a "$SUMMARY"
# The TF32 variants (SYRK math mode vs the engine's GemmEx strips) and the TF32 error: bench-only, not a workload.
if run_step "bench RDM plans and TF32 variants" 10 90 "$LOGS/bench_rdm_scale_gpu.log" \
     "$BUILD/bench/bench_rdm_scale_gpu"; then :; fi
grep '^RESULT' "$LOGS/bench_rdm_scale_gpu.log" 2>/dev/null | sed 's/^/  /' | tee -a "$SUMMARY"
MAIN_OUT=$(mktemp -d)
run_step "main job on the GPU (--device 0)" 20 120 "$LOGS/main_job_gpu.log" \
  "$BUILD/rsa_gpu" --device 0 --out "$MAIN_OUT/rsa_out_gpu" --no-figures
cp "$MAIN_OUT/rsa_out_gpu/results.json" "$LOGS/main_job_results.json" 2>/dev/null
grep -E 'epoch|pool|fc|pixels|device' "$LOGS/main_job_gpu.log" | head -20 >> "$SUMMARY"

# ---------------------------------------------------------------- 6. two ranks sharing the GPU (issue 13)
# tests/mpi/mpi_rdm_test.sh with --device auto: both ranks on this card, host-staged collectives, against one process
# on the same card. Needs the binary built with MPI (OpenMPI on the image); otherwise said in the summary.
MPIEXEC=$(command -v mpiexec || command -v mpirun || true)
if [ -n "$MPIEXEC" ] && ldd "$BUILD/rsa_gpu" | grep -q libmpi; then
  run_step "two ranks sharing the GPU (mpirun)" 20 120 "$LOGS/mpi_gpu.log" \
    bash tests/mpi/mpi_rdm_test.sh "$BUILD/rsa_gpu" "$MPIEXEC" auto || true
else
  say "two ranks sharing the GPU: not run (no mpiexec on this image, or rsa_gpu built without MPI: libopenmpi-dev)"
fi
finish

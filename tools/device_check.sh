#!/usr/bin/env bash
# One prepared check for a machine with a GPU (nvcc, cmake, ninja, PyTorch; no network): build for the local
# card, run every GPU test, run compute-sanitizer memcheck on them, and print the benchmark table against
# PyTorch on the same card. Logs go to $OUT (or ./device_check_out). Fits in about 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/device_check_out}; mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
date -u | tee -a "$OUT/summary.txt"

# Debian packages the image lacks (OpenBLAS, libzip, CLI11, nlohmann-json, GoogleTest), carried in .deps/ (made
# here by tools/device_deps.sh): unpacked into /tmp/deps, never into /.
DEPS_ARGS=()
if ls .deps/*.deb >/dev/null 2>&1; then
  mkdir -p /tmp/deps
  for d in .deps/*.deb; do
    if command -v dpkg >/dev/null; then dpkg -x "$d" /tmp/deps
    else (t=$(mktemp -d); cd "$t" && ar x "$OLDPWD/$d" && tar -xf data.tar.* -C /tmp/deps; rm -rf "$t"); fi
  done
  arch=x86_64-linux-gnu
  export CMAKE_PREFIX_PATH=/tmp/deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/$arch/openblas-pthread:/tmp/deps/usr/lib/$arch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  DEPS_ARGS=(-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON -DBLA_VENDOR=OpenBLAS -DCMAKE_LIBRARY_PATH=/tmp/deps/usr/lib/$arch/openblas-pthread
             -DCBLAS_INCLUDE_DIR=/tmp/deps/usr/include/$arch/openblas-pthread)
  log "dependencies unpacked from .deps into /tmp/deps"
fi

# cuDNN: the toolkit's, else the one inside PyTorch's Python packages.
CUDNN_ROOT=${CUDNN_ROOT:-}
if [ -z "$CUDNN_ROOT" ] && ! ls /usr/local/cuda/include/cudnn.h /usr/include/cudnn.h >/dev/null 2>&1; then
  pkg=$(python3 -c "import nvidia.cudnn as m; print(list(m.__path__)[0])" 2>/dev/null || true)
  if [ -n "$pkg" ] && [ -e "$pkg/include/cudnn.h" ]; then
    # The wheel ships libcudnn.so.9 only: a private root with the unversioned link CMake looks for.
    CUDNN_ROOT=/tmp/cudnn_root; mkdir -p $CUDNN_ROOT/lib
    ln -sfn "$pkg/include" $CUDNN_ROOT/include
    for f in "$pkg"/lib/libcudnn*.so.*; do ln -sf "$f" $CUDNN_ROOT/lib/; done
    so=$(ls "$pkg"/lib/libcudnn.so.* | head -1); ln -sf "$so" $CUDNN_ROOT/lib/libcudnn.so
  fi
fi
log "cuDNN root: ${CUDNN_ROOT:-toolkit}"
export LD_LIBRARY_PATH=${CUDNN_ROOT:+$CUDNN_ROOT/lib:}${LD_LIBRARY_PATH:-}

log "configure + build (sm_90)"
cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  ${CUDNN_ROOT:+-DCUDNN_ROOT=$CUDNN_ROOT} "${DEPS_ARGS[@]}" > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build build-device -j 16 > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build.log" | head -40; exit 1; }

log "GPU tests"
ctest --test-dir build-device -L gpu --output-on-failure > "$OUT/gpu_tests.log" 2>&1; echo "gpu tests rc=$?" | tee -a "$OUT/summary.txt"
grep -E "tests passed|Passed|Failed|Skipped|\*\*\*" "$OUT/gpu_tests.log" | tee -a "$OUT/summary.txt"

log "compute-sanitizer memcheck (tests in parallel)"
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)
[ -n "$SANITIZER" ] || echo "compute-sanitizer not found" | tee -a "$OUT/summary.txt"
rm -f "$OUT/memcheck_rc.txt"
for t in build-device/tests/test_*_gpu; do
  # Full-size cases (S = 4,598, the 25-epoch training) are left to the plain run: memcheck slows kernels ~100x.
  name=$(basename "$t")
  ( timeout 180 "${SANITIZER:-compute-sanitizer}" --tool memcheck --error-exitcode 9 "$t" --gtest_brief=1 \
      --gtest_filter='-*FullSize*:*Full*' > "$OUT/memcheck_$name.log" 2>&1
    rc=$?
    echo "memcheck $name rc=$rc (0 clean, 9 errors, 124 timeout)" >> "$OUT/memcheck_rc.txt" ) &
done
wait
cat "$OUT/memcheck_rc.txt" | tee -a "$OUT/summary.txt"
grep -h "ERROR SUMMARY" "$OUT"/memcheck_*.log | sort | uniq -c | tee -a "$OUT/summary.txt"

log "benchmarks"
build-device/bench/bench_rdm_gpu 4598 23589 20 66.9 2>&1 | tee "$OUT/bench_rdm_gpu.log" | tee -a "$OUT/summary.txt"
python3 bench/peer_rdm_torch.py 4598 23589 20 2>&1 | tee "$OUT/peer_rdm_torch.log" | tee -a "$OUT/summary.txt"
ours=$(sed -n 's/^RESULT rsa_gpu_rdm_ms //p' "$OUT/bench_rdm_gpu.log"); peer=$(sed -n 's/^RESULT torch_rdm_ms //p' "$OUT/peer_rdm_torch.log")
[ -n "$ours" ] && [ -n "$peer" ] && python3 -c "print(f'RDM 4598x23589 FP32: rsa_gpu {$ours} ms, PyTorch {$peer} ms, {$peer/$ours:.2f}x')" | tee -a "$OUT/summary.txt"
build-device/bench/bench_train_gpu 2>&1 | tee "$OUT/bench_train_gpu.log" | tee -a "$OUT/summary.txt"
python3 bench/peer_tutorial_torch.py 16 cuda 2>&1 | tee "$OUT/peer_tutorial_torch.log" | tee -a "$OUT/summary.txt"
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import re, sys
def get(f, k):
    m = re.search(rf"^RESULT {k} (\S+)", open(f"{sys.argv[1]}/{f}").read(), re.M)
    return float(m.group(1)) if m else None
o, p = get("bench_train_gpu.log", "rsa_gpu_train_images_per_s"), get("peer_tutorial_torch.log", "torch_train_images_per_s")
if o and p: print(f"training batch 100: rsa_gpu {o:.0f} images/s, PyTorch {p:.0f} images/s, {o/p:.1f}x")
o, p = get("bench_train_gpu.log", "rsa_gpu_tutorial_s"), get("peer_tutorial_torch.log", "torch_tutorial_s")
if o and p: print(f"whole tutorial analysis: rsa_gpu {o*1e3:.1f} ms, PyTorch {p*1e3:.1f} ms, {p/o:.1f}x")
PY
for b in build-device/bench/bench_*_gpu; do
  case "$(basename "$b")" in bench_rdm_gpu|bench_train_gpu) continue;; esac
  "$b" 2>&1 | tee "$OUT/$(basename "$b").log" | tee -a "$OUT/summary.txt"
done
python3 bench/peer_stats_torch.py 4598 200 2>&1 | tee "$OUT/peer_stats_torch.log" | tee -a "$OUT/summary.txt"
log "main job on the GPU"
( cd "$OUT" && timeout 120 "$OLDPWD/build-device/rsa_gpu" --device 0 --out rsa_out_gpu --force ) 2>&1 | tee -a "$OUT/summary.txt"
exit 0

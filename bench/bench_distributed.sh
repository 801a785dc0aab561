#!/usr/bin/env bash
# Strong scaling of the distributed RDM measured on this machine (issue 13, item 6): one seeded S x N float32
# response matrix, the single-process `rsa_gpu rdm --device cpu` as the reference, then `mpirun -np K rsa_gpu rdm
# --device cpu --distribute rows|neurons` for each K, every run timed as a whole process (wall clock around the
# command), every output checked against the single-process RDM (max |diff| <= 1e-6, numpy). Prints a markdown table
# (K, mode, wall s, speed-up, efficiency = T(1) / (K T(K)), max |diff|) headed by the machine (cores, CPU model).
# Each rank gets max(1, cores / K) OpenBLAS threads, so K ranks share the machine's cores as one process does; K
# above the core count is oversubscribed (marked in the table). The scaling model for K H200s is
# bench/scaling_model.py.
#
# Usage: bench/bench_distributed.sh [S N "K list"]   (defaults 3000 20000 "1 2 3 4")
#   RSA_GPU=path/to/rsa_gpu (default build/rsa_gpu), MPIRUN=mpirun, KEEP=1 keeps the work folder.
# Exit status: 0 when every distributed output matches; 1 when one does not (or a run fails); 2 when the binary has
# no distributed rdm (--distribute): then only the single-process run is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-3000}; N=${2:-20000}; KS=${3:-"1 2 3 4"}
BIN=${RSA_GPU:-build/rsa_gpu}
MPIRUN=${MPIRUN:-mpirun}
PY=/usr/bin/python3
[[ -x "$BIN" ]] || { echo "bench_distributed: no rsa_gpu binary at $BIN (build it, or set RSA_GPU)" >&2; exit 1; }
BIN=$(realpath "$BIN")
CORES=$(nproc)
CPU=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -1)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rsa_bench_distributed.XXXXXX")
[[ "${KEEP:-0}" == 1 ]] || trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
# wall seconds of "$@" (stdout and stderr to $WORK/log.<tag>); fails when the command fails.
timed() {
    local tag=$1; shift
    local t0 t1
    t0=$(now)
    if ! "$@" > "$WORK/log.$tag" 2>&1; then
        echo "bench_distributed: '$*' failed:" >&2
        tail -20 "$WORK/log.$tag" >&2
        return 1
    fi
    t1=$(now)
    $PY -c "print(f'{$t1 - $t0:.3f}')"
}
maxdiff() {
    $PY -c "
import numpy as np, sys
a = np.load(sys.argv[1]); b = np.load(sys.argv[2])
print('shape %s != %s' % (a.shape, b.shape) if a.shape != b.shape else '%.3g' % float(np.max(np.abs(a.astype(np.float64) - b))))
" "$1" "$2"
}

echo "# Distributed RDM, strong scaling on this machine"
echo
echo "machine: $CORES cores, $CPU; $($MPIRUN --version 2>/dev/null | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "problem: S = $S x N = $N float32 (seed 13), rsa_gpu rdm --device cpu, whole processes"
echo

$PY -c "
import numpy as np
x = np.random.default_rng(13).standard_normal(($S, $N), dtype=np.float32)
np.save('$WORK/responses.npy', x)"

T1=$(timed single "$BIN" rdm --device cpu --responses "$WORK/responses.npy" --out "$WORK/R1.npy" --quiet)
rows=("| 1 | single process | $T1 | 1.00x | 100% | 0 (reference) |")
status=0
if ! "$BIN" rdm --help 2>&1 | grep -q -- "--distribute"; then
    echo "note: $BIN has no --distribute (no distributed rdm in this build): only the single-process run is measured"
    status=2
else
    for mode in rows neurons; do
        for K in $KS; do
            threads=$(( CORES / K > 0 ? CORES / K : 1 ))
            over=""; (( K > CORES )) && over=" (oversubscribed: $K ranks on $CORES cores)"
            out="$WORK/R_${mode}_$K.npy"
            if t=$(timed "${mode}_$K" env OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads \
                     "$MPIRUN" --allow-run-as-root --oversubscribe -np "$K" \
                     -x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS \
                     "$BIN" rdm --device cpu --distribute "$mode" --responses "$WORK/responses.npy" --out "$out" \
                     --quiet); then
                d=$(maxdiff "$WORK/R1.npy" "$out")
                ok=$($PY -c "import sys; d=sys.argv[1]; print(1 if not d.startswith('shape') and float(d) <= 1e-6 else 0)" "$d")
                [[ "$ok" == 1 ]] || { status=1; d="$d (FAILS <= 1e-6)"; }
                rows+=("$($PY -c "
t1, t = $T1, $t
print(f'| $K | $mode$over | {t:.3f} | {t1 / t:.2f}x | {100 * t1 / ($K * t):.0f}% | $d |')")")
            else
                status=1
                rows+=("| $K | $mode$over | failed | - | - | - |")
            fi
        done
    done
fi

echo "| K | mode | wall s | speed-up | efficiency | max abs diff vs single |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $status

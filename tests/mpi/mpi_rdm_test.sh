#!/usr/bin/env bash
# The distributed RDM (include/rsa_gpu/distributed_rdm.h) under mpirun on the CPU: `rsa_gpu rdm` with 1, 2 and 3
# ranks, row-split and neuron-split, against the single-process RDM (row-split: max |difference| <= 1e-6; neuron-split:
# see same() below; NaN rows alike; euclidean, float64 input, mahalanobis and crossnobis too); the `distributed:` line
# first on rank 0 and absent from a plain run; the row exchange held back (tiles wait for their blocks); bad input
# (exit 2, the rank and the row and column named, nothing left); a taken output left alone; a killed rank (1, then 0:
# the owner of the output) leaves a non-zero exit, mpirun's message naming the rank, and no output, staging folder or
# lock. Usage: mpi_rdm_test.sh RSA_GPU MPIEXEC [DEVICE] (DEVICE: cpu, the default, or auto: on a GPU machine every
# rank takes the GPU of its local rank, so ranks share one card; tools/device_check.sh). Exit 77 (skipped) without
# /usr/bin/python3's numpy.
set -u
bin=$1
mpiexec=$2
dev=${3:-cpu}
py=/usr/bin/python3
"$py" -c "import numpy" 2>/dev/null || { echo "SKIPPED: /usr/bin/python3 has no numpy (apt-get install python3-numpy)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
root_flag=""
[ "$(id -u)" = 0 ] && root_flag="--allow-run-as-root"
run() { "$mpiexec" $root_flag --oversubscribe "$@"; }
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$py" - <<'PY'
import numpy as np
rng = np.random.default_rng(13)
np.save("x.npy", rng.standard_normal((250, 400)).astype(np.float32))
np.save("x64.npy", rng.standard_normal((120, 90)))
c = rng.standard_normal((100, 300)).astype(np.float32); c[4] = 2.0; c[50] = -1.0
np.save("const.npy", c)
n = rng.standard_normal((100, 300)).astype(np.float32); n[7, 11] = np.nan
np.save("nan.npy", n)
np.save("m.npy", rng.standard_normal((60, 80)).astype(np.float32))
np.save("cond.npy", np.repeat(np.arange(20), 3))
np.save("runs.npy", np.tile(np.arange(3), 20))
PY

# Single-process references (no launcher: no `distributed:` line).
"$bin" rdm --device $dev --responses x.npy --out ref_corr.npy 2> plain.txt || fail "plain run"
grep -q "^distributed:" plain.txt && fail "a plain run printed a distributed: line"
"$bin" rdm --device $dev --responses x.npy --method euclidean --out ref_eucl.npy 2>/dev/null || fail "plain euclidean"
"$bin" rdm --device $dev --responses x64.npy --out ref_64.npy 2>/dev/null || fail "plain float64"
"$bin" rdm --device $dev --responses const.npy --constant-rows nan --out ref_const.npy 2>/dev/null || fail "plain nan rows"
maha="--method mahalanobis --noise diag --conditions cond.npy"
cross="--method crossnobis --conditions cond.npy --runs runs.npy"
"$bin" rdm --device $dev --responses m.npy $maha --out ref_maha.npy 2>/dev/null || fail "plain mahalanobis"
"$bin" rdm --device $dev --responses m.npy $cross --out ref_cross.npy 2>/dev/null || fail "plain crossnobis"

same() {  # same REF OUT [INPUT]: max |difference| <= 1e-6 and NaN where the reference has NaN. With INPUT (the
  # neuron-split: every rank's float32 partial rounds on its own) instead: within 1e-6 of the float64 correlation
  # distance of INPUT, or no farther from it than the single-process RDM is, and within 2e-6 of that RDM.
  "$py" -c "
import numpy as np, sys
a = np.load('$1'); b = np.load('$2')
ok = a.shape == b.shape and np.array_equal(np.isnan(a), np.isnan(b))
diff = np.nanmax(np.abs(a - b)) if ok else np.inf
if '${3:-}':
    x = np.load('${3:-}').astype(np.float64)
    with np.errstate(all='ignore'):
        t = 1 - np.corrcoef(x)
    t[np.isnan(a)] = np.nan
    own, ours = np.nanmax(np.abs(a - t)), np.nanmax(np.abs(b - t))
    print('$2', b.shape, 'max |diff| to one process', diff, 'to float64', ours, '(one process:', own, ')')
    ok = ok and diff <= 2e-6 and ours <= max(1e-6, own)
else:
    print('$2', b.shape, 'max |diff|', diff)
    ok = ok and diff <= 1e-6
sys.exit(0 if ok else 1)" || fail "$2 differs from $1"
}

for k in 1 2 3; do
  for mode in rows neurons; do
    out=corr_${k}_${mode}.npy
    run -np $k "$bin" rdm --device $dev --responses x.npy --distribute $mode --out $out 2> err.txt || { cat err.txt; fail "np $k $mode"; }
    head -n 1 err.txt | grep -q "^distributed: $k rank" || { cat err.txt; fail "np $k $mode: the first line is not 'distributed: $k rank...'"; }
    if [ $mode = rows ]; then same ref_corr.npy $out; else same ref_corr.npy $out x.npy; fi
  done
  run -np $k "$bin" rdm --device $dev --responses x.npy --method euclidean --out eucl_$k.npy 2>/dev/null || fail "np $k euclidean"
  same ref_eucl.npy eucl_$k.npy
  run -np $k "$bin" rdm --device $dev --responses x.npy --method euclidean --distribute neurons --out euclN_$k.npy 2>/dev/null || fail "np $k euclidean neurons"
  same ref_eucl.npy euclN_$k.npy
  run -np $k "$bin" rdm --device $dev --responses m.npy $maha --out maha_$k.npy 2>/dev/null || fail "np $k mahalanobis"
  same ref_maha.npy maha_$k.npy
  run -np $k "$bin" rdm --device $dev --responses m.npy $cross --out cross_$k.npy 2>/dev/null || fail "np $k crossnobis"
  same ref_cross.npy cross_$k.npy
  run -np $k "$bin" rdm --device $dev --responses x64.npy --out f64_$k.npy 2>/dev/null || fail "np $k float64"
  same ref_64.npy f64_$k.npy
  run -np $k "$bin" rdm --device $dev --responses const.npy --constant-rows nan --distribute neurons --out const_$k.npy 2>/dev/null || fail "np $k nan rows"
  same ref_const.npy const_$k.npy const.npy
done

# The row exchange held back on every rank (the test hook RSA_GPU_TEST_EXCHANGE_DELAY_MS): the tiles must wait for
# their row blocks as they arrive, and the RDM is the same.
for k in 2 3; do
  RSA_GPU_TEST_EXCHANGE_DELAY_MS=400 run -x RSA_GPU_TEST_EXCHANGE_DELAY_MS -np $k "$bin" rdm --device $dev \
    --responses x.npy --distribute rows --out late_$k.npy 2> err.txt || { cat err.txt; fail "np $k late exchange"; }
  grep -q "rows exchanged between ranks as the tiles run" err.txt || { cat err.txt; fail "np $k late exchange: not the exchange plan"; }
  same ref_corr.npy late_$k.npy
done

# Bad input: exit 2 on every rank, the rank and the place named once, nothing left behind.
run -np 3 "$bin" rdm --device $dev --responses nan.npy --out bad.npy 2> err.txt
rc=$?
[ $rc = 2 ] || fail "non-finite input: exit $rc, expected 2"
grep -q "rank 0: nan.npy: non-finite value nan at row 7, column 11" err.txt || { cat err.txt; fail "non-finite input: message"; }
[ "$(grep -c "non-finite" err.txt)" = 1 ] || fail "non-finite input: the error printed more than once"
ls -A | grep -q "bad.npy" && fail "non-finite input left $(ls -A | grep bad.npy)"
run -np 2 "$bin" rdm --device $dev --responses const.npy --out bad.npy 2> err.txt
[ $? = 2 ] || fail "constant rows: expected exit 2"
grep -q "rows 4, 50" err.txt || { cat err.txt; fail "constant rows: message"; }

# A taken output is left alone.
cp ref_corr.npy taken.npy
run -np 2 "$bin" rdm --device $dev --responses x.npy --out taken.npy 2> err.txt
[ $? = 2 ] || fail "taken output: expected exit 2"
cmp -s ref_corr.npy taken.npy || fail "taken output was changed"

# A killed rank: rank 1 (a worker), then rank 0 (the owner of the output), killed after its first tile.
for victim in 1 0; do
  rm -f stall
  RSA_GPU_TEST_STALL_RANK=$victim RSA_GPU_TEST_STALL_FILE=$dir/stall \
    run -x RSA_GPU_TEST_STALL_RANK -x RSA_GPU_TEST_STALL_FILE -np 3 "$bin" rdm --device $dev --responses x.npy \
    --out killed.npy > /dev/null 2> err.txt &
  job=$!
  for i in $(seq 600); do [ -s stall ] && break; sleep 0.05; done
  if [ -s stall ]; then
    kill -9 "$(cat stall)"
    wait $job
    rc=$?
    [ $rc != 0 ] || fail "killed rank $victim: exit 0"
    grep -q "rank $victim" err.txt || { cat err.txt; fail "killed rank $victim: no message naming the rank"; }
    left=$(ls -A | grep "killed" || true)
    [ -z "$left" ] || fail "killed rank $victim: left $left"
  else
    kill $job 2>/dev/null
    fail "killed rank $victim: the rank never stalled"
  fi
done

[ $fails = 0 ] && echo "mpi_rdm_test: all passed" || echo "mpi_rdm_test: $fails failed"
[ $fails = 0 ]

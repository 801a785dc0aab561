#!/usr/bin/env bash
# Distributed statistics under a launcher (issue 13, distributed_stats.h): `rsa_gpu evaluate` (pattern bootstrap and
# permutations) and the main job (bootstrap and permutations of the Pearson rows) run with mpirun on 1, 2 and 3 ranks
# give exactly the statistics of the plain single-process run; only rank 0 prints and writes the output folder.
# Usage: mpi_stats_test.sh RSA_GPU_BINARY [MPIRUN]. Exit 77 (skipped) without mpirun.
set -u
bin=$1
mpirun=${2:-mpirun}
here=$(cd "$(dirname "$0")" && pwd)
data="$here/../data/evaluate"
py=/usr/bin/python3
command -v "$mpirun" >/dev/null || { echo "SKIPPED: no mpirun"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
launch() { "$mpirun" --allow-run-as-root --oversubscribe -np "$@"; }
fail() { echo "FAILED: $*"; exit 1; }

# The JSON line of a run's stdout (the last line that starts with '{').
json_of() { grep '^{' "$1" | tail -n 1; }

# (a) rsa_gpu evaluate
eval_args=(evaluate --data "$data/data.npy" --models "$data/models.npy" --inference pattern --bootstrap 200
           --permutations 200 --seed 3 --json --device cpu)
"$bin" "${eval_args[@]}" >plain_eval.txt 2>plain_eval.err || fail "plain evaluate: $(cat plain_eval.err)"
json_of plain_eval.txt >plain_eval.json
for n in 1 2 3; do
  launch "$n" "$bin" "${eval_args[@]}" >eval_$n.txt 2>eval_$n.err || fail "evaluate on $n ranks: $(cat eval_$n.err)"
  [ "$(grep -c '^{' eval_$n.txt)" -eq 1 ] || fail "evaluate on $n ranks: expected one JSON line (rank 0 prints), got $(grep -c '^{' eval_$n.txt)"
  json_of eval_$n.txt >eval_$n.json
  "$py" - plain_eval.json eval_$n.json <<'PY' || fail "evaluate on $n ranks differs from the plain run"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for key in ("models", "noise_ceiling", "pairwise", "pairwise_uncorrected", "valid_samples", "dof"):
    if a[key] != b[key]:
        print(key, "\n plain:", a[key], "\n mpi:  ", b[key]); sys.exit(1)
assert all("p_perm" in m for m in b["models"]), "no p_perm"
PY
done

# (b) the main job: small sizes, bootstrap and permutations of the Pearson rows
job_args=(--device cpu --no-cnn --no-figures --v1-neurons 2000 --bootstrap 300 --permutations 300 --quiet)
"$bin" "${job_args[@]}" --out plain_job >plain_job.txt 2>plain_job.err || fail "plain main job: $(cat plain_job.err)"
for n in 1 2 3; do
  launch "$n" "$bin" "${job_args[@]}" --out job_$n >job_$n.txt 2>job_$n.err || fail "main job on $n ranks: $(cat job_$n.err)"
  [ -f job_$n/results.json ] || fail "main job on $n ranks: no results.json"
  "$py" - plain_job/results.json job_$n/results.json <<'PY' || fail "main job on $n ranks differs from the plain run"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for key in ("correlations", "statistics"):
    if a[key] != b[key]:
        print(key, "\n plain:", a[key], "\n mpi:  ", b[key]); sys.exit(1)
rows = [r for r in b["correlations"] if r.get("measure") == "pearson"]
assert rows and all(r.get("p_value") is not None and r.get("ci_low") is not None for r in rows), rows
PY
done
leftover=$(ls -A | grep -v -E '^(plain_|eval_|job_)' || true)
[ -z "$leftover" ] || fail "unexpected files in the run folder: $leftover"
echo "mpi_stats: ok"

#!/usr/bin/env bash
# tools/convert_stringer.py on a small pickled dict shaped like stringer_orientations.npy (sresp neurons x
# trials, istim radians, plus other keys), then rsa_gpu reads the converted file at trial level; and the
# converter's errors (missing key, not a dict). Exit 77 (skipped) without Debian's python3-numpy.
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
"$py" -c "import numpy" 2>/dev/null || { echo "SKIPPED: /usr/bin/python3 has no numpy (apt-get install python3-numpy)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
"$py" - <<'PY'
import numpy as np
rng = np.random.default_rng(3)
istim = rng.uniform(0, 2 * np.pi, 400)
pref = rng.uniform(0, np.pi, 150)
sresp = np.exp(2 * (np.cos(2 * (istim[None, :] - pref[:, None])) - 1)) + 0.3 * rng.standard_normal((150, 400))
np.save("orig.npy", {"sresp": sresp, "istim": istim, "run": np.zeros(400), "xyz": np.zeros((150, 3))}, allow_pickle=True)
np.save("nokey.npy", {"sresp": sresp}, allow_pickle=True)
np.save("array.npy", sresp)
PY
"$py" "$here/../tools/convert_stringer.py" orig.npy trials.npz || { echo "converter failed"; exit 1; }
"$bin" --device cpu --v1 trials.npz --trials --epochs 2 --no-figures --bootstrap 0 --out res --quiet || { echo "rsa_gpu failed on the converted file"; exit 1; }
"$py" -c "import numpy as np; m = np.load('res/rdm_v1.npy'); assert m.shape == (400, 400), m.shape" || exit 1
"$py" "$here/../tools/convert_stringer.py" nokey.npy x.npz 2>err.txt; rc=$?
[ $rc -eq 2 ] && grep -q "istim" err.txt || { echo "missing key: rc=$rc, $(cat err.txt)"; exit 1; }
"$py" "$here/../tools/convert_stringer.py" array.npy x.npz 2>err.txt; rc=$?
[ $rc -eq 2 ] && grep -q "dict" err.txt || { echo "not a dict: rc=$rc, $(cat err.txt)"; exit 1; }
[ ! -e x.npz ] || { echo "x.npz written despite the errors"; exit 1; }
echo "convert_stringer: ok"

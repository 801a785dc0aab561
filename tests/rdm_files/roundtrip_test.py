#!/usr/bin/env python3
"""RDM files against rsatoolbox, both ways (CTest: rdm_files_rsatoolbox).

    roundtrip_test.py RDM_SET_COPY RSA_GPU [VENV_PYTHON]

RDMs made and saved by rsatoolbox (RDMs.save, HDF5) are read and written back by rdm_set_copy (read_rdm_set +
write_rdm_set) and loaded with rsatoolbox.rdm.load_rdm: values, measure and descriptors must come back equal (the
writer adds rdm_descriptors 'name'). `rsa_gpu rdm --out x.hdf5` must give what rsatoolbox's calc_rdm(method=
'correlation') gives, with dissimilarity_measure 'correlation' and the pattern descriptor 'index'. Runs under any
python3: when this one lacks rsatoolbox or h5py it re-runs itself with $RSA_GPU_TEST_PYTHON or VENV_PYTHON (the
repository's .venv), and exits 77 (skipped) when none has them.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

NEEDS = "import numpy, h5py, rsatoolbox"
CHILD = "RSA_GPU_RDM_FILES_CHILD"


def has_modules(python):
    try:
        return subprocess.run([python, "-c", NEEDS], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def reexec_or_skip(args):
    candidates = [os.environ.get("RSA_GPU_TEST_PYTHON", "")] + args[3:4]
    for python in candidates:
        if python and os.path.exists(python) and has_modules(python):
            env = dict(os.environ, **{CHILD: "1"})
            sys.exit(subprocess.run([python, os.path.abspath(__file__)] + args[1:3], env=env).returncode)
    print("skipped: no Python with numpy, h5py and rsatoolbox (set RSA_GPU_TEST_PYTHON or run tools/setup.sh)")
    sys.exit(77)


try:
    import numpy as np  # noqa: E402
    import rsatoolbox  # noqa: E402,F401
    from rsatoolbox.rdm import RDMs, load_rdm  # noqa: E402
except ImportError:
    if os.environ.get(CHILD):
        raise
    reexec_or_skip(sys.argv)

FAILURES = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        FAILURES.append(what)


def plain(v):
    """A descriptor value as plain Python (rsatoolbox loads numpy arrays and scalars)."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def plain_dict(d):
    return {k: plain(v) for k, v in d.items()}


def run(cmd, expect=0):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != expect:
        print(f"command {cmd} exited {r.returncode} (expected {expect})\nstdout: {r.stdout}\nstderr: {r.stderr}")
    check(r.returncode == expect, f"{os.path.basename(cmd[0])} {' '.join(os.path.basename(c) for c in cmd[1:])} "
                                  f"exits {expect}")
    return r


def main():
    copy_exe, rsa_gpu = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="rdm_files_")

    # 1. rsatoolbox -> HDF5 -> read_rdm_set / write_rdm_set -> HDF5 -> rsatoolbox: everything equal.
    d = rng.random((3, 15))
    original = RDMs(d, dissimilarity_measure="euclidean",
                    descriptors={"session": "s1", "subject": 4, "weight": 0.75},
                    rdm_descriptors={"name": ["m1", "m2", "m3"], "fold": [1, 2, 3], "score": [0.5, 1.5, 2.5]},
                    pattern_descriptors={"stimulus": ["a", "bb", "c", "dd", "e", "f"], "angle": [0, 30, 60, 90, 120, 150]})
    a, b = os.path.join(tmp, "a.h5"), os.path.join(tmp, "b.hdf5")
    original.save(a)
    r = run([copy_exe, a, b])
    summary = json.loads(r.stdout) if r.returncode == 0 else {}
    check(summary.get("names") == ["m1", "m2", "m3"] and summary.get("patterns") == 6,
          "read_rdm_set takes names and S from rsatoolbox's file")
    back = load_rdm(b)
    check(np.array_equal(back.dissimilarities, original.dissimilarities), "dissimilarities equal to the last bit")
    check(back.dissimilarity_measure == "euclidean", "dissimilarity_measure kept")
    check(plain_dict(back.descriptors) == plain_dict(original.descriptors),
          f"descriptors kept: {plain_dict(back.descriptors)}")
    check(plain_dict(back.rdm_descriptors) == plain_dict(original.rdm_descriptors),
          f"rdm_descriptors kept: {plain_dict(back.rdm_descriptors)}")
    check(plain_dict(back.pattern_descriptors) == plain_dict(original.pattern_descriptors),
          f"pattern_descriptors kept: {plain_dict(back.pattern_descriptors)}")
    check(back == original, "rsatoolbox's RDMs.__eq__ says the copy equals the original")
    run([copy_exe, a, b], expect=2)  # b exists: refused, not replaced
    check(load_rdm(b) == original, "an existing file is left as it was")

    # 2. No names, no measure: names from the stem, None kept.
    plain_rdms = RDMs(rng.random((2, 6)))
    c, e = os.path.join(tmp, "c.h5"), os.path.join(tmp, "e.h5")
    plain_rdms.save(c)
    r = run([copy_exe, c, e])
    check(r.returncode == 0 and json.loads(r.stdout)["names"] == ["c[0]", "c[1]"], "unnamed RDMs are named stem[k]")
    back = load_rdm(e)
    check(back.dissimilarity_measure is None, "a None measure stays None")
    check(plain(back.rdm_descriptors["name"]) == ["c[0]", "c[1]"] and
          plain(back.rdm_descriptors["index"]) == [0, 1], "the writer adds rdm_descriptors 'name'")
    check(np.array_equal(back.dissimilarities, plain_rdms.dissimilarities), "values equal")

    # 3. numpy K x S x S .npy -> HDF5 -> rsatoolbox.
    mats = plain_rdms.get_matrices()
    n, h = os.path.join(tmp, "stack.npy"), os.path.join(tmp, "stack.h5")
    np.save(n, mats)
    run([copy_exe, n, h])
    back = load_rdm(h)
    check(np.array_equal(back.dissimilarities, plain_rdms.dissimilarities), ".npy -> HDF5: upper triangles in rsatoolbox's order")
    # and back to .npy
    n2 = os.path.join(tmp, "again.npy")
    run([copy_exe, h, n2])
    check(np.array_equal(np.load(n2), mats), "HDF5 -> .npy: the same K x S x S matrices")

    # 4. rsa_gpu rdm --out x.hdf5 against rsatoolbox's calc_rdm(method='correlation').
    x = rng.standard_normal((9, 40)).astype(np.float32)
    xp = os.path.join(tmp, "x.npy")
    np.save(xp, x)
    for out in ("r.hdf5", "r.h5"):
        op = os.path.join(tmp, out)
        run([rsa_gpu, "rdm", "--device", "cpu", "--quiet", "--responses", xp, "--out", op])
        got = load_rdm(op)
        want = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(x.astype(np.float64)), method="correlation")
        err = np.linalg.norm(got.dissimilarities - want.dissimilarities) / np.linalg.norm(want.dissimilarities)
        check(err < 1e-5, f"rsa_gpu rdm --out {out}: relative L2 {err:.2e} from rsatoolbox's calc_rdm")
        check(got.dissimilarity_measure == "correlation", f"{out}: dissimilarity_measure 'correlation'")
        check(plain(got.pattern_descriptors.get("index")) == list(range(9)), f"{out}: pattern descriptor 'index'")
        check(got.n_rdm == 1 and got.n_cond == 9, f"{out}: one RDM of 9 patterns")
        run([rsa_gpu, "rdm", "--device", "cpu", "--quiet", "--responses", xp, "--out", op], expect=2)
    # 5. An RDM over the host memory budget: tiled into a staging .npy, then copied into the HDF5 file in blocks.
    big = rng.standard_normal((3000, 50)).astype(np.float32)
    bp, bn, bh = (os.path.join(tmp, f) for f in ("big.npy", "big_rdm.npy", "big_rdm.h5"))
    np.save(bp, big)
    run([rsa_gpu, "rdm", "--device", "cpu", "--quiet", "--responses", bp, "--out", bn])
    env = dict(os.environ, RSA_GPU_HOST_MEM_BYTES="90M")
    r = subprocess.run([rsa_gpu, "rdm", "--device", "cpu", "--responses", bp, "--out", bh], capture_output=True,
                       text=True, timeout=120, env=env)
    check(r.returncode == 0 and "tiled" in r.stderr, f"rsa_gpu rdm --out big_rdm.h5 under a 90M budget: tiled "
                                                     f"(exit {r.returncode}; {r.stderr.strip()[-300:]})")
    if r.returncode == 0:
        got, want = load_rdm(bh).dissimilarities[0], np.load(bn)[np.triu_indices(3000, 1)]
        check(np.array_equal(got, want.astype(np.float64)), "the tiled HDF5 RDM equals the in-memory .npy RDM")
    leftovers = sorted(f for f in os.listdir(tmp) if f.startswith("."))
    check(not leftovers, f"no staging or lock files left: {leftovers}")

    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        sys.exit(1)
    shutil.rmtree(tmp)
    print("all checks passed")


if __name__ == "__main__":
    main()

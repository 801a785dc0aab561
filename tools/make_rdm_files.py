#!/usr/bin/env python3
"""Oracle for tests/test_rdm_set.cpp: RDM files in every format rsa_gpu reads (tests/data/rdm_files/).

rsatoolbox writes the HDF5 files (RDMs.save(f, file_type='hdf5')), numpy the .npy / .npz files, h5py the hostile
HDF5 files; expected.json holds, for each readable file, what read_rdm_set must return (count, patterns, the upper
triangles in rsatoolbox's order, names, measure, descriptors). Needs numpy, h5py and rsatoolbox:
    /path/to/venv/bin/python tools/make_rdm_files.py [out_dir]
"""
import json
import os
import shutil
import sys

import h5py
import numpy as np
from rsatoolbox.rdm import RDMs

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "rdm_files")


def square(upper, s):
    """S x S symmetric matrix with a zero diagonal from an upper triangle in rsatoolbox's order."""
    m = np.zeros((s, s))
    m[np.triu_indices(s, 1)] = upper
    return m + m.T


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    rng = np.random.default_rng(20261130)
    expected = {}

    def path(name):
        return os.path.join(OUT, name)

    def record(name, upper, names, measure="", descriptors=None, rdm_descriptors=None, pattern_descriptors=None):
        upper = np.atleast_2d(np.asarray(upper, dtype=np.float64))
        p = upper.shape[1]
        s = int(round((1 + np.sqrt(1 + 8 * p)) / 2))
        expected[name] = {
            "count": int(upper.shape[0]), "patterns": s, "upper": upper.ravel().tolist(), "names": names,
            "dissimilarity_measure": measure, "descriptors": descriptors or {},
            "rdm_descriptors": rdm_descriptors or {}, "pattern_descriptors": pattern_descriptors or {}}

    # --- rsatoolbox's HDF5: three RDMs over 5 patterns with every kind of descriptor rsatoolbox writes.
    d = rng.random((3, 10))
    RDMs(d, dissimilarity_measure="euclidean", descriptors={"session": "a", "subject": 3, "weight": 0.5},
         rdm_descriptors={"name": ["x", "y", "z"], "value": [1.5, 2.0, 3.0]},
         pattern_descriptors={"condition": ["a", "bb", "c", "dd", "e"]}).save(path("three_rdms.h5"))
    record("three_rdms.h5", d, ["x", "y", "z"], "euclidean", {"session": "a", "subject": 3, "weight": 0.5},
           {"name": ["x", "y", "z"], "value": [1.5, 2.0, 3.0], "index": [0, 1, 2]},
           {"condition": ["a", "bb", "c", "dd", "e"], "index": [0, 1, 2, 3, 4]})
    # One RDM, no measure (None: an empty dataset), no names: named by the file's stem.
    d1 = rng.random(6)
    RDMs(d1).save(path("one_rdm.hdf5"))
    record("one_rdm.hdf5", d1, ["one_rdm"], "", {}, {"index": [0]}, {"index": [0, 1, 2, 3]})
    # Two RDMs without names: stem[k].
    d2 = rng.random((2, 6))
    RDMs(d2, dissimilarity_measure="correlation").save(path("unnamed.h5"))
    record("unnamed.h5", d2, ["unnamed[0]", "unnamed[1]"], "correlation", {}, {"index": [0, 1]},
           {"index": [0, 1, 2, 3]})

    # --- .npy: one S x S (float64), several K x S x S (float32: read as float32 values widened).
    u = rng.random(6)
    np.save(path("one.npy"), square(u, 4))
    record("one.npy", u, ["one"])
    u2 = rng.random((2, 6)).astype(np.float32)
    np.save(path("pair.npy"), np.stack([square(x, 4) for x in u2]).astype(np.float32))
    record("pair.npy", u2.astype(np.float64), ["pair[0]", "pair[1]"])
    # --- .npz: one key per S x S RDM, a K x S x S member as key[k].
    ua, ub = rng.random(6), rng.random((2, 6))
    np.savez(path("models.npz"), alpha=square(ua, 4), beta=np.stack([square(x, 4) for x in ub]))
    record("models.npz", np.vstack([ua, ub]), ["alpha", "beta[0]", "beta[1]"])

    # --- bad input (InputError, exit 2)
    np.save(path("bad_nonsquare.npy"), rng.random((4, 5)))
    np.save(path("bad_rank.npy"), rng.random(6))
    a = square(rng.random(6), 4)
    a[0, 2] += 0.1
    np.save(path("bad_asymmetric.npy"), a)
    a = square(rng.random(6), 4)
    a[1, 3] = a[3, 1] = np.nan
    np.save(path("bad_nan.npy"), a)
    a = square(rng.random(6), 4)
    a[2, 2] = 0.5
    np.save(path("bad_diagonal.npy"), a)
    np.save(path("bad_small.npy"), square(rng.random(1), 2))
    np.savez(path("bad_mixed_sizes.npz"), a=square(rng.random(6), 4), b=square(rng.random(10), 5))
    np.savez(path("bad_duplicate_names.npz"), **{"a[0]": square(rng.random(6), 4),
                                                  "a": np.stack([square(rng.random(6), 4)] * 2)})
    np.savez(path("bad_empty.npz"))
    with open(path("bad_text.h5"), "w") as f:
        f.write("not an RDM file\n")

    # --- hostile HDF5 files: refused quickly, before anything large is allocated
    def h5(name, fill):
        with h5py.File(path(name), "w") as f:
            f.attrs["rsatoolbox_version"] = "0.3.2"
            f.attrs["dissimilarity_measure"] = "euclidean"
            fill(f)
            for g in ("descriptors", "rdm_descriptors", "pattern_descriptors"):
                if g not in f:
                    f.create_group(g)
    # A contiguous dataset whose dataspace was edited to claim 1 x 549,755,289,600 values (4.4 TB; S = 2^20).
    h5("hostile_huge_shape.h5", lambda f: f.create_dataset("dissimilarities", data=np.full((1, 10), 0.25)))
    with open(path("hostile_huge_shape.h5"), "r+b") as f:
        raw = bytearray(f.read())
        dims = np.array([1, 10], "<u8").tobytes()
        at = raw.find(dims)  # the dataspace message: current dims, then the same maximum dims
        assert at >= 0 and raw.find(dims, at + 1) in (-1, at + 16), "dataspace dims not found"
        huge = np.array([(2**20) * (2**20 - 1) // 2], "<u8").tobytes()
        raw[at + 8:at + 16] = huge
        if raw[at + 16:at + 32] == dims:
            raw[at + 24:at + 32] = huge
        f.seek(0)
        f.write(raw)
    # A chunked dataset of that shape with no chunk written (HDF5 would return fill values).
    h5("hostile_unwritten_chunks.h5",
       lambda f: f.create_dataset("dissimilarities", shape=(1, (2**20) * (2**20 - 1) // 2), chunks=(1, 4096),
                                  dtype="f8"))
    h5("hostile_string_dtype.h5", lambda f: f.create_dataset("dissimilarities", data=np.array([b"abc"] * 6)))
    h5("hostile_rank3.h5", lambda f: f.create_dataset("dissimilarities", data=np.zeros((1, 4, 4))))
    h5("hostile_pairs.h5", lambda f: f.create_dataset("dissimilarities", data=rng.random((2, 7))))
    h5("hostile_two_patterns.h5", lambda f: f.create_dataset("dissimilarities", data=np.array([[0.5]])))
    h5("hostile_nan.h5", lambda f: f.create_dataset("dissimilarities", data=np.array([[0.1, np.nan, 0.3, 0.4, 0.5, 0.6]])))
    h5("hostile_no_dissimilarities.h5", lambda f: f.create_dataset("rdms", data=rng.random((1, 6))))

    def wrong_length(f):
        f.create_dataset("dissimilarities", data=rng.random((1, 6)))
        f.create_group("pattern_descriptors").create_dataset("index", data=np.arange(5))
    h5("hostile_descriptor_length.h5", wrong_length)

    def duplicate_names(f):
        f.create_dataset("dissimilarities", data=rng.random((2, 6)))
        f.create_group("rdm_descriptors").create_dataset("name", data=np.array([b"m", b"m"]))
    h5("hostile_duplicate_names.h5", duplicate_names)
    with open(path("three_rdms.h5"), "rb") as f:
        raw = f.read()
    with open(path("hostile_truncated.h5"), "wb") as f:
        f.write(raw[:len(raw) // 2])

    with open(path("expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(os.listdir(OUT))} files to {OUT}")


if __name__ == "__main__":
    main()

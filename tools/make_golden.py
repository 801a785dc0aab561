#!/usr/bin/env python3
"""Oracle for the foundation's golden files (tests/data/golden/): the tutorial's own numpy/scipy code.

Run with Debian's python3 (numpy, scipy):  /usr/bin/python3 tools/make_golden.py
Writes: gratings at the tutorial's angles (-90, -45, 0, 45, 90) and a few others; a random response matrix with
its scipy z-score, RDM (1 - Z Z^T / N) and the Pearson correlation of two RDMs' strict upper triangles
(the tutorial's correlate_rdms). Small files only.
"""
import json
import os

import numpy as np
from scipy.stats import zscore

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "golden")


def grating(angle, sf=1 / 28, res=0.1, patch=False):
    """The tutorial's grating() (W1D5 Tutorial 3), full-field branch, as a float32 array."""
    angle = np.deg2rad(angle)
    wpix, hpix = 640, 480
    xx, yy = np.meshgrid(sf * np.arange(0, wpix * res) / res, sf * np.arange(0, hpix * res) / res)
    gratings = np.cos(xx * np.cos(angle) + yy * np.sin(angle))
    gratings[gratings < 0] = 0
    gratings[gratings > 0] = 1
    return gratings.astype(np.float32)


def rdm(resp):
    zresp = zscore(resp, axis=1)
    return 1 - (zresp @ zresp.T) / zresp.shape[1]


def correlate_rdms(rdm1, rdm2):
    ioffdiag = np.triu_indices(rdm1.shape[0], k=1)
    return np.corrcoef(rdm1[ioffdiag], rdm2[ioffdiag])[0, 1]


def main():
    os.makedirs(OUT, exist_ok=True)
    angles = np.array([-90, -45, 0, 45, 90, -75.5, 12.25, 33.3, 89.9, -0.5], dtype=np.float32)
    imgs = np.stack([grating(float(a)) for a in angles])
    np.save(os.path.join(OUT, "grating_angles.npy"), angles)
    np.save(os.path.join(OUT, "gratings.npy"), imgs)
    # A coarser resolution and another spatial frequency (options of `rsa_gpu stimuli`).
    np.save(os.path.join(OUT, "gratings_res025_sf20.npy"),
            np.stack([grating(float(a), sf=1 / 20, res=0.025) for a in angles]))

    rng = np.random.default_rng(7)
    S, N = 12, 40
    resp = (rng.standard_normal((S, N)) * rng.uniform(0.5, 3, (S, 1)) + rng.uniform(-2, 2, (S, 1))).astype(np.float32)
    resp2 = (resp[:, ::-1] + 0.7 * rng.standard_normal((S, N))).astype(np.float32)
    z = zscore(resp.astype(np.float64), axis=1)
    r1 = rdm(resp.astype(np.float64))
    r2 = rdm(resp2.astype(np.float64))
    np.save(os.path.join(OUT, "resp.npy"), resp)
    np.save(os.path.join(OUT, "resp2.npy"), resp2)
    np.save(os.path.join(OUT, "zscore.npy"), z)
    np.save(os.path.join(OUT, "rdm.npy"), r1)
    np.save(os.path.join(OUT, "rdm2.npy"), r2)
    with open(os.path.join(OUT, "pearson.json"), "w") as f:
        json.dump({"pearson_rdm_rdm2": float(correlate_rdms(r1, r2))}, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Oracle for the dissimilarity golden files (tests/data/dissimilarity/): rsatoolbox's calc_rdm.

Run with a Python that has numpy and rsatoolbox:  python tools/make_dissimilarity_golden.py
Small seeded float32 inputs (saved as the tests load them) and rsatoolbox's RDMs of them (float64, computed from the
float32 values): euclidean; mahalanobis with the identity, a given precision and the diagonal precision from the
residuals around the condition means (rsatoolbox.data.noise.prec_from_residuals(..., method='diag')); crossnobis
(leave-one-run-out, cv_descriptor 'runs') with the identity, the given precision and the diagonal precision from the
residuals around each (run, condition) mean, on an unbalanced design (one cell has an extra trial).
"""
import os
import warnings

import numpy as np
import rsatoolbox
from rsatoolbox.data.noise import prec_from_residuals

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "dissimilarity")


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), a)


def rdm_matrix(rdms):
    return rdms.get_matrices()[0].astype(np.float64)


def residuals(x, groups):
    r = x.copy()
    for g in np.unique(groups):
        r[groups == g] -= x[groups == g].mean(axis=0)
    return r


def main():
    # rsatoolbox's _build_rdms fills integer descriptors with NaN on the way (numpy warns; the RDM is unaffected).
    warnings.filterwarnings("ignore", "invalid value encountered in cast")
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261130)

    # Rows as stimuli: S x N with an offset (the Gram path's worst case is a large common offset).
    S, N = 12, 20
    x = (rng.standard_normal((S, N)) + 3.0).astype(np.float32)
    save("x", x)
    a = rng.standard_normal((N, N))
    prec = a @ a.T / N + np.eye(N)
    prec = ((prec + prec.T) / 2).astype(np.float32)
    save("precision", prec)
    ds = rsatoolbox.data.Dataset(x.astype(np.float64))
    save("euclidean", rdm_matrix(rsatoolbox.rdm.calc_rdm(ds, method="euclidean")))
    save("mahalanobis_identity", rdm_matrix(rsatoolbox.rdm.calc_rdm(ds, method="mahalanobis")))
    save("mahalanobis_precision",
         rdm_matrix(rsatoolbox.rdm.calc_rdm(ds, method="mahalanobis", noise=prec.astype(np.float64))))

    # Trials with conditions: 5 conditions (labels out of order, not 0..4) x 4 repeats, shuffled.
    cond_values = np.array([42, 3, 17, 8, 30])
    conds = np.repeat(cond_values, 4)
    perm = rng.permutation(conds.size)
    conds = conds[perm]
    patterns = {c: rng.standard_normal(N) * 2 for c in cond_values}
    scale = rng.uniform(0.5, 2.0, N)
    xt = np.stack([patterns[c] + rng.standard_normal(N) * scale for c in conds]).astype(np.float32)
    save("trials_x", xt)
    save("trials_conditions", conds.astype(np.int64))
    dst = rsatoolbox.data.Dataset(xt.astype(np.float64), obs_descriptors={"conds": conds})
    noise = prec_from_residuals(residuals(xt.astype(np.float64), conds), method="diag")
    save("mahalanobis_diag", rdm_matrix(rsatoolbox.rdm.calc_rdm(dst, method="mahalanobis", descriptor="conds",
                                                               noise=noise)))

    # Crossnobis: 6 conditions x 3 runs x 2 trials, one extra trial in run 1 of condition 4; rows shuffled.
    C, R, T = 6, 3, 2
    cn = np.repeat(np.arange(C), R * T)
    rn = np.tile(np.repeat(np.array([5, 1, 9]), T), C)
    cn = np.append(cn, 4)
    rn = np.append(rn, 1)
    perm = rng.permutation(cn.size)
    cn, rn = cn[perm], rn[perm]
    cpat = rng.standard_normal((C, N)) * 1.5
    runoff = {r: rng.standard_normal(N) for r in np.unique(rn)}
    xc = np.stack([cpat[c] + runoff[r] + rng.standard_normal(N) * scale for c, r in zip(cn, rn)]).astype(np.float32)
    save("cross_x", xc)
    save("cross_conditions", cn.astype(np.int64))
    save("cross_runs", rn.astype(np.int64))
    dsc = rsatoolbox.data.Dataset(xc.astype(np.float64), obs_descriptors={"conds": cn, "runs": rn})

    def crossnobis(noise):
        return rdm_matrix(rsatoolbox.rdm.calc_rdm(dsc, method="crossnobis", descriptor="conds",
                                                  cv_descriptor="runs", noise=noise))

    save("crossnobis_identity", crossnobis(None))
    save("crossnobis_precision", crossnobis(prec.astype(np.float64)))
    cells = rn * 1000 + cn
    save("crossnobis_diag", crossnobis(prec_from_residuals(residuals(xc.astype(np.float64), cells), method="diag")))
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Oracle for the comparison measures' golden files (tests/data/measures/): scipy / numpy.

Run with Debian's python3 (numpy, scipy):  /usr/bin/python3 tools/make_measures_golden.py
Writes two small symmetric RDMs (S = 15) with deliberate ties (values rounded to 1 decimal), a copy with NaN
pairs, and the expected Pearson (scipy.stats.pearsonr), Spearman (scipy.stats.spearmanr), Kendall tau-a (brute
force over pairs; scipy's kendalltau is tau-b, stored for reference only) and cosine over the strict upper
triangle (NaN pairs skipped); plus two response matrices and their linear CKA (biased and debiased, numpy).
All expectations are computed in float64 from the float32 values the tests load.
"""
import json
import os

import numpy as np
from scipy.stats import kendalltau, pearsonr, spearmanr

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "measures")


def symmetric(upper, S):
    m = np.zeros((S, S), dtype=np.float32)
    iu = np.triu_indices(S, k=1)
    m[iu] = upper
    m.T[iu] = upper
    return m


def tau_a(x, y):
    n = len(x)
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            s += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
    return float(s) / (n * (n - 1) / 2)


def measures(a, b):
    iu = np.triu_indices(a.shape[0], k=1)
    x = a[iu].astype(np.float64)
    y = b[iu].astype(np.float64)
    keep = ~(np.isnan(x) | np.isnan(y))
    skipped = int((~keep).sum())
    x, y = x[keep], y[keep]
    return {
        "pearson": float(pearsonr(x, y)[0]),
        "spearman": float(spearmanr(x, y)[0]),
        "kendall_tau_a": tau_a(x, y),
        "kendall_tau_b_scipy": float(kendalltau(x, y)[0]),
        "cosine": float(x @ y / np.sqrt((x @ x) * (y @ y))),
        "pairs": int(keep.sum()),
        "skipped": skipped,
    }


def cka(x, y, debiased):
    """Linear CKA (Kornblith et al. 2019; debiased per Nguyen et al. 2021 / Song et al. 2012)."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    k, l = x @ x.T, y @ y.T
    if not debiased:
        return float((k * l).sum() / np.sqrt((k * k).sum() * (l * l).sum()))
    n = k.shape[0]

    def hsic_u(k, l):
        k = k.copy()
        l = l.copy()
        np.fill_diagonal(k, 0.0)
        np.fill_diagonal(l, 0.0)
        one = np.ones(n)
        return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))

    def center_gram_unbiased(g):  # Kornblith's center_gram(unbiased=True), as a cross-check
        g = g.copy()
        np.fill_diagonal(g, 0)
        means = np.sum(g, 0) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        g -= means[:, None]
        g -= means[None, :]
        np.fill_diagonal(g, 0)
        return g

    value = hsic_u(k, l) / np.sqrt(hsic_u(k, k) * hsic_u(l, l))
    kc, lc = center_gram_unbiased(k), center_gram_unbiased(l)
    check = (kc * lc).sum() / np.sqrt((kc * kc).sum() * (lc * lc).sum())
    assert abs(value - check) < 1e-12, (value, check)
    return float(value)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    S = 15
    n = S * (S - 1) // 2
    ua = np.round(rng.uniform(0.0, 2.0, n), 1).astype(np.float32)
    ub = np.round(0.6 * ua + 0.8 * rng.uniform(0.0, 1.0, n), 1).astype(np.float32)
    a, b = symmetric(ua, S), symmetric(ub, S)
    np.save(os.path.join(OUT, "rdm_a.npy"), a)
    np.save(os.path.join(OUT, "rdm_b.npy"), b)
    # NaN pairs: three in a, two in b (one coinciding with a NaN of a), mirrored below the diagonal.
    an, bn = a.copy(), b.copy()
    for (i, j) in [(0, 3), (2, 9), (7, 14)]:
        an[i, j] = an[j, i] = np.nan
    for (i, j) in [(2, 9), (5, 6)]:
        bn[i, j] = bn[j, i] = np.nan
    np.save(os.path.join(OUT, "rdm_a_nan.npy"), an)
    np.save(os.path.join(OUT, "rdm_b_nan.npy"), bn)

    Sx = 20
    x = rng.standard_normal((Sx, 7)).astype(np.float32)
    y = (x[:, :5] @ rng.standard_normal((5, 5)) + 0.7 * rng.standard_normal((Sx, 5))).astype(np.float32)
    np.save(os.path.join(OUT, "resp_x.npy"), x)
    np.save(os.path.join(OUT, "resp_y.npy"), y)

    out = {
        "clean": measures(a, b),
        "nan": measures(an, bn),
        "cka_linear": cka(x, y, False),
        "cka_linear_debiased": cka(x, y, True),
    }
    with open(os.path.join(OUT, "measures.json"), "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

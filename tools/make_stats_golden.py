#!/usr/bin/python3
"""Brute-force reference values for the RDM statistics (tests/test_stats.cpp): tests/data/stats/stats_golden.json.

Run with /usr/bin/python3 (numpy, scipy):  /usr/bin/python3 tools/make_stats_golden.py

Everything is computed the slow, obvious way, independently of the C++ formulas:
  * bootstrap: given index lists (written out), the resampled correlation by explicit enumeration of position
    pairs p < q with idx_p != idx_q, Pearson (scipy) of A[idx_p, idx_q] vs B[idx_p, idx_q];
  * permutation: given permutations, Pearson (scipy) of A's upper triangle vs B[perm][:, perm]'s upper triangle;
  * noise ceiling: given half assignments, per-bin half means, z-scored rows (population SD),
    RDM = 1 - Z Z^T / N, Pearson of the two upper triangles, Spearman-Brown 2r / (1 + r);
  * percentiles: numpy.percentile(method='linear');
  * philox draws: a pure-python Philox4x32-10 (Random123 constants) and the documented draw formulas of
    include/rsa_gpu/stats.h (streams 101, 102, 103), to pin the random streams.
"""
import json
import os

import numpy as np
from scipy import stats

M32 = 0xFFFFFFFF


def philox4x32_10(seed, stream, index):
    c = [index & M32, (index >> 32) & M32, stream & M32, 0]
    k0, k1 = seed & M32, (seed >> 32) & M32
    for _ in range(10):
        p0 = 0xD2511F53 * c[0]
        p1 = 0xCD9E8D57 * c[2]
        hi0, lo0 = p0 >> 32, p0 & M32
        hi1, lo1 = p1 >> 32, p1 & M32
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
        k0 = (k0 + 0x9E3779B9) & M32
        k1 = (k1 + 0xBB67AE85) & M32
    return c


def uniform01(seed, stream, index):
    v = philox4x32_10(seed, stream, index)
    bits = ((v[0] << 21) ^ (v[1] >> 11)) & ((1 << 53) - 1)
    return (float(bits) + 0.5) * (1.0 / 9007199254740992.0)


def bootstrap_draw(seed, S, r, k):
    return min(int(np.floor(S * uniform01(seed, 101, r * S + k))), S - 1)


def fy_partner(u, i):
    return min(int(np.floor((i + 1) * u)), i)


def permutation_draw(seed, S, p):
    perm = list(range(S))
    for i in range(S - 1, 0, -1):
        j = fy_partner(uniform01(seed, 102, p * S + i), i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def split_plan(bins, split, seed):
    T = len(bins)
    half = [-1] * T
    row_of = [-1] * T
    kept = []
    dropped = 0
    for b in sorted(set(bins)):
        trials = [t for t in range(T) if bins[t] == b]
        n = len(trials)
        if n < 2:
            dropped += 1
            continue
        row = len(kept)
        kept.append(b)
        cur = list(trials)
        for i in range(n - 1, 0, -1):
            j = fy_partner(uniform01(seed, 103, split * T + trials[i]), i)
            cur[i], cur[j] = cur[j], cur[i]
        for k, t in enumerate(cur):
            half[t] = 0 if k < n // 2 else 1
            row_of[t] = row
    return half, row_of, kept, dropped


def sym_rdm(rng, S, base=None, mix=0.0):
    x = rng.uniform(0.0, 2.0, size=(S, S))
    if base is not None:
        x = mix * base + (1.0 - mix) * x
    x = np.triu(x, 1)
    x = x + x.T
    return x.astype(np.float32)


def upper(m):
    i, j = np.triu_indices(m.shape[0], 1)
    return m[i, j].astype(np.float64)


def boot_r(a, b, idx):
    xs, ys = [], []
    n = len(idx)
    for p in range(n):
        for q in range(p + 1, n):
            if idx[p] != idx[q]:
                xs.append(float(a[idx[p], idx[q]]))
                ys.append(float(b[idx[p], idx[q]]))
    return float(stats.pearsonr(xs, ys)[0])


def rdm_of(x):
    x = x.astype(np.float64)
    z = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    return 1.0 - z @ z.T / x.shape[1]


def main():
    rng = np.random.default_rng(20240611)
    out = {}

    # ---- bootstrap
    S = 12
    a = sym_rdm(rng, S)
    b1 = sym_rdm(rng, S, a.astype(np.float64), 0.6)
    b2 = sym_rdm(rng, S)
    idx = [list(range(S))]                                    # the identity resample: r = plain Pearson
    idx += [list(map(int, rng.integers(0, S, size=S))) for _ in range(4)]
    idx.append([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 5])           # many self-copies
    out["bootstrap"] = {
        "S": S,
        "ref": a.ravel().astype(float).tolist(),
        "models": [b1.ravel().astype(float).tolist(), b2.ravel().astype(float).tolist()],
        "indices": idx,
        "r": [[boot_r(a, b, ix) for ix in idx] for b in (b1, b2)],
        "r_full": [float(stats.pearsonr(upper(a), upper(b))[0]) for b in (b1, b2)],
    }

    # ---- permutation
    perms = [list(range(S))] + [list(map(int, rng.permutation(S))) for _ in range(4)]
    out["permutation"] = {
        "perms": perms,
        "r": [float(stats.pearsonr(upper(a), upper(b1[np.ix_(p, p)]))[0]) for p in perms],
    }

    # ---- percentiles
    vals = rng.normal(size=37)
    qs = [0.0, 2.5, 50.0, 97.5, 100.0, 33.3]
    out["percentile"] = {"values": vals.tolist(), "q": qs,
                         "p": [float(np.percentile(vals, q, method="linear")) for q in qs]}

    # ---- noise ceiling for given halves
    T, N = 40, 30
    bins = [int(v) for v in rng.integers(0, 9, size=T)]
    bins[0] = 100                                              # singletons: dropped
    bins[1] = 101
    resp = rng.normal(size=(T, N)).astype(np.float32)
    signal = rng.normal(size=(200, N))
    for t in range(T):
        if bins[t] < 100:
            resp[t] += (1.5 * signal[bins[t]]).astype(np.float32)
    half, row_of, kept, dropped = split_plan(bins, 0, 777)
    rows = len(kept)
    means = np.zeros((2, rows, N))
    for h in range(2):
        for r in range(rows):
            ts = [t for t in range(T) if half[t] == h and row_of[t] == r]
            means[h, r] = resp[ts].astype(np.float64).mean(axis=0)
    r_half = float(stats.pearsonr(upper(rdm_of(means[0])), upper(rdm_of(means[1])))[0])
    out["noise_ceiling"] = {
        "T": T, "N": N, "bins": bins, "resp": resp.ravel().astype(float).tolist(),
        "seed": 777, "half": half, "bin_row": row_of, "kept": kept, "dropped": dropped,
        "r_half": r_half, "ceiling": 2 * r_half / (1 + r_half),
    }

    # ---- philox streams
    seed = 0x1234567890ABCDEF
    out["draws"] = {
        "seed": str(seed), "S": S,
        "bootstrap": [[bootstrap_draw(seed, S, r, k) for k in range(S)] for r in range(3)],
        "permutation": [permutation_draw(seed, S, p) for p in range(3)],
    }

    path = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "stats", "stats_golden.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()

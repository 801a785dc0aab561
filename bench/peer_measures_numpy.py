#!/usr/bin/env python3
"""Peer for bench_measures: the same cases with numpy / scipy (run with /usr/bin/python3).

  Pearson   np.corrcoef of the two upper triangles
  Spearman  scipy.stats.spearmanr of the triangles
  Kendall   scipy.stats.kendalltau of the triangles: this is tau-b (ties corrected), ours is tau-a; with
            continuous random values the ties are few and the work is the same O(n log n)
  cosine    numpy: x . y / (|x| |y|) on the triangles converted to float64
  bootstrap straightforward numpy, 3 models: per resample draw S stimulus indices with replacement, take
            rdm[np.ix_(idx, idx)] upper triangles, drop the pairs of a stimulus with its own copy, np.corrcoef
  permutation 1 model: per permutation p, model[np.ix_(p, p)] upper triangle, np.corrcoef

Each measure's time includes taking the triangles out of the S x S matrices (with a boolean mask computed once
beforehand), as ours reads the S x S matrices. The bootstrap at the full S is timed with R_large_peer resamples
(default 5, each takes 1 to 2 s) and scaled linearly to R_large (the RESULT line says the scaled time).
Usage: peer_measures_numpy.py [S repeats S_small R_small R_large P_small R_large_peer]
  S = 4598, repeats = 3, S_small = 500, R_small = 1000, R_large = 100, P_small = 1000, R_large_peer = 5
Prints RESULT lines like bench_measures."""
import sys
import time

import numpy as np
import scipy
import scipy.stats

arg = lambda i, d: int(sys.argv[i]) if len(sys.argv) > i else d
S, REPEATS, S_SMALL, R_SMALL, R_LARGE, P_SMALL, R_LARGE_PEER = (
    arg(1, 4598), arg(2, 3), arg(3, 500), arg(4, 1000), arg(5, 100), arg(6, 1000), arg(7, 5))


def random_rdms(S, seed, cs):
    """ref = 2u, model k = 2 (c_k u + (1 - c_k) v_k): symmetric, zero diagonal, values in [0, 2] (as ours)."""
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(S, 1)
    u = rng.random(len(iu[0]), dtype=np.float32)
    out = []
    for vals in [2 * u] + [np.minimum(2, 2 * (c * u + (1 - c) * rng.random(len(u), dtype=np.float32))) for c in cs]:
        m = np.zeros((S, S), np.float32)
        m[iu] = vals
        out.append(m + m.T)
    return out[0], out[1:]


def median_ms(repeats, f):
    times, val = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        val = f()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2], val


def cosine(x, y):
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


print(f"numpy {np.__version__}, scipy {scipy.__version__}: S={S} ({S * (S - 1) // 2} pairs), median of {REPEATS}")
print(f"{'case':<44} {'time':>12} {'value':>10}")
a, (b,) = random_rdms(S, 1, [0.6])
mask = np.triu(np.ones((S, S), bool), 1)
cases = [
    ("pearson", "Pearson (np.corrcoef)", lambda: np.corrcoef(a[mask], b[mask])[0, 1]),
    ("spearman", "Spearman (scipy.stats.spearmanr)", lambda: scipy.stats.spearmanr(a[mask], b[mask])[0]),
    ("kendall", "Kendall tau-b (scipy.stats.kendalltau)", lambda: scipy.stats.kendalltau(a[mask], b[mask])[0]),
    ("cosine", "cosine (numpy)", lambda: cosine(a[mask], b[mask])),
]
results = {}
for key, label, f in cases:
    t, v = median_ms(REPEATS, f)
    results[key] = t
    print(f"{label:<44} {t:9.1f} ms {v:10.6f}")
del a, b, mask


def bootstrap(ref, models, R, seed=0):
    S = ref.shape[0]
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(S, 1)
    samples = np.empty((len(models), R))
    for r in range(R):
        idx = rng.integers(0, S, S)
        keep = idx[iu[0]] != idx[iu[1]]
        x = ref[np.ix_(idx, idx)][iu][keep]
        for l, m in enumerate(models):
            samples[l, r] = np.corrcoef(x, m[np.ix_(idx, idx)][iu][keep])[0, 1]
    return samples


def permutation(ref, model, P, seed=0):
    S = ref.shape[0]
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(S, 1)
    x = ref[iu]
    r_obs = np.corrcoef(x, model[iu])[0, 1]
    null = np.empty(P)
    for p in range(P):
        perm = rng.permutation(S)
        null[p] = np.corrcoef(x, model[np.ix_(perm, perm)][iu])[0, 1]
    return r_obs, (1 + np.sum(null >= r_obs)) / (1 + P)


cs = [0.6, 0.4, 0.2]
ref_s, mod_s = random_rdms(S_SMALL, 2, cs)
t0 = time.perf_counter()
bs = bootstrap(ref_s, mod_s, R_SMALL)
results["bootstrap_small"] = (time.perf_counter() - t0) * 1e3
print(f"{f'bootstrap S={S_SMALL} R={R_SMALL}, 3 models':<44} {results['bootstrap_small']:9.1f} ms "
      f"{np.nanmean(bs[0]):10.6f}  (mean r of model 1)")

ref_l, mod_l = random_rdms(S, 3, cs)
t0 = time.perf_counter()
bl = bootstrap(ref_l, mod_l, R_LARGE_PEER)
t_large = (time.perf_counter() - t0) * 1e3
del ref_l, mod_l
results["bootstrap_large"] = t_large * R_LARGE / R_LARGE_PEER
print(f"{f'bootstrap S={S} R={R_LARGE_PEER}, 3 models':<44} {t_large:9.1f} ms {np.nanmean(bl[0]):10.6f}  "
      f"(mean r of model 1)")
print(f"{f'  -> scaled to R={R_LARGE}':<44} {results['bootstrap_large']:9.1f} ms")
print(f"{'  -> scaled to R=10,000':<44} {t_large * 10000 / R_LARGE_PEER * 1e-3:9.1f} s")

t0 = time.perf_counter()
r_obs, p_value = permutation(ref_s, mod_s[0], P_SMALL)
results["permutation_small"] = (time.perf_counter() - t0) * 1e3
print(f"{f'permutation S={S_SMALL} P={P_SMALL}':<44} {results['permutation_small']:9.1f} ms {r_obs:10.6f}  "
      f"(r_obs; p = {p_value:.4f})")

for key in ["pearson", "spearman", "kendall", "cosine", "bootstrap_small", "bootstrap_large", "permutation_small"]:
    print(f"RESULT numpy_{key}_ms {results[key]:.1f}")

#!/usr/bin/env python3
"""Oracle for `rsa_gpu evaluate`'s golden files (tests/data/evaluate/): rsatoolbox on seeded data.

Run with a Python that has rsatoolbox (numpy, scipy):  /work/main/.venv/bin/python tools/make_evaluate_golden.py
(--files-only: only the RDM files.) Writes data.npy (K x S x S float64 data RDMs, K = 5 subjects, S = 10 patterns: squared Euclidean distances of a
shared pattern set plus subject noise), models.npy (M = 3 models: the true RDM, a noisy one, a random one rounded to
one decimal so that ranks tie), the same as data.h5 (rsatoolbox's RDMs.save, HDF5) and
models_named.npz (keys truth, noisy, random), and evaluate_golden.json with, for every method (corr, cosine, spearman, rho-a,
tau-a, corr_cov, cosine_cov):
  fixed       eval_fixed: evaluations (model x rdm), get_means, get_sem, get_ci(0.95), test_zero, test_noise,
              test_pairwise, the noise ceiling;
  resample    one pattern resample with repeats (indices written out): compare(models, data) and
              boot_noise_ceiling on it (NaN pairs of a pattern with its own copy left out, as rsatoolbox);
  bootstrap   eval_bootstrap_pattern / eval_bootstrap_rdm / eval_bootstrap (corr and spearman, N = 2000, seeded):
              get_sem and the mean noise ceiling, for the 10% standard-error test; and the first 300 samples of
              each mode with rsatoolbox's Result built on them (get_means, get_sem, get_ci, tests), so the
              inference formulas are checked on the same samples; with test_type 'bootstrap' on those samples too
              (bootstrap_test: p_zero, p_noise, pairwise, and get_ci(0.95, 'bootstrap'): ci_low, ci_high, the
              percentile intervals);
  fixed.ranksum     eval_fixed's tests with test_type 'ranksum' (scipy's Wilcoxon over the 5 data RDMs) and
              get_ci(0.95, 'ranksum') (ci_low, ci_high: rsatoolbox's t intervals for any test type but 'bootstrap');
  percentile_cases  Result.get_ci(ci, 'bootstrap') on sample sets made for its edges: too few samples for the level
              (rsatoolbox frames the samples with -inf and +inf rows, so a bound is infinite or NaN), the first
              sample counts that give finite bounds, a NaN row (an invalid pattern resample: np.quantile gives NaN),
              ties, other levels; non-finite numbers are written as the strings "nan", "inf", "-inf";
  ranksum_cases     rsatoolbox's ranksum tests (Result.test_zero / test_noise / test_pairwise on a fixed Result) of
              evaluation matrices made to reach each branch of scipy's wilcoxon: exact (no ties or zeros, n <= 50),
              the exact sign-flip permutation test (ties or zeros, n <= 13), the normal approximation (ties or zeros
              with 13 < n <= 50, and n > 50), an all-zero model.
rsatoolbox 0.3.2's nc_tests(test_type='bootstrap') reshapes the lower bounds to (noise_ceil.shape[0], 1), i.e. (2, 1)
for a Result's (2, N) noise ceiling, and raises for N != 2; the oracle runs its formula by handing it an (N, N) array
whose row 0 holds the lower bounds (rsa_gpu computes that formula: evaluate.h, EvalTest).
"""
import importlib.metadata
import json
import os

import numpy as np
import rsatoolbox
from rsatoolbox.inference import (boot_noise_ceiling, eval_bootstrap, eval_bootstrap_pattern, eval_bootstrap_rdm,
                                  eval_fixed)
from rsatoolbox.inference.result import Result
from rsatoolbox.model import ModelFixed
from rsatoolbox.rdm import RDMs, compare
from rsatoolbox.util.inference_util import nc_tests

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "evaluate")
METHODS = ["corr", "cosine", "spearman", "rho-a", "tau-a", "corr_cov", "cosine_cov"]
S, K, M = 10, 5, 3


def sq_euclid(x):
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return d


def tolist(x):
    return np.asarray(x, dtype=np.float64).tolist()


def result_dict(res, K_or_none=None):
    return {
        "mean": tolist(res.get_means()),
        "sem": tolist(res.get_sem()),
        "ci_low": tolist(res.get_ci(0.95)[0]),
        "ci_high": tolist(res.get_ci(0.95)[1]),
        "p_zero": tolist(res.test_zero()),
        "p_noise": tolist(res.test_noise()),
        "pairwise": tolist(res.test_pairwise()),
        "noise_ceiling": [float(np.nanmean(res.noise_ceiling[0])), float(np.nanmean(res.noise_ceiling[1]))],
        "dof": int(res.dof),
    }


def ranksum_dict(res):
    return {"p_zero": tolist(res.test_zero("ranksum")), "p_noise": tolist(res.test_noise("ranksum")),
            "pairwise": tolist(res.test_pairwise("ranksum"))}


def bootstrap_test_dict(res, lower):
    n = len(lower)
    nc = np.full((n, n), np.nan)
    nc[0] = lower  # see the module's note on nc_tests
    ci = res.get_ci(0.95, test_type="bootstrap")
    return {"p_zero": tolist(res.test_zero("bootstrap")),
            "p_noise": tolist(nc_tests(res.evaluations, nc, test_type="bootstrap")),
            "pairwise": tolist(res.test_pairwise("bootstrap")),
            "ci_low": tolist(ci[0]), "ci_high": tolist(ci[1])}


def finite_or_name(x):
    """Numbers with NaN and the infinities as the strings "nan", "inf", "-inf" (JSON has none of them)."""
    return [v if np.isfinite(v) else ("nan" if np.isnan(v) else ("inf" if v > 0 else "-inf"))
            for v in np.asarray(x, dtype=np.float64).tolist()]


def percentile_cases(models):
    """Sample sets (samples x models) for the edges of Result.get_ci(ci, 'bootstrap'), with rsatoolbox's intervals."""
    rng = np.random.default_rng(515151)
    cases = []

    def add(name, ev, ci=0.95):
        ev = np.asarray(ev, dtype=np.float64)
        res = Result(models[:ev.shape[1]], ev, "corr", "bootstrap_pattern", np.full((2, ev.shape[0]), 0.5),
                     variances=None, dof=9, n_pattern=10)
        with np.errstate(invalid="ignore"):  # numpy's lerp between -inf and a sample
            lo, hi = res.get_ci(ci, test_type="bootstrap")
        cases.append({"name": name, "ci": ci, "samples": [finite_or_name(row) for row in ev],
                      "ci_low": finite_or_name(lo), "ci_high": finite_or_name(hi)})

    for n in (2, 5, 38, 39, 40, 41, 100):
        add(f"n{n}", rng.normal(0.3, 0.1, (n, 3)))
    nan_row = rng.normal(0.3, 0.1, (200, 3))
    nan_row[17] = np.nan
    add("nan_row_n200", nan_row)
    add("ties_n120", np.round(rng.normal(0.3, 0.2, (120, 3)), 1))
    add("ci90_n50", rng.normal(0.2, 0.1, (50, 2)), ci=0.9)
    add("ci50_n7", rng.normal(0.2, 0.1, (7, 2)), ci=0.5)
    add("ci99_n400", rng.normal(0.2, 0.1, (400, 3)), ci=0.99)
    return cases


def ranksum_cases(models):
    """Evaluation matrices (models x data RDMs) for every branch of scipy's wilcoxon, with rsatoolbox's p-values."""
    rng = np.random.default_rng(424242)
    cases = []

    def add(name, ev, lower=0.3):
        ev = np.asarray(ev, dtype=np.float64)
        nc = np.array([lower, lower + 0.2])
        res = Result(models[:ev.shape[0]], ev[None], "corr", "fixed", nc, variances=None, dof=ev.shape[1] - 1,
                     n_rdm=ev.shape[1])
        cases.append({"name": name, "evaluations": tolist(ev), "noise_ceiling": tolist(nc), **ranksum_dict(res)})

    add("exact_n12", rng.normal(0.3, 0.2, (3, 12)))
    add("exact_n40", rng.normal(0.25, 0.2, (3, 40)))
    ties = np.round(rng.normal(0.3, 0.2, (3, 9)), 1)
    ties[0, 2] = 0.0                      # a zero difference against 0
    ties[2, 4] = ties[1, 4]               # a zero difference between models 1 and 2
    add("permutation_n9_ties_zeros", ties, lower=0.25)
    add("permutation_n13_ties", np.round(rng.normal(0.2, 0.3, (3, 13)), 1), lower=0.25)
    add("asymptotic_n20_ties", np.round(rng.normal(0.2, 0.3, (3, 20)), 1), lower=0.25)
    add("asymptotic_n60", rng.normal(0.1, 0.3, (3, 60)))
    zeros = np.round(rng.normal(0.1, 0.3, (3, 70)), 1)
    zeros[1, :5] = 0.0
    add("asymptotic_n70_zeros", zeros, lower=0.25)
    allzero = rng.normal(0.3, 0.2, (3, 6))
    allzero[1] = 0.0
    add("all_zero_model_n6", allzero)
    return cases


def main():
    import sys
    files_only = "--files-only" in sys.argv
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261130)
    truth = rng.standard_normal((S, 6))
    data = np.stack([sq_euclid(truth + 0.8 * rng.standard_normal((S, 6))) for _ in range(K)])
    true_rdm = sq_euclid(truth)
    noisy = sq_euclid(truth + 1.2 * rng.standard_normal((S, 6)))
    rnd = np.round(rng.uniform(0, 2, (S, S)), 1)
    rnd = np.triu(rnd, 1) + np.triu(rnd, 1).T
    models_m = np.stack([true_rdm, noisy, rnd])
    np.save(os.path.join(OUT, "data.npy"), data)
    np.save(os.path.join(OUT, "models.npy"), models_m)
    # the same RDMs as rsatoolbox's HDF5 file (data) and an .npz of named models, for the command's file forms
    path_h5 = os.path.join(OUT, "data.h5")
    if os.path.exists(path_h5):
        os.remove(path_h5)
    RDMs(data, dissimilarity_measure="squared euclidean").save(path_h5, file_type="hdf5")
    np.savez(os.path.join(OUT, "models_named.npz"), truth=models_m[0], noisy=models_m[1], random=models_m[2])
    if files_only:
        return

    data_rdms = RDMs(data)
    models = [ModelFixed(name, RDMs(models_m[i][None])) for i, name in enumerate(["truth", "noisy", "random"])]
    model_rdms = RDMs(models_m)
    drawn = np.sort(rng.integers(0, S, S))
    while len(np.unique(drawn)) < 5 or len(np.unique(drawn)) == S:
        drawn = np.sort(rng.integers(0, S, S))
    out = {"S": S, "K": K, "M": M, "model_names": ["truth", "noisy", "random"],
           "resample_drawn": drawn.tolist(), "methods": {}}
    for method in METHODS:
        entry = {}
        res = eval_fixed(models, data_rdms, method=method)
        entry["fixed"] = result_dict(res)
        entry["fixed"]["evaluations"] = tolist(res.evaluations[0])
        entry["fixed"]["ranksum"] = ranksum_dict(res)
        ci_ranksum = res.get_ci(0.95, test_type="ranksum")
        entry["fixed"]["ranksum"]["ci_low"] = tolist(ci_ranksum[0])
        entry["fixed"]["ranksum"]["ci_high"] = tolist(ci_ranksum[1])
        sample_d = data_rdms.subsample_pattern("index", drawn)
        sample_m = model_rdms.subsample_pattern("index", drawn)
        entry["resample"] = {
            "compare": tolist(compare(sample_m, sample_d, method)),
            "noise_ceiling": tolist(boot_noise_ceiling(sample_d, method=method, rdm_descriptor="index")),
        }
        # a data resample with repeated RDMs (rdm bootstrap): indices 0, 0, 2, 3, 3
        rdm_idx = [0, 0, 2, 3, 3]
        entry["rdm_resample"] = {
            "rows": rdm_idx,
            "noise_ceiling": tolist(boot_noise_ceiling(data_rdms.subsample("index", rdm_idx), method=method,
                                                       rdm_descriptor="index")),
        }
        out["methods"][method] = entry
    boot = {}
    for method in ["corr", "spearman"]:
        boot[method] = {}
        for mode, fn in [("pattern", eval_bootstrap_pattern), ("rdm", eval_bootstrap_rdm), ("both", eval_bootstrap)]:
            np.random.seed(7)
            res = fn(models, data_rdms, method=method, N=2000)
            d = result_dict(res)
            # the inference of rsatoolbox's Result on the first 300 samples
            ev = res.evaluations[:300]
            nc = res.noise_ceiling[:, :300]
            ok = np.isfinite(ev[:, 0])
            if mode == "rdm":
                variances = np.cov(ev.T)
                sub = Result(models, ev, method, "bootstrap_rdm", nc, variances=variances, dof=K - 1, n_rdm=K)
            else:
                variances = np.cov(np.concatenate([ev[ok, :].T, nc[:, ok]]))
                if mode == "pattern":
                    sub = Result(models, ev, method, "bootstrap_pattern", nc, variances=variances, dof=S - 1,
                                 n_pattern=S)
                else:
                    sub = Result(models, ev, method, "bootstrap", nc, variances=variances, dof=min(K, S) - 1,
                                 n_rdm=K, n_pattern=S)
            d["subset"] = result_dict(sub)
            d["subset"]["samples"] = tolist(ev)
            d["subset"]["lower"] = tolist(nc[0])
            d["subset"]["upper"] = tolist(nc[1])
            d["subset"]["bootstrap_test"] = bootstrap_test_dict(sub, nc[0])
            boot[method][mode] = d
    out["bootstrap"] = boot
    out["ranksum_cases"] = ranksum_cases(models)
    out["percentile_cases"] = percentile_cases(models)
    out["rsatoolbox_version"] = importlib.metadata.version("rsatoolbox")
    with open(os.path.join(OUT, "evaluate_golden.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()

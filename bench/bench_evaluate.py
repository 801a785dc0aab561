#!/usr/bin/env python3
"""rsa_gpu's evaluation engine (CPU twin) against rsatoolbox in the same run, on the same seeded data.

Usage: /work/main/.venv/bin/python bench/bench_evaluate.py BUILD_DIR [--peer-samples N]
Workloads (issue 12): eval_bootstrap_pattern of 3 models on 5 data RDMs at S = 500 with 1,000 resamples, and a
10-subject eval_bootstrap (patterns and subjects) of 3 models at S = 200 with 1,000 resamples; method corr.
rsa_gpu runs all 1,000 resamples (bench_evaluate, median of 3 after a warm-up). rsatoolbox runs `--peer-samples`
resamples (default 1,000; fewer on a busy machine) and its time is scaled to 1,000 (its cost is linear in the
resamples: one Python loop iteration each); the table says how many it ran. Also checks that the two agree on the
point estimates and noise ceiling of the full data (eval_fixed) and on the standard errors (within 10%).
Prints Markdown rows for bench/RESULTS.md.
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

import numpy as np
from rsatoolbox.inference import eval_bootstrap, eval_bootstrap_pattern, eval_fixed
from rsatoolbox.model import ModelFixed
from rsatoolbox.rdm import RDMs


def sq_euclid(x):
    return ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)


def workload(S, K, seed):
    rng = np.random.default_rng(seed)
    truth = rng.standard_normal((S, 20))
    data = np.stack([sq_euclid(truth + 1.0 * rng.standard_normal((S, 20))) for _ in range(K)])
    models = np.stack([sq_euclid(truth), sq_euclid(truth + 1.5 * rng.standard_normal((S, 20))),
                       sq_euclid(rng.standard_normal((S, 20)))])
    return data, models


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--peer-samples", type=int, default=1000)
    args = ap.parse_args()
    exe = os.path.join(args.build, "bench", "bench_evaluate")
    rows = []
    for name, S, K, inference, fn in [("eval_bootstrap_pattern, 3 models, 5 RDMs, S = 500", 500, 5, "pattern",
                                       eval_bootstrap_pattern),
                                      ("eval_bootstrap, 3 models, 10 subjects, S = 200", 200, 10, "both",
                                       eval_bootstrap)]:
        data, models = workload(S, K, 12)
        with tempfile.TemporaryDirectory() as tmp:
            dp, mp = os.path.join(tmp, "data.npy"), os.path.join(tmp, "models.npy")
            np.save(dp, data)
            np.save(mp, models)
            ours = json.loads(subprocess.check_output([exe, dp, mp, "corr", inference, "1000", "3"]))
        data_rdms = RDMs(data)
        mods = [ModelFixed(f"m{i}", RDMs(models[i][None])) for i in range(3)]
        fixed = eval_fixed(mods, data_rdms, method="corr")
        np.random.seed(3)
        t0 = time.perf_counter()
        res = fn(mods, data_rdms, method="corr", N=args.peer_samples)
        peer = (time.perf_counter() - t0) * 1000 / args.peer_samples
        point_err = float(np.max(np.abs(np.asarray(ours["point"]) - fixed.get_means())))
        nc_err = max(abs(ours["point_nc_lower"] - fixed.noise_ceiling[0]),
                     abs(ours["point_nc_upper"] - fixed.noise_ceiling[1]))
        se_ratio = np.asarray(ours["se"]) / res.get_sem()
        rows.append((name, ours["seconds"], peer, args.peer_samples, point_err, nc_err, se_ratio))
        kernels = ours["blas_kernels"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; rsa_gpu's OpenBLAS kernels: {kernels} (set OPENBLAS_CORETYPE to "
          f"choose); numpy {np.__version__}")
    print("| workload | rsa_gpu (CPU twin), 1,000 resamples | rsatoolbox, scaled to 1,000 (resamples run) | "
          "speed-up | point / noise ceiling max abs diff | SE ratio (ours / rsatoolbox) |")
    print("|---|---|---|---|---|---|")
    for name, ours_s, peer_s, n, pe, ne, sr in rows:
        print(f"| {name} | {ours_s:.2f} s | {peer_s:.1f} s ({n}) | {peer_s / ours_s:.0f}x | {pe:.1e} / {ne:.1e} | "
              f"{', '.join(f'{x:.3f}' for x in sr)} |")


if __name__ == "__main__":
    main()

"""Benchmark of the Python package in one run (bench/RESULTS.md, "Python"): call overhead of a 10 x 10 compare;
rdm on a 4,598 x 23,589 float32 array against the C++ in-process time (bench_rdm's compute_rdm, the call the binding
makes, when its binary is given: one pass; bench_python_rdm.py measures that ratio in alternating rounds), numpy and
rsatoolbox; compare and bootstrap against rsatoolbox in memory at S = 4,000.
Usage: .venv/bin/python bench/bench_python.py [--bench-rdm build-dir/bench/bench_rdm] [--rsatoolbox-s 1000]"""
import argparse
import statistics
import time
import timeit

import numpy as np

import rsa_gpu
import rsa_gpu.rsatoolbox as bridge
from bench_python_rdm import run_cxx, run_python


def median_s(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def row(name, ours, peer=None, peer_name=""):
    ratio = f"{peer / ours:.2f}x" if peer else ""
    peer_txt = f"{peer * 1e3:,.1f} ms ({peer_name})" if peer else ""
    print(f"| {name} | {ours * 1e3:,.3f} ms | {peer_txt} | {ratio} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bench-rdm", help="the bench_rdm binary (C++ in-process RDM time)")
    p.add_argument("--rsatoolbox-s", type=int, default=1000, help="S of rsatoolbox's calc_rdm (4598: ~100 s)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    dev = a.device
    import importlib.metadata

    import rsatoolbox
    import rsatoolbox.inference

    print(f"rsa_gpu {rsa_gpu.__version__}, numpy {np.__version__}, rsatoolbox {importlib.metadata.version('rsatoolbox')}, "
          f"device {dev}\n")
    print("| what | rsa_gpu (Python) | peer | peer / ours |\n|---|---|---|---|")
    rng = np.random.default_rng(1)

    # 1. call overhead
    s = rsa_gpu.rdm(rng.standard_normal((10, 20)).astype(np.float32), device=dev)
    s2 = rsa_gpu.rdm(rng.standard_normal((10, 20)).astype(np.float32), device=dev)
    n = 20000
    t = min(timeit.repeat(lambda: rsa_gpu.compare(s, s2, device=dev), number=n, repeat=3)) / n
    from rsa_gpu import _core

    t_core = min(timeit.repeat(lambda: _core.compare(s, s2, "pearson", dev, True), number=n, repeat=3)) / n
    t_np = min(timeit.repeat(lambda: np.corrcoef(s[np.triu_indices(10, 1)], s2[np.triu_indices(10, 1)])[0, 1],
                             number=n // 10, repeat=3)) / (n // 10)
    row("compare 10 x 10 (call overhead)", t, t_np, "numpy triu + corrcoef")
    row("compare 10 x 10 through _core (no Python checks)", t_core)

    # 2. rdm at the full trial-level size. Against C++ compute_rdm (the call the binding makes) by the rules of
    # bench_python_rdm.py (one warm-up call then the median of 3 on each side, the same OpenBLAS kernels); one pass
    # here, so the ratio is only as good as the load allows: bench_python_rdm.py alternates rounds.
    S, N = 4598, 23589
    x = rng.standard_normal((S, N), dtype=np.float32)
    if a.bench_rdm and dev == "cpu":
        t_rdm, _ = run_python(x, 3)
        t_cxx, _, _ = run_cxx(a.bench_rdm, S, N, 3)
        print(f"| rdm {S} x {N} | {t_rdm * 1e3:,.0f} ms | {t_cxx * 1e3:,.0f} ms (C++ compute_rdm, the same call) | "
              f"ours / C++ = {t_rdm / t_cxx:.2f}x |", flush=True)
    else:
        rsa_gpu.rdm(x, device=dev)  # warm-up, as bench_rdm
        t_rdm = median_s(lambda: rsa_gpu.rdm(x, device=dev))
    t_numpy = median_s(lambda: 1.0 - np.corrcoef(x), repeats=1)
    row(f"rdm {S} x {N}", t_rdm, t_numpy, "1 - np.corrcoef, float64")
    Sr = a.rsatoolbox_s
    ds = rsatoolbox.data.Dataset(x[:Sr])
    t_ours_r = median_s(lambda: bridge.calc_rdm(ds, device=dev), repeats=1)
    t_rtb = median_s(lambda: rsatoolbox.rdm.calc_rdm(ds, method="correlation"), repeats=1)
    row(f"calc_rdm {Sr} x {N} (bridge vs rsatoolbox)", t_ours_r, t_rtb, "rsatoolbox calc_rdm")
    del x

    # 3. compare and bootstrap at S = 4,000
    S = 4000
    y = rng.standard_normal((S, 300), dtype=np.float32)
    r1 = rsa_gpu.rdm(y, device=dev)
    r2 = rsa_gpu.rdm(y[:, :150], device=dev)
    rd1 = rsatoolbox.rdm.RDMs(r1[None].astype(np.float64))
    rd2 = rsatoolbox.rdm.RDMs(r2[None].astype(np.float64))
    for method, ours_m in (("corr", "pearson"), ("spearman", "spearman"), ("tau-a", "kendall")):
        t_o = median_s(lambda: rsa_gpu.compare(r1, r2, ours_m, device=dev))
        t_r = median_s(lambda: rsatoolbox.rdm.compare(rd1, rd2, method=method), repeats=1)
        row(f"compare S = {S}, {method}", t_o, t_r, f"rsatoolbox compare '{method}'")
    R = 100
    t_b = median_s(lambda: rsa_gpu.bootstrap(r1, r2, n=R, device=dev), repeats=1)
    mod = rsatoolbox.model.ModelFixed("m", rd2)
    Rr = 5
    t_rb = median_s(lambda: rsatoolbox.inference.eval_bootstrap_pattern(mod, rd1, method="corr", N=Rr,
                                                                        boot_noise_ceil=False), repeats=1)
    row(f"bootstrap S = {S}, {R} resamples (rsatoolbox: {Rr} x {R // Rr})", t_b, t_rb * R / Rr,
        "rsatoolbox eval_bootstrap_pattern")


if __name__ == "__main__":
    main()

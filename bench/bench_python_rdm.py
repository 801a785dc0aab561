"""rsa_gpu.rdm in Python against compute_rdm in C++, measured alternately in one run (bench/RESULTS.md, "Python").

Each round runs the C++ side (`bench_rdm S N repeats compute_rdm` in a subprocess: compute_rdm on the CPU backend,
one warm-up call, median of `repeats`) and the Python side (`rsa_gpu.rdm(x, device="cpu")` in this process on a
seeded float32 C-contiguous array, the same rule: one warm-up call, median of `repeats`), the order swapped every
round so that a load that rises or falls through the run does not favour one side. For both it prints the median
wall time, the CPU time per call (user + system, all threads, warm-up included) and the load average before and
after; at the end the ratio Python / C++ per round and overall (median over rounds). bench_rdm runs with the OpenBLAS
kernels the Python package picks for itself (OPENBLAS_CORETYPE=SkylakeX on an AVX-512 CPU, rsa_gpu._blas), so both
sides run the same kernels; each side names the kernels it ran.

The inputs differ in values only (bench_rdm: its uniform-noise-plus-patterns responses; here standard normal); the
engine's work does not depend on the values.

Usage: python bench/bench_python_rdm.py --bench-rdm build-cpu/bench/bench_rdm [--rounds 3] [--repeats 3]
"""
import argparse
import datetime
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

import rsa_gpu
from rsa_gpu import _blas


def cpu_seconds() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_cxx(bench_rdm: str, S: int, N: int, repeats: int) -> tuple:
    """bench_rdm's compute_rdm stage: (median wall s, CPU s per call, its header line)."""
    env = dict(os.environ)
    if "OPENBLAS_CORETYPE" not in env and env.get("RSA_GPU_BLAS_CORETYPE") != "keep" and _blas.cpu_runs_skylakex():
        env["OPENBLAS_CORETYPE"] = "SkylakeX"  # what rsa_gpu._blas does for the engine in this process
    out = subprocess.run([bench_rdm, str(S), str(N), str(repeats), "compute_rdm"], capture_output=True, text=True,
                         env=env, check=True).stdout
    wall = re.search(r"^RESULT rsa_gpu_cpu_compute_rdm_ms ([0-9.]+)", out, re.M)
    cpu = re.search(r"^RESULT rsa_gpu_cpu_compute_rdm_cpu_s ([0-9.]+)", out, re.M)
    if not wall or not cpu:
        sys.exit(f"bench_rdm printed no compute_rdm result:\n{out}")
    return float(wall.group(1)) / 1e3, float(cpu.group(1)), out.splitlines()[0]


def run_python(x: np.ndarray, repeats: int) -> tuple:
    """rsa_gpu.rdm(x, device="cpu"): (median wall s, CPU s per call) after one warm-up call, as bench_rdm times."""
    cpu0 = cpu_seconds()
    rsa_gpu.rdm(x, device="cpu")  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        rsa_gpu.rdm(x, device="cpu")
        times.append(time.perf_counter() - t)
    return statistics.median(times), (cpu_seconds() - cpu0) / (repeats + 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench-rdm", required=True, help="the bench_rdm binary of a CPU build")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="timed calls per side and round (after one warm-up)")
    p.add_argument("--stimuli", type=int, default=4598)
    p.add_argument("--units", type=int, default=23589)
    a = p.parse_args()
    S, N = a.stimuli, a.units

    started = datetime.datetime.now().astimezone()
    kernels = next((ln for ln in rsa_gpu.versions().splitlines() if ln.startswith("OpenBLAS")), "OpenBLAS: ?")
    print(f"{started:%Y-%m-%d %H:%M %Z}; {platform.node()}: {cpu_model()}, {os.cpu_count()} CPUs, "
          f"{platform.system()} {platform.release()}")
    print(f"rsa_gpu {rsa_gpu.__version__} from {os.path.dirname(rsa_gpu.__file__)}; numpy {np.__version__}; "
          f"Python {platform.python_version()}")
    print(f"engine {kernels}")
    print(f"S = {S}, N = {N}; {a.rounds} rounds, each side one warm-up call then the median of {a.repeats}\n")

    x = np.random.default_rng(1).standard_normal((S, N), dtype=np.float32)
    print("| round | first | Python rsa_gpu.rdm | C++ compute_rdm | Python / C++ | CPU s per call Py / C++ | "
          "load before -> after |")
    print("|---|---|---|---|---|---|---|")
    ratios, py_walls, cxx_walls = [], [], []
    header = ""
    for r in range(a.rounds):
        before = load()
        if r % 2 == 0:
            cxx_wall, cxx_cpu, header = run_cxx(a.bench_rdm, S, N, a.repeats)
            py_wall, py_cpu = run_python(x, a.repeats)
        else:
            py_wall, py_cpu = run_python(x, a.repeats)
            cxx_wall, cxx_cpu, header = run_cxx(a.bench_rdm, S, N, a.repeats)
        ratios.append(py_wall / cxx_wall)
        py_walls.append(py_wall)
        cxx_walls.append(cxx_wall)
        print(f"| {r + 1} | {'C++' if r % 2 == 0 else 'Python'} | {py_wall:.3f} s | {cxx_wall:.3f} s | "
              f"{py_wall / cxx_wall:.3f}x | {py_cpu:.2f} / {cxx_cpu:.2f} | {before} -> {load()} |", flush=True)
    print(f"\nC++ side: {header}")
    print(f"Python / C++: median over rounds {statistics.median(ratios):.3f}x (rounds {min(ratios):.3f}x to "
          f"{max(ratios):.3f}x); medians {statistics.median(py_walls):.3f} s / {statistics.median(cxx_walls):.3f} s; "
          f"target within 1.1x: {'met' if statistics.median(ratios) <= 1.1 else 'not met'}")
    print(f"finished {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, load average {load()}")


if __name__ == "__main__":
    main()

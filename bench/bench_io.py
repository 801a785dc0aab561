#!/usr/bin/python3
"""File I/O as whole processes: `rsa_gpu rdm --device cpu` and `rsa_gpu compare --device cpu` against numpy doing
the same job (np.load, z-score, Z @ Z.T, np.save; np.load of two RDMs, Pearson r of their strict upper
triangles), timed in the same run, runs interleaved, medians printed with the ratio.

Usage: bench/bench_io.py [--binary build/rsa_gpu] [--baseline OTHER/rsa_gpu] [--rows 4598] [--cols 23589]
                         [--rdm 4000] [--runs 5] [--dir D]
--baseline times another rsa_gpu build in the same run (e.g. one of an earlier commit), interleaved with the others.
--coretype X sets OPENBLAS_CORETYPE=X for every process (both tools use the system OpenBLAS): OpenBLAS 0.3.21
picks its kernels from the CPU model, and on a CPU it does not know (e.g. model 207, Emerald Rapids) it falls
back to generic "Prescott" kernels, 6x slower for SYRK/GEMM. The core it picked is printed.
Inputs are written once into --dir (default: a temporary folder, removed at the end): seeded random float32
(never zeros), the response matrix S x N and two symmetric RDMs with a zero diagonal. Each file is read once
before timing so that both tools start from the page cache. Each timed run writes a new output name (the old one
is removed outside the timing). Wall time per process (perf_counter around spawn + wait), peak RSS from wait4.
rsa_gpu writes its output with fsync (staged, synced, renamed: the safety of host/output_dir.cpp); np.save does
not sync, so its output may still be in the page cache when it exits. The table also says how long an fsync of
the RDM takes on this disk, measured separately.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MAKE_INPUTS = r"""
import sys
import numpy as np
S, N, R = (int(v) for v in sys.argv[1:4])
rng = np.random.default_rng(20261130)
np.save(sys.argv[4], rng.normal(0.5, 2.0, (S, N)).astype(np.float32))
for path in sys.argv[5:7]:
    m = rng.random((R, R), dtype=np.float32) + 0.25
    m = (m + m.T) / 2
    np.fill_diagonal(m, 0)
    np.save(path, m)
"""

PEER_RDM = r"""
import sys
import numpy as np
x = np.load(sys.argv[1])
z = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
r = 1 - (z @ z.T) / x.shape[1]
np.save(sys.argv[2], r)
"""

PEER_COMPARE = r"""
import sys
import numpy as np
a = np.load(sys.argv[1])
b = np.load(sys.argv[2])
iu = np.triu_indices(a.shape[0], 1)
print(f"{np.corrcoef(a[iu], b[iu])[0, 1]:.9g}")
"""


def run_measured(cmd):
    """Wall seconds, peak RSS in MB and stdout of one process (wait4 gives the child's own rusage)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    p.returncode = code  # reaped here; keeps Popen from waiting again
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(cmd)}\n{err.decode()}")
    return seconds, usage.ru_maxrss / 1024.0, out.decode().strip()


def warm(path):
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def fsync_seconds(path):
    """Time to write and fsync a copy of path (what rsa_gpu's staged output pays on top of the write)."""
    data = open(path, "rb").read()
    tmp = path + ".fsync-probe"
    t0 = time.perf_counter()
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    s = time.perf_counter() - t0
    os.remove(tmp)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "build", "rsa_gpu"))
    ap.add_argument("--baseline", default=None, help="another rsa_gpu to time alongside (an earlier commit's)")
    ap.add_argument("--coretype", default=None, help="OPENBLAS_CORETYPE for every process, e.g. SkylakeX")
    ap.add_argument("--rows", type=int, default=4598)
    ap.add_argument("--cols", type=int, default=23589)
    ap.add_argument("--rdm", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    baseline = os.path.abspath(args.baseline) if args.baseline else None
    for b in filter(None, (binary, baseline)):
        if not os.access(b, os.X_OK):
            sys.exit(f"no rsa_gpu at {b} (build it, or pass --binary / --baseline)")
    if args.coretype:
        os.environ["OPENBLAS_CORETYPE"] = args.coretype
    work = args.dir or tempfile.mkdtemp(prefix="rsa_bench_io_")
    os.makedirs(work, exist_ok=True)
    try:
        S, N, R = args.rows, args.cols, args.rdm
        x_path, a_path, b_path = (os.path.join(work, n) for n in ("x.npy", "a.npy", "b.npy"))
        # Written by a child process: this one stays small, so that the children's peak RSS (which on Linux
        # starts from the parent's at fork) is their own.
        subprocess.run([sys.executable, "-c", MAKE_INPUTS, str(S), str(N), str(R), x_path, a_path, b_path], check=True)
        for p in (x_path, a_path, b_path):
            warm(p)

        probe = subprocess.run([sys.executable, "-c", "import numpy; print(numpy.__version__)"], check=True,
                               capture_output=True, text=True, env=dict(os.environ, OPENBLAS_VERBOSE="2"))
        numpy_version = probe.stdout.strip()
        core = " ".join(line for line in probe.stderr.splitlines() if line.startswith("Core:")) or "Core: ?"
        cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model\t")), "?")
        load = os.getloadavg()
        print(f"OpenBLAS (both tools): {core} (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}); "
              f"CPU model {cpu_model}")
        print(f"machine: {os.cpu_count()} cores; date {time.strftime('%Y-%m-%d %H:%M')}; numpy {numpy_version}; "
              f"load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        print(f"inputs: X {S} x {N} float32 ({os.path.getsize(x_path) / 1e6:.0f} MB), "
              f"two RDMs {R} x {R} float32 ({os.path.getsize(a_path) / 1e6:.0f} MB each), page cache warm")

        def rdm_cmd(tool):
            return lambda i: [tool, "rdm", "--device", "cpu", "--quiet", "--responses", x_path, "--out",
                              os.path.join(work, f"{'ours' if tool == binary else 'base'}_rdm_{i}.npy")]

        def compare_cmd(tool):
            return lambda i: [tool, "compare", "--device", "cpu", "--quiet", a_path, b_path]

        cases = {  # tool -> command of run i
            "rdm": {"ours": rdm_cmd(binary),
                    "numpy": lambda i: [sys.executable, "-c", PEER_RDM, x_path,
                                        os.path.join(work, f"numpy_rdm_{i}.npy")]},
            "compare": {"ours": compare_cmd(binary),
                        "numpy": lambda i: [sys.executable, "-c", PEER_COMPARE, a_path, b_path]},
        }
        if baseline:
            cases["rdm"]["base"] = rdm_cmd(baseline)
            cases["compare"]["base"] = compare_cmd(baseline)
        for f in os.listdir(work):  # outputs of an earlier run in the same --dir
            if f.endswith(".npy") and f.split("_")[0] in ("ours", "base", "numpy"):
                os.remove(os.path.join(work, f))
        results = {}  # case -> tool -> (seconds list, peak RSS MB, outputs)
        for name, tools in cases.items():
            res = {tool: ([], 0.0, set()) for tool in tools}
            for i in range(args.runs):  # interleaved, so that load changes hit every tool
                for tool, cmd in tools.items():
                    s, rss, out = run_measured(cmd(i))
                    times, peak, outs = res[tool]
                    times.append(s)
                    res[tool] = (times, max(peak, rss), outs | {out})
                for f in (f"ours_rdm_{i}.npy", f"numpy_rdm_{i}.npy", f"base_rdm_{i}.npy"):
                    if os.path.exists(os.path.join(work, f)) and i > 0:
                        os.remove(os.path.join(work, f))
            results[name] = res

        # Same answers: the RDMs agree to float32 rounding, the correlations to 6 digits. (numpy is imported only
        # now, so that the parent stayed small while the children ran: their peak RSS starts from the parent's.)
        import numpy as np
        ours_rdm = np.load(os.path.join(work, "ours_rdm_0.npy"))
        peer_rdm = np.load(os.path.join(work, "numpy_rdm_0.npy"))
        rdm_diff = float(np.max(np.abs(ours_rdm.astype(np.float64) - peer_rdm)))
        r_values = sorted(v for tool in results["compare"].values() for v in tool[2])
        fsync_s = fsync_seconds(os.path.join(work, "ours_rdm_0.npy"))

        load_after = os.getloadavg()
        print(f"load average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
              f"fsync of a {S} x {S} float32 RDM on this disk: {fsync_s * 1e3:.0f} ms (rsa_gpu pays it, np.save not)")
        print(f"check: max |RDM ours - numpy| = {rdm_diff:.2e}; compare outputs {r_values}")
        print()
        def cell(times):
            return f"{statistics.median(times):.3f} ({min(times):.3f}-{max(times):.3f})"

        base_head = " baseline rsa_gpu median (min-max), s |" if baseline else ""
        rss_head = "rsa_gpu / baseline / numpy" if baseline else "rsa_gpu / numpy"
        print(f"| case | rsa_gpu median (min-max), s |{base_head} numpy median (min-max), s | numpy / rsa_gpu "
              f"| peak RSS {rss_head} | target |")
        print("|---|---|" + ("---|" if baseline else "") + "---|---|---|---|")
        targets = {"rdm": ("numpy / rsa_gpu >= 1.4", lambda o, p: p / o >= 1.4),
                   "compare": ("rsa_gpu < 0.3 s", lambda o, p: o < 0.3)}
        labels = {"rdm": f"rdm {S} x {N} (load, z-score, SYRK, save)",
                  "compare": f"compare two {R} x {R} RDMs (Pearson)"}
        for name, res in results.items():
            o, p = statistics.median(res["ours"][0]), statistics.median(res["numpy"][0])
            text, ok = targets[name]
            base_cell = f" {cell(res['base'][0])} |" if baseline else ""
            print(f"| {labels[name]} | {cell(res['ours'][0])} |{base_cell} {cell(res['numpy'][0])} | {p / o:.2f}x "
                  f"| {' / '.join(f'{res[t][1]:.0f}' for t in ('ours', 'base', 'numpy') if t in res)} MB "
                  f"| {text}: {'met' if ok(o, p) else 'NOT met'} |")
        print(f"\nmedians of {args.runs} runs each, interleaved")
        for name, res in results.items():
            for tool, label in (("ours", "rsa_gpu"), ("base", "baseline"), ("numpy", "numpy")):
                if tool in res:
                    print(f"RESULT {name}_{label}_s {statistics.median(res[tool][0]):.3f}")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`rsa_gpu bench` end to end (python3, standard library only). Usage: bench_cli_test.py RSA_GPU cpu|gpu

cpu: `rsa_gpu bench --quick --device cpu --json` (numpy peer by default) prints one JSON object whose machine block
     and every workload of every group carry each field (name, median_s, rate, unit, floor_fraction, peers), with
     the numpy ratio wherever numpy has a version of the workload (when /usr/bin/python3 has numpy); bad options exit
     2 naming the option, before any work; --out gets bench.json and bench.csv (and sweep.csv with --sweep).
gpu: the same quick run on --device 0. Exits 77 (skipped) only without an NVIDIA driver or a CUDA device, as the
     other GPU tests (tests/gpu_gate.h), and fails then too under RSA_GPU_REQUIRE=1."""
import ctypes
import json
import math
import os
import subprocess
import sys
import tempfile

BIN, MODE = sys.argv[1], sys.argv[2]
GROUPS = {"rdm": 4, "train": 2, "tutorial": 1, "compare": 4, "cka": 1, "bootstrap": 2, "permutation": 2}
if MODE == "gpu":
    GROUPS["train"] = 4  # both --cnn-kernels paths (train_batchN cudnn, train_exact_batchN exact)
NUMPY_GROUPS = {"rdm", "compare", "cka", "bootstrap", "permutation"}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(args, timeout=300):
    return subprocess.run([BIN, "bench"] + args, capture_output=True, text=True, timeout=timeout)


def check_document(doc, device, numpy_expected):
    m = doc.get("machine", {})
    for key in ("card", "driver", "cpu", "cores", "versions", "floor", "device"):
        check(key in m, f"machine.{key} missing")
    check(isinstance(m.get("cores"), int) and m["cores"] >= 1, "machine.cores is not a positive integer")
    check(m.get("device", "").startswith(device), f"machine.device {m.get('device')!r} is not {device}")
    wl = doc.get("workloads", [])
    counts = {}
    for w in wl:
        name = w.get("name", "?")
        counts[w.get("group")] = counts.get(w.get("group"), 0) + 1
        for key in ("name", "group", "median_s", "rate", "unit", "floor_fraction", "peers", "params", "min_s", "max_s"):
            check(key in w, f"{name}: field {key} missing")
        check(isinstance(w.get("median_s"), (int, float)) and w["median_s"] > 0, f"{name}: median_s not > 0")
        check(w.get("min_s", 0) <= w.get("median_s", 0) <= w.get("max_s", 0), f"{name}: min <= median <= max fails")
        check(isinstance(w.get("rate"), (int, float)) and w["rate"] > 0 and math.isfinite(w["rate"]), f"{name}: rate not > 0")
        check(bool(w.get("unit")), f"{name}: empty unit")
        ff = w.get("floor_fraction")
        if device == "cpu" or doc["machine"]["floor"].get("known"):
            check(isinstance(ff, (int, float)) and ff > 0, f"{name}: floor_fraction {ff!r} is not a positive number")
        check(isinstance(w.get("peers"), dict), f"{name}: peers is not an object")
        if numpy_expected and w.get("group") in NUMPY_GROUPS:
            r = w.get("peers", {}).get("numpy")
            check(isinstance(r, (int, float)) and r > 0, f"{name}: no numpy speed-up ({w.get('peer_notes')})")
        if numpy_expected and w.get("group") not in NUMPY_GROUPS:
            check("numpy" in w.get("peer_notes", {}), f"{name}: no note saying why there is no numpy ratio")
    for g, n in GROUPS.items():
        check(counts.get(g, 0) == n, f"group {g}: {counts.get(g, 0)} workloads, expected {n}")


def numpy_available():
    return subprocess.run(["/usr/bin/python3", "-c", "import numpy, scipy"], capture_output=True).returncode == 0 \
        if os.path.exists("/usr/bin/python3") else False


def gpu_gate():
    """77 / 1 / None (run), as tests/gpu_gate.cpp: no driver or no device skips, anything else fails."""
    required = os.environ.get("RSA_GPU_REQUIRE") == "1"
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        why = f"no NVIDIA driver (libcuda.so.1 cannot be loaded: {e})"
        print(("FAILED: RSA_GPU_REQUIRE=1 but no usable GPU: " if required else "SKIPPED: no usable GPU: ") + why)
        return 1 if required else 77
    rc = cuda.cuInit(0)
    count = ctypes.c_int(0)
    if rc == 0:
        rc = cuda.cuDeviceGetCount(ctypes.byref(count))
    if rc == 100 or (rc == 0 and count.value == 0):  # CUDA_ERROR_NO_DEVICE
        print(("FAILED: RSA_GPU_REQUIRE=1 but no usable GPU: " if required else "SKIPPED: no usable GPU: ") +
              "no CUDA device is present")
        return 1 if required else 77
    if rc != 0:
        print(f"FAILED: a GPU driver is present but not usable: cuInit / cuDeviceGetCount returned {rc}")
        return 1
    return None


if MODE == "gpu":
    gate = gpu_gate()
    if gate is not None:
        sys.exit(gate)
    p = run(["--quick", "--device", "0", "--json", "--peer", "none"], timeout=230)
    check(p.returncode == 0, f"--quick --device 0 exited {p.returncode}: {p.stderr[-800:]}")
    if p.returncode == 0:
        check_document(json.loads(p.stdout), "cuda:0", False)
        print(p.stderr[-3000:])
    sys.exit(1 if failures else 0)

# ---- cpu: bad options first (each must fail at once, exit 2, naming the option)
bad = [
    (["--repeats", "0"], "--repeats"), (["--repeats", "x"], "--repeats"), (["--repeats", "1001"], "--repeats"),
    (["--sizes", "2x100"], "--sizes"), (["--sizes", "100"], "--sizes"), (["--sizes", "100x0"], "--sizes"),
    (["--sizes", "100x-5"], "--sizes"), (["--sizes", ""], "--sizes"), (["--sizes", "10x10,"], "--sizes"),
    (["--workloads", "rdm,nope"], "--workloads"), (["--workloads", ""], "--workloads"),
    (["--peer", "matlab"], "--peer"), (["--seed", "-1"], "--seed"), (["--device", "cpuu"], "device"),
    (["--sizes", "1000000x100000000"], "--sizes"),
]
for args, option in bad:
    p = run(["--device", "cpu"] + args if "--device" not in args else args, timeout=30)
    check(p.returncode == 2, f"{args}: exit {p.returncode}, expected 2 ({p.stderr.strip()[-200:]})")
    check(option in p.stderr, f"{args}: the message does not name {option}: {p.stderr.strip()[-200:]}")

# ---- the quick run, every workload and field
have_numpy = numpy_available()
p = run(["--quick", "--device", "cpu", "--json"], timeout=240)
check(p.returncode == 0, f"--quick --device cpu --json exited {p.returncode}: {p.stderr[-800:]}")
if p.returncode == 0:
    try:
        doc = json.loads(p.stdout)
    except json.JSONDecodeError as e:
        doc = None
        check(False, f"stdout is not one JSON object: {e}: {p.stdout[:300]}")
    if doc:
        check_document(doc, "cpu", have_numpy)
        if not have_numpy:
            print("note: /usr/bin/python3 has no numpy and scipy: the numpy ratios were not checked")

# ---- --out and --sweep (a small group), the table on stdout
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "bench_out")
    p = run(["--quick", "--device", "cpu", "--workloads", "cka", "--peer", "none", "--sweep", "--repeats", "1",
             "--out", out], timeout=120)
    check(p.returncode == 0, f"--out run exited {p.returncode}: {p.stderr[-800:]}")
    for f in ("bench.json", "bench.csv", "sweep.csv"):
        check(os.path.exists(os.path.join(out, f)), f"--out: {f} missing")
    check("cka_s1000" in p.stdout and "time grows as S^" in p.stdout, "the table or the sweep summary is missing")
    if os.path.exists(os.path.join(out, "bench.json")):
        doc = json.load(open(os.path.join(out, "bench.json")))
        sw = doc.get("sweep", {})
        check(len(sw.get("points", [])) >= 8, "bench.json: the sweep has fewer than 8 points")
        for k in ("exponent_S", "exponent_N"):  # a timing, not a test of speed: finite and positive only
            check(isinstance(sw.get(k), (int, float)) and 0 < sw[k] < 10, f"bench.json: sweep {k} = {sw.get(k)!r}")
        check("streamed_from_S" in sw.get("takeover", {}), "bench.json: no plan takeover in the sweep")
    p2 = run(["--quick", "--device", "cpu", "--workloads", "cka", "--out", out], timeout=30)
    check(p2.returncode == 2 and "--force" in p2.stderr, f"an existing --out without --force: exit {p2.returncode}")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)

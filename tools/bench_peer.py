#!/usr/bin/env python3
"""The peers of `rsa_gpu bench`: the same workloads through numpy (and scipy), PyTorch and rsatoolbox, in one
child process started by the command (host/commands/cmd_bench.cpp). Usage: bench_peer.py SPEC.json OUT.json

SPEC (written by the command): {"device": "cpu" | "cuda:N", "threads", "repeats", "budget_s", "seed",
"peers": ["numpy", ...], "workloads": [{"name", "group", "params", "work"}]}. OUT: {"peers": {peer: {"available",
"version", "note"}}, "results": {workload: {peer: {"median_s", "work", "note"}}}}: the peer's median seconds for
`work` units of the workload's unit (the command divides: our rate / the peer's rate is our speed-up).

Method as ours: seeded random inputs (never zeros), one untimed warm-up run, the median of `repeats` runs; a run
that would not fit `budget_s` times `repeats` is timed once, and bootstrap / permutation peers run fewer resamples
(as many as fit the budget; `work` says how many). What each peer computes:
  rdm          z-score rows (population SD) then 1 - Z Z^T / N in float32 (numpy: no TF32, the FP32 time stands
               for both; torch: TF32 through torch.backends.cuda.matmul.allow_tf32 on a GPU); rsatoolbox calc_rdm
               'correlation' when S * S * N is at most 4e10 (it takes minutes beyond)
  train        torch: the tutorial's CNN and SGD loop (W1D5 Tutorial 3) at the same batch and epochs
  tutorial     torch: the tutorial's whole analysis (training, read-out, RDMs, correlations), V1 a random matrix
  compare      numpy/scipy: np.corrcoef, spearmanr, kendalltau (tau-b; ours is tau-a), cosine of the triangles;
               torch: Pearson, Spearman (argsort ranks), cosine
  cka          numpy / torch: centred Gram matrices, plain and debiased (unbiased HSIC) CKA
  bootstrap    numpy: per resample the resampled RDMs' triangles without self-pairs, np.corrcoef, 3 models;
               rsatoolbox: eval_bootstrap_pattern of 3 fixed models ('corr')
  permutation  numpy: per permutation the permuted model's triangle, np.corrcoef, 3 models
"""
import json
import sys
import time
import traceback

spec = json.load(open(sys.argv[1]))
out_path = sys.argv[2]
DEVICE = spec.get("device", "cpu")
REPEATS = int(spec.get("repeats", 3))
BUDGET = float(spec.get("budget_s", 10.0))
SEED = int(spec.get("seed", 1))
peers_info, results = {}, {}

try:
    import numpy as np
except ImportError:
    np = None


def timed(f, sync=lambda: None):
    """One warm-up run, then the median of REPEATS runs, or the warm-up alone when the runs would not fit."""
    t0 = time.perf_counter()
    f()
    sync()
    first = time.perf_counter() - t0
    if first * REPEATS > BUDGET:
        return first, "timed once (one run takes %.2f s)" % first
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        f()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    n = len(times)
    return (times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])), None


def count_for_budget(one, wanted):
    """How many resamples fit the budget after a probe run of one took `one` seconds."""
    return int(max(1, min(wanted, BUDGET / max(one, 1e-9))))


def responses(S, N, seed):
    rng = np.random.default_rng(seed)
    patterns = rng.random((32, N), dtype=np.float32)
    return rng.random((S, N), dtype=np.float32) + 0.5 * patterns[np.arange(S) % 32]


def rdms(S, seed, cs):
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


def record(name, peer, median_s=None, work=None, note=None):
    e = {}
    if median_s is not None:
        e["median_s"], e["work"] = float(median_s), float(work)
    if note:
        e["note"] = note
    results.setdefault(name, {})[peer] = e


# ---------------------------------------------------------------- numpy
def numpy_rdm(x):
    z = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    return 1 - (z @ z.T) / x.shape[1]


def numpy_cka(x, y):
    n = x.shape[0]
    K, L = x @ x.T, y @ y.T
    H = lambda A: A - A.mean(0, keepdims=True) - A.mean(1, keepdims=True) + A.mean()
    Kc, Lc = H(K).astype(np.float64), H(L).astype(np.float64)
    plain = (Kc * Lc).sum() / np.sqrt((Kc * Kc).sum() * (Lc * Lc).sum())

    def hsic_u(A, B):
        A = A.astype(np.float64).copy()
        B = B.astype(np.float64).copy()
        np.fill_diagonal(A, 0)
        np.fill_diagonal(B, 0)
        return ((A * B).sum() + A.sum() * B.sum() / ((n - 1) * (n - 2)) - 2 * (A.sum(0) @ B.sum(0)) / (n - 2)) / (n * (n - 3))

    deb = hsic_u(K, L) / np.sqrt(hsic_u(K, K) * hsic_u(L, L))
    return plain, deb


def numpy_bootstrap(ref, models, R, rng):
    S = ref.shape[0]
    iu = np.triu_indices(S, 1)
    for _ in range(R):
        idx = rng.integers(0, S, S)
        keep = idx[iu[0]] != idx[iu[1]]
        x = ref[np.ix_(idx, idx)][iu][keep]
        for m in models:
            np.corrcoef(x, m[np.ix_(idx, idx)][iu][keep])


def numpy_permutation(ref, models, P, rng):
    S = ref.shape[0]
    iu = np.triu_indices(S, 1)
    x = ref[iu]
    for _ in range(P):
        perm = rng.permutation(S)
        for m in models:
            np.corrcoef(x, m[np.ix_(perm, perm)][iu])


def run_numpy(workloads):
    try:
        import scipy
        import scipy.stats
    except ImportError:
        scipy = None
    peers_info["numpy"] = {"available": True, "version": np.__version__,
                           "note": "numpy %s%s, float32" % (np.__version__, ", scipy " + scipy.__version__ if scipy else
                                                          ", scipy missing (no Spearman/Kendall peer)")}
    cache = {}
    for w in workloads:
        g, p, name = w["group"], w["params"], w["name"]
        try:
            if g == "rdm":
                key = ("rdm", p["S"], p["N"])
                if key not in cache:
                    x = responses(p["S"], p["N"], SEED)
                    cache.clear()
                    cache[key] = timed(lambda: numpy_rdm(x))
                    del x
                t, note = cache[key]
                caveat = "numpy computes FP32 (no TF32)" if p["precision"] == "tf32" else None
                if p.get("plan") == "streamed":
                    caveat = (caveat + "; " if caveat else "") + "numpy holds the whole input (no cap)"
                record(name, "numpy", t, w["work"], "; ".join(c for c in (caveat, note) if c))
            elif g == "compare":
                S = p["S"]
                key = ("compare", S)
                if key not in cache:
                    a, (b,) = rdms(S, SEED + 100, [0.6])
                    cache.clear()
                    cache[key] = (a, b, np.triu(np.ones((S, S), bool), 1))
                a, b, mask = cache[key]
                m = p["measure"]
                if m == "pearson":
                    f = lambda: np.corrcoef(a[mask], b[mask])[0, 1]
                elif m == "cosine":
                    def f():
                        x, y = a[mask].astype(np.float64), b[mask].astype(np.float64)
                        return x @ y / (np.linalg.norm(x) * np.linalg.norm(y))
                elif scipy is None:
                    record(name, "numpy", note="scipy missing")
                    continue
                elif m == "spearman":
                    f = lambda: scipy.stats.spearmanr(a[mask], b[mask])[0]
                else:
                    f = lambda: scipy.stats.kendalltau(a[mask], b[mask])[0]
                t, note = timed(f)
                caveat = "scipy kendalltau is tau-b (ours tau-a)" if m == "kendall" else None
                record(name, "numpy", t, w["work"], "; ".join(c for c in (caveat, note) if c))
            elif g == "cka":
                x, y = responses(p["S"], p["N1"], SEED + 200), responses(p["S"], p["N2"], SEED + 300)
                t, note = timed(lambda: numpy_cka(x, y))
                record(name, "numpy", t, w["work"], note)
            elif g in ("bootstrap", "permutation"):
                S = p["S"]
                ref, models = rdms(S, SEED + 400, [0.6, 0.4, 0.2])
                rng = np.random.default_rng(SEED)
                fn = numpy_bootstrap if g == "bootstrap" else numpy_permutation
                wanted = int(p["resamples" if g == "bootstrap" else "permutations"])
                t0 = time.perf_counter()
                fn(ref, models, 1, rng)
                n = count_for_budget(time.perf_counter() - t0, wanted)
                t0 = time.perf_counter()
                fn(ref, models, n, rng)
                t = time.perf_counter() - t0
                record(name, "numpy", t, n, None if n == wanted else "%d of %d %s (time budget)" % (n, wanted, g == "bootstrap" and "resamples" or "permutations"))
            else:
                record(name, "numpy", note="no numpy version (a CNN needs PyTorch)")
        except Exception as e:  # one failing peer workload is a note, not a failed run
            record(name, "numpy", note="failed: %s" % e)
            traceback.print_exc()


# ---------------------------------------------------------------- torch
def run_torch(workloads):
    try:
        import torch
    except ImportError:
        peers_info["torch"] = {"available": False, "note": "PyTorch is not installed for %s" % sys.executable}
        return
    dev = DEVICE
    if dev.startswith("cuda") and not torch.cuda.is_available():
        peers_info["torch"] = {"available": False, "note": "PyTorch %s sees no CUDA device" % torch.__version__}
        return
    torch.set_num_threads(int(spec.get("threads", 1)))
    sync = (lambda: torch.cuda.synchronize()) if dev.startswith("cuda") else (lambda: None)
    peers_info["torch"] = {"available": True, "version": torch.__version__,
                           "note": "PyTorch %s on %s" % (torch.__version__, torch.cuda.get_device_name(dev) if dev.startswith("cuda") else "cpu")}
    from torch import nn, optim
    g = torch.Generator(device=dev).manual_seed(SEED)

    def rdm(x):
        z = (x - x.mean(dim=1, keepdim=True)) / x.std(dim=1, unbiased=False, keepdim=True)
        return 1 - (z @ z.T) / x.shape[1]

    def grating(angle, sf=1 / 28, res=0.1):
        import numpy as np
        angle = np.deg2rad(angle)
        xx, yy = np.meshgrid(sf * np.arange(0, 640 * res) / res, sf * np.arange(0, 480 * res) / res)
        gr = np.cos(xx * np.cos(angle) + yy * np.sin(angle))
        gr[gr < 0] = 0
        gr[gr > 0] = 1
        return torch.tensor(gr, dtype=torch.float32)

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 6, kernel_size=7, padding=3)
            self.pool = nn.MaxPool2d(8)
            self.fc = nn.Linear(6 * 6 * 8, 10)
            self.out = nn.Linear(10, 1)

        def forward(self, x):
            x = torch.relu(self.conv(x.unsqueeze(1)))
            x = self.pool(x).view(x.shape[0], -1)
            return torch.sigmoid(self.out(torch.relu(self.fc(x))))

    def train(net, data, labels, epochs, batch):
        loss_fn = nn.BCELoss()
        opt = optim.SGD(net.parameters(), lr=5e-4, momentum=0.99)
        for _ in range(epochs):
            perm = torch.randperm(data.shape[0])
            for xb, yb in zip(torch.split(data[perm], batch), torch.split(labels[perm], batch)):
                loss = loss_fn(net(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()

    def training_set():
        import numpy as np
        np.random.seed(12)
        ori = (np.random.rand(1000) - 0.5) * 180
        stimuli = torch.stack([grating(o) for o in ori]).to(dev)
        tilt = torch.tensor(ori > 0).float().unsqueeze(1).to(dev)
        return stimuli, tilt

    def upper(a):
        iu = torch.triu_indices(a.shape[0], a.shape[0], 1, device=dev)
        return a[iu[0], iu[1]]

    cache = {}
    for w in workloads:
        gr, p, name = w["group"], w["params"], w["name"]
        try:
            if gr == "rdm":
                key = ("rdm", p["S"], p["N"], p["precision"])
                if key not in cache:
                    x = torch.rand(p["S"], p["N"], device=dev, generator=g) + 0.1
                    torch.backends.cuda.matmul.allow_tf32 = p["precision"] == "tf32"
                    cache[key] = timed(lambda: rdm(x), sync)
                    torch.backends.cuda.matmul.allow_tf32 = False
                    del x
                t, note = cache[key]
                caveat = "the whole input on the device (no cap)" if p.get("plan") == "streamed" else None
                if p["precision"] == "tf32" and not dev.startswith("cuda"):
                    caveat = "; ".join(c for c in ("CPU: TF32 runs as FP32", caveat) if c)
                record(name, "torch", t, w["work"], "; ".join(c for c in (caveat, note) if c))
            elif gr == "train":
                # Our two GPU training paths (params "kernels") are timed against the one PyTorch run.
                key = ("train", p["batch"], p["epochs"])
                if key not in cache:
                    data, labels = training_set()

                    def f():
                        torch.manual_seed(12)
                        net = CNN().to(dev)
                        train(net, data, labels, p["epochs"], p["batch"])
                    cache[key] = timed(f, sync)
                t, note = cache[key]
                record(name, "torch", t, w["work"], note)
            elif gr == "tutorial":
                import numpy as np
                resp = np.random.default_rng(SEED).standard_normal((181, p["neurons"])).astype(np.float32)

                def f():
                    torch.manual_seed(12)
                    data, labels = training_set()
                    net = CNN().to(dev)
                    train(net, data, labels, p["epochs"], 100)
                    with torch.no_grad():
                        x = torch.stack([grating(float(a)) for a in np.arange(-90, 91)]).to(dev)
                        pool = net.pool(torch.relu(net.conv(x.unsqueeze(1)))).view(181, -1)
                        fc = net.fc(pool)
                        rv = rdm(torch.tensor(resp, device=dev))
                        for rep in (pool, fc):
                            torch.corrcoef(torch.stack([upper(rv), upper(rdm(rep))]))[0, 1].item()
                t, note = timed(f, sync)
                record(name, "torch", t, w["work"], "; ".join(c for c in ("the tutorial's code, pixels not compared", note) if c))
            elif gr == "compare":
                m = p["measure"]
                if m == "kendall":
                    record(name, "torch", note="no Kendall in PyTorch")
                    continue
                S = p["S"]
                a = torch.triu(torch.rand(S, S, device=dev, generator=g) * 2, 1)
                a = a + a.T
                v = torch.triu(torch.rand(S, S, device=dev, generator=g) * 2, 1)
                b = 0.6 * a + 0.4 * (v + v.T)

                def ranks(x):
                    return torch.empty_like(x).scatter_(0, torch.argsort(x), torch.arange(x.numel(), device=dev, dtype=x.dtype))

                if m == "pearson":
                    f = lambda: torch.corrcoef(torch.stack([upper(a), upper(b)]))[0, 1].item()
                elif m == "spearman":
                    f = lambda: torch.corrcoef(torch.stack([ranks(upper(a)), ranks(upper(b))]))[0, 1].item()
                else:
                    def f():
                        x, y = upper(a).double(), upper(b).double()
                        return (x @ y / (x.norm() * y.norm())).item()
                t, note = timed(f, sync)
                caveat = "ties not averaged" if m == "spearman" else None
                record(name, "torch", t, w["work"], "; ".join(c for c in (caveat, note) if c))
            elif gr == "cka":
                x = torch.rand(p["S"], p["N1"], device=dev, generator=g)
                y = torch.rand(p["S"], p["N2"], device=dev, generator=g)

                def f():
                    n = x.shape[0]
                    K, L = x @ x.T, y @ y.T
                    H = lambda A: A - A.mean(0, keepdim=True) - A.mean(1, keepdim=True) + A.mean()
                    Kc, Lc = H(K).double(), H(L).double()
                    plain = (Kc * Lc).sum() / torch.sqrt((Kc * Kc).sum() * (Lc * Lc).sum())

                    def hsic_u(A, B):
                        A = A.double().fill_diagonal_(0)
                        B = B.double().fill_diagonal_(0)
                        return ((A * B).sum() + A.sum() * B.sum() / ((n - 1) * (n - 2)) - 2 * (A.sum(0) @ B.sum(0)) / (n - 2)) / (n * (n - 3))
                    deb = hsic_u(K, L) / torch.sqrt(hsic_u(K, K) * hsic_u(L, L))
                    return plain.item(), deb.item()
                t, note = timed(f, sync)
                record(name, "torch", t, w["work"], note)
            else:
                record(name, "torch", note="no PyTorch version of this workload")
        except Exception as e:
            record(name, "torch", note="failed: %s" % e)
            traceback.print_exc()


# ---------------------------------------------------------------- rsatoolbox
def run_rsatoolbox(workloads):
    try:
        import importlib.metadata
        import rsatoolbox
        import rsatoolbox.inference
        version = importlib.metadata.version("rsatoolbox")
    except Exception:
        peers_info["rsatoolbox"] = {"available": False, "note": "rsatoolbox is not installed for %s" % sys.executable}
        return
    peers_info["rsatoolbox"] = {"available": True, "version": version, "note": "rsatoolbox %s (CPU)" % version}
    for w in workloads:
        g, p, name = w["group"], w["params"], w["name"]
        try:
            if g == "rdm":
                if p["precision"] != "fp32" or p.get("plan") != "one-shot":
                    record(name, "rsatoolbox", note="measured on the fp32 one-shot workload only")
                    continue
                if p["S"] * p["S"] * p["N"] > 4e10:
                    record(name, "rsatoolbox", note="skipped: S*S*N above 4e10 takes rsatoolbox minutes")
                    continue
                ds = rsatoolbox.data.Dataset(responses(p["S"], p["N"], SEED).astype(np.float64))
                t, note = timed(lambda: rsatoolbox.rdm.calc_rdm(ds, method="correlation"))
                record(name, "rsatoolbox", t, w["work"], note)
            elif g == "bootstrap":
                ref, models = rdms(p["S"], SEED + 400, [0.6, 0.4, 0.2])
                data = rsatoolbox.rdm.RDMs(ref[None].astype(np.float64))
                ms = [rsatoolbox.model.ModelFixed("m%d" % i, rsatoolbox.rdm.RDMs(m[None].astype(np.float64)))
                      for i, m in enumerate(models)]
                f = lambda n: rsatoolbox.inference.eval_bootstrap_pattern(ms, data, method="corr", N=n,
                                                                          boot_noise_ceil=False)
                t0 = time.perf_counter()
                f(2)
                n = count_for_budget((time.perf_counter() - t0) / 2, int(p["resamples"]))
                t0 = time.perf_counter()
                f(n)
                record(name, "rsatoolbox", time.perf_counter() - t0, n,
                       "eval_bootstrap_pattern, %d of %d resamples" % (n, int(p["resamples"])))
            else:
                record(name, "rsatoolbox", note="no rsatoolbox version of this workload")
        except Exception as e:
            record(name, "rsatoolbox", note="failed: %s" % e)
            traceback.print_exc()


def main():
    workloads = spec["workloads"]
    for peer in spec["peers"]:
        if peer == "numpy":
            if np is None:
                peers_info["numpy"] = {"available": False, "note": "numpy is not installed for %s" % sys.executable}
            else:
                run_numpy(workloads)
        elif peer == "torch":
            run_torch(workloads)
        elif peer == "rsatoolbox":
            if np is None:
                peers_info["rsatoolbox"] = {"available": False, "note": "numpy is not installed for %s" % sys.executable}
            else:
                run_rsatoolbox(workloads)
        print("peer %s: %s" % (peer, peers_info.get(peer, {}).get("note", "")), flush=True)
    with open(out_path, "w") as f:
        json.dump({"peers": peers_info, "results": results}, f)


if __name__ == "__main__":
    main()

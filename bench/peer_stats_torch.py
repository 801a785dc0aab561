#!/usr/bin/env python3
"""PyTorch peer for bench_stats_gpu on the same card: RDM comparison measures over the strict upper triangle
(Pearson with torch.corrcoef, Spearman via argsort ranks — ties not averaged, cosine) and the straightforward
bootstrap over stimuli (per resample: gather the resampled RDM entries, drop self-copy pairs, Pearson), timed
with CUDA events after a warm-up. The bootstrap runs R_run resamples and is scaled to 10,000 (stated).
Usage: peer_stats_torch.py [S R_run]"""
import sys
import time

import torch

S = int(sys.argv[1]) if len(sys.argv) > 1 else 4598
R_run = int(sys.argv[2]) if len(sys.argv) > 2 else 200
dev = "cuda"
g = torch.Generator(device=dev).manual_seed(5)
u = torch.rand(S, S, device=dev, generator=g) * 2
a = torch.triu(u, 1)
a = a + a.T
v = torch.rand(S, S, device=dev, generator=g) * 2
b = 0.5 * a + 0.5 * (torch.triu(v, 1) + torch.triu(v, 1).T)
iu = torch.triu_indices(S, S, 1, device=dev)


def timed(f, reps=3):
    f()
    torch.cuda.synchronize()
    best = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        torch.cuda.synchronize()
        best.append(time.perf_counter() - t0)
    best.sort()
    return best[len(best) // 2] * 1e3, out


def pearson():
    x, y = a[iu[0], iu[1]], b[iu[0], iu[1]]
    return torch.corrcoef(torch.stack([x, y]))[0, 1].item()


def spearman():
    x, y = a[iu[0], iu[1]], b[iu[0], iu[1]]
    rx = torch.empty_like(x).scatter_(0, torch.argsort(x), torch.arange(x.numel(), device=dev, dtype=x.dtype))
    ry = torch.empty_like(y).scatter_(0, torch.argsort(y), torch.arange(y.numel(), device=dev, dtype=y.dtype))
    return torch.corrcoef(torch.stack([rx, ry]))[0, 1].item()


def cosine():
    x, y = a[iu[0], iu[1]].double(), b[iu[0], iu[1]].double()
    return (x @ y / (x.norm() * y.norm())).item()


for name, f in (("pearson", pearson), ("spearman", spearman), ("cosine", cosine)):
    ms, val = timed(f)
    print(f"PyTorch {name:9s} {iu.shape[1]} pairs: {ms:9.2f} ms (value {val:.6f})")
    print(f"RESULT torch_{name}_ms {ms:.2f}")


def bootstrap(R):
    rs = []
    for _ in range(R):
        idx = torch.randint(0, S, (S,), device=dev, generator=g)
        i, j = idx[iu[0]], idx[iu[1]]
        keep = i != j
        x, y = a[i[keep], j[keep]], b[i[keep], j[keep]]
        rs.append(torch.corrcoef(torch.stack([x, y]))[0, 1])
    return torch.stack(rs)


bootstrap(2)
torch.cuda.synchronize()
t0 = time.perf_counter()
r = bootstrap(R_run)
torch.cuda.synchronize()
s = time.perf_counter() - t0
print(f"PyTorch bootstrap S={S}, {R_run} resamples, 1 model: {s*1e3:.1f} ms -> {s*1e4/R_run*1e3:.0f} ms "
      f"scaled to 10,000 (interval {torch.quantile(r, 0.025).item():.4f}..{torch.quantile(r, 0.975).item():.4f})")
print(f"RESULT torch_bootstrap_10000_ms {s*1e4/R_run*1e3:.1f}")

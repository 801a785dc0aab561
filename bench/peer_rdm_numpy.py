#!/usr/bin/env python3
"""Peer for bench_rdm: the tutorial's RDM in numpy (scipy-style z-score with ddof 0, then 1 - Z Z^T / N).
Usage: peer_rdm_numpy.py [S N repeats]. Prints the median time like bench_rdm."""
import sys
import time

import numpy as np

S = int(sys.argv[1]) if len(sys.argv) > 1 else 4598
N = int(sys.argv[2]) if len(sys.argv) > 2 else 23589
R = int(sys.argv[3]) if len(sys.argv) > 3 else 3
x = np.random.default_rng(1).normal(0.5, 2.0, (S, N)).astype(np.float32)


def rdm(x):
    z = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    return 1 - (z @ z.T) / x.shape[1]


times = []
for _ in range(R):
    t0 = time.perf_counter()
    rdm(x)
    times.append((time.perf_counter() - t0) * 1e3)
times.sort()
print(f"numpy {np.__version__} RDM S={S} N={N}: {times[len(times) // 2]:.1f} ms (median of {R})")
print(f"RESULT numpy_rdm_ms {times[len(times) // 2]:.1f}")

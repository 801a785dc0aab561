#!/usr/bin/env python3
"""PyTorch peer for bench_rdm_gpu on the same card: z-score rows (ddof 0) then 1 - Z Z^T / N, FP32 with TF32
disabled, CUDA events, warm-up, median. Usage: peer_rdm_torch.py [S N repeats]"""
import sys

import torch

S = int(sys.argv[1]) if len(sys.argv) > 1 else 4598
N = int(sys.argv[2]) if len(sys.argv) > 2 else 23589
R = int(sys.argv[3]) if len(sys.argv) > 3 else 20
torch.backends.cuda.matmul.allow_tf32 = False
xs = [torch.randn(S, N, device="cuda") for _ in range(2)]


def rdm(x):
    z = (x - x.mean(dim=1, keepdim=True)) / x.std(dim=1, unbiased=False, keepdim=True)
    return 1 - (z @ z.T) / x.shape[1]


def median_ms():
    """Median of R timed runs (CUDA events) after two warm-ups, alternating the two input copies."""
    times = []
    for r in range(-2, R):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        rdm(xs[r % 2])
        b.record()
        torch.cuda.synchronize()
        if r >= 0:
            times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


fp32 = median_ms()
print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}: RDM S={S} N={N} FP32 {fp32:.3f} ms")
print(f"RESULT torch_rdm_ms {fp32:.3f}")
torch.backends.cuda.matmul.allow_tf32 = True
tf32 = median_ms()
print(f"PyTorch RDM S={S} N={N} TF32 {tf32:.3f} ms")
print(f"RESULT torch_rdm_tf32_ms {tf32:.3f}")

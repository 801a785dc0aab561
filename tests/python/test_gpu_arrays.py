"""GPU arrays (PyTorch CUDA tensors, CuPy arrays) in, the same kind on the same device out, and the GPU backend
against the CPU twin. Skipped without a GPU (or without torch/cupy); failures under RSA_GPU_REQUIRE=1."""
import numpy as np
import pytest

import rsa_gpu
from conftest import require_gpu


def test_gpu_backend_matches_cpu_twin(gpu_name, responses):
    g = rsa_gpu.rdm(responses, device=0)
    np.testing.assert_allclose(g, rsa_gpu.rdm(responses, device="cpu"), atol=2e-6)
    a, b = g, rsa_gpu.rdm(responses[:, :100], device=0)
    for m in ("pearson", "spearman", "kendall", "cosine"):
        assert rsa_gpu.compare(a, b, m, device=0) == pytest.approx(rsa_gpu.compare(a, b, m, device="cpu"),
                                                                   abs=1e-6)
    r0 = rsa_gpu.bootstrap(a, b, n=300, seed=2, device=0, samples=True)
    r1 = rsa_gpu.bootstrap(a, b, n=300, seed=2, device="cpu", samples=True)
    np.testing.assert_allclose(r0.samples, r1.samples, atol=1e-6)


def _torch_cuda():
    try:
        import torch
    except ImportError:
        require_gpu("torch is not installed")
    if not torch.cuda.is_available():
        require_gpu("torch sees no CUDA device")
    return torch


def test_torch_cuda_tensor_in_and_out(responses):
    torch = _torch_cuda()
    x = torch.from_numpy(responses).to("cuda")
    m = rsa_gpu.rdm(x)
    assert isinstance(m, torch.Tensor) and m.device == x.device and m.dtype == torch.float32
    np.testing.assert_allclose(m.cpu().numpy(), rsa_gpu.rdm(responses, device="cpu"), atol=2e-6)


def test_cupy_array_in_and_out(responses):
    try:
        import cupy
    except ImportError:
        require_gpu("cupy is not installed")
    x = cupy.asarray(responses)
    m = rsa_gpu.rdm(x)
    assert isinstance(m, cupy.ndarray) and m.device.id == x.device.id
    np.testing.assert_allclose(cupy.asnumpy(m), rsa_gpu.rdm(responses, device="cpu"), atol=2e-6)


def test_torch_cuda_rdms_compared_and_resampled_on_the_device(responses):
    # RDMs of CUDA tensors stay on the GPU and feed the comparison and the bootstrap there (device "auto" follows the
    # inputs' GPU); the values are the CPU twin's.
    torch = _torch_cuda()
    x = torch.from_numpy(responses).to("cuda")
    a, b = rsa_gpu.rdm(x), rsa_gpu.rdm(x[:, :100])  # a non-contiguous slice: made contiguous on the GPU
    assert a.is_cuda and b.is_cuda
    ha, hb = a.cpu().numpy(), b.cpu().numpy()
    assert rsa_gpu.compare(a, b) == pytest.approx(rsa_gpu.compare(ha, hb, device="cpu"), abs=1e-6)
    r = rsa_gpu.bootstrap(a, b, n=200, seed=3)
    r_cpu = rsa_gpu.bootstrap(ha, hb, n=200, seed=3, device="cpu")
    assert r.ci_low == pytest.approx(r_cpu.ci_low, abs=1e-5) and r.ci_high == pytest.approx(r_cpu.ci_high, abs=1e-5)
    p = rsa_gpu.permutation(a, [b, a], n=100, seed=3)
    assert p.value[1] == pytest.approx(1.0, abs=1e-9)

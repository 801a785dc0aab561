"""Shared fixtures of the Python tests: seeded response matrices and the GPU gate (skip without a GPU, fail under
RSA_GPU_REQUIRE=1, as the C++ GPU tests do)."""
import os

import numpy as np
import pytest

import rsa_gpu


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def responses(rng):
    """60 stimuli x 400 units, float32, C order."""
    return rng.standard_normal((60, 400)).astype(np.float32)


def require_gpu(reason: str) -> None:
    """Skip (or fail under RSA_GPU_REQUIRE=1) with `reason`."""
    if os.environ.get("RSA_GPU_REQUIRE") == "1":
        pytest.fail(f"RSA_GPU_REQUIRE=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def gpu_name():
    names = rsa_gpu.devices()
    if len(names) < 2:
        require_gpu(f"no usable GPU ({rsa_gpu.devices.why})")
    return names[1]

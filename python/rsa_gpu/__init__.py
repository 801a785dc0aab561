"""rsa_gpu: GPU-first representational similarity analysis (RSA) for Python.

The same engine as the ``rsa_gpu`` command line (CUDA kernels with a CPU twin of every operation), called in
process: numpy arrays in, numpy arrays out, no files.

>>> import numpy as np, rsa_gpu
>>> x = np.random.default_rng(0).standard_normal((100, 500), dtype=np.float32)   # stimuli x units
>>> m = rsa_gpu.rdm(x)                                                            # 100 x 100 float32
>>> rsa_gpu.compare(m, rsa_gpu.rdm(x[:, :250]), method="spearman")               # a float

Functions: :func:`rdm`, :func:`compare`, :func:`cka`, :func:`bootstrap`, :func:`permutation`,
:func:`noise_ceiling`, :func:`evaluate`, :func:`gratings`, :class:`CNN`, :func:`run_tutorial`, :func:`devices`, :func:`versions`;
the rsatoolbox bridge is :mod:`rsa_gpu.rsatoolbox`.

Arrays: a C-contiguous float32 array is read in place; other dtypes and layouts are converted once. PyTorch CUDA
tensors and CuPy arrays are read in place on their GPU and an RDM comes back as the same kind on the same device
(DLPack, no copy; see ``rsa_gpu._arrays``). Errors: ValueError for bad input (the command line's
wording), RuntimeError for device failures, MemoryError when memory runs out, KeyboardInterrupt on Ctrl-C (the GIL
is released during computation; the engine stops at its next safe point).
"""
from __future__ import annotations

# The CUDA plugin, when the package was built with CUDA, is installed beside librsa_core.so in this folder; the
# engine looks for it there first, and opens it only when a GPU is asked for or looked for: without the CUDA
# libraries the import still works. Ctrl-C is handled by the module during each call (rsa_gpu._core). OpenBLAS's
# kernels are fixed as the engine's library loads (rsa_gpu._blas).
from ._blas import coretype_while_loading

with coretype_while_loading():
    from . import _core  # noqa: E402
from ._api import (  # noqa: E402
    BootstrapResult,
    CompareTable,
    EvaluateResult,
    NoiseCeilingResult,
    PermutationResult,
    TutorialResults,
    bootstrap,
    cka,
    compare,
    devices,
    evaluate,
    gratings,
    noise_ceiling,
    permutation,
    rdm,
    run_tutorial,
    versions,
)
from .cnn import CNN  # noqa: E402

__version__: str = _core.__version__

__all__ = [
    "BootstrapResult",
    "CNN",
    "CompareTable",
    "EvaluateResult",
    "NoiseCeilingResult",
    "PermutationResult",
    "TutorialResults",
    "__version__",
    "bootstrap",
    "cka",
    "compare",
    "devices",
    "evaluate",
    "gratings",
    "noise_ceiling",
    "permutation",
    "rdm",
    "run_tutorial",
    "versions",
]

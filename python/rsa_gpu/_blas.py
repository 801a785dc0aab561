"""OpenBLAS's kernels for the engine, chosen before its library loads.

OpenBLAS picks its kernels from the CPU model once, when the library loads; on a model it does not know (OpenBLAS
0.3.21 and Emerald Rapids) it falls back to the generic "Prescott" kernels, about 5x slower for the RDM's SYRK. The
command line fixes that by restarting itself with ``OPENBLAS_CORETYPE`` set (include/rsa_gpu/blas_setup.h); a Python
process cannot restart, so the package sets ``OPENBLAS_CORETYPE=SkylakeX`` for the moment the engine's library loads,
on a CPU with the AVX-512 subsets the SkylakeX kernels use (F, CD, BW, DQ, VL), and removes it again: the caller's
environment is left as it was. It does nothing when ``OPENBLAS_CORETYPE`` is already set, when
``RSA_GPU_BLAS_CORETYPE=keep``, on other CPUs, or when the process has already loaded the same OpenBLAS (a numpy
linked to it, imported first). ``rsa_gpu.versions()`` shows the kernels that run.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

_SKYLAKEX_FLAGS = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})


def cpu_runs_skylakex(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has every AVX-512 subset OpenBLAS's SkylakeX kernels use (Linux's /proc/cpuinfo flags)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return _SKYLAKEX_FLAGS.issubset(line.split(":", 1)[-1].split())
    except OSError:
        pass
    return False


@contextlib.contextmanager
def coretype_while_loading() -> Iterator[None]:
    """Sets OPENBLAS_CORETYPE=SkylakeX for the block (the engine's import) when the rules above say so."""
    if (
        "OPENBLAS_CORETYPE" in os.environ
        or os.environ.get("RSA_GPU_BLAS_CORETYPE") == "keep"
        or not cpu_runs_skylakex()
    ):
        yield
        return
    os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    try:
        yield
    finally:
        os.environ.pop("OPENBLAS_CORETYPE", None)

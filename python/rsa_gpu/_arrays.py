"""Array intake and return for rsa_gpu: the Python half of the one conversion point (the native half is
``to_engine`` / ``from_engine`` in python/src/core.cpp).

* numpy (and anything with ``__array__``: lists, torch CPU tensors): a C-contiguous float32 array is passed to the
  engine as it is (no copy here); other dtypes and layouts are converted once (``np.ascontiguousarray``).
* GPU arrays (PyTorch CUDA tensors, CuPy arrays): ``as_engine_f32`` keeps them on their GPU (a float32 C-contiguous
  version made there when needed) and the engine reads them in place through DLPack; an RDM comes back on the same
  GPU as the same kind of array (``from_engine_result``, DLPack: no copy). The operations that only take host data
  (gratings, the CNN, the noise ceiling's bins) use ``as_host_f32``, which copies a GPU array to the host once.
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

# How a result goes back: ("numpy", None), ("torch", device) or ("cupy", device id).
Kind = Tuple[str, Any]
NUMPY: Kind = ("numpy", None)


def _module_of(x: Any) -> str:
    return type(x).__module__.split(".")[0]


def array_kind(x: Any) -> Kind:
    """The kind of array `x` is, for returning results as the same kind on the same device."""
    mod = _module_of(x)
    if mod == "torch":
        return ("torch", x.device)
    if mod == "cupy":
        return ("cupy", x.device.id)
    return NUMPY


def to_host(x: Any) -> Any:
    """A host view of `x` (GPU arrays are copied to the host: the one device-to-host copy)."""
    mod = _module_of(x)
    if mod == "torch":
        t = x.detach()
        if t.device.type != "cpu":
            t = t.to("cpu")
        return t.numpy()
    if mod == "cupy":
        import cupy  # noqa: F401  (present: x is one of its arrays)

        return x.get()
    if hasattr(x, "__cuda_array_interface__") or _dlpack_on_gpu(x):
        raise ValueError(
            f"{type(x).__name__} lives on a GPU; rsa_gpu takes PyTorch tensors and CuPy arrays there "
            "(or pass a host array)"
        )
    return x


def _dlpack_on_gpu(x: Any) -> bool:
    dev = getattr(x, "__dlpack_device__", None)
    if dev is None:
        return False
    try:
        return int(dev()[0]) not in (1, 3)  # kDLCPU, kDLCUDAHost
    except Exception:  # pragma: no cover - a broken __dlpack_device__
        return False


def as_host_f32(x: Any, name: str, ndim: int = 2) -> np.ndarray:
    """`x` as a C-contiguous float32 numpy array with `ndim` dimensions (no copy when it already is one).

    Raises ValueError naming `name` for a non-numeric dtype or a wrong number of dimensions.
    """
    if x is None:
        raise ValueError(f"{name}: expected an array, got None")
    a = np.asarray(to_host(x))
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    if a.ndim != ndim:
        what = "a 2-D array (rows x columns)" if ndim == 2 else f"a {ndim}-D array"
        raise ValueError(f"{name}: expected {what}, got shape {a.shape}")
    if a.dtype == np.float64 and a.size:
        # float32 range: the engine would see inf (the command line reports this too)
        big = np.abs(a[np.isfinite(a)]).max(initial=0.0)
        if big > np.finfo(np.float32).max:
            raise ValueError(f"{name}: a value ({big:g}) is beyond the float32 range")
    return np.ascontiguousarray(a, dtype=np.float32)


def _gpu_array(x: Any) -> bool:
    mod = _module_of(x)
    if mod == "torch":
        return x.device.type == "cuda"
    return mod == "cupy"


def as_engine_f32(x: Any, name: str) -> Any:
    """`x` for the operations that read GPU arrays in place: a PyTorch CUDA tensor or a CuPy array stays on its GPU
    (as float32 C-contiguous, converted there when it is not); anything else as :func:`as_host_f32`."""
    if x is None or not _gpu_array(x):
        return as_host_f32(x, name)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (rows x columns), got shape {tuple(x.shape)}")
    if _module_of(x) == "torch":
        import torch

        if x.dtype.is_complex or x.dtype == torch.bool:
            raise ValueError(f"{name}: expected a real numeric array, got dtype {x.dtype}")
        return x.detach().to(torch.float32).contiguous()
    import cupy

    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real numeric array, got dtype {x.dtype}")
    with cupy.cuda.Device(x.device.id):
        return cupy.ascontiguousarray(x, dtype=cupy.float32)


def gpu_index(x: Any) -> Any:
    """The GPU index of a PyTorch CUDA tensor or CuPy array, else None."""
    if not _gpu_array(x):
        return None
    return x.device.index if _module_of(x) == "torch" else x.device.id


def from_engine_result(out: Any, kind: Kind) -> Any:
    """An engine result as the kind of array the input was: a numpy result as is (numpy input) or copied to the
    input's device; a result the engine left on the input's GPU (a DLPack array) as a torch/cupy array, no copy."""
    if isinstance(out, np.ndarray):
        return out if kind[0] == "numpy" else from_host(out, kind)
    name, _ = kind
    if name == "torch":
        import torch

        return torch.from_dlpack(out)
    if name == "cupy":
        import cupy

        return cupy.from_dlpack(out)
    return np.asarray(out)  # pragma: no cover - a device result is only made for GPU inputs


def as_host_i64(x: Any, name: str) -> np.ndarray:
    a = np.asarray(to_host(x))
    if a.dtype.kind not in "biu" and not (a.dtype.kind == "f" and np.all(np.mod(a, 1) == 0)):
        raise ValueError(f"{name}: expected integer ids, got dtype {a.dtype}")
    a = a.reshape(-1) if a.ndim == 2 and 1 in a.shape else a
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.int64)


def from_host(a: np.ndarray, kind: Kind) -> Any:
    """Result `a` as the kind of array the input was (the one host-to-device copy for GPU arrays)."""
    name, dev = kind
    if name == "torch":
        import torch

        return torch.from_numpy(a).to(dev)
    if name == "cupy":
        import cupy

        with cupy.cuda.Device(dev):
            return cupy.asarray(a)
    return a

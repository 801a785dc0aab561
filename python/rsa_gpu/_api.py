"""The public functions of rsa_gpu (re-exported by rsa_gpu/__init__.py) and their small result types.

Every function checks its arguments here (ValueError naming the argument), converts arrays once through
rsa_gpu._arrays and calls the native layer rsa_gpu._core, which releases the GIL and runs the engine.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._arrays import array_kind, as_engine_f32, as_host_f32, as_host_i64, from_engine_result, from_host, gpu_index

ArrayLike = Any
_MEASURES = ("pearson", "spearman", "kendall", "cosine")


# ---------------------------------------------------------------- progress bars (progress=True)
@contextlib.contextmanager
def _progress(enabled: bool):
    """While the block runs, the engine's progress (bootstrap, permutations, training epochs, RDM tiles) is drawn:
    with tqdm when it is installed, else as one line on stderr. Nothing is drawn when `enabled` is false."""
    if not enabled:
        yield
        return
    try:
        from tqdm.auto import tqdm  # optional
    except ImportError:
        tqdm = None
    bars: Dict[str, Any] = {}

    def draw(label: str, done: int, total: int, finished: bool) -> None:
        if tqdm is None:
            sys.stderr.write(f"\r  {label} {done}/{total}" + ("\n" if finished else ""))
            sys.stderr.flush()
            return
        bar = bars.get(label)
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = bars[label] = tqdm(total=total, desc=label, leave=False)
        bar.n = done
        bar.refresh()
        if finished:
            bar.close()
            bars.pop(label, None)

    _core.set_progress(draw)
    try:
        yield
    finally:
        _core.set_progress(None)
        for bar in bars.values():
            bar.close()


# ---------------------------------------------------------------- argument checks shared by the functions
def _device(device: Union[str, int]) -> str:
    if isinstance(device, bool):
        raise ValueError(f"device: expected 'auto', 'cpu' or a GPU index, got {device!r}")
    if isinstance(device, int):
        return str(device)
    if isinstance(device, str):
        if device.startswith("cuda:"):
            return device[5:]
        return device
    raise ValueError(f"device: expected 'auto', 'cpu' or a GPU index, got {device!r}")


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([kmgtpe]?)(i?b?)\s*$", re.IGNORECASE)


def _bytes(max_gpu_mem: Union[None, int, str]) -> int:
    """max_gpu_mem as bytes (0: no cap): an int, or a size such as '512M' or '8G' (powers of 1024)."""
    if max_gpu_mem is None:
        return 0
    if isinstance(max_gpu_mem, (int, np.integer)) and not isinstance(max_gpu_mem, bool):
        v = int(max_gpu_mem)
    else:
        m = _SIZE.match(str(max_gpu_mem))
        if not m:
            raise ValueError(f"max_gpu_mem: expected a positive size such as 512M or 8G, got '{max_gpu_mem}'")
        v = int(float(m.group(1)) * 1024 ** "_KMGTPE".index(m.group(2).upper() or "_"))
    if v < 1 or v > 2**64 - 1:
        raise ValueError(f"max_gpu_mem: '{max_gpu_mem}' is out of range (1 byte to 16 EiB)")
    return v


def _int_in(name: str, v: Any, lo: int, hi: int, text: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        raise ValueError(f"{name}: expected {text}, got {v!r}")
    return int(v)


def _seed(name: str, v: Any) -> int:
    return _int_in(name, v, 0, 2**64 - 1, "an integer 0 to 2^64 - 1")


def _models(models: Any, name: str = "models") -> Tuple[List[Any], bool]:
    """A list of 2-D float32 arrays (host, or left on their GPU), and whether one array (not a list) was given."""
    if isinstance(models, (list, tuple)):
        if not models:
            raise ValueError(f"{name}: expected at least one RDM")
        return [as_engine_f32(m, f"{name}[{i}]") for i, m in enumerate(models)], False
    return [as_engine_f32(models, name)], True


def _engine_device(device: Union[str, int], *arrays: Any) -> str:
    """--device for an operation: "auto" with an input on a GPU runs on that GPU (its data is read there)."""
    if device == "auto":
        for a in arrays:
            idx = gpu_index(a)
            if idx is not None:
                return str(idx)
    return _device(device)


def _one(v: np.ndarray, single: bool) -> Any:
    return float(v[0]) if single else v


# ---------------------------------------------------------------- RDM
def rdm(
    x: ArrayLike,
    *,
    device: Union[str, int] = "auto",
    precision: str = "fp32",
    max_gpu_mem: Union[None, int, str] = None,
    constant_rows: str = "fail",
    progress: bool = False,
    method: str = "correlation",
    noise: Union[None, str, ArrayLike] = None,
    conditions: Optional[ArrayLike] = None,
    runs: Optional[ArrayLike] = None,
) -> Any:
    """Representational dissimilarity matrix of the stimulus rows of `x`: 1 - Pearson correlation by default.

    Each row is z-scored across its N units (population SD, sums in double), then ``M = 1 - Z Z^T / N``
    (SYRK), a full symmetric S x S matrix with a zero diagonal, the same as ``1 - np.corrcoef(x)`` in float32.
    `method` also takes rsatoolbox's ``calc_rdm`` measures, with its numbers (the command line's ``rdm --method``):
    "euclidean" (squared distance / N), "mahalanobis" ((x_i - x_j) P (x_i - x_j)^T / N with the noise precision P;
    without `noise` the identity) and "crossnobis" (leave-one-run-out cross-validated mahalanobis, unbiased; needs
    `runs` and `conditions`).

    Parameters
    ----------
    x : array_like, shape (S, N)
        Responses, one row per stimulus (S >= 3), one column per unit (N >= 1); finite values. A C-contiguous
        float32 array is read in place; other dtypes and layouts are converted to it once. PyTorch CUDA tensors and
        CuPy arrays are read in place on their GPU (the result comes back there).
    device : {"auto", "cpu"} or int, default "auto"
        "auto" takes GPU 0 when one is usable and the CPU otherwise; an index asks for that GPU (RuntimeError naming
        the cause when it cannot be used).
    precision : {"fp32", "tf32"}, default "fp32"
        Exact FP32 SYRK, or TF32 tensor cores on a GPU.
    max_gpu_mem : int or str, optional
        A cap on the engine's memory (bytes, or a size such as "512M", "8G"); inputs that do not fit are streamed in
        neuron blocks. An RDM that does not fit in memory is an error here (the command line can write it to disk).
    constant_rows : {"fail", "nan"}, default "fail"
        A row with zero variance (or constant up to float rounding) has no correlation: "fail" raises ValueError
        listing the rows; "nan" makes its row and column NaN.
    progress : bool, default False
        Draw the engine's progress (tqdm when installed) for work that reports it.
    method : {"correlation", "euclidean", "mahalanobis", "crossnobis"}, default "correlation"
        The dissimilarity. Other than plain "correlation", the input is copied once into the engine (host memory;
        GPU arrays are read back to the host first).
    noise : None, "diag" or array_like (N, N), optional
        mahalanobis / crossnobis: the noise precision matrix (symmetric positive definite), or "diag" for
        rsatoolbox's ``prec_from_residuals(residuals, method='diag')`` of the residuals around each condition's mean
        (needs `conditions`); None: the identity.
    conditions : array_like (S,) of int, optional
        Each row's condition: rows are averaged per condition first, and the RDM is C x C over the sorted distinct
        conditions (``np.unique(conditions)`` order, as rsatoolbox).
    runs : array_like (S,) of int, optional
        crossnobis: each row's run (partition); at least 2 runs, every condition in every run.

    Returns
    -------
    ndarray, shape (S, S) (or (C, C) with `conditions`), float32
        The RDM (a numpy array owning its memory; a torch/cupy array on the input's device for GPU inputs).

    Raises
    ------
    ValueError
        Bad shape or dtype, NaN/Inf (naming row and column), fewer than 3 stimuli, constant rows.
    RuntimeError, MemoryError
        Device or memory failures. KeyboardInterrupt on Ctrl-C.
    """
    kind = array_kind(x)
    if method != "correlation" or noise is not None or conditions is not None or runs is not None:
        return _rdm_dissimilarity(x, device, precision, max_gpu_mem, constant_rows, progress, method, noise,
                                  conditions, runs, kind)
    a = as_engine_f32(x, "x")
    with _progress(progress):
        out = _core.rdm(a, _engine_device(device, a), precision, _bytes(max_gpu_mem), constant_rows, "x")
    return from_engine_result(out, kind)


_DISSIMILARITIES = ("correlation", "euclidean", "mahalanobis", "crossnobis")


def _rdm_dissimilarity(x, device, precision, max_gpu_mem, constant_rows, progress, method, noise, conditions, runs,
                       kind):
    if method not in _DISSIMILARITIES:
        raise ValueError(f"method: expected one of {', '.join(_DISSIMILARITIES)}, got {method!r}")
    a = as_host_f32(x, "x")
    noise_kind, noise_m = "", np.zeros((0, 0))
    if isinstance(noise, str):
        if noise != "diag":
            raise ValueError(f"noise: expected None, 'diag' or an N x N precision matrix, got {noise!r}")
        noise_kind = "diag"
    elif noise is not None:
        noise_m = np.asarray(noise)
        if noise_m.dtype.kind not in "biuf":
            raise ValueError(f"noise: expected a real numeric N x N matrix, got dtype {noise_m.dtype}")
        if noise_m.ndim != 2:
            raise ValueError(f"noise: expected an N x N matrix, got shape {noise_m.shape}")
        noise_kind, noise_m = "given", np.ascontiguousarray(noise_m, dtype=np.float64)
    none = np.zeros(0, dtype=np.int64)
    cond = none if conditions is None else as_host_i64(conditions, "conditions")
    run = none if runs is None else as_host_i64(runs, "runs")
    with _progress(progress):
        out, _ = _core.rdm_dissimilarity(a, method, noise_kind, noise_m, cond, run, _device(device), precision,
                                         _bytes(max_gpu_mem), constant_rows)
    return from_host(out, kind)


# ---------------------------------------------------------------- comparison
@dataclass(frozen=True)
class CompareTable:
    """Comparisons of many model RDMs with one reference RDM.

    Attributes
    ----------
    methods : tuple of str
        The measures, in column order.
    values : ndarray, shape (models, methods), float64
        ``values[i, k]``: measure ``methods[k]`` of ``models[i]`` with the reference (NaN when undefined).
    pairs : ndarray, shape (models, methods), int64
        Upper-triangle pairs used; ``skipped``: pairs left out because either RDM is NaN there.
    """

    methods: Tuple[str, ...]
    values: np.ndarray
    pairs: np.ndarray
    skipped: np.ndarray

    def __getitem__(self, method: str) -> np.ndarray:
        """The column of one measure: ``table["spearman"]`` is an array of one value per model."""
        return self.values[:, self.methods.index(method)]

    def to_dict(self) -> Dict[str, np.ndarray]:
        """{method: values per model}."""
        return {m: self[m] for m in self.methods}

    def __repr__(self) -> str:
        head = "model " + " ".join(f"{m:>10}" for m in self.methods)
        rows = [f"{i:5d} " + " ".join(f"{v:10.6f}" for v in self.values[i]) for i in range(self.values.shape[0])]
        return "CompareTable\n" + "\n".join([head] + rows)


def compare(
    a: ArrayLike,
    b: Union[ArrayLike, Sequence[ArrayLike]],
    method: str = "pearson",
    *,
    methods: Optional[Sequence[str]] = None,
    device: Union[str, int] = "auto",
) -> Union[float, CompareTable]:
    """Compare RDMs over their strict upper triangles (pairs where either RDM is NaN are skipped).

    ``compare(a, b)`` returns one float; ``compare(ref, [m1, m2, ...], methods=[...])`` a :class:`CompareTable`
    of every model against the reference by every measure.

    Parameters
    ----------
    a : array_like, shape (S, S)
        The (reference) RDM; only its strict upper triangle is read.
    b : array_like, shape (S, S), or a list of them
        The other RDM, or the model RDMs.
    method : {"pearson", "spearman", "kendall", "cosine"}, default "pearson"
        Pearson r; Spearman (Pearson of average ranks, as scipy.stats.spearmanr); Kendall tau-a (ties count as
        neither concordant nor discordant); cosine similarity.
    methods : list of str, optional
        With a list of models: the measures (default ``[method]``).
    device : {"auto", "cpu"} or int, default "auto"

    Returns
    -------
    float or CompareTable

    Raises
    ------
    ValueError
        Shapes that differ or are not square, fewer than 3 stimuli, infinite values, or an RDM whose values are all
        equal up to float rounding (no correlation).
    """
    ra = as_engine_f32(a, "a")
    if isinstance(b, (list, tuple)):
        ms, _ = _models(b)
        dev = _engine_device(device, ra, *ms)
        meths = list(methods) if methods is not None else [method]
        if not meths:
            raise ValueError("methods: expected at least one measure")
        values, pairs, skipped = _core.compare_many(ra, ms, meths, dev, True)
        return CompareTable(tuple(meths), values, pairs, skipped)
    if methods is not None:
        raise ValueError("methods: give a list of model RDMs for a table (one RDM: use method=)")
    rb = as_engine_f32(b, "b")
    value, _, _ = _core.compare(ra, rb, method, _engine_device(device, ra, rb), True)
    return value


def cka(x: ArrayLike, y: ArrayLike, debiased: bool = False, *, device: Union[str, int] = "auto") -> float:
    """Linear centred kernel alignment of two response matrices with the same stimuli.

    Parameters
    ----------
    x : array_like, shape (S, N1)
    y : array_like, shape (S, N2)
        Rows are the same S stimuli (S >= 3; S >= 4 when debiased).
    debiased : bool, default False
        The unbiased HSIC estimator (Song et al. 2012) instead of the biased one.

    Returns
    -------
    float
        CKA in [0, 1] (the debiased form can be slightly negative).
    """
    ex, ey = as_engine_f32(x, "x"), as_engine_f32(y, "y")
    return _core.cka(ex, ey, bool(debiased), _engine_device(device, ex, ey))


# ---------------------------------------------------------------- statistics
@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap over stimuli of the Pearson correlation of each model RDM with the reference.

    Attributes
    ----------
    value : float or ndarray (models,)
        The Pearson r of the full RDMs (float when one model was given).
    ci_low, ci_high : float or ndarray (models,)
        The 2.5th and 97.5th percentiles of the resampled r (95% percentile interval; NaN samples left out).
    nan_samples : int or ndarray (models,)
        Resamples with no defined r (fewer than 3 distinct stimuli, or constant values).
    n, seed : int
        Resamples and the seed (the same seed gives the same draws on the CPU and on a GPU).
    samples : ndarray (models, n), float64, or None
        Every resampled r, when asked for with ``samples=True``.
    """

    value: Any
    ci_low: Any
    ci_high: Any
    nan_samples: Any
    n: int
    seed: int
    samples: Optional[np.ndarray] = field(default=None, repr=False)


def bootstrap(
    ref: ArrayLike,
    models: Union[ArrayLike, Sequence[ArrayLike]],
    n: int = 10_000,
    seed: int = 1,
    *,
    samples: bool = False,
    device: Union[str, int] = "auto",
    progress: bool = False,
) -> BootstrapResult:
    """95% bootstrap interval of Pearson(ref, model) by resampling stimuli with replacement.

    Each resample draws S stimuli with replacement; r is taken over all position pairs of distinct stimuli (a
    stimulus never pairs with its own copy), as the command line's ``--bootstrap``.

    Parameters
    ----------
    ref : array_like, shape (S, S)
        Reference RDM (no NaN in the upper triangle).
    models : array_like (S, S) or list of them
        Model RDMs.
    n : int, default 10000
        Resamples (>= 1).
    seed : int, default 1
    samples : bool, default False
        Keep every resampled r in the result (``n`` float64 per model).
    device : {"auto", "cpu"} or int, default "auto"
    progress : bool, default False
        Draw the resamples' progress (tqdm when installed).

    Returns
    -------
    BootstrapResult
    """
    n = _int_in("n", n, 1, 2**31 - 1, "an integer 1 to 2,147,483,647")
    seed = _seed("seed", seed)
    r = as_engine_f32(ref, "ref")
    ms, single = _models(models)
    dev = _engine_device(device, r, *ms)
    with _progress(progress):
        smp, lo, hi, nans = _core.bootstrap(r, ms, n, seed, dev)
    values, _, _ = _core.compare_many(r, ms, ["pearson"], dev, True)
    return BootstrapResult(
        value=_one(values[:, 0], single),
        ci_low=_one(lo, single),
        ci_high=_one(hi, single),
        nan_samples=int(nans[0]) if single else nans,
        n=n,
        seed=seed,
        samples=smp if samples else None,
    )


@dataclass(frozen=True)
class PermutationResult:
    """Permutation test of the stimulus labels of each model RDM.

    Attributes
    ----------
    value : float or ndarray (models,)
        The observed Pearson r.
    p_value : float or ndarray (models,)
        One-sided, ``(1 + #{r_perm >= r}) / (1 + n)``.
    n, seed : int
    null : ndarray (models, n), float64, or None
        The r of every permutation, when asked for with ``samples=True``.
    """

    value: Any
    p_value: Any
    n: int
    seed: int
    null: Optional[np.ndarray] = field(default=None, repr=False)


def permutation(
    ref: ArrayLike,
    models: Union[ArrayLike, Sequence[ArrayLike]],
    n: int = 10_000,
    seed: int = 1,
    *,
    samples: bool = False,
    device: Union[str, int] = "auto",
    progress: bool = False,
) -> PermutationResult:
    """Permutation test of Pearson(ref, model): the model's stimulus labels are permuted ``n`` times.

    Parameters
    ----------
    ref : array_like, shape (S, S)
    models : array_like (S, S) or list of them
    n : int, default 10000
        Permutations per model (>= 1).
    seed : int, default 1
    samples : bool, default False
        Keep the null distribution in the result.
    device : {"auto", "cpu"} or int, default "auto"
    progress : bool, default False
        Draw the permutations' progress (tqdm when installed).

    Returns
    -------
    PermutationResult
    """
    n = _int_in("n", n, 1, 2**31 - 1, "an integer 1 to 2,147,483,647")
    seed = _seed("seed", seed)
    r = as_engine_f32(ref, "ref")
    ms, single = _models(models)
    with _progress(progress):
        r_obs, p, null = _core.permutation(r, ms, n, seed, _engine_device(device, r, *ms))
    return PermutationResult(_one(r_obs, single), _one(p, single), n, seed, null if samples else None)


@dataclass(frozen=True)
class NoiseCeilingResult:
    """Split-half noise ceiling of trial-level responses.

    Attributes
    ----------
    ceiling : float
        Spearman-Brown corrected ``2 r / (1 + r)`` of the mean split-half RDM correlation.
    r_half_mean : float
    r_half : ndarray (splits,), float64
        Pearson r of the two halves' RDMs, per split.
    bins_kept, bins_dropped : int
        Stimuli (bins) with at least 2 trials, and those left out.
    kept_ids : ndarray (bins_kept,), int64
        The kept bin ids, ascending (the rows of the half RDMs).
    """

    ceiling: float
    r_half_mean: float
    r_half: np.ndarray
    bins_kept: int
    bins_dropped: int
    kept_ids: np.ndarray


def noise_ceiling(
    resp: ArrayLike,
    bins: ArrayLike,
    splits: int = 1,
    seed: int = 1,
    *,
    device: Union[str, int] = "auto",
) -> NoiseCeilingResult:
    """Split-half noise ceiling: each stimulus's trials split in two halves, their RDMs correlated.

    Parameters
    ----------
    resp : array_like, shape (T, N)
        One row per trial.
    bins : array_like of int, shape (T,)
        The stimulus (bin) id of each trial; bins with fewer than 2 trials are dropped.
    splits : int, default 1
        Random splits averaged.
    seed : int, default 1

    Returns
    -------
    NoiseCeilingResult
    """
    splits = _int_in("splits", splits, 1, 2**31 - 1, "an integer >= 1")
    r = as_engine_f32(resp, "resp")
    d = _core.noise_ceiling(r, as_host_i64(bins, "bins"), splits, _seed("seed", seed), _engine_device(device, r))
    return NoiseCeilingResult(**d)


# ---------------------------------------------------------------- stimuli
def gratings(
    angles: ArrayLike, *, sf: float = 1.0 / 28.0, res: float = 0.1, device: Union[str, int] = "auto"
) -> np.ndarray:
    """The tutorial's square-wave gratings: ``cos(x cos a + y sin a) > 0`` on a 640 x 480 canvas scaled by `res`.

    Parameters
    ----------
    angles : array_like of float, shape (B,)
        Orientations in degrees from vertical (positive: tilted right).
    sf : float, default 1/28
        Spatial frequency.
    res : float, default 0.1
        Resolution relative to 640 x 480: the default gives 48 x 64 images (the CNN's input).

    Returns
    -------
    ndarray, shape (B, ceil(480 res), ceil(640 res)), float32
        Values 0 or 1.
    """
    a = as_host_f32(angles, "angles", ndim=1)
    for name, v in (("sf", sf), ("res", res)):
        if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")
    return _core.gratings(a, float(sf), float(res), _device(device))


# ---------------------------------------------------------------- devices and versions
def devices() -> List[str]:
    """The devices rsa_gpu can use: ``["cpu"]``, plus ``"cuda:0 (<card>)"`` when a GPU is usable.

    Why no GPU is usable (no driver, built without CUDA, ...) is in ``devices.why`` after a call.
    """
    names, why = _core.devices()
    devices.why = why  # type: ignore[attr-defined]
    return list(names)


devices.why = ""  # type: ignore[attr-defined]


def versions() -> str:
    """rsa_gpu's version and the libraries it runs on (OpenBLAS, CUDA runtime, cuBLAS, cuDNN), and the GPUs."""
    return _core.versions()


# ---------------------------------------------------------------- model evaluation (rsatoolbox's inference)
_EVAL_METHODS = ("corr", "cosine", "spearman", "rho-a", "tau-a", "corr_cov", "cosine_cov")
_INFERENCES = ("fixed", "pattern", "rdm", "both")


@dataclass
class EvaluateResult:
    """What :func:`evaluate` found: rsatoolbox's ``Result`` statistics, per model, as the command line reports them.

    Attributes
    ----------
    names : list of str
        The models, in order.
    evaluation, se, ci_low, ci_high : ndarray, shape (models,), float64
        ``Result.get_means()``, ``get_sem()`` and ``get_ci(ci, test_type)``: with ``test_type="bootstrap"`` the
        percentile interval of the bootstrap evaluations (rsatoolbox's: ``np.quantile`` of the samples with a -inf and
        a +inf row added, so too few resamples give -inf, +inf or NaN bounds, and a NaN sample row gives NaN), else
        the t interval; NaN where not defined (one data RDM with ``inference="fixed"``).
    ci_type : str
        Which interval ci_low and ci_high are: "percentile" (test_type "bootstrap") or "t" (``json["ci_type"]``).
    p_zero, p_noise : ndarray, shape (models,), float64
        rsatoolbox's tests (``json["test"]``: its `test_type`) of each model against 0 and against the lower noise
        bound, after `correction`; the uncorrected values are in ``json["models"][i]["p_zero_uncorrected"]``.
    pairwise : ndarray, shape (models, models), float64
        Pairwise model tests (corrected; diagonal 1).
    noise_ceiling : tuple of float
        (lower, upper): rsatoolbox's ``boot_noise_ceiling`` (mean over valid resamples when bootstrapping).
    samples : ndarray, shape (resamples, models), float64
        The bootstrap evaluations (NaN rows: resamples with fewer than 3 distinct patterns); empty for "fixed".
    per_rdm : ndarray, shape (models, data RDMs), float64
        Each model against each data RDM on the full data (eval_fixed's evaluations).
    json : dict
        The command line's ``rsa_gpu evaluate --json`` object (method, inference, test, n_rdm, n_pattern, dof, the
        memory plan under ``plan``, ...).
    """

    names: List[str]
    evaluation: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_zero: np.ndarray
    p_noise: np.ndarray
    pairwise: np.ndarray
    noise_ceiling: Tuple[float, float]
    ci_type: str
    samples: np.ndarray = field(repr=False)
    noise_ceiling_samples: np.ndarray = field(repr=False)
    per_rdm: np.ndarray = field(repr=False)
    json: Dict[str, Any] = field(repr=False)

    def __repr__(self) -> str:
        j = self.json
        w = max([6] + [len(n) + 1 for n in self.names])
        lines = [f"EvaluateResult: {j['method']}, {j['inference']} inference, {j['n_rdm']} data RDM(s) of "
                 f"{j['n_pattern']} patterns; noise ceiling [{self.noise_ceiling[0]:.4f}, {self.noise_ceiling[1]:.4f}]; "
                 f"p-values: {j['test']}; intervals: {100 * j['ci']:g}% {self.ci_type}",
                 f"{'model':<{w}} {'eval':>9} {'se':>9} {'ci_low':>9} {'ci_high':>9} {'p_zero':>9} {'p_noise':>9}"]
        for i, n in enumerate(self.names):
            lines.append(f"{n:<{w}} {self.evaluation[i]:9.4f} {self.se[i]:9.4f} {self.ci_low[i]:9.4f} "
                         f"{self.ci_high[i]:9.4f} {self.p_zero[i]:9.3g} {self.p_noise[i]:9.3g}")
        return "\n".join(lines)


def _rdm_stack(x: Any, name: str) -> np.ndarray:
    """One RDM (S, S), several (K, S, S) or a list of (S, S) as a C-contiguous float64 (K, S, S) array."""
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{name}: expected at least one RDM")
        parts = [np.asarray(to_host_array(v, f"{name}[{i}]")) for i, v in enumerate(x)]
        for i, v in enumerate(parts):
            if v.ndim != 2:
                raise ValueError(f"{name}[{i}]: expected an S x S RDM, got shape {v.shape}")
        if len({v.shape for v in parts}) > 1:
            raise ValueError(f"{name}: RDMs of different shapes {sorted({v.shape for v in parts})}")
        a = np.stack(parts)
    else:
        a = np.asarray(to_host_array(x, name))
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3:
            raise ValueError(f"{name}: expected one RDM (S x S) or several (K x S x S), got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float64)


def to_host_array(x: Any, name: str) -> Any:
    if x is None:
        raise ValueError(f"{name}: expected an array, got None")
    from ._arrays import to_host

    return to_host(x)


def evaluate(
    data: ArrayLike,
    models: Any,
    *,
    method: str = "corr",
    inference: str = "fixed",
    bootstrap: int = 1000,
    permutations: int = 0,
    seed: int = 1,
    correction: str = "fdr",
    ci: float = 0.95,
    names: Optional[Sequence[str]] = None,
    device: Union[str, int] = "auto",
    progress: bool = False,
    test_type: str = "t-test",
    max_gpu_mem: Union[None, int, str] = None,
) -> EvaluateResult:
    """Evaluate fixed model RDMs against data RDMs with rsatoolbox's definitions (the command line's ``evaluate``).

    The point estimate of a model is its comparison with each data RDM (subjects, sessions), averaged; inference
    follows rsatoolbox's ``eval_fixed`` ("fixed"), ``eval_bootstrap_pattern`` ("pattern": stimuli resampled),
    ``eval_bootstrap_rdm`` ("rdm": data RDMs resampled) and ``eval_bootstrap`` ("both"), with its noise ceiling
    (``boot_noise_ceiling``), standard errors, intervals (``Result.get_ci(ci, test_type)``: percentiles for
    "bootstrap", else t) and tests (``Result.test_zero`` / ``test_noise`` / ``test_pairwise`` with its `test_type`), in
    float64. The resamples come from rsa_gpu's Philox streams (`seed`),
    not numpy's: the same distribution as rsatoolbox's, not its draws. They run in batches planned against the
    device's free memory (GPU) and the host budget, capped by `max_gpu_mem` (``json["plan"]``).

    Parameters
    ----------
    data : array_like, shape (S, S) or (K, S, S), or a list of (S, S)
        The data RDMs: square, symmetric, zero diagonal, finite, S >= 3.
    models : array_like (S, S) or (M, S, S), a list of (S, S), or a dict {name: (S, S)}
        The model RDMs over the same patterns; a dict names them.
    method : {"corr", "cosine", "spearman", "rho-a", "tau-a", "corr_cov", "cosine_cov"}, default "corr"
        rsatoolbox's comparison methods.
    inference : {"fixed", "pattern", "rdm", "both"}, default "fixed"
    bootstrap : int, default 1000
        Resamples (bootstrap modes).
    permutations : int, default 0
        A permutation test of stimulus labels per model (0: none).
    seed : int, default 1
    correction : {"fdr", "bonferroni", "none"}, default "fdr"
        Multiple-comparison correction of p_zero and p_noise (over models) and pairwise (over model pairs).
    ci : float, default 0.95
    names : sequence of str, optional
        Model names (default: the dict's keys, else "model0", "model1", ...). Duplicates are a ValueError.
    device : {"auto", "cpu"} or int, default "auto"
        The corr and cosine bootstraps' weighted sums run on it; the rest on the host.
    progress : bool, default False
    test_type : {"t-test", "bootstrap", "ranksum"}, default "t-test"
        rsatoolbox's tests of the p-values: t-tests with its variance corrections; "bootstrap": proportions of the
        bootstrap samples (inference "pattern", "rdm" or "both"); "ranksum": scipy's Wilcoxon signed-rank test of the
        per-data-RDM evaluations (inference "fixed", as rsatoolbox allows it). The intervals follow it as
        ``Result.get_ci`` does: percentile intervals for "bootstrap", t intervals for the others.
    max_gpu_mem : int or str, optional
        A cap on the memory the resamples' batches may use, e.g. "512M" (default: the device's free memory and the
        host budget). A cap too small for one model and one resample is a ValueError.

    Returns
    -------
    EvaluateResult

    Raises
    ------
    ValueError
        Shapes, asymmetric RDMs, NaN/Inf, fewer than 3 patterns, different sizes, duplicate names, unknown options.
    """
    if method not in _EVAL_METHODS:
        raise ValueError(f"method: expected one of {', '.join(_EVAL_METHODS)}, got {method!r}")
    if inference not in _INFERENCES:
        raise ValueError(f"inference: expected one of {', '.join(_INFERENCES)}, got {inference!r}")
    if correction not in ("fdr", "bonferroni", "none"):
        raise ValueError(f"correction: expected 'fdr', 'bonferroni' or 'none', got {correction!r}")
    if test_type not in ("t-test", "bootstrap", "ranksum"):
        raise ValueError(f"test_type: expected 't-test', 'bootstrap' or 'ranksum', got {test_type!r}")
    cap = _bytes(max_gpu_mem)
    bootstrap = _int_in("bootstrap", bootstrap, 1, 2**31 - 1, "an integer >= 1")
    permutations = _int_in("permutations", permutations, 0, 2**31 - 1, "an integer >= 0")
    seed = _seed("seed", seed)
    if isinstance(models, dict):
        if names is None:
            names = [str(k) for k in models]
        models = list(models.values())
    d = _rdm_stack(data, "data")
    m = _rdm_stack(models, "models")
    names = [f"model{i}" for i in range(m.shape[0])] if names is None else [str(n) for n in names]
    if len(names) != m.shape[0]:
        raise ValueError(f"names: {len(names)} names for {m.shape[0]} models")
    with _progress(progress):
        text, samples, lower, upper, per_rdm, ci_low, ci_high = _core.evaluate(
            d, m, names, method, inference, bootstrap, permutations, seed, correction, float(ci), _device(device),
            test_type, cap)
    j = json.loads(text)
    num = lambda v: float("nan") if v is None else float(v)  # noqa: E731  (JSON's null is NaN)
    col = lambda key: np.array([num(e[key]) for e in j["models"]])  # noqa: E731
    M = len(names)
    return EvaluateResult(
        # the intervals as arrays: a percentile interval's infinities are null in the JSON
        names=names, evaluation=col("evaluation"), se=col("se"), ci_low=ci_low, ci_high=ci_high,
        p_zero=col("p_zero"), p_noise=col("p_noise"),
        pairwise=np.array([[num(v) for v in row] for row in j["pairwise"]], dtype=np.float64).reshape(M, M),
        noise_ceiling=(num(j["noise_ceiling"]["lower"]), num(j["noise_ceiling"]["upper"])), ci_type=j["ci_type"],
        samples=samples, noise_ceiling_samples=np.stack([lower, upper]) if lower.size else np.zeros((2, 0)),
        per_rdm=per_rdm, json=j)


# ---------------------------------------------------------------- the tutorial (the command line's main job)
@dataclass
class TutorialResults:
    """What :func:`run_tutorial` found: the numbers the command line prints and writes to results.json.

    Attributes
    ----------
    correlations : list of dict
        One row per representation and measure: ``layer``, ``measure``, ``value``, ``pairs``, ``skipped_pairs`` and,
        when computed, ``ci_low``, ``ci_high`` (95% bootstrap interval), ``p_value``, ``ceiling``.
    device : str
        The device that ran.
    rdms : dict of str to ndarray (S, S) float32
        The RDMs by name ("v1", then each representation) when run in memory (``out=None``); read back from the
        folder otherwise.
    out : str or None
        The output folder, when written.
    json : dict
        The whole results.json document (schema 1; see include/rsa_gpu/results.h).
    """

    correlations: List[Dict[str, Any]]
    device: str
    rdms: Dict[str, np.ndarray]
    out: Optional[str]
    json: Dict[str, Any] = field(repr=False)

    def value(self, layer: str, measure: str = "pearson") -> float:
        """The value of one row, e.g. ``results.value("pool")``."""
        for r in self.correlations:
            if r["layer"] == layer and r["measure"] == measure:
                return float("nan") if r["value"] is None else float(r["value"])
        raise KeyError(f"no row for layer {layer!r} and measure {measure!r}")

    def table(self) -> str:
        """The table, one line per row: layer, measure, value, interval, p-value, ceiling."""
        lines = [f"{'layer':10} {'measure':12} {'value':>8} {'95% CI':>19} {'p':>8} {'ceiling':>8}"]
        for r in self.correlations:
            f = lambda k: r.get(k) if r.get(k) is not None else float("nan")  # noqa: E731
            ci = f"[{f('ci_low'):.3f}, {f('ci_high'):.3f}]" if "ci_low" in r else ""
            p = f"{f('p_value'):.4f}" if "p_value" in r else ""
            c = f"{f('ceiling'):.3f}" if "ceiling" in r else ""
            lines.append(f"{r['layer']:10} {r['measure']:12} {f('value'):8.3f} {ci:>19} {p:>8} {c:>8}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
    return value


def run_tutorial(
    v1: Union[None, str, Tuple[ArrayLike, ArrayLike]] = None,
    *,
    device: Union[str, int] = "auto",
    out: Optional[str] = None,
    force: bool = False,
    layers: Sequence[str] = ("pool", "fc"),
    measures: Sequence[str] = ("pearson",),
    no_cnn: bool = False,
    load_model: Optional[str] = None,
    save_model: Optional[str] = None,
    epochs: int = 25,
    batch: int = 100,
    train_size: int = 1000,
    lr: float = 5e-4,
    momentum: float = 0.99,
    seed: int = 12,
    cnn_kernels: str = "cudnn",
    cka: bool = False,
    bootstrap: Optional[int] = None,
    permutations: Optional[int] = None,
    noise_ceiling: bool = False,
    stats_seed: int = 1,
    v1_seed: int = 2021,
    constant_rows: str = "fail",
    precision: str = "fp32",
    max_gpu_mem: Union[None, int, str] = None,
    figures: bool = False,
    verbose: bool = False,
    progress: bool = False,
) -> TutorialResults:
    """The whole tutorial analysis (the command line's main job): gratings at the V1 orientations, the CNN trained
    and read out, every RDM, each representation compared with V1, with bootstrap intervals and permutation p-values.

    Parameters
    ----------
    v1 : None, str or (responses, orientations)
        None: the embedded synthetic recording (seed `v1_seed`); a path to the tutorial's .npz (``resp``,
        ``stimuli``) or a trial-level .npz (``sresp``, ``istim``); or a pair of arrays, responses (S, N) and
        orientations (S,) in degrees, used as given (written to a temporary .npy pair for the engine's loader).
    device : {"auto", "cpu"} or int, default "auto"
    out : str, optional
        Write the command line's output folder here (RDMs, responses, model.npz, results.json, correlations.csv;
        figures and report.html with ``figures=True``); staged and renamed, nothing is left after an error or Ctrl-C.
        An existing folder is replaced only with ``force=True``. None: nothing is written.
    layers : list of str, default ("pool", "fc")
        CNN layers compared with V1 (conv, pool, fc, fc_relu, out).
    measures : list of str, default ("pearson",)
    no_cnn, load_model, save_model, epochs, batch, train_size, lr, momentum, seed
        The CNN: skipped, loaded from an .npz, saved, or trained with these hyper-parameters (the tutorial's).
    cnn_kernels : {"cudnn", "exact"}, default "cudnn"
        The GPU's training path (``--cnn-kernels``; see :meth:`CNN.train`); results.json's ``cnn.kernels`` says which
        ran. On the CPU both are the same twin.
    cka : bool, default False
        Also linear CKA (and debiased) of each representation's responses with V1's.
    bootstrap, permutations : int, optional
        Resamples and permutations of the statistics (None: the command line's defaults, 10,000 while within
        budget; 0: skipped).
    noise_ceiling : bool, default False
    stats_seed, v1_seed : int
    constant_rows, precision, max_gpu_mem
        As :func:`rdm`.
    figures : bool, default False
        Draw the figures and report.html into `out` (needs matplotlib and scikit-learn).
    verbose : bool, default False
        Print the command line's progress lines (to the process's stdout).
    progress : bool, default False
        Draw progress bars for training and the statistics (tqdm when installed).

    Returns
    -------
    TutorialResults
    """
    kw: Dict[str, Any] = dict(
        device=_device(device),
        out=out or "",
        force=bool(force),
        layers=list(layers),
        measures=list(measures),
        no_cnn=bool(no_cnn),
        load_model=load_model or "",
        save_model=save_model or "",
        epochs=_int_in("epochs", epochs, 1, 1_000_000, "an integer 1 to 1,000,000"),
        batch=_int_in("batch", batch, 1, 100_000, "an integer 1 to 100,000"),
        train_size=_int_in("train_size", train_size, 1, 100_000_000, "an integer 1 to 100,000,000"),
        lr=_real("lr", lr, 0.0, 1e6, lo_open=True, hi_open=False, text="a finite number > 0 and <= 1e6"),
        momentum=_real("momentum", momentum, 0.0, 1.0, lo_open=False, hi_open=True,
                       text="a finite number >= 0 and < 1"),
        seed=_seed("seed", seed),
        cnn_kernels=_choice("cnn_kernels", cnn_kernels, ("cudnn", "exact")),
        cka=bool(cka),
        bootstrap=-1 if bootstrap is None else _int_in("bootstrap", bootstrap, 0, 2**31 - 1, "an integer >= 0"),
        permutations=-1 if permutations is None else _int_in("permutations", permutations, 0, 2**31 - 1,
                                                             "an integer >= 0"),
        noise_ceiling=bool(noise_ceiling),
        stats_seed=_seed("stats_seed", stats_seed),
        v1_seed=_seed("v1_seed", v1_seed),
        constant_rows=constant_rows,
        precision=precision,
        max_gpu_mem=_bytes(max_gpu_mem),
        figures=bool(figures),
        verbose=bool(verbose),
    )
    if figures and not out:
        raise ValueError("figures: the figures are drawn into the output folder; give out= as well")
    tmp = None
    try:
        if isinstance(v1, (str, os.PathLike)):
            kw["v1"] = os.fspath(v1)
        elif isinstance(v1, (tuple, list)) and len(v1) == 2:
            tmp = tempfile.TemporaryDirectory(prefix="rsa_gpu_v1_")
            resp = as_host_f32(v1[0], "v1[0] (responses)")
            ori = as_host_f32(v1[1], "v1[1] (orientations)", ndim=1)
            np.save(os.path.join(tmp.name, "responses.npy"), resp)
            np.save(os.path.join(tmp.name, "orientations.npy"), ori)
            kw["responses"] = os.path.join(tmp.name, "responses.npy")
            kw["orientations"] = os.path.join(tmp.name, "orientations.npy")
        elif v1 is not None:
            raise ValueError("v1: expected None, a path to an .npz, or a (responses, orientations) pair of arrays")
        with _progress(progress):
            text, rdms = _core.run_tutorial(kw)
    finally:
        if tmp is not None:
            tmp.cleanup()
    doc = json.loads(text)
    if out:
        rdms = {}
        for name in ["v1"] + [r["layer"] for r in doc.get("correlations", [])]:
            p = os.path.join(out, f"rdm_{name}.npy")
            if name not in rdms and os.path.exists(p):
                rdms[name] = np.load(p)
    return TutorialResults(doc["correlations"], doc["device"], dict(rdms), out or None, doc)


def _real(name: str, v: Any, lo: float, hi: float, *, lo_open: bool, hi_open: bool, text: str) -> float:
    ok = isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(v)
    if ok:
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        raise ValueError(f"{name}: expected {text}, got {v!r}")
    return float(v)

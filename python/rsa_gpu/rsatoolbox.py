"""rsa_gpu.rsatoolbox: a drop-in accelerator for rsatoolbox (https://rsatoolbox.readthedocs.io).

The functions take and return rsatoolbox's own types and follow its definitions; the numbers come from rsa_gpu's
engine (float32 RDMs, sums in double: values agree with rsatoolbox's float64 to about 1e-6).

* :func:`calc_rdm` for "correlation", "euclidean", "mahalanobis" (noise: None or one precision matrix) and
  "crossnobis" (with a `cv_descriptor`; noise None or one precision matrix), as rsatoolbox's ``calc_rdm``: patterns
  averaged by `descriptor`, every dataset and pattern descriptor carried over, sorted as rsatoolbox sorts. Other
  methods and options are passed to rsatoolbox.
* :func:`compare` for 'corr', 'cosine', 'spearman' and 'tau-a' (the engine's float32 Pearson, cosine, Spearman and
  Kendall tau-a) and 'rho-a', 'corr_cov', 'cosine_cov' (the evaluation engine, float64); 'kendall'/'tau-b' and other
  options are passed to rsatoolbox.
* :func:`eval_fixed`, :func:`eval_bootstrap_pattern`, :func:`eval_bootstrap_rdm` and :func:`eval_bootstrap` for fixed
  models, every method above, returning rsatoolbox's ``Result`` built as rsatoolbox builds it (the evaluation engine
  of ``rsa_gpu evaluate``; resamples from rsa_gpu's Philox streams, so not rsatoolbox's own draws).

rsatoolbox is optional: it is imported when one of these functions is called (``pip install rsatoolbox``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from . import _core
from ._api import _device, _int_in, _seed
from ._arrays import as_host_f32

_ENGINE_MEASURES = {"corr": "pearson", "cosine": "cosine", "spearman": "spearman", "tau-a": "kendall"}
_VECTOR_METHODS = ("rho-a", "corr_cov", "cosine_cov")


def _rsatoolbox():
    try:
        import rsatoolbox  # noqa: F401
        import rsatoolbox.rdm  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "rsa_gpu.rsatoolbox needs rsatoolbox: pip install rsatoolbox (or pip install 'rsa-gpu[rsatoolbox]')"
        ) from e
    return rsatoolbox


def calc_rdm(dataset: Any, method: str = "correlation", descriptor: Optional[str] = None, *,
             device: Any = "auto", **kwargs: Any) -> Any:
    """rsatoolbox.rdm.calc_rdm on rsa_gpu's engine.

    Parameters
    ----------
    dataset : rsatoolbox.data.Dataset or a list of them
        ``measurements`` (n_obs, n_channels).
    method : str, default "correlation"
        "correlation" (1 - Pearson between patterns) runs on the engine; any other method is rsatoolbox's own.
        Note: rsatoolbox's own default is "euclidean"; this bridge defaults to "correlation".
    descriptor : str, optional
        obs_descriptor whose equal values are averaged into one pattern (rsatoolbox's meaning).
    device : {"auto", "cpu"} or int, default "auto"

    Returns
    -------
    rsatoolbox.rdm.RDMs
        Equal to ``rsatoolbox.rdm.calc_rdm(dataset, method, descriptor)``: dissimilarities (float64 values of the
        engine's float32 RDM), dissimilarity_measure, rdm_descriptors and pattern_descriptors. Constant patterns
        give NaN rows (as rsatoolbox's division by zero does).
    """
    rsatoolbox = _rsatoolbox()
    if method in ("euclidean", "mahalanobis", "crossnobis") and _engine_takes(method, descriptor, kwargs):
        return _calc_rdm_engine(dataset, method, descriptor, kwargs, device)
    if method != "correlation" or kwargs.get("noise") is not None or kwargs.get("cv_descriptor") is not None:
        return rsatoolbox.rdm.calc_rdm(dataset, method=method, descriptor=descriptor, **kwargs)
    from rsatoolbox.rdm.rdms import concat
    from rsatoolbox.rdm.calc import _parse_input
    from rsatoolbox.util.build_rdm import _build_rdms

    def one(ds: Any) -> Any:
        ma, desc = _parse_input(ds, descriptor, remove_mean=False)
        m = _core.rdm(as_host_f32(ma, "dataset.measurements"), _device(device), "fp32", 0, "nan",
                      "dataset.measurements")
        rdms = _build_rdms(m.astype(np.float64), ds, "correlation", descriptor, desc)
        if descriptor is not None:
            rdms.sort_by(reindex=True, **{descriptor: "alpha"})
        return rdms

    return _each(dataset, descriptor, one)


def _each(dataset: Any, descriptor: Optional[str], one: Any) -> Any:
    """calc_rdm of one dataset, or of a list of them combined as rsatoolbox combines them."""
    if isinstance(dataset, (list, tuple)):
        parts = [one(ds) for ds in dataset]
        from rsatoolbox.rdm.rdms import concat

        if descriptor is None:
            return concat(parts)
        from rsatoolbox.rdm.combine import from_partials

        return from_partials(parts, descriptor=descriptor)
    return one(dataset)


def _engine_takes(method: str, descriptor: Optional[str], kwargs: Dict[str, Any]) -> bool:
    """Whether the engine runs this calc_rdm as rsatoolbox defines it (else rsatoolbox runs it)."""
    if any(k not in ("noise", "cv_descriptor", "remove_mean") for k in kwargs) or kwargs.get("remove_mean"):
        return False
    noise = kwargs.get("noise")
    if noise is not None and not (isinstance(noise, np.ndarray) and noise.ndim == 2):
        return False  # lists of precisions (one per fold or dataset): rsatoolbox's own
    if method == "euclidean" and noise is not None:
        return False
    if method == "crossnobis":
        return descriptor is not None and kwargs.get("cv_descriptor") is not None
    return kwargs.get("cv_descriptor") is None


def _calc_rdm_engine(dataset: Any, method: str, descriptor: Optional[str], kwargs: Dict[str, Any],
                     device: Any) -> Any:
    from copy import deepcopy

    from rsatoolbox.rdm.calc import _parse_input
    from rsatoolbox.util.build_rdm import _build_rdms

    from ._api import rdm as engine_rdm

    noise = kwargs.get("noise")

    def one(ds: Any) -> Any:
        if method == "crossnobis":
            cv = kwargs["cv_descriptor"]
            dsc = deepcopy(ds)
            dsc.sort_by(descriptor)
            _, cond = np.unique(np.asarray(dsc.obs_descriptors[descriptor]), return_inverse=True)
            _, runs = np.unique(np.asarray(dsc.obs_descriptors[cv]), return_inverse=True)
            m = engine_rdm(dsc.measurements, method="crossnobis", noise=noise, conditions=cond, runs=runs,
                           device=device)
            iu = np.triu_indices(m.shape[0], 1)
            return _build_rdms(m[iu].astype(np.float64), dsc, "crossnobis", descriptor, noise=noise, cv=cv)
        ma, desc = _parse_input(ds, descriptor, remove_mean=False)
        m = engine_rdm(ma, method="mahalanobis" if noise is not None else "euclidean", noise=noise, device=device)
        iu = np.triu_indices(m.shape[0], 1)
        name = "squared mahalanobis" if noise is not None else "squared euclidean"
        if noise is not None:
            return _build_rdms(m[iu].astype(np.float64), ds, name, descriptor, desc, noise=noise)
        return _build_rdms(m[iu].astype(np.float64), ds, name, descriptor, desc)

    return _each(dataset, descriptor, one)


def _matrices(rdms: Any) -> np.ndarray:
    """(n, S, S) float32 matrices of RDMs, or of an array of upper-triangle vectors (rsatoolbox's order)."""
    from rsatoolbox.util.rdm_utils import batch_to_matrices

    if isinstance(rdms, np.ndarray):
        v = rdms.reshape(1, -1) if rdms.ndim == 1 else rdms
        mats, _, _ = batch_to_matrices(v)
    else:
        mats = rdms.get_matrices()
    return np.ascontiguousarray(mats, dtype=np.float32)


def _vectors(rdms: Any) -> np.ndarray:
    """(n, P) float64 upper-triangle vectors (rsatoolbox's order) of RDMs or of an array of vectors."""
    v = rdms if isinstance(rdms, np.ndarray) else rdms.get_vectors()
    v = v.reshape(1, -1) if v.ndim == 1 else v
    return np.ascontiguousarray(v, dtype=np.float64)


def compare(rdm1: Any, rdm2: Any, method: str = "cosine", *, device: Any = "auto", **kwargs: Any) -> np.ndarray:
    """rsatoolbox.rdm.compare on rsa_gpu's engine.

    Parameters
    ----------
    rdm1, rdm2 : rsatoolbox.rdm.RDMs or ndarray of upper-triangle vectors
    method : str, default "cosine"
        'corr', 'cosine', 'spearman', 'tau-a' on the engine (float32 RDMs, sums in double); 'rho-a', 'corr_cov' and
        'cosine_cov' on the evaluation engine (float64); other rsatoolbox methods are passed to rsatoolbox.
    device : {"auto", "cpu"} or int, default "auto"

    Returns
    -------
    ndarray, shape (rdm1.n_rdm, rdm2.n_rdm), float64
        As rsatoolbox returns it; NaN where an RDM is constant. NaN dissimilarities are left out pair by pair (they
        must sit in the same positions in every RDM, as rsatoolbox requires).
    """
    rsatoolbox = _rsatoolbox()
    if (method not in _ENGINE_MEASURES and method not in _VECTOR_METHODS) or kwargs:
        return rsatoolbox.rdm.compare(rdm1, rdm2, method=method, **kwargs)
    from rsatoolbox.rdm.compare import _parse_input_rdms

    _parse_input_rdms(rdm1, rdm2)  # rsatoolbox's checks: equal sizes, the same NaN positions
    if method in _VECTOR_METHODS:
        v1, v2 = _vectors(rdm1), _vectors(rdm2)
        S = int(round((1 + np.sqrt(1 + 8 * v1.shape[1])) / 2))
        return _core.compare_vectors(method, v1, v2, S)
    m1, m2 = _matrices(rdm1), _matrices(rdm2)
    models = [m2[j] for j in range(m2.shape[0])]
    out = np.empty((m1.shape[0], m2.shape[0]))
    for i in range(m1.shape[0]):
        values, _, _ = _core.compare_many(m1[i], models, [_ENGINE_MEASURES[method]], _device(device), False)
        out[i] = values[:, 0]
    return out


def _fixed_models(models: Any) -> List[Any]:
    import rsatoolbox.model

    mlist: List[Any] = [models] if isinstance(models, rsatoolbox.model.Model) else list(models)
    for k, mod in enumerate(mlist):
        if not isinstance(mod, rsatoolbox.model.ModelFixed):
            raise ValueError(f"models[{k}]: only fixed models (rsatoolbox.model.ModelFixed) are supported")
    return mlist


def _evaluate(models: Any, data: Any, method: str, inference: str, N: int, seed: int, device: Any) -> Any:
    """The evaluation engine on rsatoolbox's types: (fixed models, their engine result)."""
    _rsatoolbox()
    from ._api import evaluate

    mlist = _fixed_models(models)
    preds = np.stack([np.asarray(_matrices_f64(mod.predict_rdm())[0]) for mod in mlist])
    names = [f"{k}:{mod.name}" for k, mod in enumerate(mlist)]
    res = evaluate(_matrices_f64(data), preds, method=method, inference=inference, bootstrap=N, seed=seed,
                   names=names, correction="none", device=device)
    return mlist, res


def _matrices_f64(rdms: Any) -> np.ndarray:
    return np.ascontiguousarray(rdms.get_matrices(), dtype=np.float64)


def _bootstrap_result(mlist: List[Any], res: Any, data: Any, method: str, cv_method: str, dof: int,
                      n_rdm: Any, n_pattern: Any, model_variances_only: bool = False) -> Any:
    import rsatoolbox.inference

    evals = res.samples
    noise_ceil = res.noise_ceiling_samples
    ok = np.isfinite(evals[:, 0])
    if model_variances_only:
        variances = np.cov(evals.T)  # eval_bootstrap_rdm overwrites its variances with the models' alone
    else:
        variances = np.cov(np.concatenate([evals[ok, :].T, noise_ceil[:, ok]]))
    result = rsatoolbox.inference.Result(mlist, evals, method=method, cv_method=cv_method, noise_ceiling=noise_ceil,
                                         variances=variances, dof=dof, n_rdm=n_rdm, n_pattern=n_pattern)
    result.n_rdm, result.n_pattern = data.n_rdm, data.n_cond
    return result


def eval_fixed(models: Any, data: Any, method: str = "cosine", *, device: Any = "auto") -> Any:
    """rsatoolbox.inference.eval_fixed for fixed models on the evaluation engine (rsa_gpu.evaluate).

    Returns rsatoolbox's ``Result``: evaluations (1, n_models, n_rdm), the noise ceiling of ``boot_noise_ceiling``,
    variances ``np.cov(evaluations[0], ddof=0) / n_rdm`` and dof n_rdm - 1 (None and 0 with one data RDM), as
    rsatoolbox builds it. `method`: 'corr', 'cosine', 'spearman', 'rho-a', 'tau-a', 'corr_cov', 'cosine_cov'.
    """
    import rsatoolbox.inference

    mlist, res = _evaluate(models, data, method, "fixed", 1, 1, device)
    evaluations = res.per_rdm.reshape(1, len(mlist), data.n_rdm)
    nc = res.json["noise_ceiling"]
    noise_ceil = np.array([np.nan if v is None else v for v in (nc["point_lower"], nc["point_upper"])])
    if data.n_rdm > 1:
        variances = np.cov(evaluations[0], ddof=0) / evaluations.shape[-1]
        dof = evaluations.shape[-1] - 1
    else:
        variances, dof = None, 0
    result = rsatoolbox.inference.Result(mlist, evaluations, method=method, cv_method="fixed",
                                         noise_ceiling=noise_ceil, variances=variances, dof=dof, n_rdm=data.n_rdm,
                                         n_pattern=None)
    result.n_pattern = data.n_cond
    return result


def eval_bootstrap_pattern(models: Any, data: Any, method: str = "cosine", N: int = 1000, seed: int = 1, *,
                           device: Any = "auto") -> Any:
    """rsatoolbox.inference.eval_bootstrap_pattern for fixed models on the evaluation engine.

    Each of the `N` samples draws the patterns with replacement (sorted, as rsatoolbox's ``subsample_pattern``);
    pairs of a pattern with its own copy are left out, as rsatoolbox leaves them out; a sample with fewer than 3
    distinct patterns is NaN. The draws come from rsa_gpu's Philox stream (`seed`), not numpy's: the same
    distribution as rsatoolbox's, not its samples.

    Parameters
    ----------
    models : rsatoolbox.model.ModelFixed or a list of them
    data : rsatoolbox.rdm.RDMs
        One or more data RDMs over the same patterns (no NaN).
    method : str, default "cosine"
        rsatoolbox's 'corr', 'cosine', 'spearman', 'rho-a', 'tau-a', 'corr_cov', 'cosine_cov'.
    N : int, default 1000
    seed : int, default 1

    Returns
    -------
    rsatoolbox.inference.Result
        evaluations (N, n_models); noise_ceiling (2, N) of ``boot_noise_ceiling`` per sample; variances of models
        and noise ceilings over the valid samples; dof = n_cond - 1; cv_method 'bootstrap_pattern', as rsatoolbox.
    """
    N = _int_in("N", N, 1, 2**31 - 1, "an integer >= 1")
    mlist, res = _evaluate(models, data, method, "pattern", N, _seed("seed", seed), device)
    return _bootstrap_result(mlist, res, data, method, "bootstrap_pattern", data.n_cond - 1, None, data.n_cond)


def eval_bootstrap_rdm(models: Any, data: Any, method: str = "cosine", N: int = 1000, seed: int = 1, *,
                       device: Any = "auto") -> Any:
    """rsatoolbox.inference.eval_bootstrap_rdm (data RDMs resampled) for fixed models on the evaluation engine.

    As :func:`eval_bootstrap_pattern`, resampling the data RDMs (subjects) instead of the patterns; dof = n_rdm - 1
    and, as rsatoolbox, variances of the models' evaluations alone.
    """
    N = _int_in("N", N, 1, 2**31 - 1, "an integer >= 1")
    mlist, res = _evaluate(models, data, method, "rdm", N, _seed("seed", seed), device)
    return _bootstrap_result(mlist, res, data, method, "bootstrap_rdm", data.n_rdm - 1, data.n_rdm, None,
                             model_variances_only=True)


def eval_bootstrap(models: Any, data: Any, method: str = "cosine", N: int = 1000, seed: int = 1, *,
                   device: Any = "auto") -> Any:
    """rsatoolbox.inference.eval_bootstrap (patterns and data RDMs resampled) for fixed models on the engine.

    dof = min(n_rdm, n_cond) - 1; cv_method 'bootstrap', as rsatoolbox.
    """
    N = _int_in("N", N, 1, 2**31 - 1, "an integer >= 1")
    mlist, res = _evaluate(models, data, method, "both", N, _seed("seed", seed), device)
    return _bootstrap_result(mlist, res, data, method, "bootstrap", min(data.n_rdm, data.n_cond) - 1, data.n_rdm,
                             data.n_cond)

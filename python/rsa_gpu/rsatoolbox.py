"""rsa_gpu.rsatoolbox: a drop-in accelerator for rsatoolbox (https://rsatoolbox.readthedocs.io).

The functions take and return rsatoolbox's own types and follow its definitions; the numbers come from rsa_gpu's
engine (float32 RDMs, sums in double: values agree with rsatoolbox's float64 to about 1e-6).

* :func:`calc_rdm` ``method="correlation"`` (rsatoolbox's ``calc_rdm``: patterns averaged by `descriptor`, every
  dataset and pattern descriptor carried over, sorted as rsatoolbox sorts). Other methods are passed to rsatoolbox.
* :func:`compare` for 'corr', 'cosine', 'spearman' and 'tau-a' (the engine's Pearson, cosine, Spearman and Kendall
  tau-a); 'rho-a', 'kendall'/'tau-b' and the covariance-weighted methods are passed to rsatoolbox.
* :func:`eval_bootstrap_pattern`: bootstrap over patterns of fixed models with method 'corr', returning
  rsatoolbox's ``Result``.

rsatoolbox is optional: it is imported when one of these functions is called (``pip install rsatoolbox``).
"""
from __future__ import annotations

from typing import Any, List, Optional

import numpy as np

from . import _core
from ._api import _device, _int_in, _seed
from ._arrays import as_host_f32

_ENGINE_MEASURES = {"corr": "pearson", "cosine": "cosine", "spearman": "spearman", "tau-a": "kendall"}


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

    if isinstance(dataset, (list, tuple)):
        parts = [one(ds) for ds in dataset]
        if descriptor is None:
            return concat(parts)
        from rsatoolbox.rdm.rdms import RDMs  # noqa: F401
        from rsatoolbox.rdm.combine import from_partials

        return from_partials(parts, descriptor=descriptor)
    return one(dataset)


def _matrices(rdms: Any) -> np.ndarray:
    """(n, S, S) float32 matrices of RDMs, or of an array of upper-triangle vectors (rsatoolbox's order)."""
    from rsatoolbox.util.rdm_utils import batch_to_matrices

    if isinstance(rdms, np.ndarray):
        v = rdms.reshape(1, -1) if rdms.ndim == 1 else rdms
        mats, _, _ = batch_to_matrices(v)
    else:
        mats = rdms.get_matrices()
    return np.ascontiguousarray(mats, dtype=np.float32)


def compare(rdm1: Any, rdm2: Any, method: str = "cosine", *, device: Any = "auto", **kwargs: Any) -> np.ndarray:
    """rsatoolbox.rdm.compare on rsa_gpu's engine.

    Parameters
    ----------
    rdm1, rdm2 : rsatoolbox.rdm.RDMs or ndarray of upper-triangle vectors
    method : str, default "cosine"
        'corr', 'cosine', 'spearman', 'tau-a' on the engine; other rsatoolbox methods are passed to rsatoolbox.
    device : {"auto", "cpu"} or int, default "auto"

    Returns
    -------
    ndarray, shape (rdm1.n_rdm, rdm2.n_rdm), float64
        As rsatoolbox returns it; NaN where an RDM is constant. NaN dissimilarities are left out pair by pair (they
        must sit in the same positions in every RDM, as rsatoolbox requires).
    """
    rsatoolbox = _rsatoolbox()
    if method not in _ENGINE_MEASURES or kwargs:
        return rsatoolbox.rdm.compare(rdm1, rdm2, method=method, **kwargs)
    from rsatoolbox.rdm.compare import _parse_input_rdms

    _parse_input_rdms(rdm1, rdm2)  # rsatoolbox's checks: equal sizes, the same NaN positions
    m1, m2 = _matrices(rdm1), _matrices(rdm2)
    models = [m2[j] for j in range(m2.shape[0])]
    out = np.empty((m1.shape[0], m2.shape[0]))
    for i in range(m1.shape[0]):
        values, _, _ = _core.compare_many(m1[i], models, [_ENGINE_MEASURES[method]], _device(device), False)
        out[i] = values[:, 0]
    return out


def eval_bootstrap_pattern(models: Any, data: Any, method: str = "corr", N: int = 1000, seed: int = 1, *,
                           device: Any = "auto") -> Any:
    """rsatoolbox.inference.eval_bootstrap_pattern for fixed models and method 'corr', on the engine's bootstrap.

    Each of the `N` samples draws the patterns (stimuli) with replacement; each model's Pearson correlation with
    every data RDM is taken over the pairs of distinct drawn patterns (a pattern never pairs with its own copy, as
    rsatoolbox's ``subsample_pattern`` leaves those pairs out) and averaged over the data RDMs, as rsatoolbox
    averages ``compare``. The draws come from rsa_gpu's Philox stream (`seed`), not numpy's, so the samples are not
    rsatoolbox's own draws; their distribution is the same.

    Parameters
    ----------
    models : rsatoolbox.model.ModelFixed or a list of them
    data : rsatoolbox.rdm.RDMs
        One or more data RDMs over the same patterns (no NaN).
    method : {"corr"}
    N : int, default 1000
    seed : int, default 1

    Returns
    -------
    rsatoolbox.inference.Result
        evaluations (N, n_models); noise_ceiling from rsatoolbox's ``boot_noise_ceiling`` on the whole data (NaN
        with one data RDM); variances, dof = n_cond - 1, cv_method 'bootstrap_pattern'.
    """
    rsatoolbox = _rsatoolbox()
    import rsatoolbox.inference  # noqa: F401
    import rsatoolbox.model

    if method != "corr":
        raise ValueError(f"method: rsa_gpu's bootstrap is Pearson ('corr'), got '{method}' "
                         "(use rsatoolbox.inference.eval_bootstrap_pattern for other methods)")
    N = _int_in("N", N, 1, 2**31 - 1, "an integer >= 1")
    seed = _seed("seed", seed)
    mlist: List[Any] = [models] if isinstance(models, rsatoolbox.model.Model) else list(models)
    preds = []
    for k, mod in enumerate(mlist):
        if not isinstance(mod, rsatoolbox.model.ModelFixed):
            raise ValueError(f"models[{k}]: only fixed models (rsatoolbox.model.ModelFixed) are supported")
        preds.append(_matrices(mod.predict_rdm())[0])
    data_m = _matrices(data)
    evals = np.zeros((N, len(mlist)))
    for i in range(data_m.shape[0]):
        samples, _, _, _ = _core.bootstrap(data_m[i], preds, N, seed, _device(device))
        evals += samples.T  # the same seed draws the same patterns for every data RDM
    evals /= data_m.shape[0]
    try:
        from rsatoolbox.inference.evaluate import boot_noise_ceiling

        noise_ceil = np.array(boot_noise_ceiling(data, method=method, rdm_descriptor="index"))
    except Exception:  # one data RDM: no ceiling
        noise_ceil = np.array([np.nan, np.nan])
    ok = np.isfinite(evals[:, 0])
    variances = np.cov(evals[ok, :].T)
    result = rsatoolbox.inference.Result(mlist, evals, method=method, cv_method="bootstrap_pattern",
                                         noise_ceiling=noise_ceil, variances=variances, dof=data.n_cond - 1,
                                         n_rdm=data.n_rdm, n_pattern=data.n_cond)
    return result

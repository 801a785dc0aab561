"""rsa_gpu.evaluate, rsa_gpu.rdm(method=...) and the rsatoolbox bridge's evaluation, dissimilarities and
covariance-weighted comparisons against rsatoolbox itself (from PyPI) on seeded data; test_type 'bootstrap' against
rsatoolbox's functions fed the engine's own samples, 'ranksum' against eval_fixed's; the intervals of each test type
against rsatoolbox's Result.get_ci (percentiles of the engine's own samples, their edges; t); max_gpu_mem's batches."""
import numpy as np
import pytest

import rsa_gpu

rsatoolbox = pytest.importorskip("rsatoolbox")
import rsatoolbox.inference  # noqa: E402
from rsatoolbox.util.inference_util import nc_tests, pair_tests, zero_tests  # noqa: E402
import rsa_gpu.rsatoolbox as bridge  # noqa: E402

METHODS = ["corr", "cosine", "spearman", "rho-a", "tau-a", "corr_cov", "cosine_cov"]


@pytest.fixture
def fixture_rdms(rng):
    """5 noisy data RDMs and 3 fixed models (one good, one partly, one unrelated) over 12 patterns."""
    truth = rng.standard_normal((12, 50))
    data = rsatoolbox.rdm.calc_rdm([rsatoolbox.data.Dataset(truth + 0.8 * rng.standard_normal((12, 50)))
                                    for _ in range(5)])
    models = [rsatoolbox.model.ModelFixed(name, rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(x)))
              for name, x in [("good", truth), ("half", truth + 1.5 * rng.standard_normal((12, 50))),
                              ("bad", rng.standard_normal((12, 50)))]]
    return data, models


def _mats(rdms):
    return rdms.get_matrices()


@pytest.mark.parametrize("method", METHODS)
def test_evaluate_fixed_equals_rsatoolbox(fixture_rdms, method):
    data, models = fixture_rdms
    theirs = rsatoolbox.inference.eval_fixed(models, data, method=method)
    ours = rsa_gpu.evaluate(_mats(data), {m.name: _mats(m.rdm_obj)[0] for m in models}, method=method,
                            correction="none", device="cpu")
    np.testing.assert_allclose(ours.evaluation, theirs.get_means(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.se, theirs.get_sem(), rtol=1e-8, atol=1e-12)
    lo, up = np.nanmean(theirs.noise_ceiling[0]), np.nanmean(theirs.noise_ceiling[1])
    np.testing.assert_allclose(ours.noise_ceiling, (lo, up), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.p_zero, theirs.test_zero(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ours.p_noise, theirs.test_noise()[0] if isinstance(theirs.test_noise(), tuple)
                               else theirs.test_noise(), rtol=1e-6, atol=1e-12)
    assert ours.names == ["good", "half", "bad"] and ours.json["method"] == method
    assert ours.evaluation[0] > ours.evaluation[2]


def test_evaluate_bootstrap_pattern_spread_like_rsatoolbox(fixture_rdms):
    data, models = fixture_rdms
    ours = rsa_gpu.evaluate(_mats(data), [_mats(m.rdm_obj)[0] for m in models], inference="pattern", bootstrap=400,
                            seed=3, device="cpu")
    theirs = rsatoolbox.inference.eval_bootstrap_pattern(models, data, method="corr", N=400)
    assert ours.samples.shape == (400, 3) and ours.noise_ceiling_samples.shape == (2, 400)
    np.testing.assert_allclose(ours.se, theirs.get_sem(), rtol=0.3)  # different draws, same distribution
    assert ours.p_zero[0] < 0.01 and ours.ci_low[0] > ours.ci_high[2]


def test_evaluate_is_repeatable_and_seeded(fixture_rdms):
    data, models = fixture_rdms
    d, m = _mats(data), np.stack([_mats(x.rdm_obj)[0] for x in models])
    a = rsa_gpu.evaluate(d, m, inference="both", bootstrap=50, seed=9, device="cpu")
    b = rsa_gpu.evaluate(d, m, inference="both", bootstrap=50, seed=9, device="cpu")
    c = rsa_gpu.evaluate(d, m, inference="both", bootstrap=50, seed=10, device="cpu")
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(np.nan_to_num(a.samples), np.nan_to_num(c.samples))
    assert "EvaluateResult: corr, both inference, 5 data RDM(s) of 12 patterns" in repr(a)


def test_evaluate_bad_input_is_a_value_error(fixture_rdms):
    data, models = fixture_rdms
    d, m = _mats(data), _mats(models[0].rdm_obj)[0]
    asym = m.copy()
    asym[0, 1] += 0.5
    nan = d.copy()
    nan[1, 2, 3] = nan[1, 3, 2] = np.nan
    with pytest.raises(ValueError, match="symmetric|asymmetric"):
        rsa_gpu.evaluate(d, asym, device="cpu")
    with pytest.raises(ValueError, match="NaN|finite"):
        rsa_gpu.evaluate(nan, m, device="cpu")
    with pytest.raises(ValueError, match="patterns|x 11"):
        rsa_gpu.evaluate(d, m[:11, :11], device="cpu")
    with pytest.raises(ValueError, match="duplicate model name 'a'"):
        rsa_gpu.evaluate(d, [m, m], names=["a", "a"], device="cpu")
    with pytest.raises(ValueError, match="method"):
        rsa_gpu.evaluate(d, m, method="pearson", device="cpu")
    with pytest.raises(ValueError, match="at least 3"):
        rsa_gpu.evaluate(d[:, :2, :2], m[:2, :2], device="cpu")


@pytest.mark.parametrize("inference", ["pattern", "rdm", "both"])
def test_evaluate_bootstrap_test_equals_rsatoolbox_on_the_same_samples(fixture_rdms, inference):
    data, models = fixture_rdms
    d, m = _mats(data), np.stack([_mats(x.rdm_obj)[0] for x in models])
    ours = rsa_gpu.evaluate(d, m, inference=inference, bootstrap=300, seed=2, test_type="bootstrap",
                            correction="none", device="cpu")
    assert ours.json["test"] == "bootstrap"
    ev = ours.samples
    np.testing.assert_allclose(ours.p_zero, zero_tests(ev, "bootstrap"), rtol=1e-12)
    np.testing.assert_allclose(ours.pairwise, pair_tests(ev, "bootstrap"), rtol=1e-12)
    # rsatoolbox 0.3.2's nc_tests reshapes the lower bounds to (noise_ceil.shape[0], 1): an (N, N) array with the
    # lower bounds in row 0 runs its formula (a Result's (2, N) noise ceiling raises for N != 2)
    nc = np.full((300, 300), np.nan)
    nc[0] = ours.noise_ceiling_samples[0]
    np.testing.assert_allclose(ours.p_noise, nc_tests(ev, nc, "bootstrap"), rtol=1e-12)
    # the t-test's standard errors do not depend on the test
    t = rsa_gpu.evaluate(d, m, inference=inference, bootstrap=300, seed=2, correction="none", device="cpu")
    np.testing.assert_array_equal(ours.se, t.se)


def _result_on(ours, models, inference):
    """rsatoolbox's Result on the engine's own samples (its get_ci needs the evaluations, means, SEs and dof)."""
    ev = ours.samples
    nc = ours.noise_ceiling_samples
    ok = np.isfinite(ev[:, 0])
    j = ours.json
    if inference == "rdm":
        return rsatoolbox.inference.Result(models, ev, "corr", "bootstrap_rdm", nc, variances=np.cov(ev.T),
                                           dof=j["dof"], n_rdm=j["n_rdm"])
    variances = np.cov(np.concatenate([ev[ok, :].T, nc[:, ok]]))
    if inference == "pattern":  # as eval_bootstrap_pattern builds it: n_pattern only
        return rsatoolbox.inference.Result(models, ev, "corr", "bootstrap_pattern", nc, variances=variances,
                                           dof=j["dof"], n_pattern=j["n_pattern"])
    return rsatoolbox.inference.Result(models, ev, "corr", "bootstrap", nc, variances=variances, dof=j["dof"],
                                       n_rdm=j["n_rdm"], n_pattern=j["n_pattern"])


@pytest.mark.parametrize("inference", ["pattern", "rdm", "both"])
def test_evaluate_intervals_follow_the_test_type_as_rsatoolbox(fixture_rdms, inference):
    # Result.get_ci(0.95, test_type) on the engine's own samples: percentiles for 'bootstrap', t for 't-test'
    data, models = fixture_rdms
    d, m = _mats(data), np.stack([_mats(x.rdm_obj)[0] for x in models])
    boot = rsa_gpu.evaluate(d, m, inference=inference, bootstrap=300, seed=2, test_type="bootstrap",
                            correction="none", device="cpu")
    t = rsa_gpu.evaluate(d, m, inference=inference, bootstrap=300, seed=2, correction="none", device="cpu")
    assert boot.ci_type == boot.json["ci_type"] == "percentile" and t.ci_type == t.json["ci_type"] == "t"
    assert "intervals: 95% percentile" in repr(boot) and "intervals: 95% t" in repr(t)
    theirs = _result_on(boot, models, inference)
    lo, hi = theirs.get_ci(0.95, test_type="bootstrap")
    np.testing.assert_allclose(boot.ci_low, lo, rtol=1e-12)
    np.testing.assert_allclose(boot.ci_high, hi, rtol=1e-12)
    np.testing.assert_allclose([e["ci_low"] for e in boot.json["models"]], lo, rtol=1e-12)
    lo_t, hi_t = theirs.get_ci(0.95, test_type="t-test")
    np.testing.assert_allclose(t.ci_low, lo_t, rtol=1e-10)
    np.testing.assert_allclose(t.ci_high, hi_t, rtol=1e-10)
    assert not np.allclose(boot.ci_low, t.ci_low)


def test_evaluate_percentile_interval_edges_as_rsatoolbox(fixture_rdms):
    # too few resamples for 95%: rsatoolbox's -inf / +inf frame gives infinite or NaN bounds, returned as they are
    # (the JSON writes them as null); 90% at 25 resamples is finite
    data, models = fixture_rdms
    d, m = _mats(data), np.stack([_mats(x.rdm_obj)[0] for x in models])
    for n, ci in [(20, 0.95), (39, 0.95), (40, 0.95), (25, 0.9)]:
        ours = rsa_gpu.evaluate(d, m, inference="rdm", bootstrap=n, seed=5, ci=ci, test_type="bootstrap",
                                device="cpu")
        with np.errstate(invalid="ignore"):
            lo, hi = _result_on(ours, models, "rdm").get_ci(ci, test_type="bootstrap")
        np.testing.assert_array_equal(np.isnan(ours.ci_low), np.isnan(lo))
        np.testing.assert_array_equal(np.isnan(ours.ci_high), np.isnan(hi))
        np.testing.assert_allclose(ours.ci_low, lo, rtol=1e-12)
        np.testing.assert_allclose(ours.ci_high, hi, rtol=1e-12)
        if n == 20:
            assert np.all(ours.ci_low == -np.inf) and np.all(ours.ci_high == np.inf)
            assert all(e["ci_low"] is None for e in ours.json["models"])
        if n >= 40 or ci == 0.9:
            assert np.all(np.isfinite(ours.ci_low)) and np.all(np.isfinite(ours.ci_high))


def test_evaluate_ranksum_gives_rsatoolboxs_t_interval(fixture_rdms):
    data, models = fixture_rdms
    theirs = rsatoolbox.inference.eval_fixed(models, data, method="corr")
    ours = rsa_gpu.evaluate(_mats(data), [_mats(x.rdm_obj)[0] for x in models], test_type="ranksum",
                            device="cpu")
    assert ours.ci_type == "t"
    lo, hi = theirs.get_ci(0.95, test_type="ranksum")
    np.testing.assert_allclose(ours.ci_low, lo, rtol=1e-8)
    np.testing.assert_allclose(ours.ci_high, hi, rtol=1e-8)


def test_bridge_result_gives_the_engines_bootstrap_test(fixture_rdms):
    data, models = fixture_rdms
    res = bridge.eval_bootstrap_pattern(models, data, "corr", N=200, seed=6, device="cpu")
    ours = rsa_gpu.evaluate(_mats(data), [_mats(x.rdm_obj)[0] for x in models], inference="pattern", bootstrap=200,
                            seed=6, test_type="bootstrap", correction="none", device="cpu")
    np.testing.assert_allclose(res.test_zero("bootstrap"), ours.p_zero, rtol=1e-12)
    np.testing.assert_allclose(res.test_pairwise("bootstrap"), ours.pairwise, rtol=1e-12)


@pytest.mark.parametrize("method", ["corr", "spearman", "cosine_cov"])
def test_evaluate_ranksum_equals_rsatoolbox(fixture_rdms, method):
    data, models = fixture_rdms
    theirs = rsatoolbox.inference.eval_fixed(models, data, method=method)
    ours = rsa_gpu.evaluate(_mats(data), {x.name: _mats(x.rdm_obj)[0] for x in models}, method=method,
                            test_type="ranksum", correction="none", device="cpu")
    assert ours.json["test"] == "ranksum" and "p-values: ranksum" in repr(ours)
    np.testing.assert_allclose(ours.p_zero, theirs.test_zero("ranksum"), rtol=1e-9)
    np.testing.assert_allclose(ours.p_noise, theirs.test_noise("ranksum"), rtol=1e-9)
    np.testing.assert_allclose(ours.pairwise, theirs.test_pairwise("ranksum"), rtol=1e-9)


def test_evaluate_test_type_errors(fixture_rdms):
    data, models = fixture_rdms
    d, m = _mats(data), _mats(models[0].rdm_obj)[0]
    with pytest.raises(ValueError, match="test_type bootstrap counts over bootstrap samples, and inference 'fixed'"):
        rsa_gpu.evaluate(d, m, test_type="bootstrap", device="cpu")
    with pytest.raises(ValueError, match="test_type ranksum"):
        rsa_gpu.evaluate(d, m, inference="pattern", bootstrap=20, test_type="ranksum", device="cpu")
    with pytest.raises(ValueError, match="test_type: expected"):
        rsa_gpu.evaluate(d, m, test_type="wilcoxon", device="cpu")


def test_evaluate_max_gpu_mem_batches_give_the_same_numbers(fixture_rdms):
    data, models = fixture_rdms
    d, m = _mats(data), np.stack([_mats(x.rdm_obj)[0] for x in models])
    one = rsa_gpu.evaluate(d, m, inference="both", bootstrap=100, seed=4, device="cpu")
    assert one.json["plan"]["resample_batches"] == 1 and one.json["plan"]["model_batches"] == 1
    many = rsa_gpu.evaluate(d, m, inference="both", bootstrap=100, seed=4, max_gpu_mem="64K", device="cpu")
    assert many.json["plan"]["resample_batches"] > 1 and many.json["plan"]["model_batches"] == 3
    assert many.json["plan"]["line"].startswith("evaluation plan: 100 resamples in ")
    np.testing.assert_array_equal(one.samples, many.samples)
    np.testing.assert_array_equal(one.p_zero, many.p_zero)
    with pytest.raises(ValueError, match="do not fit the memory budget"):
        rsa_gpu.evaluate(d, m, inference="both", bootstrap=100, max_gpu_mem="1K", device="cpu")
    with pytest.raises(ValueError, match="max_gpu_mem"):
        rsa_gpu.evaluate(d, m, max_gpu_mem="lots", device="cpu")


# ---------------------------------------------------------------- dissimilarities
@pytest.fixture
def trials(rng):
    """30 trials x 20 channels: 6 conditions x 5 runs, float64 measurements and their descriptors."""
    cond = np.tile(np.arange(6), 5)
    run = np.repeat(np.arange(5), 6)
    x = rng.standard_normal((6, 20))[cond] + 0.7 * rng.standard_normal((30, 20))
    return x, cond, run


def _precision(rng, n):
    a = rng.standard_normal((n, n))
    return a @ a.T / n + np.eye(n)


def test_rdm_methods_equal_rsatoolbox(trials, rng):
    x, cond, run = trials
    ds = rsatoolbox.data.Dataset(x, obs_descriptors={"cond": cond, "run": run})
    P = _precision(rng, 20)
    cases = [
        (dict(method="euclidean"), rsatoolbox.rdm.calc_rdm(ds, method="euclidean")),
        (dict(method="euclidean", conditions=cond), rsatoolbox.rdm.calc_rdm(ds, method="euclidean", descriptor="cond")),
        (dict(method="mahalanobis", noise=P), rsatoolbox.rdm.calc_rdm(ds, method="mahalanobis", noise=P)),
        (dict(method="crossnobis", conditions=cond, runs=run),
         rsatoolbox.rdm.calc_rdm(ds, method="crossnobis", descriptor="cond", cv_descriptor="run")),
        (dict(method="crossnobis", conditions=cond, runs=run, noise=P),
         rsatoolbox.rdm.calc_rdm(ds, method="crossnobis", descriptor="cond", cv_descriptor="run", noise=P)),
    ]
    for kwargs, theirs in cases:
        ours = rsa_gpu.rdm(x, device="cpu", **kwargs)
        assert ours.dtype == np.float32
        want = theirs.get_matrices()[0]
        assert ours.shape == want.shape, kwargs
        err = np.linalg.norm(ours - want) / np.linalg.norm(want)
        assert err < 1e-5, (kwargs, err)


def test_rdm_method_errors(trials):
    x, cond, run = trials
    with pytest.raises(ValueError, match="method"):
        rsa_gpu.rdm(x, method="manhattan", device="cpu")
    with pytest.raises(ValueError, match="runs"):
        rsa_gpu.rdm(x, method="crossnobis", conditions=cond, runs=np.zeros(30, dtype=int), device="cpu")
    with pytest.raises(ValueError, match="positive definite|symmetric"):
        rsa_gpu.rdm(x, method="mahalanobis", noise=-np.eye(20), device="cpu")
    with pytest.raises(ValueError, match="20 x 20|shape"):
        rsa_gpu.rdm(x, method="mahalanobis", noise=np.eye(5), device="cpu")
    with pytest.raises(ValueError, match="noise"):
        rsa_gpu.rdm(x, method="mahalanobis", noise="full", device="cpu")


def test_bridge_calc_rdm_methods_equal_rsatoolbox(trials, rng):
    x, cond, run = trials
    ds = rsatoolbox.data.Dataset(x, descriptors={"subject": 2}, obs_descriptors={"cond": cond, "run": run})
    P = _precision(rng, 20)
    for kwargs in [dict(method="euclidean"), dict(method="euclidean", descriptor="cond"),
                   dict(method="mahalanobis", descriptor="cond", noise=P),
                   dict(method="crossnobis", descriptor="cond", cv_descriptor="run"),
                   dict(method="crossnobis", descriptor="cond", cv_descriptor="run", noise=P)]:
        ours, theirs = bridge.calc_rdm(ds, device="cpu", **kwargs), rsatoolbox.rdm.calc_rdm(ds, **kwargs)
        np.testing.assert_allclose(ours.dissimilarities, theirs.dissimilarities, rtol=2e-5,
                                   atol=2e-6 * np.abs(theirs.dissimilarities).max())
        assert ours.dissimilarity_measure == theirs.dissimilarity_measure
        assert ours.rdm_descriptors.keys() == theirs.rdm_descriptors.keys()
        for k in theirs.pattern_descriptors:
            np.testing.assert_array_equal(ours.pattern_descriptors[k], theirs.pattern_descriptors[k])


@pytest.mark.parametrize("method", ["rho-a", "corr_cov", "cosine_cov"])
def test_bridge_compare_weighted_methods_equal_rsatoolbox(fixture_rdms, method):
    data, models = fixture_rdms
    m = rsatoolbox.rdm.concat([x.rdm_obj for x in models])
    np.testing.assert_allclose(bridge.compare(m, data, method, device="cpu"),
                               rsatoolbox.rdm.compare(m, data, method), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["corr", "cosine_cov", "tau-a"])
def test_bridge_eval_fixed_equals_rsatoolbox(fixture_rdms, method):
    data, models = fixture_rdms
    ours, theirs = bridge.eval_fixed(models, data, method, device="cpu"), rsatoolbox.inference.eval_fixed(
        models, data, method=method)
    assert isinstance(ours, rsatoolbox.inference.Result) and ours.cv_method == "fixed"
    np.testing.assert_allclose(ours.evaluations, theirs.evaluations, rtol=1e-9)
    np.testing.assert_allclose(ours.noise_ceiling, theirs.noise_ceiling, rtol=1e-9)
    np.testing.assert_allclose(ours.get_sem(), theirs.get_sem(), rtol=1e-8)
    np.testing.assert_allclose(ours.test_zero(), theirs.test_zero(), rtol=1e-6)


@pytest.mark.parametrize("fn,cv_method", [(bridge.eval_bootstrap_pattern, "bootstrap_pattern"),
                                          (bridge.eval_bootstrap_rdm, "bootstrap_rdm"),
                                          (bridge.eval_bootstrap, "bootstrap")])
def test_bridge_bootstraps_return_rsatoolbox_results(fixture_rdms, fn, cv_method):
    data, models = fixture_rdms
    res = fn(models, data, "corr", N=200, seed=5, device="cpu")
    assert isinstance(res, rsatoolbox.inference.Result) and res.cv_method == cv_method
    assert res.evaluations.shape == (200, 3) and res.noise_ceiling.shape == (2, 200)
    assert res.get_means()[0] > res.get_means()[2]
    assert np.all(np.isfinite(res.get_sem())) and res.test_pairwise().shape == (3, 3)

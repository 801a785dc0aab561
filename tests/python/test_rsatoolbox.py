"""rsa_gpu.rsatoolbox against rsatoolbox itself (from PyPI): the same RDMs with the same descriptors, the same
comparisons, and its Result type from the bootstrap evaluation."""
import numpy as np
import pytest

rsatoolbox = pytest.importorskip("rsatoolbox")
import rsa_gpu.rsatoolbox as bridge  # noqa: E402


@pytest.fixture
def dataset(rng):
    return rsatoolbox.data.Dataset(
        rng.standard_normal((24, 80)),
        descriptors={"subject": 3, "session": "a"},
        obs_descriptors={"cond": np.arange(24) % 12, "trial": np.arange(24)},
        channel_descriptors={"voxel": np.arange(80)},
    )


@pytest.mark.parametrize("descriptor", [None, "cond"])
def test_calc_rdm_equals_rsatoolbox(dataset, descriptor):
    ours = bridge.calc_rdm(dataset, descriptor=descriptor, device="cpu")
    theirs = rsatoolbox.rdm.calc_rdm(dataset, method="correlation", descriptor=descriptor)
    assert isinstance(ours, rsatoolbox.rdm.RDMs)
    np.testing.assert_allclose(ours.dissimilarities, theirs.dissimilarities, atol=1e-6)
    assert ours.dissimilarity_measure == theirs.dissimilarity_measure == "correlation"
    assert ours.rdm_descriptors == theirs.rdm_descriptors
    assert ours.pattern_descriptors.keys() == theirs.pattern_descriptors.keys()
    for k in theirs.pattern_descriptors:
        np.testing.assert_array_equal(ours.pattern_descriptors[k], theirs.pattern_descriptors[k])


def test_calc_rdm_of_several_datasets(rng):
    dss = [rsatoolbox.data.Dataset(rng.standard_normal((10, 30)), descriptors={"subject": s}) for s in range(3)]
    ours, theirs = bridge.calc_rdm(dss, device="cpu"), rsatoolbox.rdm.calc_rdm(dss, method="correlation")
    assert ours.n_rdm == 3
    np.testing.assert_allclose(ours.dissimilarities, theirs.dissimilarities, atol=1e-6)
    assert ours.rdm_descriptors["subject"] == theirs.rdm_descriptors["subject"]


@pytest.mark.parametrize("method, atol", [("corr", 1e-6), ("cosine", 1e-6), ("spearman", 1e-9), ("tau-a", 1e-9),
                                          ("rho-a", 0)])
def test_compare_equals_rsatoolbox(rng, method, atol):
    r1 = rsatoolbox.rdm.calc_rdm([rsatoolbox.data.Dataset(rng.standard_normal((15, 40))) for _ in range(3)])
    r2 = rsatoolbox.rdm.calc_rdm([rsatoolbox.data.Dataset(rng.standard_normal((15, 40))) for _ in range(2)])
    ours = bridge.compare(r1, r2, method=method, device="cpu")
    theirs = rsatoolbox.rdm.compare(r1, r2, method=method)
    assert ours.shape == theirs.shape == (3, 2)
    np.testing.assert_allclose(ours, theirs, atol=atol)


def test_compare_with_nan_positions_shared(rng):
    r = rsatoolbox.rdm.calc_rdm([rsatoolbox.data.Dataset(rng.standard_normal((12, 40))) for _ in range(2)])
    d = r.dissimilarities.copy()
    d[:, 5] = np.nan
    rn = rsatoolbox.rdm.RDMs(d)
    np.testing.assert_allclose(bridge.compare(rn, rn, "corr", device="cpu"), rsatoolbox.rdm.compare(rn, rn, "corr"),
                               atol=1e-6)


def test_eval_bootstrap_pattern_returns_rsatoolbox_result(rng):
    truth = rng.standard_normal((14, 60))
    data = rsatoolbox.rdm.calc_rdm(
        [rsatoolbox.data.Dataset(truth + rng.standard_normal((14, 60))) for _ in range(3)])
    good = rsatoolbox.model.ModelFixed("good", rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(truth)))
    bad = rsatoolbox.model.ModelFixed("bad", rsatoolbox.rdm.calc_rdm(
        rsatoolbox.data.Dataset(rng.standard_normal((14, 60)))))
    res = bridge.eval_bootstrap_pattern([good, bad], data, method="corr", N=300, seed=4, device="cpu")
    assert isinstance(res, rsatoolbox.inference.Result)
    assert res.evaluations.shape == (300, 2) and res.cv_method == "bootstrap_pattern"
    full = rsatoolbox.rdm.compare(good.predict_rdm(), data, "corr").mean()
    mean_eval = np.nanmean(res.evaluations, axis=0)
    assert abs(mean_eval[0] - full) < 0.1 and mean_eval[0] > mean_eval[1]
    theirs = rsatoolbox.inference.eval_bootstrap_pattern([good, bad], data, method="corr", N=300,
                                                          boot_noise_ceil=False)
    # the same sampling distribution (different draws): spreads agree within 35%
    s_ours, s_theirs = np.nanstd(res.evaluations, 0), np.nanstd(theirs.evaluations, 0)
    np.testing.assert_allclose(s_ours, s_theirs, rtol=0.35)

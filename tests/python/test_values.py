"""Values of rsa_gpu's functions against numpy and scipy at stated tolerances (float32 engine, double sums)."""
import numpy as np
import pytest
import scipy.stats

import rsa_gpu


def upper(m):
    i, j = np.triu_indices(m.shape[0], 1)
    return m[i, j].astype(np.float64)


def test_rdm_matches_numpy_corrcoef(responses):
    m = rsa_gpu.rdm(responses, device="cpu")
    assert m.shape == (60, 60) and m.dtype == np.float32
    ref = 1.0 - np.corrcoef(responses.astype(np.float64))
    np.testing.assert_allclose(m, ref, atol=2e-6)  # float32 SYRK of z-scores
    assert np.array_equal(m, m.T)


def test_rdm_other_dtypes_and_layouts_are_converted(responses):
    m = rsa_gpu.rdm(responses, device="cpu")
    np.testing.assert_allclose(rsa_gpu.rdm(responses.astype(np.float64), device="cpu"), m, atol=1e-6)
    np.testing.assert_allclose(rsa_gpu.rdm(np.asfortranarray(responses), device="cpu"), m, atol=0)
    ints = (responses * 100).astype(np.int32)
    np.testing.assert_allclose(rsa_gpu.rdm(ints, device="cpu"), 1 - np.corrcoef(ints.astype(np.float64)),
                               atol=2e-6)
    np.testing.assert_allclose(rsa_gpu.rdm(responses.tolist(), device="cpu"), m, atol=0)


def test_rdm_streamed_under_a_memory_cap_equals_one_shot(rng):
    x = rng.standard_normal((200, 3000)).astype(np.float32)
    one = rsa_gpu.rdm(x, device="cpu")
    capped = rsa_gpu.rdm(x, device="cpu", max_gpu_mem="1M")  # forces neuron blocks
    np.testing.assert_allclose(capped, one, atol=2e-6)


@pytest.mark.parametrize("method", ["pearson", "spearman", "kendall", "cosine"])
def test_compare_matches_scipy(responses, method):
    a = rsa_gpu.rdm(responses, device="cpu")
    b = rsa_gpu.rdm(responses[:, :150], device="cpu")
    va, vb = upper(a), upper(b)
    if method == "pearson":
        ref = scipy.stats.pearsonr(va, vb)[0]
    elif method == "spearman":
        ref = scipy.stats.spearmanr(va, vb)[0]
    elif method == "kendall":  # tau-a by explicit enumeration (float32 values can tie, so not scipy's tau-b)
        sa = np.sign(va[:, None] - va[None, :])
        sb = np.sign(vb[:, None] - vb[None, :])
        n = va.size
        ref = np.sum(np.triu(sa * sb, 1)) / (n * (n - 1) / 2)
    else:
        ref = va @ vb / np.sqrt((va @ va) * (vb @ vb))
    got = rsa_gpu.compare(a, b, method, device="cpu")
    assert isinstance(got, float)
    assert got == pytest.approx(ref, abs=1e-9)


def test_kendall_is_tau_a_with_ties():
    a = np.zeros((5, 5), np.float32)
    b = np.zeros((5, 5), np.float32)
    i, j = np.triu_indices(5, 1)
    a[i, j] = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    b[i, j] = [1, 2, 2, 3, 3, 4, 5, 6, 6, 7]
    va, vb = a[i, j], b[i, j]
    n = len(va)
    s = sum(np.sign(va[p] - va[q]) * np.sign(vb[p] - vb[q]) for p in range(n) for q in range(p + 1, n))
    assert rsa_gpu.compare(a, b, "kendall", device="cpu") == pytest.approx(s / (n * (n - 1) / 2), abs=1e-12)


def test_compare_table_of_many_models(responses):
    ref = rsa_gpu.rdm(responses, device="cpu")
    models = [rsa_gpu.rdm(responses[:, k:k + 100], device="cpu") for k in (0, 100, 200)]
    t = rsa_gpu.compare(ref, models, methods=["pearson", "spearman"], device="cpu")
    assert t.values.shape == (3, 2) and t.methods == ("pearson", "spearman")
    for i, m in enumerate(models):
        assert t["pearson"][i] == pytest.approx(rsa_gpu.compare(ref, m, device="cpu"), abs=0)
        assert t["spearman"][i] == pytest.approx(scipy.stats.spearmanr(upper(ref), upper(m))[0], abs=1e-9)
    assert (t.pairs == 60 * 59 // 2).all() and (t.skipped == 0).all()
    assert set(t.to_dict()) == {"pearson", "spearman"}


def linear_cka(x, y, debiased=False):
    x = x - x.mean(0)
    y = y - y.mean(0)
    k, l = x @ x.T, y @ y.T
    if not debiased:
        return np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))
    n = k.shape[0]

    def hsic(a, b):
        a = a.copy()
        b = b.copy()
        np.fill_diagonal(a, 0)
        np.fill_diagonal(b, 0)
        return (np.sum(a * b) + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2 * a.sum(0) @ b.sum(0) / (n - 2)) / (
            n * (n - 3))

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matches_numpy(responses, rng, debiased):
    y = responses[:, :50] @ rng.standard_normal((50, 30)).astype(np.float32) + 0.5 * rng.standard_normal(
        (60, 30)).astype(np.float32)
    ref = linear_cka(responses.astype(np.float64), y.astype(np.float64), debiased)
    assert rsa_gpu.cka(responses, y, debiased=debiased, device="cpu") == pytest.approx(ref, abs=1e-5)


def test_bootstrap_interval_and_samples(responses):
    ref = rsa_gpu.rdm(responses, device="cpu")
    model = rsa_gpu.rdm(responses[:, :120], device="cpu")
    r = rsa_gpu.bootstrap(ref, model, n=500, seed=3, samples=True, device="cpu")
    assert r.value == pytest.approx(rsa_gpu.compare(ref, model, device="cpu"))
    assert r.samples.shape == (1, 500) and r.samples.dtype == np.float64
    assert r.ci_low == pytest.approx(np.percentile(r.samples[0], 2.5), abs=1e-12)
    assert r.ci_high == pytest.approx(np.percentile(r.samples[0], 97.5), abs=1e-12)
    assert r.ci_low < r.value < r.ci_high and r.nan_samples == 0
    again = rsa_gpu.bootstrap(ref, [model, ref], n=500, seed=3, device="cpu")
    assert again.ci_low[0] == r.ci_low and again.samples is None  # same seed, same draws
    assert again.ci_low[1] == pytest.approx(1.0)


def test_permutation_p_value_from_null(responses, rng):
    ref = rsa_gpu.rdm(responses, device="cpu")
    model = rsa_gpu.rdm(responses[:, :120], device="cpu")
    noise = rsa_gpu.rdm(rng.standard_normal((60, 400)).astype(np.float32), device="cpu")
    r = rsa_gpu.permutation(ref, [model, noise], n=400, seed=5, samples=True, device="cpu")
    assert r.null.shape == (2, 400)
    for k in range(2):
        assert r.p_value[k] == pytest.approx((1 + np.sum(r.null[k] >= r.value[k])) / 401)
    assert r.p_value[0] == pytest.approx(1 / 401) and r.p_value[1] > 0.01
    assert r.value[0] == pytest.approx(rsa_gpu.compare(ref, model, device="cpu"), abs=1e-9)


def test_noise_ceiling_of_repeated_trials(rng):
    signal = rng.standard_normal((20, 300))
    bins = np.repeat(np.arange(20), 6)
    trials = (signal[bins] + 0.5 * rng.standard_normal((120, 300))).astype(np.float32)
    nc = rsa_gpu.noise_ceiling(trials, bins, splits=4, seed=2, device="cpu")
    assert nc.r_half.shape == (4,) and nc.bins_kept == 20 and nc.bins_dropped == 0
    assert nc.r_half_mean == pytest.approx(nc.r_half.mean())
    assert nc.ceiling == pytest.approx(2 * nc.r_half_mean / (1 + nc.r_half_mean))
    assert 0.8 < nc.ceiling <= 1.0
    np.testing.assert_array_equal(nc.kept_ids, np.arange(20))


def test_gratings_match_the_tutorial_formula():
    angles = np.array([-60.0, 0.0, 33.0], np.float32)
    g = rsa_gpu.gratings(angles, device="cpu")
    assert g.shape == (3, 48, 64) and g.dtype == np.float32
    y, x = np.meshgrid(np.arange(0, 480 * 0.1) / 0.1, np.arange(0, 640 * 0.1) / 0.1, indexing="ij")
    for k, a in enumerate(np.deg2rad(angles.astype(np.float64))):
        ref = (np.cos(x / 28 * np.cos(a) + y / 28 * np.sin(a)) > 0).astype(np.float32)
        assert (g[k] != ref).mean() < 0.002  # pixels at the exact zero crossing may round either way

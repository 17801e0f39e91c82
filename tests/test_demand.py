import numpy as np

from cloudwar.model.demand import calvano_demand, logit_probabilities, sample_choices, sample_logit, utility


def test_logit_is_the_calvano_formula():
    a, p, a0, mu = np.array([2.0, 2.0, 1.7]), np.array([1.4, 1.6, 1.1]), 0.0, 0.25
    probs, outside = logit_probabilities(utility(a, p), a0, mu)
    e = np.exp((a - p) / mu)
    expected = e / (e.sum() + np.exp(a0 / mu))
    np.testing.assert_allclose(probs, expected, rtol=1e-14)
    np.testing.assert_allclose(outside, 1.0 - expected.sum(), rtol=1e-12)


def test_logit_is_stable_for_large_utilities_and_excludes_unavailable():
    v = np.array([[1000.0, 999.0, -np.inf]])
    probs, outside = logit_probabilities(v, 0.0, 0.25)
    assert np.all(np.isfinite(probs))
    assert probs[0, 2] == 0.0
    np.testing.assert_allclose(probs.sum() + outside.sum(), 1.0)


def test_heterogeneous_utility_broadcasts_per_enterprise():
    quality = np.array([[2.0, 1.0]])
    price = np.array([[1.0, 0.5]])
    v = utility(
        quality,
        price,
        quality_sensitivity=np.array([[1.0], [2.0]]),
        price_sensitivity=np.array([[1.0], [0.5]]),
        reference_price=2.0,
    )
    np.testing.assert_allclose(v, [[2.0 - 0.5, 1.0 - 0.25], [4.0 - 0.25, 2.0 - 0.125]])


def test_calvano_profits_at_known_prices():
    q, profit = calvano_demand(np.array([1.47293, 1.47293]), 2.0, 1.0, 0.0, 0.25)
    np.testing.assert_allclose(profit, 0.22293, atol=5e-6)
    q, profit = calvano_demand(np.array([1.92498, 1.92498]), 2.0, 1.0, 0.0, 0.25)
    np.testing.assert_allclose(profit, 0.33749, atol=5e-6)


def test_sample_choices_follow_probabilities():
    rng = np.random.default_rng(3)
    n = 200_000
    probs = np.tile([0.5, 0.3], (n, 1))  # outside option 0.2
    choice = sample_choices(probs, rng.random(n))
    freq = np.bincount(choice, minlength=3) / n
    se = np.sqrt(np.array([0.5, 0.3, 0.2]) * (1 - np.array([0.5, 0.3, 0.2])) / n)
    assert np.all(np.abs(freq - [0.5, 0.3, 0.2]) < 4 * se)


def test_fused_float32_sampling_draws_the_same_choices_as_the_probabilities():
    rng = np.random.default_rng(5)
    n, k = 50_000, 6
    v = rng.normal(0.0, 1.0, size=(n, k))
    v[:, 2] = -np.inf  # an unavailable provider is never chosen
    uniforms = rng.random(n)
    probabilities, _ = logit_probabilities(v, 0.3, 0.7)
    expected = sample_choices(probabilities, uniforms)
    fused = sample_logit(np.ascontiguousarray(v.T, dtype=np.float32), 0.3, 0.7, uniforms)
    assert not np.any(fused == 2)
    # float32 could flip a choice only where a uniform falls within ~1e-6 of a cumulative
    # probability: expected about 0.1 of 50,000 draws
    assert np.sum(fused != expected) <= 3


def test_utility_in_place_rounds_like_the_expression():
    rng = np.random.default_rng(6)
    quality, price = rng.random((3, 1000), dtype=np.float32), rng.random((3, 1000), dtype=np.float32)
    qs, ps = rng.random(1000, dtype=np.float32), rng.random(1000, dtype=np.float32)
    extra = rng.random((3, 1000), dtype=np.float32)
    expected = utility(quality, price, quality_sensitivity=qs, price_sensitivity=ps, reference_price=0.7, extra=extra)
    out = extra.copy()
    utility(quality, price, quality_sensitivity=qs, price_sensitivity=ps, reference_price=0.7, extra=out, out=out)
    np.testing.assert_array_equal(out, expected)

"""Benchmarks of the logit Bertrand game of Calvano et al. (AER 2020), facts.md section "Theory"."""

import numpy as np
import pytest
from scipy import optimize

from cloudwar import theory
from cloudwar.model.demand import calvano_demand


def _args(n_firms: int):
    game = theory.calvano_baseline(n_firms)
    return game.quality, game.cost, game.outside_quality, game.logit_scale


def test_two_firm_nash_price_and_profit_match_paper():
    p = theory.nash_prices(*_args(2))
    np.testing.assert_allclose(p, [1.47293, 1.47293], atol=5e-6)
    np.testing.assert_allclose(theory.profits(p, *_args(2)), [0.22293, 0.22293], atol=5e-6)
    np.testing.assert_allclose(theory.nash_profits(*_args(2)), [0.22293, 0.22293], atol=5e-6)


def test_two_firm_joint_profit_price_and_profit_match_paper():
    p = theory.joint_profit_prices(*_args(2))
    np.testing.assert_allclose(p, [1.92498, 1.92498], atol=5e-6)
    np.testing.assert_allclose(theory.profits(p, *_args(2)), [0.33749, 0.33749], atol=5e-6)
    np.testing.assert_allclose(theory.joint_profit_profits(*_args(2)), [0.33749, 0.33749], atol=5e-6)


def test_three_firm_nash_price_matches_paper():
    np.testing.assert_allclose(theory.nash_prices(*_args(3)), [1.37016] * 3, atol=5e-6)


@pytest.mark.parametrize("n_firms", [1, 2, 3, 5])
def test_first_order_condition_holds_at_nash(n_firms):
    quality, cost, a0, mu = _args(n_firms)
    p = theory.nash_prices(quality, cost, a0, mu)
    shares, _ = calvano_demand(p, quality, cost, a0, mu)
    np.testing.assert_allclose(p - cost, mu / (1.0 - shares), rtol=0, atol=1e-10)
    assert np.max(np.abs(theory.nash_foc_residual(p, quality, cost, a0, mu))) < 1e-10


def test_nash_is_a_best_response_and_joint_profit_beats_nearby_prices():
    quality, cost, a0, mu = _args(2)
    p_n = theory.nash_prices(quality, cost, a0, mu)
    p_m = theory.joint_profit_prices(quality, cost, a0, mu)
    grid = np.linspace(1.0, 3.0, 2001)
    deviations = np.column_stack([grid, np.full_like(grid, p_n[1])])
    own = theory.profits(deviations, quality, cost, a0, mu)[:, 0]
    assert own.max() <= theory.profits(p_n, quality, cost, a0, mu)[0] + 1e-12
    total_at_m = theory.profits(p_m, quality, cost, a0, mu).sum()
    rng = np.random.default_rng(0)
    perturbed = p_m + rng.normal(0, 0.05, size=(500, 2))
    assert theory.profits(perturbed, quality, cost, a0, mu).sum(axis=1).max() <= total_at_m + 1e-12


def test_asymmetric_firms_nash_foc_and_common_joint_markup():
    quality, cost, a0, mu = np.array([2.0, 2.5, 1.8]), np.array([1.0, 1.2, 0.9]), 0.0, 0.25
    p_n = theory.nash_prices(quality, cost, a0, mu)
    assert np.max(np.abs(theory.nash_foc_residual(p_n, quality, cost, a0, mu))) < 1e-10
    p_m = theory.joint_profit_prices(quality, cost, a0, mu)
    # multi-product logit monopolist: common markup mu / (outside share)
    s = theory.shares(p_m, quality, cost, a0, mu)
    np.testing.assert_allclose(p_m - cost, mu / (1.0 - s.sum()), atol=1e-8)
    assert np.all(p_m > p_n)


@pytest.mark.parametrize(
    ("quality", "cost", "a0", "mu"),
    [
        ([2.0, 2.5, 1.8], [1.0, 1.2, 0.9], 0.0, 0.25),
        ([2.0, 2.0], [1.0, 1.0], 0.0, 0.25),
        ([1.0, 3.0, 2.0, 0.5], [0.2, 2.5, 1.0, 0.4], 0.5, 0.6),
        ([40.0, 41.0], [1.0, 1.0], 0.0, 0.25),  # S = exp(~160): the closed form must not overflow
    ],
)
def test_joint_profit_closed_form_matches_numerical_maximisation(quality, cost, a0, mu):
    quality, cost = np.array(quality), np.array(cost)
    p_m = theory.joint_profit_prices(quality, cost, a0, mu)

    def negative_total(p):
        return -theory.profits(p, quality, cost, a0, mu).sum()

    numerical = optimize.minimize(
        negative_total, cost + mu, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000}
    )
    np.testing.assert_allclose(p_m, numerical.x, atol=1e-5)
    assert -negative_total(p_m) >= -numerical.fun - 1e-12


def test_profit_gain_normalisation():
    assert theory.profit_gain(0.22293, 0.22293, 0.33749) == pytest.approx(0.0)
    assert theory.profit_gain(0.33749, 0.22293, 0.33749) == pytest.approx(1.0)
    assert theory.profit_gain(0.28021, 0.22293, 0.33749) == pytest.approx(0.5, abs=1e-4)

"""Valuation (cloudwar.valuation): closed forms, the defaults of the old experiments, the metrics of runs and sweeps."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cloudwar import CloudMarket
from cloudwar.errors import ScenarioError
from cloudwar.results import METRICS
from cloudwar.scenario import ValuationSpec, load_scenario
from cloudwar.valuation import discount, npv, perpetuity, terminal_value
from tests.conftest import ROOT

SMALL = {"enterprises": 400, "quarters": 6}
VALUE_METRICS = ("terminal_value", "enterprise_value")


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# --- closed forms ------------------------------------------------------------------------------
@pytest.mark.parametrize(("cash_flow", "rate", "quarters"), [(1.0, 0.10, 40), (2.5e9, 0.07, 13), (-3.0, 0.25, 1)])
def test_npv_of_a_level_cash_flow_is_the_annuity_formula(cash_flow, rate, quarters):
    q = (1 + rate) ** 0.25 - 1  # the quarterly rate equivalent to `rate` a year
    annuity = cash_flow * (1 - (1 + q) ** -quarters) / q
    assert rel(npv([cash_flow] * quarters, rate), annuity) < 1e-12


def test_npv_discounts_from_the_first_quarter_given():
    flows = np.array([3.0, -1.0, 4.0])
    expected = sum(f / 1.08 ** ((5 + i) / 4) for i, f in enumerate(flows))
    assert rel(npv(flows, 0.08, first_quarter=5), expected) < 1e-12


@pytest.mark.parametrize(("rate", "growth"), [(0.10, 0.0), (0.10, 0.03), (0.08, -0.02)])
def test_perpetuity_is_gordon_and_the_sum_of_its_cash_flows(rate, growth):
    first = 7.0  # USD a year from now
    gordon = perpetuity(first, rate, growth)
    assert rel(gordon, first / (rate - growth)) < 1e-12
    # The same value as the discounted growing cash flows, summed until they no longer count.
    years = 4000
    series = math.fsum(first * (1 + growth) ** (t - 1) / (1 + rate) ** t for t in range(1, years))
    assert rel(gordon, series) < 1e-12


@pytest.mark.parametrize("growth", [0.10, 0.15])
def test_a_perpetuity_growing_as_fast_as_the_rate_is_refused(growth):
    with pytest.raises(ScenarioError, match=r"terminal_growth: must be below discount_rate \(0.1\)"):
        perpetuity(1.0, 0.10, growth)


def test_the_scenario_refuses_growth_at_or_above_the_discount_rate():
    with pytest.raises(ScenarioError, match="valuation.terminal_growth: must be below discount_rate"):
        load_scenario("baseline", {"valuation.terminal_growth": 0.1})
    with pytest.raises(ScenarioError, match="valuation.method"):
        load_scenario("baseline", {"valuation.method": "dcf"})
    # An exit multiple needs no growth perpetuity, so the rate may be anything.
    assert load_scenario("baseline", {"valuation.method": "exit_multiple", "valuation.terminal_growth": 0.2})


def old_terminal_value(income: np.ndarray, rate: float, quarters: int) -> np.ndarray:
    """experiments/_common.terminal_value as it was before cloudwar.valuation."""
    return np.maximum(income, 0.0) / rate / (1.0 + rate) ** (quarters / 4.0)


def test_defaults_are_the_old_experiments_terminal_value_to_the_bit():
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        from _common import terminal_value as experiments_terminal_value
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    income = np.array([3.7e9, -1.2e9, 0.0, 123456.789, 5.5e10])
    for rate, quarters in [(0.10, 40), (0.07, 13)]:
        old = old_terminal_value(income, rate, quarters)
        assert np.array_equal(terminal_value(income, rate, quarters), old)
        assert np.array_equal(experiments_terminal_value(income, rate, quarters), old)


def test_growth_tax_and_exit_multiples():
    income, revenue, rate, quarters = np.array([10.0, -4.0]), np.array([50.0, 30.0]), 0.10, 8
    at_start = 1 / 1.1**2
    grown = terminal_value(income, rate, quarters, ValuationSpec(terminal_growth=0.03, tax_rate=0.25))
    np.testing.assert_allclose(grown, [10 * 0.75 * 1.03 / 0.07 * at_start, 0.0], rtol=1e-12)
    by_income = terminal_value(income, rate, quarters, ValuationSpec(method="exit_multiple", exit_multiple=12.0))
    np.testing.assert_allclose(by_income, [120 * at_start, 0.0], rtol=1e-12)
    spec = ValuationSpec(method="exit_multiple", exit_multiple=3.0, exit_basis="revenue", tax_rate=0.3)
    by_revenue = terminal_value(income, rate, quarters, spec, revenue_last_year=revenue)
    np.testing.assert_allclose(by_revenue, [150 * at_start, 90 * at_start], rtol=1e-12)  # multiples are pre-tax
    assert discount(1.21, 0.10, 8) == 1.21 / 1.1**2


# --- the metrics of a run ----------------------------------------------------------------------
def totals(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Quarters down, providers across, for one provider-total metric."""
    sel = results[(results.metric == metric) & (results.region == "all") & (results["product"] == "all")]
    return sel.pivot(index="quarter", columns="provider", values="value")


@pytest.fixture(scope="module")
def baseline_run() -> tuple[CloudMarket, pd.DataFrame]:
    model = CloudMarket("baseline", rng=4, overrides=dict(SMALL))
    return model, model.run()


def test_value_metrics_are_declared_and_in_every_quarter_for_every_provider(baseline_run):
    model, results = baseline_run
    assert set(VALUE_METRICS) <= set(METRICS)
    for metric in VALUE_METRICS:
        table = totals(results, metric)
        assert list(table.index) == list(range(1, SMALL["quarters"] + 1))
        assert sorted(table.columns) == sorted(model.provider_names)
        assert np.isfinite(table.to_numpy()).all()
    assert (totals(results, "terminal_value").to_numpy() >= 0).all()


def test_default_metrics_are_npv_plus_the_old_terminal_value(baseline_run):
    model, results = baseline_run
    income, npv_ = totals(results, "operating_income"), totals(results, "npv")
    last = SMALL["quarters"]
    year = income.loc[last - 3] + income.loc[last - 2] + income.loc[last - 1] + income.loc[last]  # in order
    old = old_terminal_value(year.to_numpy(), model.config.discount_rate, last)
    assert np.array_equal(totals(results, "terminal_value").loc[last].to_numpy(), old)
    assert np.array_equal(totals(results, "enterprise_value").loc[last].to_numpy(), npv_.loc[last].to_numpy() + old)
    # Early in a run the quarters so far stand for a year.
    first = old_terminal_value(4 * income.loc[1].to_numpy(), model.config.discount_rate, 1)
    np.testing.assert_allclose(totals(results, "terminal_value").loc[1].to_numpy(), first, rtol=1e-12)


def test_after_tax_values_take_the_tax_from_cash_flows_and_leave_every_other_row_alone(baseline_run):
    model, pre_tax = baseline_run
    rate, tax_rate = model.config.discount_rate, 0.25
    taxed_model = CloudMarket("baseline", rng=4, overrides={**SMALL, "valuation.tax_rate": tax_rate})
    taxed = taxed_model.run()
    others = ~pre_tax.metric.isin(VALUE_METRICS)
    pd.testing.assert_frame_equal(
        taxed[~taxed.metric.isin(VALUE_METRICS)].reset_index(drop=True), pre_tax[others].reset_index(drop=True)
    )
    income = totals(pre_tax, "operating_income")
    quarters = income.index.to_numpy()
    tax_paid = (np.maximum(income, 0.0) * tax_rate).div((1 + rate) ** (quarters / 4), axis=0).sum()
    last = int(quarters.max())
    ev = totals(taxed, "enterprise_value").loc[last]
    tv = totals(taxed, "terminal_value").loc[last]
    np.testing.assert_allclose(ev, totals(pre_tax, "npv").loc[last] - tax_paid + tv, rtol=1e-12, atol=1e-3)
    np.testing.assert_allclose(tv, totals(pre_tax, "terminal_value").loc[last] * (1 - tax_rate), rtol=1e-12)


def test_value_metrics_are_in_a_sweeps_metrics(tmp_path):
    from cloudwar.runs.design import plan_design
    from cloudwar.runs.runner import run_design
    from cloudwar.runs.store import read_sweep

    design = plan_design(
        "baseline", ("valuation.terminal_growth",), [(0.0,), (0.04,)], seeds=1, fixed=dict(SMALL), metrics="summary"
    )
    run_design(design, tmp_path / "sweep", workers=1)
    runs, metrics = read_sweep(tmp_path / "sweep")
    assert list(runs.status) == ["ok", "ok"]
    tv = metrics[(metrics.metric == "terminal_value") & (metrics.provider == "Alibaba")]
    assert sorted(tv.quarter.unique()) == list(range(1, SMALL["quarters"] + 1))
    last = tv[tv.quarter == SMALL["quarters"]].merge(runs, on="run").set_index("valuation.terminal_growth")["value"]
    # Same seed, same books: only the growth differs, and a growing perpetuity is worth (1 + g) r / (r - g) more.
    assert last[0.04] == pytest.approx(last[0.0] * 1.04 * 0.10 / 0.06, rel=1e-12)


def test_a_bad_valuation_setting_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "cloudwar.cli", "run", "--set", "valuation.terminal_growth=0.12", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "cloudwar: error: valuation.terminal_growth: must be below discount_rate (0.1) for a growth perpetuity, got 0.12"
    ]
    assert not Path(out).exists()

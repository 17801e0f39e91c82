"""The backtest's machinery: the history scenario, the series mapping, the table's numbers, the figure, the command.

The numbers are checked against an independent computation from the runs' metrics and from
history.csv read with the csv module; no test asserts how well the model replays history except the
slow end-to-end test, loosely (a miss is reported in the table and the README, not tuned away here).
"""

from __future__ import annotations

import csv
import io
import tomllib

import numpy as np
import pandas as pd
import pytest

from cloudwar.cli.main import main
from cloudwar.errors import SweepError
from cloudwar.runs import backtest as bt
from cloudwar.runs.store import read_sweep
from cloudwar.scenario import load_scenario

SMALL = {"enterprises": 600, "oracle_sample": 300}
SEEDS = 3


def history_rows() -> dict[tuple[str, str], tuple[float, str]]:
    """history.csv as {(series, period): (value, confidence)}, read without the module under test."""
    out = {}
    with bt.history_path().open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                out[(row["series"], row["quarter"])] = (float(row["value"]), row["confidence"])
            except ValueError:
                continue
    return out


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A small backtest run serially: (result, the store's metrics, the scenario)."""
    out = tmp_path_factory.mktemp("backtest")
    result = bt.run_backtest("history", SEEDS, out=out, fixed=SMALL, workers=1)
    _, metrics = read_sweep(out / bt.STORE)
    return result, metrics, load_scenario("history", SMALL), out


def per_run(
    metrics: pd.DataFrame, metric: str, provider: str, region: str = "all", product: str = "all"
) -> pd.DataFrame:
    """(run x quarter) of one metric; provider ``all`` sums the providers."""
    sel = metrics[(metrics.metric == metric) & (metrics.region == region) & (metrics["product"] == product)]
    sel = sel[sel.provider != "all"] if provider == "all" else sel[sel.provider == provider]
    return sel.groupby(["run", "quarter"])["value"].sum().unstack("quarter")


def row(table: pd.DataFrame, series: str, period: str) -> pd.Series:
    sel = table[(table.series == series) & (table.quarter == period)]
    assert len(sel) == 1, f"{series} {period}: {len(sel)} rows"
    return sel.iloc[0]


def check_row(r: pd.Series, model: np.ndarray, actual: float) -> None:
    p10, p50, p90 = np.percentile(model, [10, 50, 90])
    assert r["median"] == pytest.approx(p50, rel=1e-12)
    assert r["p10"] == pytest.approx(p10, rel=1e-12)
    assert r["p90"] == pytest.approx(p90, rel=1e-12)
    assert r["actual"] == actual
    assert r["error"] == pytest.approx(p50 - actual, rel=1e-12)
    assert bool(r["within_band"]) == (p10 <= actual <= p90)
    assert r["runs"] == len(model)


# --- the scenario ---------------------------------------------------------------------------
def test_history_scenario_starts_in_2023q3_extends_baseline_and_covers_the_history():
    s = load_scenario("history")
    assert (s.start, s.quarters) == ("2023Q3", 9)  # 2023Q3 .. 2025Q3
    text = (bt.history_path().parent / "history.toml").read_text(encoding="utf-8")
    assert tomllib.loads(text)["extends"] == "baseline"
    base = load_scenario("baseline")
    # One calibration of behaviour: what history does not override is the baseline's.
    assert s.enterprise == base.enterprise and s.choice == base.choice and s.network == base.network


def test_every_mapped_series_is_in_history_csv_and_names_model_providers():
    names = {series for series, _ in history_rows()} | {"tencent_business_services_yoy_pct"}
    providers = set(load_scenario("history").provider_names) | {bt.MARKET}
    for s in bt.SERIES:
        assert s.name in names, s.name
        assert set(s.provider.split("+")) <= providers, s.provider
        assert s.transform in bt.TRANSFORMS
        assert s.base is None or s.transform == "yoy"
    assert set(bt.HEADLINE) <= {s.name for s in bt.SERIES}


def test_periods():
    assert bt.period_quarters("2025H1") == ["2025Q1", "2025Q2"]
    assert bt.period_quarters("2024FY") == ["2024Q1", "2024Q2", "2024Q3", "2024Q4"]
    assert bt.period_quarters("2024Q3") == ["2024Q3"]
    with pytest.raises(SweepError, match="unknown period"):
        bt.period_quarters("2024M3")


# --- the table's numbers ----------------------------------------------------------------------
def test_table_holds_the_quantiles_of_the_runs_and_history_csv_actuals(done):
    result, metrics, scenario, _ = done
    table, actual = result.table, history_rows()
    assert list(table.columns) == list(bt.TABLE_COLUMNS)
    # Every actual of the table is history.csv's, with its confidence; every period is in the run.
    covered = set(bt.model_periods(scenario.start, scenario.quarters))
    for r in table.itertuples():
        assert (r.actual, r.confidence) == actual[(r.series, r.quarter)]
        assert set(bt.period_quarters(r.quarter)) <= covered
    # A margin (AWS, 2024Q3 = quarter 5): operating income / revenue of each run.
    income, revenue = per_run(metrics, "operating_income", "AWS"), per_run(metrics, "revenue", "AWS")
    check_row(row(table, "aws_operating_margin_pct", "2024Q3"), 100 * (income[5] / revenue[5]).to_numpy(),
              actual[("aws_operating_margin_pct", "2024Q3")][0])  # fmt: skip
    # A level in RMB (Alibaba, 2025Q3 = quarter 9).
    rmb = per_run(metrics, "revenue", "Alibaba")[9].to_numpy() * scenario.rmb_per_usd / 1e9
    check_row(
        row(table, "alibaba_cloud_revenue_rmb_bn", "2025Q3"), rmb, actual[("alibaba_cloud_revenue_rmb_bn", "2025Q3")][0]
    )
    # The market over a year (2024FY = quarters 3-6), summed over providers.
    world = per_run(metrics, "revenue", "all")[[3, 4, 5, 6]].sum(axis=1).to_numpy() / 1e9
    check_row(row(table, "synergy_global_cloud_market_usd_bn", "2024FY"), world,
              actual[("synergy_global_cloud_market_usd_bn", "2024FY")][0])  # fmt: skip
    # Growth on the model's own year before (2025Q2 = quarter 8 against quarter 4).
    aws = per_run(metrics, "revenue", "AWS")
    check_row(row(table, "aws_net_sales_yoy_pct", "2025Q2"), 100 * (aws[8] / aws[4] - 1).to_numpy(),
              actual[("aws_net_sales_yoy_pct", "2025Q2")][0])  # fmt: skip


def test_growth_before_the_fifth_quarter_uses_history_csv_levels_of_the_year_before(done):
    result, metrics, _, _ = done
    actual = history_rows()
    ali = per_run(metrics, "revenue", "Alibaba")
    # 2024Q1 is quarter 3: actual 2023Q3 level x model growth since quarter 1, against the actual 2023Q1 level.
    start = actual[("alibaba_cloud_revenue_rmb_bn", "2023Q3")][0]
    before = actual[("alibaba_cloud_revenue_rmb_bn", "2023Q1")][0]
    model = 100 * (start * (ali[3] / ali[1]) / before - 1).to_numpy()
    check_row(
        row(result.table, "alibaba_cloud_revenue_yoy_pct", "2024Q1"),
        model,
        actual[("alibaba_cloud_revenue_yoy_pct", "2024Q1")][0],
    )
    # Without a base level (Microsoft) nothing before the fifth quarter is compared; quarter 1 never is.
    assert result.table[result.table.series == "azure_revenue_growth_yoy_pct"].quarter.min() == "2024Q3"
    growth = result.table[result.table.series.str.endswith("_yoy_pct")]
    assert "2023Q3" not in set(growth.quarter)


def test_half_year_shares_are_revenue_over_the_half(done):
    result, metrics, _, _ = done
    own = per_run(metrics, "revenue", "Alibaba", "china", "ai")[[7, 8]].sum(axis=1)  # 2025Q1, 2025Q2
    market = per_run(metrics, "revenue", "all", "china", "ai")[[7, 8]].sum(axis=1)
    check_row(row(result.table, "omdia_china_ai_cloud_share_alibaba_pct", "2025H1"), 100 * (own / market).to_numpy(),
              history_rows()[("omdia_china_ai_cloud_share_alibaba_pct", "2025H1")][0])  # fmt: skip


def test_summary_and_share_order_follow_the_table(done):
    result, *_ = done
    table = result.table
    for s in result.summary.itertuples():
        rows = table[table.series == s.series]
        assert s.points == len(rows)
        assert s.within_band == int(rows.within_band.sum())
        assert s.max_abs_error == pytest.approx(rows.error.abs().max())
    for o in result.order.itertuples():
        rows = table[(table.quarter == o.quarter) & table.series.isin(bt.ORDER_SERIES)].set_index("series")
        by_actual = rows.actual.sort_values(ascending=False).index
        ranks = rows["median"].rank(ascending=False)
        ties = rows.actual.duplicated(keep=False).any()
        if not ties:
            assert o.order_kept == (list(ranks[by_actual]) == sorted(ranks))


def test_the_figure_has_the_actual_points_on_a_calendar_axis(done):
    result, *_ = done
    fig = result.figure(bt.HEADLINE)
    axes = [ax for ax in fig.axes if ax.get_title()]
    labels = {s.name: s.label for s in bt.SERIES}
    assert [ax.get_title() for ax in axes] == [labels[n] for n in bt.HEADLINE]
    for name, ax in zip(bt.HEADLINE, axes, strict=True):
        points = [line for line in ax.get_lines() if line.get_gid() == "actual"]
        assert len(points) == 1
        rows = result.table[result.table.series == name]
        quarterly = rows[rows.quarter.str.fullmatch(r"\d{4}Q[1-4]")]
        expected = quarterly if len(quarterly) else rows
        assert list(points[0].get_ydata()) == list(expected.actual)
        assert list(points[0].get_xdata()) == [bt.period_position(q) for q in expected.quarter]
        assert ax.get_xticklabels()[0].get_text() == "2023Q3"


# --- the command --------------------------------------------------------------------------------
def test_cloudwar_backtest_writes_its_files_and_resumes(done, tmp_path, capsys):
    result, *_ = done
    out = tmp_path / "bt"
    args = ["backtest", "--seeds", str(SEEDS), "--workers", "2", "--out", str(out)]
    args += [f"--set={k}={v}" for k, v in SMALL.items()]
    assert main(args) == 0
    for name in ("backtest.csv", "summary.csv", "share_order.csv", "backtest.png", "backtest_all.png"):
        assert (out / name).stat().st_size > 0
    # A pool of two workers gives the table of the serial runs, bit for bit (as written to CSV).
    expected = pd.read_csv(io.StringIO(result.table.to_csv(index=False)))
    pd.testing.assert_frame_equal(pd.read_csv(out / "backtest.csv"), expected)
    capsys.readouterr()
    assert main(args) == 0
    assert f"all {SEEDS} runs were already done" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seeds", "0"], "--seeds: must be at least 1"),
        (["--set", "bogus=1"], "unknown key 'bogus'"),
        (["--history", "/nonexistent/history.csv"], "history /nonexistent/history.csv: cannot be read"),
        (["--scenario", "nope"], "unknown scenario 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(extra, message, tmp_path, capsys):
    out = tmp_path / "bt"
    assert main(["backtest", "--workers", "1", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cloudwar: error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


# --- end to end, at the scenario's own size -----------------------------------------------------
@pytest.mark.slow
def test_the_history_scenario_replays_loosely(tmp_path):
    """The honest state, loosely: the world share order is mostly kept and AWS's margin is in its
    neighbourhood. The README and backtest.csv say exactly how close; this only catches a broken model."""
    result = bt.run_backtest("history", 6, out=tmp_path, workers=2)
    assert result.order.order_kept.mean() >= 0.5
    aws = result.summary.set_index("series").loc["aws_operating_margin_pct"]
    assert aws.max_abs_error < 15
    assert len(result.table) > 100

"""One set of chart panels (cloudwar.plots): ``cloudwar run``'s figure and the dashboard's charts draw the
same series through the same panel functions, in the same colours, with units in their labels."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from cloudwar import plots
from cloudwar.dashboard.charts import CHARTS, draw_cash_flow, draw_margins, draw_prices, draw_shares, draw_utilisation
from cloudwar.dashboard.session import MarketSession
from cloudwar.dashboard.summary import summary_html, summary_table
from cloudwar.model.market import CloudMarket
from cloudwar.results import ALL, metric_table, plot_results
from cloudwar.results import summary_table as results_summary
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def session() -> MarketSession:
    s = MarketSession(enterprises=1000)
    for _ in range(4):
        s.step()
    assert s.error is None and s.quarter == 4
    return s


@pytest.fixture(scope="module")
def composed(session) -> Figure:
    return plots.figure(session.results(), title="test")


def panel(fig: Figure, title: str):
    (ax,) = [ax for ax in fig.axes if ax.get_title() == title]
    return ax


def series(ax) -> dict[str, tuple[np.ndarray, np.ndarray, tuple]]:
    """Each provider's line on ``ax``: x, y and colour (lines of markers such as the 30% line left out)."""
    return {
        line.get_label(): (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float), line.get_color())
        for line in ax.get_lines()
        if not line.get_label().startswith("_") and "%" not in line.get_label()
    }


def assert_same_series(a, b) -> None:
    sa, sb = series(a), series(b)
    assert sa.keys() == sb.keys() and len(sa) >= 2
    for name in sa:
        np.testing.assert_array_equal(sa[name][0], sb[name][0])
        np.testing.assert_array_equal(sa[name][1], sb[name][1])
        assert sa[name][2] == sb[name][2], name


@pytest.mark.parametrize(
    ("title", "draw"),
    [
        ("China AI: revenue share", lambda s: draw_shares(s, index=0)),
        ("rest of world cloud: revenue share", lambda s: draw_shares(s, index=1)),
        ("operating margin, all products and regions", draw_margins),
        ("cumulative free cash flow", draw_cash_flow),
        ("capacity utilisation, all regions", draw_utilisation),
    ],
)
def test_run_figure_and_dashboard_chart_draw_the_same_series(session, composed, title, draw):
    dashboard = draw(session)
    assert_same_series(panel(composed, title), panel(dashboard, title))
    assert panel(composed, title).get_ylabel() == panel(dashboard, title).get_ylabel()


def test_share_lines_are_the_tidy_tables_values(session, composed):
    assert plots.ALL == ALL  # plots reads the tidy table by its labels (it imports nothing from cloudwar)
    wide = metric_table(session.results(), "revenue_share", "china", "ai")
    lines = series(panel(composed, "China AI: revenue share"))
    for name, (x, y, _) in lines.items():
        np.testing.assert_array_equal(x, wide.index.to_numpy())
        np.testing.assert_allclose(y, 100 * wide[name].to_numpy())
    # A provider with no share of the market draws no line (a flat line at 0 hides the others' key).
    absent = [p for p in wide if not (wide[p] > 0).any()]
    assert not set(absent) & set(lines)
    assert set(lines) == {p for p in wide if (wide[p] > 0).any()}


def test_every_panel_labels_its_unit(composed):
    units = {ax.get_title(): ax.get_ylabel() for ax in composed.axes if ax.get_title()}
    assert len(units) == 6 + 3  # six (region, product) markets, margin, cash flow, utilisation
    for title, ylabel in units.items():
        assert "(%)" in ylabel or ylabel.startswith("USD"), (title, ylabel)
    assert units["cumulative free cash flow"] == "USD bn"
    assert all(ax.get_xlabel() == "quarter" for ax in composed.axes if ax.get_title())


def test_price_panel_labels_the_products_unit_and_draws_only_present_providers(session):
    ax = Figure().add_subplot()
    results = session.results()
    plots.price_panel(ax, results, "china", "ai", unit="million input tokens", only=["Alibaba", "Tencent"])
    assert ax.get_ylabel() == "USD per million input tokens"
    assert set(series(ax)) == {"Alibaba", "Tencent"}
    dashboard = CHARTS["prices-1"](session).axes[0]
    assert dashboard.get_ylabel().startswith("USD per ")
    assert "AWS" in series(dashboard)  # present in China
    np.testing.assert_array_equal(series(dashboard)["Alibaba"][1], series(ax)["Alibaba"][1])


def test_plot_results_writes_the_composed_figure(session, tmp_path):
    results = session.results()
    path = plot_results(results, tmp_path / "figure.png", title="same")
    buffer = io.BytesIO()
    plots.figure(results, title="same").savefig(buffer, dpi=plots.FIGURE_DPI)
    assert path.read_bytes() == buffer.getvalue()


def test_figure_has_one_key_of_every_provider_drawn_and_the_margin_line(session, composed):
    (legend,) = composed.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == [*session.market.provider_names, "30% (AWS model)"]


def test_colours_are_the_same_in_the_figure_the_charts_and_the_summary_key(session, composed):
    from matplotlib.colors import to_hex

    colours = plots.provider_colours(session.market.provider_names)
    drawn = {
        **series(panel(composed, "world cloud: revenue share")),
        **series(panel(composed, "China AI: revenue share")),
    }
    assert {name: line[2] for name, line in drawn.items()} == {name: colours[name] for name in drawn}
    html = summary_html(session)
    for name in session.market.provider_names:
        assert f'background:{to_hex(colours[name])}"></span>{name}<' in html


def test_margin_panel_keeps_the_30_percent_line_in_view_and_a_collapse_off_the_scale(session):
    results = session.results().copy()
    ax = plots.margin_panel(Figure().add_subplot(), results)
    # dotted: dashed lines are a pinned run's
    assert any(np.allclose(line.get_ydata(), 30) for line in ax.get_lines() if line.get_linestyle() == ":")
    low, high = ax.get_ylim()
    assert low < 30 < high
    # A fringe player's margin collapsing to -5000% must not squash everyone else to a flat line.
    rows = (results.metric == "operating_margin") & (results.provider == "Baidu") & (results.region == ALL)
    results.loc[rows & (results["product"] == ALL), "value"] = -50.0
    low, _ = plots.margin_panel(Figure().add_subplot(), results).get_ylim()
    assert low == -100


def test_theory_case_panels_use_plain_usd_and_say_capacity_is_unlimited():
    model = CloudMarket("calvano_duopoly", rng=0, overrides={"enterprises": 500, "quarters": 3})
    results = model.run()
    fig = plots.figure(results)
    assert panel(fig, "cumulative free cash flow").get_ylabel() == "USD"
    wide = metric_table(results, "cumulative_free_cash_flow")
    line = series(panel(fig, "cumulative free cash flow"))[wide.columns[0]]
    np.testing.assert_allclose(line[1], wide[wide.columns[0]].to_numpy())  # not scaled to bn
    texts = [t.get_text() for t in panel(fig, "capacity utilisation, all regions").texts]
    assert texts == ["capacity is unlimited in this scenario"]


def test_band_draws_the_median_and_the_10_to_90_percent_range():
    rng = np.random.default_rng(0)
    wide = pd.DataFrame(rng.normal(size=(50, 6)), columns=range(1, 7))  # 50 runs, 6 quarters
    ax = Figure().add_subplot()
    plots.band(ax, wide, "arm", "tab:blue", scale=100)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), 100 * np.median(wide.to_numpy(), axis=0))
    (area,) = ax.collections
    ys = area.get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose(ys.max(), 100 * np.percentile(wide.to_numpy(), 90, axis=0).max())
    np.testing.assert_allclose(ys.min(), 100 * np.percentile(wide.to_numpy(), 10, axis=0).min())


def test_experiments_band_is_plots_band():
    code = "import sys; sys.path.insert(0, 'experiments'); import _common, cloudwar.plots; print(_common.band is cloudwar.plots.band)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "True"


def test_dashboard_summary_is_the_results_summary(session):
    table = summary_table(session)
    full = results_summary(session.results())
    pd.testing.assert_series_equal(
        table["China AI share"], full["ai share china"].rename("China AI share"), check_names=False
    )
    pd.testing.assert_series_equal(table["operating margin"], full["operating margin"])
    pd.testing.assert_series_equal(table["cum. FCF (USD bn)"], full["cum. FCF (USD bn)"])


# --------------------------------------------------------------------------------------------
# Calendar axes, legends, log prices, labels, pinned runs
# --------------------------------------------------------------------------------------------
def tick_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def test_calendar_ticks_fall_on_quarters_and_first_quarters_of_years():
    assert plots.calendar_ticks("2025Q4", 1, 3) == ([1, 2, 3], ["2025Q4", "2026Q1", "2026Q2"])
    ticks, labels = plots.calendar_ticks("2025Q4", 1, 40)  # ten years: a Q1 every two years
    assert labels == ["2026Q1", "2028Q1", "2030Q1", "2032Q1", "2034Q1"] and ticks[0] == 2
    assert plots.calendar_ticks("2025Q4", 1, 12)[1] == ["2025Q4", "2026Q2", "2026Q4", "2027Q2", "2027Q4", "2028Q2"]


def test_run_figure_and_dashboard_charts_read_in_calendar_quarters(session, tmp_path):
    results = session.results()
    assert results.attrs["start"] == "2025Q4"  # tidy_results carries the calendar
    fig = plots.figure(results)  # as cloudwar run's plot_results draws it
    for ax in [ax for ax in fig.axes if ax.get_title()]:
        assert tick_labels(ax) == ["2025Q4", "2026Q1", "2026Q2", "2026Q3"], ax.get_title()
    for name in ("shares-1", "margins", "prices-1", "cash-flow"):
        assert tick_labels(CHARTS[name](session, None).axes[0])[-1] == "2026Q3"
    plain = results.copy()
    plain.attrs = {}
    assert tick_labels(plots.figure(plain).axes[0])[0] != "2025Q4"  # no calendar: model steps


def test_rest_of_world_is_not_called_global():
    assert plots.market_label("global", "cloud") == "rest of world cloud"
    assert plots.market_label("all", "cloud") == "world cloud"
    assert plots.market_label("china", "ai") == "China AI"


def test_every_dashboard_chart_has_its_own_legend(session):
    for name, draw in CHARTS.items():
        ax = draw(session, None).axes[0]
        legend = ax.get_legend()
        assert legend is not None, name
        labels = [t.get_text() for t in legend.get_texts()]
        if name != "network":
            assert set(series(ax)) <= set(labels), name
    network = [t.get_text() for t in CHARTS["network"](session, None).axes[0].get_legend().get_texts()]
    assert network[-2:] == ["none yet", "link (neighbours)"] and "Alibaba" in network


def test_prices_that_span_orders_of_magnitude_are_on_a_log_scale(session):
    china_ai = draw_prices(session, index=0).axes[0]
    rest_cloud = draw_prices(session, index=1).axes[0]
    assert china_ai.get_yscale() == "log" and china_ai.get_ylabel().endswith("(log scale)")
    assert rest_cloud.get_yscale() == "linear"
    prices = np.concatenate([y for _, y, _ in series(china_ai).values()])
    assert prices.max() / prices.min() >= plots.LOG_PRICE_SPAN
    low, high = china_ai.get_ylim()
    assert low <= prices.min() and high >= prices.max()


def test_a_pinned_run_is_drawn_dashed_in_the_same_colours(session):
    before = MarketSession(enterprises=1000, seed="5")
    for _ in range(6):
        before.step()
    pinned = before.pin()
    ax = draw_shares(session, pinned, index=0).axes[0]
    dashed = {line.get_label(): line for line in ax.get_lines() if line.get_linestyle() == "--"}
    solid = series(ax)
    wide = metric_table(pinned.results, "revenue_share", "china", "ai")
    drawn = {p for p in wide if (wide[p] > 0).any()}  # the pinned run's own providers with a share
    assert dashed.keys() == {f"_{name} (pinned)" for name in drawn} and set(solid) <= drawn
    colours = plots.provider_colours(session.market.provider_names)
    for name in drawn:
        line = dashed[f"_{name} (pinned)"]
        assert line.get_color() == colours[name]
        np.testing.assert_allclose(line.get_ydata(), 100 * wide[name].to_numpy())
    assert tick_labels(ax)[-1] == "2027Q1"  # the axis spans the longer (pinned) run
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[-2:] == [plots.NOW_LABEL, plots.BEFORE_LABEL]

"""What happened, on the dashboard's charts: the points of history.csv on the model's lines.

For the ``history`` preset (2023Q3 on), :func:`overlay_history` (one of
:data:`cloudwar.dashboard.charts.OVERLAYS`) draws the actual values of history.csv where a chart
shows the same quantity as a series, as the backtest maps them (:data:`cloudwar.runs.backtest.SERIES`):

* a revenue-share chart of the (region, product) market: the ``share`` series of one provider in
  that market (e.g. Omdia's China AI shares);
* the operating-margin chart (all products and regions): the ``margin`` series (Alibaba's adjusted
  EBITA margin, AWS's and Google Cloud's operating margins).

Growth and level series have no chart of their own on the page, so they are not drawn. A point
sits at its period's quarters' mean (a half year between its two quarters), in the provider's
colour with a dark edge, once the run has reached all of its quarters; the legend names them
"actual (history.csv)". Nothing here imports Solara.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from cloudwar import quarters
from cloudwar.dashboard import charts
from cloudwar.dashboard.session import MarketSession
from cloudwar.runs.backtest import MARKET, SERIES, period_position, period_quarters, read_history

HISTORY_PRESET = "history"  #: the preset whose charts get the actual points
ACTUAL_LABEL = "actual (history.csv)"
ALL = "all"  # the tidy table's region/product of "all regions"/"all products"
MARKER = {"marker": "D", "s": 26, "edgecolors": "black", "linewidths": 0.8, "zorder": 4}


@functools.lru_cache(maxsize=1)
def actual_points() -> pd.DataFrame:
    """history.csv's share and margin series of one provider, with the backtest's mapping: one row
    per (series, period) with a number: series, period, value (%), transform, provider, region, product."""
    mapping = pd.DataFrame(
        [
            (s.name, s.transform, s.provider, s.region, s.product)
            for s in SERIES
            if s.transform in ("share", "margin") and s.provider != MARKET and "+" not in s.provider
        ],
        columns=["series", "transform", "provider", "region", "product"],
    )
    history = read_history().rename(columns={"quarter": "period"})
    points = history[history["value"].notna()].merge(mapping, on="series")
    return points[["series", "period", "value", "transform", "provider", "region", "product"]]


def chart_quantity(name: str, session: MarketSession) -> tuple[str, str, str] | None:
    """(transform, region, product) of the history series chart ``name`` shows, or None."""
    if name.startswith("shares-"):
        markets = charts.chart_markets(session.market.config)
        index = int(name.removeprefix("shares-")) - 1
        return ("share", *markets[index]) if index < len(markets) else None
    if name == "margins":
        return ("margin", ALL, ALL)
    return None


def chart_points(name: str, session: MarketSession) -> pd.DataFrame:
    """The actual points chart ``name`` of ``session`` gets (empty unless the history preset):
    provider, period, step (model quarter, fractional for a half year), value (%)."""
    empty = pd.DataFrame(columns=["provider", "period", "step", "value"])
    if session.market is None or session.controls is None or session.controls.preset != HISTORY_PRESET:
        return empty
    quantity = chart_quantity(name, session)
    if quantity is None:
        return empty
    points = actual_points()
    transform, region, product = quantity
    points = points[(points["transform"] == transform) & (points["region"] == region) & (points["product"] == product)]
    points = points[points["provider"].isin(session.market.provider_names)]
    start = session.market.config.start

    def reached(period: str) -> bool:  # every quarter of the period run (and none before the start)
        steps = [quarters.index(q) - quarters.index(start) + 1 for q in period_quarters(period)]
        return min(steps) >= 1 and max(steps) <= session.quarter

    points = points.loc[np.array([reached(p) for p in points["period"]], dtype=bool)]
    steps = points["period"].map(lambda p: period_position(p) - quarters.index(start) + 1)
    return pd.DataFrame(
        {
            "provider": points["provider"],
            "period": points["period"],
            "step": steps.astype(float),
            "value": points["value"],
        }
    ).reset_index(drop=True)


def overlay_history(name: str, ax: Any, session: MarketSession) -> None:
    """Draw chart ``name``'s actual points (:func:`chart_points`) in the providers' colours, and one
    legend entry for them."""
    points = chart_points(name, session)
    if points.empty:
        return
    colours = charts.session_colours(session)
    for provider, group in points.groupby("provider", sort=False):
        ax.scatter(group["step"], group["value"], color=colours[provider], label=f"_{provider} actual", **MARKER)
    ax.scatter([], [], color="0.6", label=ACTUAL_LABEL, **MARKER)


charts.OVERLAYS.append(overlay_history)

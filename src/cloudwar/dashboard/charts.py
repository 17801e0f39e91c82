"""The dashboard's charts: one matplotlib figure per tile, drawn through :mod:`cloudwar.plots`' panels.

Each ``draw_*`` function takes a :class:`~cloudwar.dashboard.session.MarketSession` and, to
compare, a :class:`~cloudwar.dashboard.session.PinnedRun` (drawn dashed), and returns a
:class:`~matplotlib.figure.Figure` sized for a half-width tile, with its own legend and its x
axis in calendar quarters; :data:`CHARTS` names them for the page. The share, price, margin,
utilisation and cash-flow charts are the panels of ``cloudwar run``'s figure
(:func:`cloudwar.plots.figure`), drawn from the same tidy table with the same colours; the
network view is the dashboard's own. :func:`charts_png` tiles them into one PNG (the page's
figure download). Nothing here imports Solara.

Hook: :data:`OVERLAYS` are called on every drawn chart after its panel, as
``overlay(name, ax, session)``, before the legend: the place to add marks to the charts, e.g. the
observed history points of :mod:`cloudwar.dashboard.history`.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cloudwar import plots
from cloudwar.dashboard.session import MarketSession, PinnedRun
from cloudwar.scenario import Scenario

# Markets the share and price charts show, when the preset has them (else its first two).
PREFERRED_MARKETS = (("china", "ai"), ("global", "cloud"))
NO_PROVIDER_COLOUR = (0.85, 0.85, 0.85, 1.0)  # network view: not buying the product (yet)
NO_MODEL = "no model: see the message in the summary"

#: Marks added to the charts after their panels: ``overlay(name, ax, session)`` (see module docstring).
OVERLAYS: list[Callable[[str, Any, MarketSession], None]] = []


def chart_markets(config: Scenario) -> list[tuple[str, str]]:
    """(region, product) markets for the share and price charts: China AI and global cloud if present."""
    markets = [(r, p) for r, p in PREFERRED_MARKETS if r in config.regions and p in config.products]
    if not markets:
        markets = [(r, p) for p in config.products for r in config.regions][:2]
    return markets


def short_unit(unit: str) -> str:
    """'compute unit (CU): USD 1 of ...' -> 'compute unit'."""
    return unit.split(":")[0].split("(")[0].strip() or "unit"


def session_colours(session: MarketSession) -> dict[str, Any]:
    """The colour of each provider of the session's model: in every chart and the summary's key."""
    return plots.provider_colours(session.market.provider_names if session.market is not None else [])


def _figure() -> tuple[Figure, Any]:
    # Sized for a half-width tile, room on the right for the legend, and a fixed layout
    # (constrained layout would double the drawing time).
    fig = Figure(figsize=(6.6, 3.7))
    fig.subplots_adjust(left=0.11, right=0.74, bottom=0.13, top=0.91)
    return fig, fig.add_subplot()


def _finish(name: str, ax: Any, session: MarketSession, pinned: PinnedRun | None) -> None:
    """A drawn chart's scenario events (dotted lines, named on the share charts), the overlays and
    its legend (fixed place: "best" would cost a search per chart)."""
    if session.market is not None:
        events = [(e.step, e.name) for e in session.market.events]
        plots.mark_events(ax, events, named=name.startswith("shares"))
    for overlay in OVERLAYS:  # before the legend: what they draw with a label gets a key entry
        overlay(name, ax, session)
    plots.legend(ax, compared=pinned is not None)


def _start(session: MarketSession) -> str | None:
    return session.market.config.start if session.market is not None else None


def _before(pinned: PinnedRun | None) -> pd.DataFrame | None:
    return None if pinned is None else pinned.results


def _results_or_note(session: MarketSession, ax: Any, title: str) -> pd.DataFrame | None:
    """The results to draw, or None after titling ``ax`` and writing on it why there are none yet."""
    if session.market is None or session.quarter == 0:
        ax.set_title(title, fontsize=plots.TITLE_SIZE)
        plots.note(ax, NO_MODEL if session.market is None else "quarter 0: press Step or \u25b6 to run")
        return None
    return session.results()


def _market_chart(
    name: str,
    session: MarketSession,
    index: int,
    what: str,
    panel: Callable[[Any, pd.DataFrame, str, str], Any],
    pinned: PinnedRun | None,
) -> Figure:
    """The index-th charted market's chart ``what`` ('revenue share', 'price'), drawn by ``panel``."""
    fig, ax = _figure()
    markets = chart_markets(session.market.config) if session.market is not None else []
    if index >= len(markets):
        ax.set_title(what, fontsize=plots.TITLE_SIZE)
        plots.note(ax, "this preset has no second market" if session.market else NO_MODEL)
        return fig
    region, product = markets[index]
    results = _results_or_note(session, ax, f"{plots.market_label(region, product)}: {what}")
    if results is not None:
        panel(ax, results, region, product)
        _finish(name, ax, session, pinned)
    return fig


def draw_shares(session: MarketSession, pinned: PinnedRun | None = None, index: int = 0) -> Figure:
    """Revenue share by provider in the index-th charted market (China AI, rest-of-world cloud), %."""

    def panel(ax: Any, results: pd.DataFrame, region: str, product: str) -> None:
        colours = session_colours(session)
        plots.share_panel(ax, results, region, product, colours, start=_start(session), before=_before(pinned))

    return _market_chart(f"shares-{index + 1}", session, index, "revenue share", panel, pinned)


def draw_prices(session: MarketSession, pinned: PinnedRun | None = None, index: int = 0) -> Figure:
    """Prices by provider in the index-th charted market, USD per unit of the product (log scale
    when they span an order of magnitude); only the providers present in the region."""

    def panel(ax: Any, results: pd.DataFrame, region: str, product: str) -> None:
        market = session.market
        r = market.region_names.index(region)
        present = [p.name for p in market.providers_list if p.presence[r] > 0]
        unit = short_unit(market.config.products[product].unit)
        colours = session_colours(session)
        plots.price_panel(
            ax, results, region, product, unit, colours, only=present, start=_start(session), before=_before(pinned)
        )

    return _market_chart(f"prices-{index + 1}", session, index, "price", panel, pinned)


def _whole_market_chart(
    name: str, session: MarketSession, pinned: PinnedRun | None, title: str, panel: Callable[..., Any]
) -> Figure:
    fig, ax = _figure()
    results = _results_or_note(session, ax, title)
    if results is not None:
        panel(ax, results, session_colours(session), start=_start(session), before=_before(pinned))
        _finish(name, ax, session, pinned)
    return fig


def draw_margins(session: MarketSession, pinned: PinnedRun | None = None) -> Figure:
    """Operating margin by provider, all products and regions (%), with the 30% line."""
    title = "operating margin, all products and regions"
    return _whole_market_chart("margins", session, pinned, title, plots.margin_panel)


def draw_utilisation(session: MarketSession, pinned: PinnedRun | None = None) -> Figure:
    """Capacity utilisation by provider, all regions (%)."""
    title = "capacity utilisation, all regions"
    return _whole_market_chart("utilisation", session, pinned, title, plots.utilisation_panel)


def draw_cash_flow(session: MarketSession, pinned: PinnedRun | None = None) -> Figure:
    """Cumulative free cash flow by provider (USD bn; plain USD for a small theory market)."""
    return _whole_market_chart("cash-flow", session, pinned, "cumulative free cash flow", plots.cash_flow_panel)


def draw_network(session: MarketSession, pinned: PinnedRun | None = None) -> Figure:
    """A sample of the enterprise network, each enterprise coloured by its AI provider (this run's
    only: a network has no line to draw dashed); the legend names the colours."""
    market = session.market
    fig, ax = _figure()
    if market is None:
        ax.set_title("enterprise network", fontsize=plots.TITLE_SIZE)
        plots.note(ax, NO_MODEL)
        return fig
    product = "ai" if "ai" in market.product_names else market.product_names[0]
    label = plots.market_label("", product)
    view = session.network_view
    ax.set_title(
        f"{len(view.nodes)} of {market.population.n:,} enterprises, {view.links_in_sample:,} links;\n"
        "colour: its provider (see the key)",
        fontsize=10,
    )
    fig.subplots_adjust(top=0.87)  # two-line title
    ax.set_axis_off()
    providers = market.population.provider[market.product_names.index(product), view.nodes].astype(int)
    colours = session_colours(session)
    palette = np.array([colours[n] for n in market.provider_names] + [NO_PROVIDER_COLOUR])
    ax.add_collection(LineCollection(view.segments, colors="0.75", linewidths=0.4, zorder=1))
    ax.scatter(*view.positions.T, s=14, c=palette[providers], edgecolors="0.3", linewidths=0.3, zorder=2)
    ax.autoscale()
    # The key: every provider with an enterprise in the sample, then "none", then the links.
    drawn = set(providers.tolist())
    names = [*market.provider_names, "none yet"]
    handles = [
        Line2D([], [], linestyle="", marker="o", markersize=6, color=palette[i], markeredgecolor="0.3", label=name)
        for i, name in enumerate(names)
        if i in drawn
    ]
    handles.append(Line2D([], [], color="0.75", linewidth=1, label="link (neighbours)"))
    plots.legend(ax, handles=handles, title=f"{label} provider", title_fontsize=8)
    for overlay in OVERLAYS:
        overlay("network", ax, session)
    return fig


CHARTS: dict[str, Callable[[MarketSession, PinnedRun | None], Figure]] = {
    "shares-1": functools.partial(draw_shares, index=0),
    "shares-2": functools.partial(draw_shares, index=1),
    "margins": draw_margins,
    "network": draw_network,
    "prices-1": functools.partial(draw_prices, index=0),
    "prices-2": functools.partial(draw_prices, index=1),
    "utilisation": draw_utilisation,
    "cash-flow": draw_cash_flow,
}


def charts_png(session: MarketSession, pinned: PinnedRun | None = None, columns: int = 2) -> bytes:
    """Every chart of the page, as shown (pinned run dashed), tiled ``columns`` a row into one PNG."""
    from PIL import Image

    tiles = [Image.open(io.BytesIO(session.chart_png(name, draw, pinned))) for name, draw in CHARTS.items()]
    width, height = max(t.width for t in tiles), max(t.height for t in tiles)
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * width, rows * height), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * width, (i // columns) * height))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()

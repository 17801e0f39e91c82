"""Chart panels drawn from the tidy results table, one set for every figure of the project.

Each panel function draws one chart onto a matplotlib ``Axes`` from the tidy table of
:func:`cloudwar.results.tidy_results` (columns ``quarter, provider, region, product, metric,
value``) and labels its units:

==========================  ==================================================================
panel                       what, in which unit
==========================  ==================================================================
:func:`share_panel`         revenue share of each provider in one (region, product) market, %
:func:`price_panel`         price of each provider in one market, USD per unit of the product
:func:`margin_panel`        operating margin, all products and regions, %, with the 30% line
:func:`cash_flow_panel`     cumulative free cash flow, USD bn (plain USD for a small market)
:func:`utilisation_panel`   capacity utilisation, all regions, %
:func:`band`                median and 10-90% band of many runs (ensembles of seeds)
==========================  ==================================================================

A provider has the same colour in every panel (:func:`provider_colours`, in the table's provider
order, which is the scenario's). :func:`figure` composes the panels into the figure that
``cloudwar run`` writes (:func:`cloudwar.results.plot_results`); the dashboard draws each of its
charts through the same panel functions.

This module imports nothing from ``cloudwar`` (it reads the table by its column names), so
:mod:`cloudwar.results` can call it without an import cycle. No pyplot: figures are plain
:class:`~matplotlib.figure.Figure` objects, safe to draw from several threads (the dashboard
does). matplotlib itself is imported when something is drawn, so importing this module (as
experiments/_common does, in every worker process) costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The tidy table's label of an aggregate (``cloudwar.results.ALL``): all providers, regions or products.
ALL = "all"
#: facts.md: AWS and Azure run operating margins above 30%, the "AWS model".
AWS_MARGIN = 0.30
#: dpi of :func:`figure` when saved (``cloudwar run``'s shares_and_margins.png).
FIGURE_DPI = 110
LINE_WIDTH = 1.6
TITLE_SIZE = 11
Colours = Mapping[str, Any]


# ----------------------------------------------------------------------------------------------
# Names, colours, selection
# ----------------------------------------------------------------------------------------------
def provider_colours(names: Sequence[str]) -> dict[str, Any]:
    """A fixed RGBA colour per provider, in the given order (tab10, or tab20 for more than ten)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def providers_in(results: pd.DataFrame) -> list[str]:
    """The providers of a tidy table in its order (the scenario's), without the market (``all``)."""
    return [p for p in pd.unique(results.provider) if p != ALL]


def markets_in(results: pd.DataFrame) -> list[tuple[str, str]]:
    """(region, product) markets with revenue shares in the table: regions first, the world (``all``) last."""
    shares = results[(results.metric == "revenue_share") & (results["product"] != ALL)]
    markets = [(r, p) for r, p in shares[["region", "product"]].drop_duplicates().itertuples(index=False)]
    return sorted(markets, key=lambda m: (m[0] == ALL, m[0], m[1]))


def market_label(region: str, product: str) -> str:
    """'China AI', 'global cloud', 'world AI' (region ``all``), other names as in the scenario."""
    names = {"china": "China", "ai": "AI", ALL: "world"}
    return " ".join(names.get(part, part) for part in (region, product) if part)


def _wide(results: pd.DataFrame, metric: str, region: str = ALL, product: str = ALL) -> pd.DataFrame:
    """One metric as quarters x providers (as :func:`cloudwar.results.metric_table`)."""
    sel = results[(results.metric == metric) & (results.region == region) & (results["product"] == product)]
    return sel.pivot(index="quarter", columns="provider", values="value")


# ----------------------------------------------------------------------------------------------
# Drawing helpers
# ----------------------------------------------------------------------------------------------
def lines(
    ax: Axes,
    wide: pd.DataFrame,
    colours: Colours,
    scale: float = 1.0,
    only: Iterable[str] | None = None,
) -> None:
    """One line per provider of ``wide`` (quarters down), in the order and colours of ``colours``.

    Values are multiplied by ``scale``. A provider with no finite non-zero value (absent from the
    market) gets no line; ``only`` restricts the lines further.
    """
    from matplotlib.ticker import MaxNLocator

    keep = None if only is None else set(only)
    for name, colour in colours.items():
        if name not in wide or (keep is not None and name not in keep):
            continue
        values = scale * wide[name]
        if (values.abs() > 0).any():  # NaN compares False: all-NaN or all-zero draws nothing
            ax.plot(wide.index, values, color=colour, label=name, linewidth=LINE_WIDTH)
    ax.set_xlabel("quarter")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def note(ax: Axes, text: str) -> None:
    """Write ``text`` in the middle of an empty panel (why there is nothing to draw)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _titled(ax: Axes, title: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.set_ylabel(ylabel)


def _colours(results: pd.DataFrame, colours: Colours | None) -> Colours:
    return provider_colours(providers_in(results)) if colours is None else colours


# ----------------------------------------------------------------------------------------------
# Panels
# ----------------------------------------------------------------------------------------------
def share_panel(ax: Axes, results: pd.DataFrame, region: str, product: str, colours: Colours | None = None) -> Axes:
    """Revenue share of each provider in the (region, product) market, % of the market's revenue."""
    _titled(ax, f"{market_label(region, product)}: revenue share", "share of revenue (%)")
    lines(ax, _wide(results, "revenue_share", region, product), _colours(results, colours), 100.0)
    ax.set_ylim(bottom=0)
    return ax


def price_panel(
    ax: Axes,
    results: pd.DataFrame,
    region: str,
    product: str,
    unit: str = "unit",
    colours: Colours | None = None,
    only: Iterable[str] | None = None,
) -> Axes:
    """Price of each provider in the (region, product) market, USD per ``unit`` of the product.

    ``only``: the providers present in the region (an absent provider's list price means nothing).
    """
    _titled(ax, f"{market_label(region, product)}: price", f"USD per {unit}")
    lines(ax, _wide(results, "price", region, product), _colours(results, colours), 1.0, only=only)
    ax.set_ylim(bottom=0)
    return ax


def margin_panel(
    ax: Axes, results: pd.DataFrame, colours: Colours | None = None, line: float | None = AWS_MARGIN
) -> Axes:
    """Operating margin of each provider, all products and regions, % of revenue; ``line`` (a fraction)
    is drawn dashed and named (the 30% "AWS model" by default; None for no line)."""
    _titled(ax, "operating margin, all products and regions", "operating income / revenue (%)")
    wide = 100 * _wide(results, "operating_margin")
    lines(ax, wide, _colours(results, colours))
    if line is not None:
        label = f"{line:.0%} (AWS model)" if line == AWS_MARGIN else f"{line:.0%}"
        ax.axhline(100 * line, color="black", linestyle="--", linewidth=1, label=label)
        ax.annotate(
            label,
            (1.0, 100 * line),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            fontsize=8,
        )
    values = wide.to_numpy()[np.isfinite(wide.to_numpy())]
    if values.size:  # a collapsing fringe player (margins of -1000%) would squash everyone else's lines
        top = max(values.max(), 100 * (line or 0.0))
        ax.set_ylim(max(values.min() - 5, -100), top + 5)
    return ax


def cash_flow_panel(ax: Axes, results: pd.DataFrame, colours: Colours | None = None) -> Axes:
    """Cumulative free cash flow of each provider: USD bn, or plain USD when every value is below
    USD 0.1bn (the small markets of the theory cases)."""
    wide = _wide(results, "cumulative_free_cash_flow")
    large = np.nanmax(np.abs(wide.to_numpy()), initial=0.0) >= 1e8
    _titled(ax, "cumulative free cash flow", "USD bn" if large else "USD")
    lines(ax, wide, _colours(results, colours), 1e-9 if large else 1.0)
    ax.axhline(0, color="black", linewidth=0.8)
    return ax


def utilisation_panel(ax: Axes, results: pd.DataFrame, colours: Colours | None = None) -> Axes:
    """Capacity utilisation of each provider, all regions: served compute / capacity, %."""
    _titled(ax, "capacity utilisation, all regions", "served compute / capacity (%)")
    wide = _wide(results, "capacity_utilisation")
    if wide.notna().any().any():
        lines(ax, wide, _colours(results, colours), 100.0)
        ax.axhline(100, color="black", linewidth=0.8)
    else:
        note(ax, "capacity is unlimited in this scenario")
    return ax


def band(ax: Axes, wide: pd.DataFrame, label: str, color: Any, scale: float = 1.0) -> None:
    """Median line with the 10-90% band across runs (rows) of a wide table (quarters across),
    values times ``scale``."""
    x = wide.columns.to_numpy()
    values = wide.to_numpy() * scale
    low, mid, high = np.nanpercentile(values, [10, 50, 90], axis=0)
    ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
    ax.plot(x, mid, color=color, label=label)


# ----------------------------------------------------------------------------------------------
# The composed figure
# ----------------------------------------------------------------------------------------------
def figure(
    results: pd.DataFrame,
    title: str = "",
    markets: Sequence[tuple[str, str]] | None = None,
    colours: Colours | None = None,
    events: Iterable[tuple[int, str]] = (),
) -> Figure:
    """Revenue share in every market (``markets``, default :func:`markets_in`), operating margin with
    the 30% line, cumulative free cash flow and capacity utilisation, three panels a row, with one
    legend of the providers below; ``events`` (step, name) are marked on every panel (:func:`mark_events`)."""
    from matplotlib.figure import Figure

    markets = markets_in(results) if markets is None else list(markets)
    colours = _colours(results, colours)
    panels = len(markets) + 3
    cols = 3
    rows = -(-panels // cols)
    fig = Figure(figsize=(5.2 * cols, 3.6 * rows))
    flat = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax, (region, product) in zip(flat, markets, strict=False):
        share_panel(ax, results, region, product, colours)
    ax_margin, ax_fcf, ax_util = flat[len(markets) : panels]
    margin_panel(ax_margin, results, colours)
    cash_flow_panel(ax_fcf, results, colours)
    utilisation_panel(ax_util, results, colours)
    for ax in flat[panels:]:
        ax.axis("off")
    mark_events(flat[:panels], events)
    # One key for all panels: every provider drawn anywhere, in scenario order, then the margin line.
    handles: dict[str, Any] = {}
    for ax in flat[:panels]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    order = [name for name in colours if name in handles] + [k for k in handles if k not in colours]
    fig.legend([handles[k] for k in order], order, loc="lower center", ncol=min(len(order), 5), frameon=False)
    if title:
        fig.suptitle(title)
    legend_rows = -(-len(order) // 5)
    fig.tight_layout(rect=(0, 0.035 * legend_rows / rows * 3, 1, 0.97))
    return fig


# ----------------------------------------------------------------------------------------------
# Scenario events
# ----------------------------------------------------------------------------------------------
#: ``gid`` of the vertical line :func:`mark_events` draws for an event (how tests and tools find them).
EVENT_GID = "cloudwar-event"


def mark_events(axes: Axes | Iterable[Axes], events: Iterable[tuple[int, str]], named: bool = True) -> None:
    """A dotted vertical line at the quarter (step) of each scenario event on every axes; with ``named``,
    the event's name is written beside its line on the first axes (the others stay uncluttered).

    ``events``: (step, name) pairs, e.g. ``[(e.step, e.name) for e in model.events]``. A step
    outside the quarters drawn, and a panel with nothing drawn, are left out. The lines have
    ``gid`` :data:`EVENT_GID`.
    """
    events = list(events)
    axes = [axes] if hasattr(axes, "axvline") else list(axes)
    for i, ax in enumerate(axes):
        if not ax.lines and not ax.collections:  # a panel with a note instead of a chart
            continue
        lo, hi = ax.get_xlim()
        for step, name in events:
            if not lo <= step <= hi:
                continue
            ax.axvline(step, color="0.3", linestyle=":", linewidth=1.0, gid=EVENT_GID, zorder=1)
            if named and i == 0:
                ax.annotate(
                    name,
                    (step, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(2, -3),
                    textcoords="offset points",
                    rotation=90,
                    ha="left",
                    va="top",
                    fontsize=7,
                    color="0.3",
                )

"""The live dashboard: a Mesa SolaraViz page that steps a :class:`~cloudwar.model.market.CloudMarket`.

Start it with ``cloudwar serve`` (or ``solara run cloudwar.dashboard.app``). The page shows

* controls (sidebar): scenario preset, seed, number of enterprises, Alibaba's price level and
  capex plan, switching cost and network-effect strength, and each named provider's strategy;
  pressing **Reset** builds a new model from them;
* a summary card: the quarter, the settings in effect, who leads, and a table of shares, margins
  and cumulative free cash flow whose colour swatches are the key to every chart;
* charts (matplotlib PNGs, drawn once per quarter) that follow the model: revenue share in China
  AI and in global cloud, operating margin with the 30% "AWS model" line, prices in the same two
  markets, capacity utilisation and cumulative free cash flow; and a sample of the enterprise
  network (six neighbourhoods, 300 enterprises, laid out once per model) coloured by AI provider.

Each browser session gets its own model (:func:`Page` creates it per session), so one user's
steps never move another's. A control combination the scenario schema rejects shows its one-line
message in the page instead of a model; so does an error while stepping.

What the controls mean (applied as scenario overrides, see :meth:`Controls.overrides`):

========================  =====================================================================
control                   effect
========================  =====================================================================
preset                    the shipped scenario the model starts from
seed                      the model's random seed (a whole number >= 0)
enterprises               ``enterprises``: simulated enterprises
Alibaba price level       multiplies every starting price of Alibaba (each product and region)
Alibaba capex plan        ``preset's rule`` keeps the preset's capex rule; a multiple ``m`` makes
                          Alibaba commit to ``m`` x its announced plan, RMB 380bn over three years
                          (facts.md): a playbook with a ``capex_plan`` (share_first) gets
                          ``capex_plan = m x 380e9`` RMB; any other strategy spends it evenly,
                          ``capex_rule = "fixed"``, ``capex = m x 380e9 / 12 / rmb_per_usd`` USD
                          per quarter
switching cost            multiplies ``enterprise.switching_cost`` (mean, utility units)
network effect            multiplies ``choice.network_weight`` (utility per neighbour share)
<provider> strategy       ``preset's`` keeps it; a kind from ``cloudwar.strategies.REGISTRY``
                          replaces it, keeping the preset's parameters the new kind accepts
========================  =====================================================================

Multipliers at 1 and "preset's" choices leave the preset exactly as shipped, so the default page
runs the same model as ``cloudwar run --scenario baseline --set enterprises=3000 --seed 0``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import io
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from html import escape
from typing import Any

import mesa
import numpy as np
import pandas as pd
import solara
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from mesa.visualization import SolaraViz

from cloudwar.model.market import CloudMarket
from cloudwar.results import ALL, metric_table
from cloudwar.scenario import Scenario, ScenarioError, load_scenario, one_line, shipped_scenarios
from cloudwar.strategies import REGISTRY, strategy_class

logger = logging.getLogger(__name__)

DEFAULT_PRESET = "baseline"
DEFAULT_ENTERPRISES = 3_000  # small enough that a quarter takes a few milliseconds
NETWORK_SAMPLE = 300  # enterprises drawn in the network view
AWS_MARGIN = 0.30  # facts.md: AWS and Azure operating margins above 30%, the "AWS model"
CAPEX_PLAN_RMB = 380e9  # facts.md: Alibaba's RMB 380bn capex plan ...
CAPEX_PLAN_QUARTERS = 12  # ... over three years
PRESETS_OWN = "preset's"  # strategy choice: keep the preset's strategy
PRESETS_RULE = "preset's rule"  # capex choice: keep the preset's capex rule
CAPEX_PLAN_MULTIPLES = ("0", "0.5", "1", "1.5", "2", "3")
STRATEGY_KEY = "strategy: "  # input name prefix: "strategy: Alibaba"
# Markets the share and price charts show, when the preset has them (else its first two).
PREFERRED_MARKETS = (("china", "ai"), ("global", "cloud"))
NO_PROVIDER_COLOUR = (0.85, 0.85, 0.85, 1.0)  # network view: not buying the product (yet)


# ==============================================================================================
# Controls: what the sidebar sets, turned into scenario overrides
# ==============================================================================================
@dataclass(frozen=True)
class Controls:
    """The dashboard's settings for one model (see the module docstring for their meaning)."""

    preset: str = DEFAULT_PRESET
    seed: int = 0
    enterprises: int = DEFAULT_ENTERPRISES
    alibaba_price_level: float = 1.0
    alibaba_capex_plan: float | None = None  # multiple of the RMB 380bn plan; None = preset's rule
    switching_cost: float = 1.0
    network_weight: float = 1.0
    strategies: tuple[tuple[str, str], ...] = ()  # (provider, strategy kind) replacing the preset's

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any]) -> Controls:
        """Controls from the sidebar's values (text from text boxes, choices as shown); ScenarioError if bad."""
        values: dict[str, Any] = {}
        strategies = []
        simple = {f.name for f in dataclasses.fields(cls)} - {"strategies"}
        for key, value in inputs.items():
            if key.startswith(STRATEGY_KEY):
                if value != PRESETS_OWN:
                    strategies.append((key[len(STRATEGY_KEY) :], str(value)))
            elif key in simple:
                values[key] = value
            else:
                raise ScenarioError(f"unknown dashboard control '{key}'")
        if "seed" in values:
            values["seed"] = _whole_number("seed", values["seed"], 0)
        if "enterprises" in values:
            values["enterprises"] = _whole_number("enterprises", values["enterprises"], 1)
        plan = values.get("alibaba_capex_plan")
        if plan == PRESETS_RULE:
            values["alibaba_capex_plan"] = None
        elif plan is not None:
            values["alibaba_capex_plan"] = _number("Alibaba capex plan", str(plan).removesuffix("x").strip(), 0.0)
        for key in ("alibaba_price_level", "switching_cost", "network_weight"):
            if key in values:
                values[key] = _number(key.replace("_", " "), values[key], 0.0)
        return cls(**values, strategies=tuple(strategies))

    def overrides(self, base: Scenario) -> dict[str, Any]:
        """Dotted-key scenario overrides that turn the preset ``base`` into these controls' model."""
        out: dict[str, Any] = {"enterprises": self.enterprises}
        specs = {p.name: p for p in base.providers}

        def provider(name: str, control: str):
            if name not in specs:
                raise ScenarioError(
                    f"{control}: preset '{self.preset}' has no provider named '{name}' "
                    f"(it has: {', '.join(specs)}); leave it at its default for this preset"
                )
            return specs[name]

        strategy_tables: dict[str, dict[str, Any]] = {}
        for name, kind in self.strategies:
            spec = provider(name, f"{name} strategy")
            accepted = {f.name for f in dataclasses.fields(strategy_class(kind))}
            kept = {k: v for k, v in spec.strategy.params.items() if k in accepted}
            strategy_tables[name] = {"kind": kind, **kept}
        if self.alibaba_capex_plan is not None:
            spec = provider("Alibaba", "Alibaba capex plan")
            table = strategy_tables.setdefault("Alibaba", {"kind": spec.strategy.kind, **spec.strategy.params})
            if "capex_plan" in {f.name for f in dataclasses.fields(strategy_class(table["kind"]))}:
                table["capex_plan"] = self.alibaba_capex_plan * CAPEX_PLAN_RMB  # a playbook with a committed plan
            else:
                table["capex_rule"] = "fixed"
                table["capex"] = self.alibaba_capex_plan * CAPEX_PLAN_RMB / CAPEX_PLAN_QUARTERS / base.rmb_per_usd
        for name, table in strategy_tables.items():
            out[f"providers.{name}.strategy"] = table
        if self.alibaba_price_level != 1.0:
            spec = provider("Alibaba", "Alibaba price level")
            out["providers.Alibaba.price"] = {
                product: _scale_per_region(entry, self.alibaba_price_level) for product, entry in spec.price.items()
            }
        if self.switching_cost != 1.0:
            out["enterprise.switching_cost"] = base.enterprise.switching_cost * self.switching_cost
        if self.network_weight != 1.0:
            out["choice.network_weight"] = base.choice.network_weight * self.network_weight
        return out

    def build(self) -> CloudMarket:
        """The model these controls describe (ScenarioError with a one-line message if they are bad)."""
        return CloudMarket(self.preset, rng=self.seed, overrides=self.overrides(load_scenario(self.preset)))


def _whole_number(name: str, value: Any, lo: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().replace(",", "").replace("_", "")
    try:
        number = int(text)
    except ValueError:
        raise ScenarioError(f"{name}: expected a whole number >= {lo}, got {str(value)!r}") from None
    if number < lo:
        raise ScenarioError(f"{name}: expected a whole number >= {lo}, got {number}")
    return number


def _number(name: str, value: Any, lo: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ScenarioError(f"{name}: expected a number >= {lo:g}, got {value!r}") from None
    if not np.isfinite(number) or number < lo:
        raise ScenarioError(f"{name}: expected a number >= {lo:g}, got {value!r}")
    return number


def _scale_per_region(entry: dict[str, float], factor: float) -> float | dict[str, float]:
    """A parsed 'number or table per region' value times ``factor``, in raw TOML form."""
    if set(entry) == {"*"}:
        return entry["*"] * factor
    return {region: value * factor for region, value in entry.items()}


# ==============================================================================================
# The session model: what SolaraViz steps and resets
# ==============================================================================================
@dataclass
class NetworkView:
    """A sample of enterprises, laid out once: node ids, positions (n, 2) and link segments (m, 2, 2)."""

    nodes: np.ndarray
    positions: np.ndarray
    segments: np.ndarray
    links_in_sample: int


def snowball_sample(network: Any, n: int, size: int, rng: np.random.Generator, seeds: int = 6) -> np.ndarray:
    """At most ``size`` enterprise ids: breadth-first neighbourhoods of ``seeds`` random enterprises.

    Neighbourhoods show what a uniform sample of a few hundred among thousands hides:
    the links, and whether neighbours buy from the same provider. Isolated enterprises (no
    links) leave room that random others fill.
    """
    size = min(size, n)
    chosen: dict[int, None] = {}  # insertion-ordered set
    for start in rng.permutation(n)[:seeds]:
        budget = len(chosen) + -(-size // seeds)
        queue = collections.deque([int(start)])
        while queue and len(chosen) < min(budget, size):
            node = queue.popleft()
            if node in chosen:
                continue
            chosen[node] = None
            if len(queue) < size:  # enough candidates; dense networks would queue everyone
                queue.extend(int(j) for j in rng.permutation(network.neighbours(node)) if int(j) not in chosen)
    if len(chosen) < size:
        rest = np.setdiff1d(np.arange(n), np.fromiter(chosen, dtype=np.int64, count=len(chosen)))
        chosen.update(dict.fromkeys(int(i) for i in rng.choice(rest, size=size - len(chosen), replace=False)))
    return np.sort(np.fromiter(chosen, dtype=np.int64, count=len(chosen)))


class MarketSession(mesa.Model):
    """One browser session's model: a CloudMarket built from the controls, or why it could not be.

    SolaraViz creates it as ``MarketSession(**inputs)`` (the sidebar's values, plus Mesa's own
    ``scenario``, which is passed on to :class:`mesa.Model`) and calls :meth:`step`. Every error
    becomes :attr:`error`, a message for the page, and stops the session (``running = False``).
    """

    def __init__(self, *, scenario: Any = None, **inputs: Any):
        super().__init__(scenario=scenario)
        self.controls: Controls | None = None
        self.market: CloudMarket | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._results: tuple[int, pd.DataFrame] | None = None
        self._charts: dict[tuple[str, int, str | None], bytes] = {}
        try:
            self.controls = Controls.from_inputs(inputs)
            self.market = self.controls.build()
        except ScenarioError as err:
            self.error = f"These controls do not make a valid model: {err}"
        except Exception as err:  # a bug, but the page must say so rather than die
            logger.exception("building the model failed")
            self.error = f"Building the model failed: {type(err).__name__}: {err}"
        self.running = self.market is not None

    def step(self) -> None:
        """One quarter of the market; nothing once the run is over or has failed.

        SolaraViz calls this ``render_interval`` times in a row without looking at
        :attr:`running`, so the end of the scenario is checked here. The page may be drawn from
        another thread while a quarter runs ("Use Threads"): the quarter runs under the
        session's lock, and everything drawn reads the last completed quarter.
        """
        if self.market is None or self.error is not None or not self.market.running:
            self.running = False
            return
        with self._lock:
            try:
                self.market.step()
            except ScenarioError as err:  # e.g. a strategy's invalid decision
                self.error = f"Quarter {self.market.quarter} failed: {one_line(err)}"
            except Exception as err:  # a bug, but the page must say so rather than die
                logger.exception("quarter %d failed", self.market.quarter)
                self.error = f"Quarter {self.market.quarter} failed: {type(err).__name__}: {one_line(err)}"
        self.running = self.error is None and self.market.running

    @property
    def quarter(self) -> int:
        """The last completed quarter (0 before the first): what the page shows."""
        if self.market is None or not self.market.records:
            return 0
        return int(self.market.records[-1]["quarter"])

    def results(self) -> pd.DataFrame:
        """The market's tidy results up to the last completed quarter, computed once per quarter."""
        assert self.market is not None
        with self._lock:
            if self._results is None or self._results[0] != self.quarter:
                self._results = (self.quarter, self.market.results())
            return self._results[1]

    def chart_png(self, name: str, draw: Callable[[MarketSession], Figure]) -> bytes:
        """PNG of chart ``name`` for the current quarter, drawn once per quarter."""
        key = (name, self.quarter, self.error)
        with self._lock:
            cached = self._charts.get(key)
        if cached is not None:
            return cached
        buffer = io.BytesIO()
        draw(self).savefig(buffer, format="png", dpi=90)
        with self._lock:
            self._charts = {k: v for k, v in self._charts.items() if k[1:] == key[1:]}
            self._charts[key] = buffer.getvalue()
        return self._charts[key]

    @cached_property
    def network_view(self) -> NetworkView:
        """At most NETWORK_SAMPLE enterprises and the links among them, laid out once per model."""
        import networkx as nx

        assert self.market is not None and self.controls is not None
        # The sample and layout have their own generator, so drawing never changes the run.
        rng = np.random.default_rng([self.controls.seed, 0xC10D])
        nodes = snowball_sample(self.market.network, self.market.population.n, NETWORK_SAMPLE, rng)
        graph = self.market.network.to_networkx(nodes)
        positions = nx.spring_layout(graph, seed=int(rng.integers(2**31)), iterations=60)
        xy = np.array([positions[int(i)] for i in nodes]).reshape(-1, 2)
        index = {int(node): row for row, node in enumerate(nodes)}
        edges = list(graph.edges())
        if len(edges) > 3_000:  # dense networks (complete): draw a sample of the links
            edges = [edges[i] for i in rng.choice(len(edges), size=3_000, replace=False)]
        segments = np.array([[xy[index[a]], xy[index[b]]] for a, b in edges]).reshape(-1, 2, 2)
        return NetworkView(nodes, xy, segments, graph.number_of_edges())


# ==============================================================================================
# Charts (matplotlib, drawn from the tidy results)
# ==============================================================================================
def provider_colours(names: list[str]) -> dict[str, Any]:
    """A fixed colour per provider, in scenario order (tab10, or tab20 for more than ten)."""
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def chart_markets(config: Scenario) -> list[tuple[str, str]]:
    """(region, product) markets for the share and price charts: China AI and global cloud if present."""
    markets = [(r, p) for r, p in PREFERRED_MARKETS if r in config.regions and p in config.products]
    if not markets:
        markets = [(r, p) for p in config.products for r in config.regions][:2]
    return markets


def market_label(region: str, product: str) -> str:
    """'China AI', 'global cloud', ... (names as in the scenario otherwise)."""
    names = {"china": "China", "ai": "AI"}
    return " ".join(names.get(part, part) for part in (region, product) if part)


def short_unit(unit: str) -> str:
    """'compute unit (CU): USD 1 of ...' -> 'compute unit'."""
    return unit.split(":")[0].split("(")[0].strip() or "unit"


def calendar_quarter(start: str, quarter: int) -> str:
    """Calendar label of model quarter ``quarter`` (1 = the scenario's start), e.g. '2026Q2'."""
    try:
        year, q = int(start[:4]), int(start[-1])
    except ValueError:
        return f"quarter {quarter}"
    index = year * 4 + (q - 1) + quarter - 1
    return f"{index // 4}Q{index % 4 + 1}"


def _figure(title: str, ylabel: str = "") -> tuple[Figure, Any]:
    # Sized for a half-width tile. No legend: the summary card's table is the colour key of every
    # chart (nine legends took half the drawing time), and a fixed layout (constrained layout
    # would double it).
    fig = Figure(figsize=(6.0, 3.7))
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.91)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.set_ylabel(ylabel)
    return fig, ax


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _results_or_note(session: MarketSession, ax: Any) -> pd.DataFrame | None:
    """The results to draw, or None after writing on ``ax`` why there are none yet."""
    if session.market is None:
        _note(ax, "no model: see the message in the summary")
        return None
    if session.quarter == 0:
        _note(ax, "quarter 0: press Step or \u25b6 to run")
        return None
    return session.results()


def _lines(ax: Any, wide: pd.DataFrame, session: MarketSession, scale: float, only: list[str] | None = None) -> None:
    """One line per provider (scenario order and colours), values times ``scale``."""
    assert session.market is not None
    names = session.market.provider_names
    colours = provider_colours(names)
    for name in names:
        if name in wide and (only is None or name in only) and wide[name].notna().any():
            ax.plot(wide.index, scale * wide[name], color=colours[name], label=name, linewidth=1.6)
    ax.set_xlabel("quarter")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _market(session: MarketSession, index: int) -> tuple[str, str] | None:
    markets = chart_markets(session.market.config) if session.market is not None else []
    return markets[index] if index < len(markets) else None


def draw_shares(session: MarketSession, index: int) -> Figure:
    """Revenue share by provider in the index-th charted market (China AI, global cloud), %."""
    market = _market(session, index)
    fig, ax = _figure(f"{market_label(*market)}: revenue share" if market else "revenue share", "share of revenue (%)")
    if market is None:
        _note(ax, "this preset has no second market" if session.market else "no model: see the message in the summary")
        return fig
    results = _results_or_note(session, ax)
    if results is not None:
        _lines(ax, metric_table(results, "revenue_share", *market), session, 100.0)
        ax.set_ylim(bottom=0)
    return fig


def draw_prices(session: MarketSession, index: int) -> Figure:
    """Prices by provider in the index-th charted market, USD per unit of the product."""
    market = _market(session, index)
    if market is None:
        fig, ax = _figure("price")
        _note(ax, "this preset has no second market" if session.market else "no model: see the message in the summary")
        return fig
    region, product = market
    unit = short_unit(session.market.config.products[product].unit)
    fig, ax = _figure(f"{market_label(region, product)}: price", f"USD per {unit}")
    results = _results_or_note(session, ax)
    if results is not None:
        r = session.market.region_names.index(region)
        present = [p.name for p in session.market.providers_list if p.presence[r] > 0]
        _lines(ax, metric_table(results, "price", region, product), session, 1.0, only=present)
        ax.set_ylim(bottom=0)
    return fig


def draw_margins(session: MarketSession) -> Figure:
    """Operating margin by provider, all products and regions (%), with the 30% line."""
    fig, ax = _figure("operating margin, all products and regions", "operating income / revenue (%)")
    results = _results_or_note(session, ax)
    if results is not None:
        wide = 100 * metric_table(results, "operating_margin")
        _lines(ax, wide, session, 1.0)
        ax.axhline(100 * AWS_MARGIN, color="black", linestyle="--", linewidth=1)
        ax.annotate(
            "30% (AWS model)",
            (1.0, 100 * AWS_MARGIN),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            fontsize=8,
        )
        values = wide.to_numpy()[np.isfinite(wide.to_numpy())]
        if values.size:  # a collapsing fringe player would squash everyone else's lines
            ax.set_ylim(max(values.min() - 5, -100), max(values.max() + 5, 40))
    return fig


def draw_utilisation(session: MarketSession) -> Figure:
    """Capacity utilisation by provider, all regions (%)."""
    fig, ax = _figure("capacity utilisation, all regions", "served compute / capacity (%)")
    results = _results_or_note(session, ax)
    if results is not None:
        wide = metric_table(results, "capacity_utilisation")
        if wide.notna().any().any():
            _lines(ax, wide, session, 100.0)
            ax.axhline(100, color="black", linewidth=0.8)
        else:
            _note(ax, "capacity is unlimited in this preset")
    return fig


def draw_cash_flow(session: MarketSession) -> Figure:
    """Cumulative free cash flow by provider (USD bn; plain USD for a small theory market)."""
    fig, ax = _figure("cumulative free cash flow", "USD bn")
    results = _results_or_note(session, ax)
    if results is not None:
        wide = metric_table(results, "cumulative_free_cash_flow")
        large = np.nanmax(np.abs(wide.to_numpy()), initial=0.0) >= 1e8
        ax.set_ylabel("USD bn" if large else "USD")
        _lines(ax, wide, session, 1e-9 if large else 1.0)
        ax.axhline(0, color="black", linewidth=0.8)
    return fig


def draw_network(session: MarketSession) -> Figure:
    """A sample of the enterprise network, each enterprise coloured by its AI provider."""
    market = session.market
    if market is None:
        fig, ax = _figure("enterprise network")
        _note(ax, "no model: see the message in the summary")
        return fig
    product = "ai" if "ai" in market.product_names else market.product_names[0]
    label = market_label("", product)
    view = session.network_view
    fig, ax = _figure(
        f"{len(view.nodes)} of {market.population.n:,} enterprises, {view.links_in_sample:,} links;\n"
        f"colour: {label} provider (grey: none)"
    )
    ax.title.set_fontsize(10)
    fig.subplots_adjust(top=0.87)  # two-line title
    ax.set_axis_off()
    providers = market.population.provider[market.product_names.index(product), view.nodes].astype(int)
    names = market.provider_names
    colours = provider_colours(names)
    palette = np.array([colours[n] for n in names] + [NO_PROVIDER_COLOUR])
    ax.add_collection(LineCollection(view.segments, colors="0.75", linewidths=0.4, zorder=1))
    ax.scatter(*view.positions.T, s=14, c=palette[providers], edgecolors="0.3", linewidths=0.3, zorder=2)
    ax.autoscale()
    return fig


CHARTS: dict[str, Callable[[MarketSession], Figure]] = {
    "shares-1": functools.partial(draw_shares, index=0),
    "shares-2": functools.partial(draw_shares, index=1),
    "margins": draw_margins,
    "network": draw_network,
    "prices-1": functools.partial(draw_prices, index=0),
    "prices-2": functools.partial(draw_prices, index=1),
    "utilisation": draw_utilisation,
    "cash-flow": draw_cash_flow,
}


# ==============================================================================================
# The page
# ==============================================================================================
def _percent(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.1%}"


def summary_table(session: MarketSession) -> pd.DataFrame:
    """This quarter per provider: share of each charted market, operating margin, cumulative FCF (USD bn).

    Empty (no values) before the first quarter.
    """
    market = session.market
    assert market is not None
    columns = [f"{market_label(*m)} share" for m in chart_markets(market.config)]
    columns += ["operating margin", "cum. FCF (USD bn)"]
    table = pd.DataFrame(index=pd.Index(market.provider_names, name="provider"), columns=columns, dtype=float)
    if session.quarter == 0:
        return table
    results = session.results()
    last = results[results.quarter == session.quarter]
    for region, product in chart_markets(market.config):
        rows = last[(last.metric == "revenue_share") & (last.region == region) & (last["product"] == product)]
        table[f"{market_label(region, product)} share"] = rows.set_index("provider")["value"].reindex(table.index)
    totals = last[(last.region == ALL) & (last["product"] == ALL)].pivot(
        index="provider", columns="metric", values="value"
    )
    table["operating margin"] = totals["operating_margin"].reindex(table.index)
    table["cum. FCF (USD bn)"] = totals["cumulative_free_cash_flow"].reindex(table.index) / 1e9
    return table


def leaders(table: pd.DataFrame) -> list[str]:
    """'China AI: Alibaba (35.8%)', ... and the highest margin, from :func:`summary_table`."""
    out = []
    for column in [c for c in table.columns if c.endswith(" share")] + ["operating margin"]:
        values = table[column]
        if values.notna().any():
            name = "highest margin" if column == "operating margin" else column.removesuffix(" share")
            out.append(f"{name}: {values.idxmax()} ({values.max():.1%})")
    return out


def summary_html(session: MarketSession) -> str:
    """The summary card: the quarter, the controls in effect, who leads, and a table of shares and margins.

    The table's colour swatches are the key to every chart.
    """
    market, c = session.market, session.controls
    if market is None or c is None:
        return "<p>No model. Change the controls and press <b>Reset</b>.</p>"
    config = market.config
    quarter = session.quarter
    when = f" ({calendar_quarter(config.start, quarter)})" if quarter else ""
    parts = [
        f'<h3 class="cloudwar-quarter">Quarter {quarter} of {config.quarters}{when}</h3>',
        f"<p>Preset <b>{escape(config.name)}</b>, seed {c.seed}, {market.population.n:,} enterprises; "
        f"switching cost {config.enterprise.switching_cost:.2f}, network weight {config.choice.network_weight:.2f}"
        f"{_alibaba_settings(c, market)}.</p>",
        f'<p class="cloudwar-strategies">Strategies: {escape(_strategies(config))}.</p>',
    ]
    table = summary_table(session)
    if quarter == 0:
        parts.append(f"<p>The run starts in {escape(config.start)}: press <b>Step</b> or \u25b6.</p>")
    else:
        above = [name for name, value in table["operating margin"].items() if value >= AWS_MARGIN]
        leading = " \u00b7 ".join(leaders(table))
        parts.append(
            f'<p class="cloudwar-leaders">Leaders: {escape(leading)}. '
            f"At or above the 30% margin line: {escape(', '.join(above) or 'nobody')}.</p>"
        )
    colours = provider_colours(market.provider_names)
    short = {"operating margin": "op. margin", "cum. FCF (USD bn)": "cum. FCF, USD bn"}
    head = "".join(f"<th>{escape(short.get(col, col))}</th>" for col in ["provider", *table.columns])
    rows = []
    for name, row in table.iterrows():
        swatch = f'<span class="cloudwar-swatch" style="background:{to_hex(colours[name])}"></span>'
        cells = [_percent(v) if not col.startswith("cum.") else _bn(v) for col, v in row.items()]
        rows.append(f"<tr><td>{swatch}{escape(str(name))}</td>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    parts.append(f'<table class="cloudwar-table"><tr>{head}</tr>{"".join(rows)}</table>')
    return "\n".join(parts)


def _bn(value: float) -> str:
    return "" if pd.isna(value) else f"{value:,.1f}"


def _strategies(config: Scenario) -> str:
    """'Alibaba share_first, Tencent platform_embedded, AWS margin_discipline, the other 6 cost_plus'."""
    kinds = [(p.name, p.strategy.kind) for p in config.providers]
    common, n = collections.Counter(kind for _, kind in kinds).most_common(1)[0]
    if n < 3:
        return ", ".join(f"{name} {kind}" for name, kind in kinds)
    named = [f"{name} {kind}" for name, kind in kinds if kind != common]
    return ", ".join([*named, f"the other {n} {common}" if named else f"all {common}"])


def _alibaba_settings(c: Controls, market: CloudMarket) -> str:
    if "Alibaba" not in market.provider_names:
        return ""
    text = f"; Alibaba prices x{c.alibaba_price_level:.2f}"
    if c.alibaba_capex_plan is not None:
        text += f", capex {c.alibaba_capex_plan:g}x the RMB 380bn plan"
    return text


def summary_card(session: MarketSession) -> solara.Element:
    """The summary tile: an error message if there is one, then :func:`summary_html`."""
    with solara.Card(classes=["cloudwar-summary"]) as card:
        if session.error:
            solara.Error(session.error, classes=["cloudwar-error"])
        solara.HTML(tag="div", unsafe_innerHTML=summary_html(session), classes=["cloudwar-summary-body"])
    return card


def chart(name: str) -> Callable[[MarketSession], solara.Element]:
    """A SolaraViz component (a function of the model) showing chart ``name`` as a PNG."""

    def component(session: MarketSession) -> solara.Element:
        png = session.chart_png(name, CHARTS[name])
        return solara.Image(png, format="png", classes=["cloudwar-chart", f"cloudwar-chart-{name}"])

    component.__name__ = f"chart_{name.replace('-', '_')}"
    return component


COMPONENTS = [(summary_card, 0)] + [(chart(name), 0) for name in CHARTS]

CSS = """
.cloudwar-chart { width: 100% !important; height: auto !important; max-height: 100%; object-fit: contain; }
.cloudwar-summary { height: 100%; overflow-y: auto; }
.cloudwar-summary-body h3 { margin: 0 0 4px 0; }
.cloudwar-summary-body p { margin: 0 0 4px 0; font-size: 12px; line-height: 1.35; }
.cloudwar-table { border-collapse: collapse; font-size: 11.5px; }
.cloudwar-table th, .cloudwar-table td { padding: 0 6px; text-align: right; white-space: nowrap; }
.cloudwar-table th:first-child, .cloudwar-table td:first-child { text-align: left; }
.cloudwar-swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; }
"""


def model_params(preset: str = DEFAULT_PRESET) -> dict[str, dict[str, Any]]:
    """The sidebar's controls in SolaraViz's format; one strategy choice per provider of ``preset``."""
    kinds = [PRESETS_OWN, *sorted(REGISTRY)]
    params: dict[str, dict[str, Any]] = {
        "preset": {"type": "Select", "value": preset, "values": list(shipped_scenarios()), "label": "Scenario preset"},
        "seed": {"type": "InputText", "value": "0", "label": "Random seed"},
        "enterprises": {
            "type": "SliderInt",
            "value": DEFAULT_ENTERPRISES,
            "min": 500,
            "max": 20_000,
            "step": 500,
            "label": "Enterprises",
        },
        "alibaba_price_level": {
            "type": "SliderFloat",
            "value": 1.0,
            "min": 0.2,
            "max": 2.0,
            "step": 0.05,
            "label": "Alibaba price level (x starting prices)",
        },
        "alibaba_capex_plan": {
            "type": "Select",
            "value": PRESETS_RULE,
            "values": [PRESETS_RULE, *(f"{m}x" for m in CAPEX_PLAN_MULTIPLES)],
            "label": "Alibaba capex (x RMB 380bn / 3 years plan)",
        },
        "switching_cost": {
            "type": "SliderFloat",
            "value": 1.0,
            "min": 0.0,
            "max": 4.0,
            "step": 0.1,
            "label": "Switching cost (x preset's)",
        },
        "network_weight": {
            "type": "SliderFloat",
            "value": 1.0,
            "min": 0.0,
            "max": 4.0,
            "step": 0.1,
            "label": "Network effect (x preset's)",
        },
    }
    # One strategy choice per provider of every shipped preset (SolaraViz's controls are fixed once
    # the page is built): the chosen preset's providers first, others labelled with their presets.
    owners: dict[str, list[str]] = {name: [preset] for name in load_scenario(preset).provider_names}
    for other in shipped_scenarios():
        if other != preset:
            for name in load_scenario(other).provider_names:
                owners.setdefault(name, []).append(other)
    for name, presets in owners.items():
        label = name if preset in presets else f"{name} ({', '.join(presets)} only)"
        params[f"{STRATEGY_KEY}{name}"] = {"type": "Select", "value": PRESETS_OWN, "values": kinds, "label": label}
    return params


@solara.component
def Page() -> None:
    """The dashboard. One instance per browser session, so each session has its own model."""
    first = solara.use_memo(MarketSession, [])
    model = solara.use_reactive(first)
    params = solara.use_memo(model_params, [])
    solara.Style(CSS)
    SolaraViz(model, components=COMPONENTS, model_params=params, name="cloudwar: the AI cloud market")

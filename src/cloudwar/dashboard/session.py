"""The dashboard's session model: :class:`MarketSession`, the mesa.Model that SolaraViz steps and resets.

One per browser session. It builds a :class:`~cloudwar.model.market.CloudMarket` from the
:class:`~cloudwar.dashboard.controls.Controls`, steps it a quarter at a time, keeps the tidy
results and the chart PNGs of the last completed quarter, and turns every error into a one-line
message for the page. :meth:`MarketSession.pin` keeps a run as a :class:`PinnedRun` to compare
the next runs with; :meth:`MarketSession.results_csv` and :meth:`MarketSession.command` export
the run (the table, and the ``cloudwar run`` command that reproduces it). Nothing here imports
Solara.
"""

from __future__ import annotations

import collections
import io
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import mesa
import numpy as np
import pandas as pd

from cloudwar.dashboard.controls import Controls
from cloudwar.model.market import CloudMarket
from cloudwar.scenario import ScenarioError, one_line

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

NETWORK_SAMPLE = 300  # enterprises drawn in the network view
CHART_DPI = 90  # the charts' PNGs: a half-width tile at about 540 x 330 pixels


@dataclass(frozen=True)
class PinnedRun:
    """A run kept for comparison ("before"): its controls, tidy results and last completed quarter."""

    controls: Controls
    results: pd.DataFrame
    quarter: int
    start: str  #: the scenario's first calendar quarter

    def results_until(self, quarter: int) -> pd.DataFrame:
        """The pinned results up to ``quarter`` (to compare with a run that has got that far)."""
        return self.results[self.results.quarter <= quarter]


@dataclass
class NetworkView:
    """A sample of enterprises, laid out once: node ids, positions (n, 2) and link segments (m, 2, 2)."""

    nodes: np.ndarray
    positions: np.ndarray
    segments: np.ndarray
    links_in_sample: int


def describe_figure(figure: Figure) -> str:
    """A drawn chart in words: 'China AI: price. y: USD per million input tokens, log scale.
    x: 2025Q4 to 2026Q2. key: Alibaba, Tencent, ...' (one sentence per axes)."""
    out = []
    for ax in figure.axes:
        ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        legend = ax.get_legend()
        key = [t.get_text() for t in legend.get_texts()] if legend is not None else []
        parts = [ax.get_title().replace("\n", " ")]
        if ax.get_ylabel():
            parts.append(f"y: {ax.get_ylabel()}, {ax.get_yscale()} scale".replace(" (log scale)", ""))
        if ticks and ax.axison:
            parts.append(f"x: {ticks[0]} to {ticks[-1]}")
        if key:
            parts.append("key: " + ", ".join(key))
        out.append(". ".join(parts) + ".")
    return " ".join(out)


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
        self.inputs = dict(inputs)  #: the sidebar's values this model was built from
        self.controls: Controls | None = None
        self.market: CloudMarket | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._results: tuple[int, pd.DataFrame] | None = None
        self._charts: dict[tuple[Any, ...], bytes] = {}
        self._texts: dict[tuple[Any, ...], str] = {}
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

    def chart_png(
        self, name: str, draw: Callable[[MarketSession, PinnedRun | None], Figure], pinned: PinnedRun | None = None
    ) -> bytes:
        """PNG of chart ``name`` for the current quarter (with ``pinned`` drawn dashed), drawn once per
        quarter and pinned run."""
        key = (name, self.quarter, self.error, id(pinned) if pinned is not None else None)
        with self._lock:
            cached = self._charts.get(key)
        if cached is not None:
            return cached
        buffer = io.BytesIO()
        figure = draw(self, pinned)
        figure.savefig(buffer, format="png", dpi=CHART_DPI)
        with self._lock:
            self._charts = {k: v for k, v in self._charts.items() if k[1:] == key[1:]}
            self._texts = {k: v for k, v in self._texts.items() if k[1:] == key[1:]}
            self._charts[key] = buffer.getvalue()
            self._texts[key] = describe_figure(figure)
        return self._charts[key]

    def chart_text(self, name: str, pinned: PinnedRun | None = None) -> str:
        """What chart ``name`` (as last drawn by :meth:`chart_png`) shows, in words: title, axes, legend."""
        key = (name, self.quarter, self.error, id(pinned) if pinned is not None else None)
        with self._lock:
            return self._texts.get(key, "")

    def pin(self) -> PinnedRun | None:
        """This run as it stands, to compare the next runs with; None before the first quarter."""
        if self.market is None or self.controls is None or self.quarter == 0:
            return None
        return PinnedRun(self.controls, self.results(), self.quarter, self.market.config.start)

    def results_csv(self) -> bytes:
        """The tidy results so far as CSV, byte for byte what ``cloudwar run --out`` writes to results.csv."""
        return self.results().to_csv(index=False).encode()

    def command(self) -> str | None:
        """The ``cloudwar run`` command that reproduces :meth:`results_csv` (same seed, same numbers):
        the controls as ``--set`` overrides, stopping at the current quarter. None before quarter 1."""
        if self.market is None or self.controls is None or self.quarter == 0:
            return None
        return self.controls.command(self.quarter if self.quarter < self.market.config.quarters else None)

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

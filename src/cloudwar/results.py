"""Tidy tables and figures.

:func:`tidy_results` turns a run into one long table with columns
``quarter, calendar, provider, region, product, metric, value``: ``quarter`` is the model step
(1 = the scenario's ``start``), ``calendar`` the same quarter as a calendar label (``2026Q1``,
:func:`cloudwar.quarters.labels`). The label ``all`` stands for the
aggregate: ``provider="all"`` is the market, ``region="all"`` all regions together (the world),
``product="all"`` all product lines. Metrics and units:

==========================  ==========================================  =========================
metric                      meaning                                     unit
==========================  ==========================================  =========================
price                       list price: what a customer signing now     USD per unit
                            agrees to pay for its contract
realised_price              what its customers pay: their contract      USD per unit
                            prices, weighted by volume
revenue                     realised price x served volume              USD per quarter
revenue_share               share of the market's revenue               fraction
volume_share                share of the market's served volume         fraction
customers                   enterprises buying from the provider (a     count
                            two-provider wallet counts for both)
customer_share              share of the market's customers             fraction
served_volume               volume served after rationing               units per quarter
demand_volume               volume demanded by its customers            units per quarter
operating_income            revenue - variable cost - depreciation      USD per quarter
                            - fixed opex (allocated)
operating_margin            operating income / revenue                  fraction
churn                       customers that left the provider entirely   fraction per quarter
                            / its customers a quarter ago
wallet_churn                volume its customers moved away (to other   fraction per quarter
                            providers or none) / its volume a quarter
                            ago
multi_homing                share of the market's buyers that buy from  fraction
                            two providers (provider = all)
capacity                    compute units in service                    compute units
capacity_utilisation        served compute / capacity                   fraction
service_level               share of demand served                      fraction
capex                       capital expenditure                         USD per quarter
depreciation                straight-line depreciation                  USD per quarter
free_cash_flow              operating income + depreciation - capex     USD per quarter
cumulative_free_cash_flow   running sum of free cash flow               USD
npv                         discounted sum of free cash flow so far     USD
terminal_value              value after the quarter, discounted to 0    USD
                            (:mod:`cloudwar.valuation`, [valuation])
enterprise_value            npv (after tax) + terminal_value            USD
hhi                         Herfindahl-Hirschman index of revenue       points, 0-10,000
ai_adoption                 share of enterprises that adopted AI        fraction
==========================  ==========================================  =========================
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cloudwar import quarters
from cloudwar.valuation import Valuer

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cloudwar.model.market import CloudMarket
    from cloudwar.scenario import TimedEvent

ALL = "all"
COLUMNS = ["quarter", "calendar", "provider", "region", "product", "metric", "value"]
#: Every metric of the tidy table (the docstring's table); ai_adoption only with an AI product.
METRICS = (
    "price",
    "realised_price",
    "revenue",
    "revenue_share",
    "volume_share",
    "customers",
    "customer_share",
    "served_volume",
    "demand_volume",
    "operating_income",
    "operating_margin",
    "churn",
    "wallet_churn",
    "multi_homing",
    "capacity",
    "capacity_utilisation",
    "service_level",
    "capex",
    "depreciation",
    "free_cash_flow",
    "cumulative_free_cash_flow",
    "npv",
    "terminal_value",
    "enterprise_value",
    "hhi",
    "ai_adoption",
)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where b is 0 (a division only where b is not: no errstate block, a few microseconds each)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.full(np.broadcast(a, b).shape, np.nan), where=b != 0)


class _Rows:
    """Collects the table as blocks of metrics over all quarters and builds it once.

    A block is one metric over every quarter of the run, (quarters, ...) values with one label
    list per axis after the first: the arithmetic runs on the run's quarters stacked, once per
    metric instead of once per metric and quarter (a run has about 50 blocks a quarter, and each
    small-array step costs more than its data). Labels are kept as integer codes into one
    vocabulary and made once per kind of block; the string columns are made once, in
    :meth:`frame`, by taking from the vocabulary. Rows come quarter by quarter, and within a
    quarter block by block in the order added.
    """

    def __init__(self, start: str, steps: np.ndarray) -> None:
        self.start = start  # calendar quarter of step 1
        self.steps = steps  # (Q,) the model step of each quarter
        self.vocabulary: dict[str, int] = {}  # label -> code
        self.kinds: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # label codes per kind of block
        self.blocks: list[tuple[str, tuple[np.ndarray, ...], np.ndarray, slice]] = []  # metric, kind, values, quarters

    def _codes(self, labels) -> np.ndarray:
        """Codes of a label list, or of a fixed str label as a one-element list."""
        names = [labels] if isinstance(labels, str) else labels
        return np.array([self.vocabulary.setdefault(str(x), len(self.vocabulary)) for x in names], dtype=np.intp)

    def _kind(self, providers, products, regions) -> tuple[np.ndarray, ...]:
        """The label codes of a kind of block (which labels along which axes)."""
        axes = (providers, products, regions)
        key = tuple(labels if isinstance(labels, str) else tuple(labels) for labels in axes)
        if key not in self.kinds:
            # Row order: providers slowest, then products, then regions (C order of the values).
            grids = np.meshgrid(*[self._codes(labels) for labels in axes], indexing="ij")
            self.kinds[key] = tuple(g.ravel() for g in grids)
        return self.kinds[key]

    def add(self, metric: str, values: np.ndarray, providers, products, regions, quarters: slice = slice(None)) -> None:
        """``values`` has the quarters ``quarters`` (of all) first, then one axis per label list (in this order);
        a str label is a fixed value."""
        kind = self._kind(providers, products, regions)
        values = np.asarray(values, dtype=float)
        shape = (len(self.steps[quarters]), kind[0].size)
        if values.size != shape[0] * shape[1] or len(values) != shape[0]:
            raise ValueError(f"{metric}: values {values.shape} for {shape[0]} quarters x {shape[1]} labels")
        self.blocks.append((metric, kind, values.reshape(shape), quarters))

    def frame(self) -> pd.DataFrame:
        if not self.blocks or not len(self.steps):
            return pd.DataFrame({c: [] for c in COLUMNS})
        n_q = len(self.steps)
        metrics, kinds, values, spans = zip(*self.blocks, strict=True)
        sizes = np.array([v.shape[1] for v in values])
        # (Q, all blocks' columns): every block's values in its quarters, and where it has them.
        table = np.empty((n_q, sizes.sum()))
        present = np.zeros((n_q, len(self.blocks)), dtype=bool)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        for b, (block, span) in enumerate(zip(values, spans, strict=True)):
            table[span, offsets[b] : offsets[b + 1]] = block
            present[span, b] = True
        keep = np.repeat(present, sizes, axis=1).ravel()  # quarter by quarter, block by block
        code = self.vocabulary.setdefault
        calendar = np.array([code(c, len(self.vocabulary)) for c in quarters.labels(self.start, self.steps)])
        metric_codes = np.repeat(np.array([code(m, len(self.vocabulary)) for m in metrics], dtype=np.intp), sizes)
        vocabulary = pd.array(list(self.vocabulary), dtype="string")
        provider, product, region = (np.tile(np.concatenate([kind[i] for kind in kinds]), n_q)[keep] for i in range(3))
        codes = {
            "calendar": np.repeat(calendar, sizes.sum())[keep],
            "provider": provider,
            "region": region,
            "product": product,
            "metric": np.tile(metric_codes, n_q)[keep],
        }
        columns = {
            "quarter": np.repeat(self.steps.astype(np.int64), sizes.sum())[keep],
            **{c: vocabulary.take(codes[c]) for c in COLUMNS[1:-1]},
            "value": table.ravel()[keep],
        }
        return pd.DataFrame(columns, columns=COLUMNS)


def tidy_results(model: CloudMarket) -> pd.DataFrame:
    """The run so far as one tidy table (see module docstring for metrics and units)."""
    records = model.records
    steps = [rec["quarter"] for rec in records]
    rows = _Rows(model.config.start, np.array(steps, dtype=np.int64))
    if not records:
        return _with_start(rows.frame(), model)
    providers, regions, products = model.provider_names, model.region_names, model.product_names
    # Every quarter's arrays stacked, quarters first: (Q, P, K, R), (Q, P, R), (Q, P), (Q, K, R).
    books = [rec["books"] for rec in records]

    def booked(field: str) -> np.ndarray:
        return np.array([[getattr(b, field) for b in quarter] for quarter in books])

    def recorded(field: str) -> np.ndarray:
        return np.array([rec[field] for rec in records])

    revenue, income, served = booked("revenue"), booked("operating_income"), booked("served_volume")
    customers = recorded("customers").astype(float)
    demand, churned, moved = recorded("demand_volume"), recorded("churned"), recorded("volume_moved")
    market_revenue = revenue.sum(axis=1)
    market_customers = customers.sum(axis=1)
    market_served = served.sum(axis=1)
    later = slice(1, None)  # quarters with a quarter before them (churn)
    pkr = (providers, products, regions)
    rows.add("price", recorded("price"), *pkr)
    rows.add("realised_price", booked("realised_price"), *pkr)
    rows.add("revenue", revenue, *pkr)
    shares = _ratio(revenue, market_revenue[:, None])
    rows.add("revenue_share", shares, *pkr)
    rows.add("volume_share", _ratio(served, market_served[:, None]), *pkr)
    rows.add("customers", customers, *pkr)
    rows.add("customer_share", _ratio(customers, market_customers[:, None]), *pkr)
    rows.add("served_volume", served, *pkr)
    rows.add("demand_volume", demand, *pkr)
    rows.add("operating_income", income, *pkr)
    rows.add("operating_margin", _ratio(income, revenue), *pkr)
    rows.add("churn", _ratio(churned[1:], customers[:-1]), *pkr, quarters=later)
    rows.add("wallet_churn", _ratio(moved[1:], demand[:-1]), *pkr, quarters=later)

    # Provider x region, all products.
    capacity = booked("capacity")
    finite = np.isfinite(capacity)
    served_compute = (served * model.compute_per_unit[None, None, :, None]).sum(axis=2)
    region_revenue = revenue.sum(axis=2)
    region_income = income.sum(axis=2)
    pr = (providers, ALL, regions)
    rows.add("revenue", region_revenue, *pr)
    rows.add("operating_income", region_income, *pr)
    rows.add("operating_margin", _ratio(region_income, region_revenue), *pr)
    rows.add("capacity", np.where(finite, capacity, np.nan), *pr)
    rows.add("capacity_utilisation", _ratio(served_compute, np.where(finite, capacity, 0.0)), *pr)
    rows.add("service_level", booked("service_level"), *pr)
    capex = booked("capex")
    rows.add("capex", capex, *pr)

    # Provider x product, all regions (the world market of each product).
    world_revenue = revenue.sum(axis=3)
    world_income = income.sum(axis=3)
    world_customers = customers.sum(axis=3)
    pk = (providers, products, ALL)
    world_shares = _ratio(world_revenue, world_revenue.sum(axis=1)[:, None])
    rows.add("revenue", world_revenue, *pk)
    rows.add("revenue_share", world_shares, *pk)
    rows.add("volume_share", _ratio(served.sum(axis=3), served.sum(axis=(1, 3))[:, None]), *pk)
    rows.add("customer_share", _ratio(world_customers, world_customers.sum(axis=1)[:, None]), *pk)
    rows.add("operating_income", world_income, *pk)
    rows.add("operating_margin", _ratio(world_income, world_revenue), *pk)

    # Provider totals.
    total_revenue = revenue.sum(axis=(2, 3))
    total_income = income.sum(axis=(2, 3))
    finite_capacity = np.where(finite, capacity, 0.0).sum(axis=2)
    npv = booked("npv")
    valuer = Valuer(model.config.discount_rate, model.config.valuation)  # as if each quarter were the horizon
    valued = [valuer.value(q, *args) for q, *args in zip(steps, total_income, total_revenue, npv, strict=True)]
    terminal, enterprise = (np.array(v) for v in zip(*valued, strict=True))
    p = (providers, ALL, ALL)
    rows.add("revenue", total_revenue, *p)
    rows.add("revenue_share", _ratio(total_revenue, total_revenue.sum(axis=1)[:, None]), *p)
    rows.add("operating_income", total_income, *p)
    rows.add("operating_margin", _ratio(total_income, total_revenue), *p)
    rows.add("capex", capex.sum(axis=2), *p)
    rows.add("depreciation", booked("depreciation").sum(axis=2), *p)
    rows.add("free_cash_flow", booked("free_cash_flow"), *p)
    rows.add("cumulative_free_cash_flow", booked("cumulative_free_cash_flow"), *p)
    rows.add("npv", npv, *p)
    rows.add("terminal_value", terminal, *p)
    rows.add("enterprise_value", enterprise, *p)
    rows.add("capacity_utilisation", _ratio(served_compute.sum(axis=2), finite_capacity), *p)

    # The market.
    kr = (ALL, products, regions)
    rows.add("revenue", market_revenue, *kr)
    rows.add("hhi", np.nansum(shares**2, axis=1) * 10_000, *kr)
    rows.add("hhi", np.nansum(world_shares**2, axis=1) * 10_000, ALL, products, ALL)
    rows.add("churn", _ratio(churned[1:].sum(axis=1), market_customers[:-1]), *kr, quarters=later)
    rows.add("wallet_churn", _ratio(moved[1:].sum(axis=1), demand[:-1].sum(axis=1)), *kr, quarters=later)
    buyers = np.array([rec["multi_homing"][0] for rec in records])
    both = np.array([rec["multi_homing"][1] for rec in records])
    rows.add("multi_homing", _ratio(both, buyers), *kr)
    rows.add("multi_homing", _ratio(both.sum(axis=2), buyers.sum(axis=2)), ALL, products, ALL)
    if "ai" in products:
        adoption = recorded("ai_adoption")
        counts = model.enterprises.count_by_region
        rows.add("ai_adoption", adoption, ALL, "ai", regions)
        rows.add("ai_adoption", (adoption * counts).sum(axis=1) / counts.sum(), ALL, "ai", ALL)
    return _with_start(rows.frame(), model)


def _with_start(frame: pd.DataFrame, model: CloudMarket) -> pd.DataFrame:
    frame.attrs["start"] = model.config.start  # calendar of the quarters, for figures' axes (cloudwar.plots)
    return frame


def metric_table(results: pd.DataFrame, metric: str, region: str = ALL, product: str = ALL) -> pd.DataFrame:
    """One metric as a wide table: quarters down, providers across."""
    sel = results[(results.metric == metric) & (results.region == region) & (results["product"] == product)]
    return sel.pivot(index="quarter", columns="provider", values="value")


def share_column(region: str, product: str) -> str:
    """The :func:`summary_table` column of the revenue share in a market: 'ai share china', 'cloud share world'."""
    return f"{product} share {'world' if region == ALL else region}"


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """The last quarter per provider: revenue share of each market (fraction, columns named by
    :func:`share_column`), volume share of each market ('ai volume share china'), operating
    margin (fraction), cumulative FCF and NPV (USD bn)."""
    last = results[results.quarter == results.quarter.max()]
    providers = [p for p in pd.unique(last.provider) if p != ALL]
    out = pd.DataFrame(index=pd.Index(providers, name="provider"))
    share = last[(last.metric == "revenue_share") & (last["product"] != ALL)]
    for (region, product), group in share.groupby(["region", "product"], sort=False):
        out[share_column(region, product)] = group.set_index("provider")["value"].reindex(providers)
    # Volume share beside it: a price rise lifts revenue share without winning anything.
    volume = last[(last.metric == "volume_share") & (last["product"] != ALL)]
    for (region, product), group in volume.groupby(["region", "product"], sort=False):
        out[share_column(region, product).replace(" share", " volume share")] = group.set_index("provider")[
            "value"
        ].reindex(providers)
    totals = last[(last.region == ALL) & (last["product"] == ALL)].pivot(
        index="provider", columns="metric", values="value"
    )
    out["operating margin"] = totals["operating_margin"].reindex(providers)
    out["cum. FCF (USD bn)"] = totals["cumulative_free_cash_flow"].reindex(providers) / 1e9
    out["NPV (USD bn)"] = totals["npv"].reindex(providers) / 1e9
    return out


def plot_results(results: pd.DataFrame, path: str | Path, title: str = "", events: Iterable[TimedEvent] = ()) -> Path:
    """Revenue shares per market, operating margins (with the 30% 'AWS model' line), cumulative free
    cash flow and capacity utilisation, as one PNG at ``path`` (:func:`cloudwar.plots.figure`), with
    the scenario's ``events`` (``model.events``) marked."""
    from cloudwar.plots import FIGURE_DPI, figure  # matplotlib only when a figure is asked for

    path = Path(path)
    marks = [(e.step, f"{e.label} {e.name}") for e in events]
    figure(results, title=title, events=marks).savefig(path, dpi=FIGURE_DPI)
    return path

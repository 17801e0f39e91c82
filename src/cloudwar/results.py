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
    """Collects rows as arrays and builds the table once.

    Labels are kept as integer codes into one vocabulary, and the label columns of each kind of
    block (which labels along which axes) are made once and reused every quarter: a run adds
    about 200 blocks a quarter of the same few kinds, so building labels per block (meshgrids,
    object arrays) cost more than the model's own quarter. The string columns are made once,
    in :meth:`frame`, by taking from the vocabulary.
    """

    def __init__(self, start: str) -> None:
        self.start = start  # calendar quarter of step 1
        self.vocabulary: dict[str, int] = {}  # label -> code
        self.kinds: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # label codes per kind of block
        self.by_identity: dict[tuple[int, int, int], tuple] = {}  # the three label objects and their kind
        self.blocks: list[tuple[int, str, tuple[np.ndarray, ...], np.ndarray]] = []  # quarter, metric, kind, values

    def _codes(self, labels) -> np.ndarray:
        """Codes of a label list, or of a fixed str label as a one-element list."""
        names = [labels] if isinstance(labels, str) else labels
        return np.array([self.vocabulary.setdefault(str(x), len(self.vocabulary)) for x in names], dtype=np.intp)

    def _kind(self, providers, products, regions) -> tuple:
        """The label objects and the label codes of their kind of block, remembered under their identities."""
        axes = (providers, products, regions)
        key = tuple(labels if isinstance(labels, str) else tuple(labels) for labels in axes)
        if key not in self.kinds:
            # Row order: providers slowest, then products, then regions (C order of the values).
            grids = np.meshgrid(*[self._codes(labels) for labels in axes], indexing="ij")
            self.kinds[key] = tuple(g.ravel() for g in grids)
        # Kept with the objects themselves, so an id is not reused by another object while remembered.
        entry = self.by_identity[(id(providers), id(products), id(regions))] = (*axes, self.kinds[key])
        return entry

    def add(self, quarter: int, metric: str, values: np.ndarray, providers, products, regions) -> None:
        """``values`` has one axis per label list (in this order); a str label is a fixed value."""
        # The same few label lists come back every quarter: found by identity, without building a key.
        entry = self.by_identity.get((id(providers), id(products), id(regions)))
        if entry is None or entry[0] is not providers or entry[1] is not products or entry[2] is not regions:
            entry = self._kind(providers, products, regions)
        kind = entry[3]
        values = np.asarray(values, dtype=float).ravel()
        if values.size != kind[0].size:
            raise ValueError(f"{metric}: {values.size} values for {kind[0].size} labels")
        self.blocks.append((quarter, metric, kind, values))

    def frame(self) -> pd.DataFrame:
        if not self.blocks:
            return pd.DataFrame({c: [] for c in COLUMNS})
        block_quarters, metrics, kinds, values = zip(*self.blocks, strict=True)
        sizes = np.array([v.size for v in values])
        steps, where = np.unique(np.array(block_quarters), return_inverse=True)  # a label per quarter, not per row
        code = self.vocabulary.setdefault
        calendar = [code(c, len(self.vocabulary)) for c in quarters.labels(self.start, steps)]
        metric_codes = [code(m, len(self.vocabulary)) for m in metrics]
        vocabulary = pd.array(list(self.vocabulary), dtype="string")
        provider, product, region = (np.concatenate([kind[i] for kind in kinds]) for i in range(3))
        codes = {
            "calendar": np.repeat(np.array(calendar, dtype=np.intp)[where], sizes),
            "provider": provider,
            "region": region,
            "product": product,
            "metric": np.repeat(np.array(metric_codes, dtype=np.intp), sizes),
        }
        columns = {
            "quarter": np.repeat(np.array(block_quarters, dtype=np.int64), sizes),
            **{c: vocabulary.take(codes[c]) for c in COLUMNS[1:-1]},
            "value": np.concatenate(values),
        }
        return pd.DataFrame(columns, columns=COLUMNS)


def tidy_results(model: CloudMarket) -> pd.DataFrame:
    """The run so far as one tidy table (see module docstring for metrics and units)."""
    rows = _Rows(model.config.start)
    providers, regions, products = model.provider_names, model.region_names, model.product_names
    previous_customers = previous_volume = None
    previous_customers_market = previous_volume_market = None  # the market's, a quarter ago
    valuer = Valuer(model.config.discount_rate, model.config.valuation)  # as if each quarter were the horizon
    for rec in model.records:
        q = rec["quarter"]
        books = rec["books"]
        revenue = np.array([b.revenue for b in books])  # (P, K, R)
        income = np.array([b.operating_income for b in books])
        served = np.array([b.served_volume for b in books])
        customers = rec["customers"].astype(float)
        market_revenue = revenue.sum(axis=0)
        market_customers = customers.sum(axis=0)
        market_served = served.sum(axis=0)
        per_pkr = {
            "price": rec["price"],
            "realised_price": np.array([b.realised_price for b in books]),
            "revenue": revenue,
            "revenue_share": _ratio(revenue, market_revenue[None]),
            "volume_share": _ratio(served, market_served[None]),
            "customers": customers,
            "customer_share": _ratio(customers, market_customers[None]),
            "served_volume": served,
            "demand_volume": rec["demand_volume"],
            "operating_income": income,
            "operating_margin": _ratio(income, revenue),
        }
        if previous_customers is not None:
            per_pkr["churn"] = _ratio(rec["churned"], previous_customers)
            per_pkr["wallet_churn"] = _ratio(rec["volume_moved"], previous_volume)
        previous_customers, previous_volume = customers, rec["demand_volume"]
        for metric, values in per_pkr.items():
            rows.add(q, metric, values, providers, products, regions)

        # Provider x region, all products.
        capacity = np.array([b.capacity for b in books])
        served_compute = (served * model.compute_per_unit[None, :, None]).sum(axis=1)
        region_revenue = revenue.sum(axis=1)
        region_income = income.sum(axis=1)
        for metric, values in {
            "revenue": region_revenue,
            "operating_income": region_income,
            "operating_margin": _ratio(region_income, region_revenue),
            "capacity": np.where(np.isfinite(capacity), capacity, np.nan),
            "capacity_utilisation": _ratio(served_compute, np.where(np.isfinite(capacity), capacity, 0.0)),
            "service_level": np.array([b.service_level for b in books]),
            "capex": np.array([b.capex for b in books]),
        }.items():
            rows.add(q, metric, values, providers, ALL, regions)

        # Provider x product, all regions (the world market of each product).
        world_revenue = revenue.sum(axis=2)
        world_income = income.sum(axis=2)
        world_customers = customers.sum(axis=2)
        for metric, values in {
            "revenue": world_revenue,
            "revenue_share": _ratio(world_revenue, world_revenue.sum(axis=0)[None]),
            "volume_share": _ratio(served.sum(axis=2), served.sum(axis=(0, 2))[:, None].T),
            "customer_share": _ratio(world_customers, world_customers.sum(axis=0)[None]),
            "operating_income": world_income,
            "operating_margin": _ratio(world_income, world_revenue),
        }.items():
            rows.add(q, metric, values, providers, products, ALL)

        # Provider totals.
        total_revenue = revenue.sum(axis=(1, 2))
        total_income = income.sum(axis=(1, 2))
        finite_capacity = np.where(np.isfinite(capacity), capacity, 0.0).sum(axis=1)
        npv = np.array([b.npv for b in books])
        terminal, enterprise = valuer.value(q, total_income, total_revenue, npv)
        for metric, values in {
            "revenue": total_revenue,
            "revenue_share": _ratio(total_revenue, np.full_like(total_revenue, total_revenue.sum())),
            "operating_income": total_income,
            "operating_margin": _ratio(total_income, total_revenue),
            "capex": np.array([b.capex.sum() for b in books]),
            "depreciation": np.array([b.depreciation.sum() for b in books]),
            "free_cash_flow": np.array([b.free_cash_flow for b in books]),
            "cumulative_free_cash_flow": np.array([b.cumulative_free_cash_flow for b in books]),
            "npv": npv,
            "terminal_value": terminal,
            "enterprise_value": enterprise,
            "capacity_utilisation": _ratio(served_compute.sum(axis=1), finite_capacity),
        }.items():
            rows.add(q, metric, values, providers, ALL, ALL)

        # The market.
        shares = _ratio(revenue, market_revenue[None])
        rows.add(q, "revenue", market_revenue, ALL, products, regions)
        rows.add(q, "hhi", np.nansum(shares**2, axis=0) * 10_000, ALL, products, regions)
        world_shares = _ratio(world_revenue, world_revenue.sum(axis=0)[None])
        rows.add(q, "hhi", np.nansum(world_shares**2, axis=0) * 10_000, ALL, products, ALL)
        if "churn" in per_pkr:
            lost = rec["churned"].sum(axis=0)
            rows.add(q, "churn", _ratio(lost, previous_customers_market), ALL, products, regions)
            moved = rec["volume_moved"].sum(axis=0)
            rows.add(q, "wallet_churn", _ratio(moved, previous_volume_market), ALL, products, regions)
        previous_customers_market = customers.sum(axis=0)
        previous_volume_market = rec["demand_volume"].sum(axis=0)
        buyers, both = rec["multi_homing"]
        rows.add(q, "multi_homing", _ratio(both, buyers), ALL, products, regions)
        rows.add(q, "multi_homing", _ratio(both.sum(axis=1), buyers.sum(axis=1)), ALL, products, ALL)
        if "ai" in products:
            adoption = rec["ai_adoption"]
            counts = model.enterprises.count_by_region
            rows.add(q, "ai_adoption", adoption, ALL, "ai", regions)
            rows.add(q, "ai_adoption", np.array([(adoption * counts).sum() / counts.sum()]), ALL, "ai", ALL)
    frame = rows.frame()
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

"""Backtest: run the ``history`` scenario over many seeds and hold it against what happened.

``run_backtest("history", seeds=20, out="runs/backtest") -> Backtest``

The history scenario starts in 2023Q3 (model quarter 1) and runs to 2025Q3. Its runs go through
the runs layer (:func:`cloudwar.runs.design.plan_design`, :func:`cloudwar.runs.runner.run_design`,
any executor) into a resumable store, ``OUT/store``; running the same backtest again runs only the
missing runs. Every series of ``history.csv`` that the model represents is then compared, period by
period, with the model's median and 10-90% band across the runs (:data:`SERIES`, the mapping table:
history series -> model metric, provider, region, product, transformation, unit).

Transformations (model quarter t is calendar quarter ``quarters.label(start, t)``):

* ``level``: the metric summed over the period (a quarter, a half ``2025H1`` or a year ``2024FY``),
  times ``scale`` (``1e-9`` for USD bn; RMB series are converted at the scenario's ``rmb_per_usd``);
* ``margin``: operating income / revenue of the provider over the period, in %;
* ``share``: the provider's revenue / the market's (all providers') over the period, in %;
* ``yoy``: revenue growth on the same quarter a year before, in %. From model quarter 5 on the
  model's own quarter t - 4 is the base. In quarters 2-4 the year before lies before the start:
  there, when the series names a ``base`` level series of history.csv with actual values at the
  start and at t - 4, the model's level is matched to the actual level at the start and compared
  with the actual level of the year before, ``actual(start) x model(t) / model(1) / actual(t - 4)``;
  otherwise the quarter is not compared. Quarter 1 is never compared (it is the matched level);
* ``trailing4q``: the metric summed over the four quarters ending in the period.

A provider of ``all`` is the market (every provider summed); several providers joined by ``+`` are
summed (``Alibaba+Huawei+Tencent``, the China top-3 share).

The table (:func:`backtest_table`) has one row per series x period with an actual value: ``actual``
(history.csv), ``median``, ``p10``, ``p90`` (the model's quantiles over the runs), ``error`` =
median - actual (points for % series), ``within_band`` (p10 <= actual <= p90), ``confidence`` (of
the actual, from history.csv), ``unit`` and ``runs``. :func:`summary_table` condenses it per series;
:func:`share_order` checks whether the providers' order of world shares is kept; :func:`plot_backtest`
draws one panel per series in calendar time with the actual points on the model's band.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cloudwar import quarters as calendar
from cloudwar.errors import SweepError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cloudwar.runs.runner import RunReport

MARKET = "all"  # the provider label of the whole market (every provider summed)
STORE = "store"  # the runs of a backtest, inside its --out (resumable)
TABLE_COLUMNS = (
    "series",
    "quarter",
    "actual",
    "median",
    "p10",
    "p90",
    "error",
    "within_band",
    "confidence",
    "unit",
    "runs",
)
_PERIOD = re.compile(r"(\d{4})(Q[1-4]|H[12]|FY)")


@dataclass(frozen=True)
class Series:
    """How one history.csv series is read from the model (see the module docstring)."""

    name: str  # the history.csv series
    label: str  # a short title for tables and figures
    transform: str  # level, margin, share, yoy, trailing4q
    provider: str  # a provider, several joined by "+", or "all" (the market)
    region: str = "all"
    product: str = "all"
    metric: str = "revenue"  # level and trailing4q only: the model metric summed
    unit: str = "%"
    scale: float = 1.0  # level, trailing4q: model unit -> the series' unit (after RMB conversion)
    rmb: bool = False  # level, trailing4q: convert USD to RMB first
    base: str | None = None  # yoy: the level series of history.csv that gives the year before the start
    note: str = ""  # caveats (structural breaks, definitions, capacity limits)


_US = "USD bn"
SERIES: tuple[Series, ...] = (
    Series("alibaba_cloud_revenue_yoy_pct", "Alibaba cloud revenue growth", "yoy", "Alibaba",
           base="alibaba_cloud_revenue_rmb_bn",
           note="2023Q1 base is a derived restatement (the old segment basis is a structural break)"),
    Series("alibaba_cloud_revenue_rmb_bn", "Alibaba cloud revenue", "level", "Alibaba", unit="RMB bn",
           scale=1e-9, rmb=True, note="includes revenue from Alibaba-consolidated subsidiaries"),
    Series("alibaba_cloud_adj_ebita_margin_pct", "Alibaba cloud margin (adj. EBITA)", "margin", "Alibaba"),
    Series("aws_net_sales_yoy_pct", "AWS revenue growth", "yoy", "AWS", base="aws_net_sales_usd_bn"),
    Series("aws_net_sales_usd_bn", "AWS revenue", "level", "AWS", unit=_US, scale=1e-9),
    Series("aws_operating_margin_pct", "AWS operating margin", "margin", "AWS"),
    Series("azure_revenue_growth_yoy_pct", "Microsoft (Azure) growth", "yoy", "Microsoft",
           note="Azure re-scoped from 2024Q3 (structural break); capacity-limited mid-2024 and 2025"),
    Series("google_cloud_revenue_yoy_pct", "Google Cloud growth", "yoy", "Google", base="google_cloud_revenue_usd_bn",
           note="capacity-limited from late 2024"),
    Series("google_cloud_revenue_usd_bn", "Google Cloud revenue", "level", "Google", unit=_US, scale=1e-9),
    Series("google_cloud_operating_margin_pct", "Google Cloud operating margin", "margin", "Google"),
    Series("synergy_global_cloud_market_usd_bn", "World cloud market (Synergy)", "level", MARKET, unit=_US,
           scale=1e-9),
    Series("synergy_global_cloud_market_yoy_pct", "World cloud market growth", "yoy", MARKET,
           base="synergy_global_cloud_market_usd_bn"),
    Series("synergy_share_aws_pct", "AWS world share", "share", "AWS"),
    Series("synergy_share_microsoft_pct", "Microsoft world share", "share", "Microsoft"),
    Series("synergy_share_google_pct", "Google world share", "share", "Google"),
    Series("synergy_share_alibaba_pct", "Alibaba world share", "share", "Alibaba"),
    Series("synergy_share_tencent_pct", "Tencent world share", "share", "Tencent"),
    Series("china_cloud_infra_market_usd_bn", "China cloud market (Canalys)", "level", MARKET, region="china",
           unit=_US, scale=1e-9, note="Canalys restated China in 2025: 2024 and 2025 levels do not chain"),
    Series("china_cloud_infra_market_yoy_pct", "China cloud market growth", "yoy", MARKET, region="china",
           base="china_cloud_infra_market_usd_bn"),
    Series("china_cloud_top3_share_pct", "China top-3 share (Ali+Huawei+Tencent)", "share",
           "Alibaba+Huawei+Tencent", region="china"),
    Series("china_cloud_share_alibaba_pct", "Alibaba China cloud share", "share", "Alibaba", region="china"),
    Series("china_cloud_share_huawei_pct", "Huawei China cloud share", "share", "Huawei", region="china"),
    Series("china_cloud_share_tencent_pct", "Tencent China cloud share", "share", "Tencent", region="china",
           note="Tencent's GPU supply limited its 2025 growth"),
    Series("omdia_china_ai_cloud_market_rmb_bn", "China AI cloud market (Omdia)", "level", MARKET,
           region="china", product="ai", unit="RMB bn", scale=1e-9, rmb=True),
    Series("omdia_china_ai_cloud_share_alibaba_pct", "Alibaba China AI share", "share", "Alibaba", region="china",
           product="ai"),
    Series("omdia_china_ai_cloud_share_volcano_engine_pct", "Volcano Engine China AI share", "share",
           "Volcano Engine", region="china", product="ai"),
    Series("omdia_china_ai_cloud_share_huawei_pct", "Huawei China AI share", "share", "Huawei", region="china",
           product="ai"),
    Series("omdia_china_ai_cloud_share_tencent_pct", "Tencent China AI share", "share", "Tencent", region="china",
           product="ai"),
    Series("omdia_china_ai_cloud_share_baidu_pct", "Baidu China AI share", "share", "Baidu", region="china",
           product="ai"),
    Series("tencent_business_services_yoy_pct", "Tencent business services growth", "yoy", "Tencent",
           note="only 2023Q4 (no base year in history.csv) and 2025Q3 'double-digit' (no number): no point compared"),
    Series("tencent_fbs_revenue_yoy_pct", "Tencent FinTech+Business Services growth (proxy)", "yoy", "Tencent",
           note="proxy: the segment includes FinTech; the model's Tencent is its cloud"),
    Series("alibaba_ai_cloud_capex_trailing4q_rmb_bn", "Alibaba AI+cloud capex, last 4 quarters", "trailing4q",
           "Alibaba", metric="capex", unit="RMB bn", scale=1e-9, rmb=True),
)  # fmt: skip
#: The series of the README's figure (the issue's list).
HEADLINE = (
    "alibaba_cloud_revenue_yoy_pct",
    "alibaba_cloud_adj_ebita_margin_pct",
    "aws_net_sales_yoy_pct",
    "aws_operating_margin_pct",
    "google_cloud_operating_margin_pct",
    "synergy_global_cloud_market_usd_bn",
    "synergy_global_cloud_market_yoy_pct",
    "synergy_share_aws_pct",
    "synergy_share_microsoft_pct",
    "synergy_share_google_pct",
    "synergy_share_alibaba_pct",
    "omdia_china_ai_cloud_share_alibaba_pct",
)
#: The world shares whose order :func:`share_order` checks, quarter by quarter.
ORDER_SERIES = tuple(s.name for s in SERIES if s.name.startswith("synergy_share_"))
TRANSFORMS = ("level", "margin", "share", "yoy", "trailing4q")


# --------------------------------------------------------------------------------------------
# history.csv
# --------------------------------------------------------------------------------------------
def history_path() -> Path:
    """The shipped copy of history.csv (``cloudwar/scenario/data/history.csv``)."""
    return Path(str(resources.files("cloudwar.scenario.data").joinpath("history.csv")))


def read_history(path: str | Path | None = None) -> pd.DataFrame:
    """history.csv as a table (quarter, series, value, unit, source_url, confidence, note); values
    that are not numbers (empty, ``60-80``, ``<1``) are NaN."""
    path = history_path() if path is None else Path(path)
    try:
        table = pd.read_csv(path, dtype={"quarter": str, "series": str, "value": str})
    except (OSError, ValueError) as err:
        raise SweepError(f"history {path}: cannot be read ({err})", param="history") from None
    missing = {"quarter", "series", "value", "confidence"} - set(table.columns)
    if missing:
        raise SweepError(f"history {path}: missing columns {', '.join(sorted(missing))}", param="history")
    table["value"] = pd.to_numeric(table["value"], errors="coerce")
    return table


def period_quarters(period: str) -> list[str]:
    """The calendar quarters of a history.csv period: ``2024Q2`` itself, ``2025H1`` its two, ``2024FY`` four."""
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise SweepError(f"history: unknown period {period!r} (expected YYYYQn, YYYYHn or YYYYFY)")
    year, part = match[1], match[2]
    if part.startswith("Q"):
        return [period]
    if part == "FY":
        return [f"{year}Q{q}" for q in range(1, 5)]
    first = 1 if part == "H1" else 3
    return [f"{year}Q{first}", f"{year}Q{first + 1}"]


def period_position(period: str) -> float:
    """Where a period sits on a calendar axis: its quarters' mean running number (:func:`quarters.index`)."""
    return float(np.mean([calendar.index(q) for q in period_quarters(period)]))


# --------------------------------------------------------------------------------------------
# The model's side: per-run values of every series
# --------------------------------------------------------------------------------------------
def metric_triples(series: Iterable[Series] = SERIES) -> tuple[tuple[str, str, str], ...]:
    """The (metric, region, product) rows a backtest keeps of each run."""
    triples: dict[tuple[str, str, str], None] = {}
    for s in series:
        metrics = {"margin": ("revenue", "operating_income")}.get(s.transform, (s.metric,))
        for m in metrics:
            triples[(m, s.region, s.product)] = None
    return tuple(triples)


class RunValues:
    """The kept metrics of many runs as arrays (run, quarter) per (metric, region, product, provider)."""

    def __init__(self, metrics: pd.DataFrame, n_quarters: int, rmb_per_usd: float):
        self.rmb_per_usd = rmb_per_usd
        self.runs = np.sort(pd.unique(metrics["run"]))
        self.n_quarters = n_quarters
        self._wide: dict[tuple[str, str, str], pd.DataFrame] = {}
        frame = metrics[metrics["provider"] != MARKET]
        for key, group in frame.groupby(["metric", "region", "product"], sort=False):
            wide = group.pivot_table(index=["run", "quarter"], columns="provider", values="value", aggfunc="first")
            full = pd.MultiIndex.from_product([self.runs, range(1, n_quarters + 1)], names=["run", "quarter"])
            self._wide[tuple(str(k) for k in key)] = wide.reindex(full)

    def level(self, metric: str, region: str, product: str, provider: str) -> np.ndarray:
        """(runs, quarters) of ``metric`` for ``provider`` (``all``: every provider summed; ``A+B``: summed)."""
        wide = self._wide.get((metric, region, product))
        if wide is None:
            raise SweepError(f"backtest: the runs kept no {metric} rows for region {region}, product {product}")
        if provider == MARKET:
            cols = list(wide.columns)
        else:
            cols = provider.split("+")
            unknown = [c for c in cols if c not in wide.columns]
            if unknown:
                raise SweepError(
                    f"backtest: provider {unknown[0]!r} is not in the runs (have {', '.join(wide.columns)})"
                )
        values = wide[cols].to_numpy(dtype=float)
        total = values.sum(axis=1) if provider == MARKET or "+" in provider else values[:, 0]
        return total.reshape(len(self.runs), self.n_quarters)


def _sum_over(values: np.ndarray, steps: Sequence[int]) -> np.ndarray:
    """Sum of (runs, quarters) over 1-based model ``steps``; NaN if a step is outside the run."""
    if not steps or min(steps) < 1 or max(steps) > values.shape[1]:
        return np.full(values.shape[0], np.nan)
    return values[:, [s - 1 for s in steps]].sum(axis=1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def series_values(
    series: Series,
    values: RunValues,
    start: str,
    period: str,
    history: pd.DataFrame | None = None,
) -> np.ndarray:
    """The model's value of ``series`` in ``period`` for every run (NaN where it is not defined).

    ``history`` gives the actual base levels of a ``yoy`` series in quarters 2-4 (module docstring).
    """
    steps = [calendar.index(q) - calendar.index(start) + 1 for q in period_quarters(period)]
    s = series
    if s.transform in ("level", "trailing4q"):
        level = values.level(s.metric, s.region, s.product, s.provider)
        if s.transform == "trailing4q":
            steps = list(range(steps[-1] - 3, steps[-1] + 1))
        factor = s.scale * (values.rmb_per_usd if s.rmb else 1.0)
        return _sum_over(level, steps) * factor
    if s.transform == "margin":
        income = values.level("operating_income", s.region, s.product, s.provider)
        revenue = values.level("revenue", s.region, s.product, s.provider)
        return 100.0 * _ratio(_sum_over(income, steps), _sum_over(revenue, steps))
    if s.transform == "share":
        own = values.level("revenue", s.region, s.product, s.provider)
        market = values.level("revenue", s.region, s.product, MARKET)
        return 100.0 * _ratio(_sum_over(own, steps), _sum_over(market, steps))
    if s.transform == "yoy":
        if len(steps) != 1:
            return np.full(len(values.runs), np.nan)
        t = steps[0]
        level = values.level("revenue", s.region, s.product, s.provider)
        if t > 4:
            return 100.0 * (_ratio(_sum_over(level, [t]), _sum_over(level, [t - 4])) - 1.0)
        if 2 <= t <= values.n_quarters and s.base is not None and history is not None:
            start_actual = actual_value(history, s.base, start)
            before = actual_value(history, s.base, _shift(period, -4))
            if math.isfinite(start_actual) and math.isfinite(before):
                growth = _ratio(_sum_over(level, [t]), _sum_over(level, [1]))
                return 100.0 * (start_actual * growth / before - 1.0)
        return np.full(len(values.runs), np.nan)
    raise SweepError(f"backtest: series {s.name}: unknown transform {s.transform!r} (one of {', '.join(TRANSFORMS)})")


def _shift(quarter: str, quarters: int) -> str:
    i = calendar.index(quarter) + quarters
    return f"{i // 4}Q{i % 4 + 1}"


def actual_value(history: pd.DataFrame, series: str, period: str) -> float:
    """The actual value of ``series`` in ``period`` (NaN if history.csv has none)."""
    rows = history[(history["series"] == series) & (history["quarter"] == period)]["value"].dropna()
    return float(rows.iloc[0]) if len(rows) else float("nan")


# --------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------
def model_periods(start: str, n_quarters: int) -> list[str]:
    """The calendar quarters a run covers."""
    return calendar.labels(start, range(1, n_quarters + 1))


def quantiles(values: np.ndarray) -> tuple[float, float, float]:
    """(p10, median, p90) of the finite values (NaN if none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (float("nan"),) * 3  # type: ignore[return-value]
    low, mid, high = np.percentile(finite, [10, 50, 90])
    return float(low), float(mid), float(high)


def backtest_table(
    values: RunValues,
    start: str,
    history: pd.DataFrame,
    series: Sequence[Series] = SERIES,
) -> pd.DataFrame:
    """One row per series x period with an actual value that the run covers (module docstring)."""
    covered = set(model_periods(start, values.n_quarters))
    rows = []
    for s in series:
        actual_rows = history[(history["series"] == s.name)].dropna(subset=["value"])
        for _, row in actual_rows.iterrows():
            period = str(row["quarter"])
            if not set(period_quarters(period)) <= covered:
                continue
            model = series_values(s, values, start, period, history)
            if not np.isfinite(model).any():
                continue  # not comparable (a growth rate in the first quarter, say)
            p10, median, p90 = quantiles(model)
            actual = float(row["value"])
            rows.append(
                {
                    "series": s.name,
                    "quarter": period,
                    "actual": actual,
                    "median": median,
                    "p10": p10,
                    "p90": p90,
                    "error": median - actual,
                    "within_band": bool(p10 <= actual <= p90),
                    "confidence": str(row["confidence"]) if pd.notna(row["confidence"]) else "",
                    "unit": s.unit,
                    "runs": int(np.isfinite(model).sum()),
                }
            )
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    order = {s.name: i for i, s in enumerate(series)}
    table["_order"] = table["series"].map(order)
    table["_position"] = table["quarter"].map(period_position)
    return table.sort_values(["_order", "_position"]).drop(columns=["_order", "_position"]).reset_index(drop=True)


def summary_table(table: pd.DataFrame, series: Sequence[Series] = SERIES) -> pd.DataFrame:
    """Per series: points compared, how many within the band, mean and largest absolute error (the
    series' unit; points for %), and the periods compared."""
    labels = {s.name: s.label for s in series}
    rows = []
    for name, group in table.groupby("series", sort=False):
        err = group["error"].abs()
        rows.append(
            {
                "series": name,
                "label": labels.get(str(name), str(name)),
                "unit": group["unit"].iloc[0],
                "points": len(group),
                "within_band": int(group["within_band"].sum()),
                "mean_abs_error": float(err.mean()),
                "max_abs_error": float(err.max()),
                "periods": f"{group['quarter'].iloc[0]}-{group['quarter'].iloc[-1]}",
            }
        )
    return pd.DataFrame(rows)


def share_order(table: pd.DataFrame, names: Sequence[str] = ORDER_SERIES) -> pd.DataFrame:
    """Per period with two or more of the world shares: whether the model's medians rank the providers
    as history.csv does (pairs tied in history.csv are not counted)."""
    sel = table[table["series"].isin(names)]
    rows = []
    for period, group in sel.groupby("quarter", sort=False):
        if len(group) < 2:
            continue
        actual = group.set_index("series")["actual"]
        median = group.set_index("series")["median"]
        pairs = [(a, b) for i, a in enumerate(actual.index) for b in actual.index[i + 1 :] if actual[a] != actual[b]]
        kept = all((actual[a] > actual[b]) == (median[a] > median[b]) for a, b in pairs)
        order = " > ".join(
            n.removeprefix("synergy_share_").removesuffix("_pct") for n in actual.sort_values(ascending=False).index
        )
        rows.append({"quarter": period, "actual_order": order, "pairs": len(pairs), "order_kept": kept})
    out = pd.DataFrame(rows, columns=["quarter", "actual_order", "pairs", "order_kept"])
    return out.sort_values("quarter", key=lambda c: c.map(period_position)).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def quarterly_band(series: Series, values: RunValues, start: str, history: pd.DataFrame) -> pd.DataFrame:
    """(runs, calendar quarter positions) of the series' quarterly value, for the band of a panel."""
    columns = {}
    for q in model_periods(start, values.n_quarters):
        v = series_values(series, values, start, q, history)
        if np.isfinite(v).any():
            columns[calendar.index(q)] = v
    return pd.DataFrame(columns)


def plot_backtest(
    table: pd.DataFrame,
    values: RunValues,
    start: str,
    history: pd.DataFrame,
    series: Sequence[Series] = SERIES,
    title: str = "",
    cols: int = 4,
) -> Figure:
    """One panel per series that has points in ``table``: the model's median and 10-90% band per
    quarter (``levels`` over a half or a year as a bar at the period), history.csv's actual points
    (label ``history.csv``), on a calendar axis."""
    from matplotlib.figure import Figure

    from cloudwar.plots import band

    shown = [s for s in series if (table["series"] == s.name).any()]
    rows = max(1, -(-len(shown) // cols))
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows))
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    span = [calendar.index(q) for q in model_periods(start, values.n_quarters)]
    for ax, s in zip(axes, shown, strict=False):
        points = table[table["series"] == s.name]
        quarterly = points["quarter"].str.fullmatch(r"\d{4}Q[1-4]")
        wide = quarterly_band(s, values, start, history)
        if quarterly.any() and not wide.empty:
            band(ax, wide, "model median, 10-90%", "tab:blue")
        # A half or a year is drawn only for a series without quarters: beside quarterly values a
        # yearly sum would only stretch the axis (the table has it either way).
        other = points[~quarterly] if not quarterly.any() else points.iloc[0:0]
        points = points[quarterly] if quarterly.any() else points
        if len(other):
            x = other["quarter"].map(period_position).to_numpy()
            ax.errorbar(
                x,
                other["median"],
                yerr=[other["median"] - other["p10"], other["p90"] - other["median"]],
                fmt="s",
                color="tab:blue",
                capsize=3,
                label="model over the period",
            )
        x = points["quarter"].map(period_position).to_numpy()
        ax.plot(x, points["actual"].to_numpy(), "o", color="black", markersize=4, label="history.csv", gid="actual")
        ax.set_title(s.label, fontsize=9)
        ax.set_ylabel(s.unit, fontsize=8)
        ticks = [i for i in span if i % 4 == 0 or i == span[0]]
        ax.set_xticks(ticks, [f"{i // 4}Q{i % 4 + 1}" for i in ticks], fontsize=7)
        ax.set_xlim(span[0] - 0.5, span[-1] + 0.5)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes[len(shown) :]:
        ax.axis("off")
    if shown:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return fig


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------
@dataclass
class Backtest:
    """What a backtest produced: the table, its summary, the share-order check, the runs' values."""

    table: pd.DataFrame
    summary: pd.DataFrame
    order: pd.DataFrame
    values: RunValues
    start: str
    history: pd.DataFrame
    report: RunReport | None = None
    series: tuple[Series, ...] = field(default=SERIES)

    def figure(self, names: Sequence[str] | None = None, title: str = "", cols: int = 4) -> Figure:
        """:func:`plot_backtest` of the series ``names`` (default: all with points)."""
        chosen = self.series if names is None else tuple(s for s in self.series if s.name in set(names))
        return plot_backtest(self.table, self.values, self.start, self.history, chosen, title, cols)


def plan_backtest(
    scenario: str | Path = "history",
    seeds: int = 20,
    seed: int = 0,
    fixed: dict[str, Any] | None = None,
    series: Sequence[Series] = SERIES,
) -> Any:
    """The design of a backtest: one point (the scenario with ``fixed``), ``seeds`` replicates,
    keeping only the rows the series read."""
    from cloudwar.runs.design import plan_design

    return plan_design(
        scenario,
        seeds=seeds,
        seed=seed,
        fixed=fixed,
        metrics=metric_triples(series),
        design={"backtest": [s.name for s in series]},
    )


def evaluate(
    metrics: pd.DataFrame,
    scenario: Any,
    history: pd.DataFrame | None = None,
    series: Sequence[Series] = SERIES,
) -> Backtest:
    """The backtest of runs' kept ``metrics`` of ``scenario`` (a :class:`~cloudwar.scenario.Scenario`)."""
    history = read_history() if history is None else history
    values = RunValues(metrics, scenario.quarters, scenario.rmb_per_usd)
    table = backtest_table(values, scenario.start, history, series)
    return Backtest(
        table, summary_table(table, series), share_order(table), values, scenario.start, history, None, tuple(series)
    )


def run_backtest(
    scenario: str | Path = "history",
    seeds: int = 20,
    *,
    out: str | Path,
    seed: int = 0,
    fixed: dict[str, Any] | None = None,
    history: str | Path | None = None,
    executor: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    connect_timeout: float = 10.0,
) -> Backtest:
    """Run the scenario over ``seeds`` seeds into ``out/store`` (resumable; any executor) and compare.

    Only the runs missing from the store are run. Raises :class:`SweepError` if a run failed.
    """
    from cloudwar.runs.runner import run_design
    from cloudwar.runs.store import read_sweep
    from cloudwar.scenario import parse_scenario

    past = read_history(history)  # fail before any run on an unreadable history
    design = plan_backtest(scenario, seeds, seed, fixed)
    report = run_design(
        design,
        Path(out) / STORE,
        executor=executor,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        connect_timeout=connect_timeout,
        replace=True,
        description=f"backtest {Path(str(scenario)).stem}",
    )
    runs, metrics = read_sweep(Path(out) / STORE)
    failed = runs[runs["status"] != "ok"]
    if len(failed):
        raise SweepError(f"backtest: {len(failed)} runs ended with an error, e.g. {failed['error'].iloc[0]}")
    result = evaluate(metrics, parse_scenario(design.scenario), past)
    result.report = report
    return result

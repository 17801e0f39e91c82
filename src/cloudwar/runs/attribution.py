"""Attribution of a playbook's result to its levers: a 2^k factorial design, paired by seed.

The seed's question (is Alibaba's margin pain justified?) compares its ``share_first`` playbook
with the ``margin_discipline`` counterfactual, which differ in four levers at once
(:data:`LEVERS`). Each lever is on (as in ``share_first``) or off (as under margin discipline):

* ``price_cuts``: on, share_first's prices (10% below its starting price position against the
  rivals, ``price_cut``); off, the margin controller of margin discipline from the first quarter
  (``harvest_quarter = 1``: share_first's harvest *is* that controller, with the same target,
  band, speed and step);
* ``capex_plan``: on, the committed RMB 380bn over 12 quarters; off, the utilisation rule
  (``plan_quarters = 0``), margin discipline's;
* ``ecosystem``: on, USD 0.3bn a quarter on open source (``ecosystem_spend``); off, none;
* ``harvest``: on, prices turn to the margin controller in quarter ``harvest_quarter`` (13, the
  end of the plan, by default); off, never.

With every lever off, share_first *is* margin discipline, to the bit (``tests/test_attribution.py``
runs both), so the all-off corner is written ``{kind = "margin_discipline"}``, and a corner with
the price cuts and the capex plan off is margin discipline with, at most, the ecosystem spend:
the counterfactual "discipline but keep the open-source spend" is the corner ``ecosystem``.
Without price cuts, prices follow the margin controller from the start, so the harvest lever
changes nothing there: the corners ``harvest`` and none (and the other three pairs that differ
only in the harvest with the price cuts off) are the same strategy, run once
(:func:`corner_arms`). The harvest's main effect is then half its effect under price cuts, and
its interaction with the price cuts the other half; :func:`factorial_effects` also reports each
lever *alone* (from margin discipline) and *dropped* (from the full playbook).

:func:`factorial_effects` computes, seed by seed, the standard factorial effects of a full 2^k
table (main effect of lever i: the mean over the other levers' corners of on minus off;
interaction of a set S: 2 / 2^k sum_x y(x) prod_{i in S} (2 x_i - 1)), and their mean over
seeds with a 90% Student-t interval (:func:`cloudwar.runs.compare.t_interval`). The grand mean and
the effects reconstruct every corner's mean exactly (:func:`reconstruct`):
y(x) = mean + sum_S effect_S / 2 prod_{i in S} (2 x_i - 1).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cloudwar.errors import SweepError

FOCUS = "Alibaba"
LEVERS = ("price_cuts", "capex_plan", "ecosystem", "harvest")
LEVER_DOC = {
    "price_cuts": "share_first's prices (10% below its starting position against rivals) vs margin discipline's",
    "capex_plan": "the RMB 380bn capex plan over 12 quarters vs the utilisation rule",
    "ecosystem": "USD 0.3bn a quarter of open-source spend vs none",
    "harvest": "prices steer the margin to 30% from the harvest quarter on vs never",
}
ECOSYSTEM_SPEND = 0.3e9  # USD per quarter: share_first's default (facts.md: open-source Qwen)
HARVEST_QUARTER = 13  # the first quarter after the 12-quarter plan (margin_pain.py's harvest arm)
DISCIPLINE_PRICES = 1  # harvest from the first decision: margin discipline's prices from the start


@dataclass(frozen=True)
class Outcome:
    """One outcome of the focus provider at the horizon: a (metric, region, product) of the results."""

    name: str
    metric: str
    region: str
    product: str
    label: str
    unit: str  # of the table: "USD" or "fraction"
    scale: float  # to the unit of the figure and the printed table
    shown: str  # that unit


def outcomes() -> tuple[Outcome, ...]:
    """The outcomes the attribution reports: NPV, enterprise value, China AI shares of revenue,
    customers and (once the results have it) volume, found by name in :data:`cloudwar.results.METRICS`."""
    from cloudwar.results import METRICS

    found = [
        Outcome("npv", "npv", "all", "all", "NPV of free cash flow", "USD", 1e-9, "USD bn"),
        Outcome("enterprise_value", "enterprise_value", "all", "all", "enterprise value", "USD", 1e-9, "USD bn"),
        Outcome(
            "china_ai_revenue_share", "revenue_share", "china", "ai", "China AI revenue share", "fraction", 100, "pp"
        ),
        Outcome(
            "china_ai_customer_share", "customer_share", "china", "ai", "China AI customer share", "fraction", 100, "pp"
        ),
        Outcome("china_ai_volume_share", "volume_share", "china", "ai", "China AI volume share", "fraction", 100, "pp"),
    ]
    return tuple(o for o in found if o.metric in METRICS)


def metric_triples(chosen: Sequence[Outcome]) -> tuple[tuple[str, str, str], ...]:
    """The (metric, region, product) triples a design keeps for ``chosen`` outcomes."""
    return tuple(dict.fromkeys((o.metric, o.region, o.product) for o in chosen))


def outcome_table(table: pd.DataFrame, chosen: Sequence[Outcome], provider: str = FOCUS) -> pd.DataFrame:
    """One row per run (its label columns and ``seed``), one column per outcome: its value at the last quarter.

    ``table``: tidy metrics with label columns and ``seed`` (what ``run_arms`` returns). Units are
    the results' own (USD, fractions).
    """
    last = table[(table["quarter"] == table["quarter"].max()) & (table["provider"] == provider)]
    labels = [c for c in table.columns if c not in ("quarter", "provider", "region", "product", "metric", "value")]
    columns = []
    for o in chosen:
        sel = last[(last["metric"] == o.metric) & (last["region"] == o.region) & (last["product"] == o.product)]
        if sel.empty:
            raise SweepError(f"no {o.metric} of {provider} for {o.region}/{o.product} in the runs")
        columns.append(sel.set_index(labels)["value"].rename(o.name))
    return pd.concat(columns, axis=1).reset_index()


# --------------------------------------------------------------------------------------------
# The corners
# --------------------------------------------------------------------------------------------
def corners(levers: Sequence[str] = LEVERS) -> list[dict[str, int]]:
    """Every corner of the 2^k design as {lever: 0 or 1}, the last lever varying fastest."""
    return [dict(zip(levers, bits, strict=True)) for bits in itertools.product((0, 1), repeat=len(levers))]


def corner_name(corner: dict[str, int]) -> str:
    """``price_cuts+ecosystem``; ``none`` for the all-off corner."""
    on = [lever for lever, level in corner.items() if level]
    return "+".join(on) if on else "none"


def corner_strategy(corner: dict[str, int], harvest_quarter: int = HARVEST_QUARTER) -> dict[str, Any]:
    """The focus provider's strategy table of a corner of :data:`LEVERS` (see the module docstring).

    Corners with the price cuts and the capex plan off are written as margin discipline (with the
    ecosystem spend when that lever is on); the others as share_first with what differs from its
    defaults. ``harvest_quarter``: the quarter the harvest lever starts (a step >= 2).
    """
    if isinstance(harvest_quarter, bool) or not isinstance(harvest_quarter, int) or harvest_quarter < 2:
        raise SweepError(f"harvest_quarter must be a quarter >= 2, got {harvest_quarter!r}", param="harvest_quarter")
    unknown = sorted(set(corner) - set(LEVERS))
    if unknown or len(corner) != len(LEVERS):
        raise SweepError(f"a corner needs a level for each of {', '.join(LEVERS)}, got {corner}", param="corner")
    if not corner["price_cuts"] and not corner["capex_plan"]:
        strategy: dict[str, Any] = {"kind": "margin_discipline"}
        if corner["ecosystem"]:
            strategy["ecosystem_spend"] = ECOSYSTEM_SPEND
        return strategy
    strategy = {"kind": "share_first"}
    if not corner["price_cuts"]:
        strategy["harvest_quarter"] = DISCIPLINE_PRICES
    elif corner["harvest"]:
        strategy["harvest_quarter"] = harvest_quarter
    if not corner["capex_plan"]:
        strategy["plan_quarters"] = 0
    if not corner["ecosystem"]:
        strategy["ecosystem_spend"] = 0.0
    return strategy


@dataclass(frozen=True)
class CornerArm:
    """A corner of the design and the arm whose runs it reads (corners that are the same strategy share one)."""

    corner: dict[str, int]
    name: str
    arm: str
    strategy: dict[str, Any]


def corner_arms(
    harvest_quarter: int = HARVEST_QUARTER, extra_harvests: Sequence[int] = (), provider: str = FOCUS
) -> tuple[list[CornerArm], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """The corners with their arms, and the distinct arms as (labels, scenario overrides) to run.

    ``extra_harvests``: other harvest quarters of the full playbook (every lever on), run as extra
    arms ``all@harvest_Q`` beside the factorial (compared with the all-on corner by :func:`contrasts`).
    """
    key = f"providers.{provider}.strategy"
    arms: dict[str, tuple[str, dict[str, Any]]] = {}  # strategy as JSON -> (arm name, strategy)
    table = []
    for corner in corners():
        strategy = corner_strategy(corner, harvest_quarter)
        text = json.dumps(strategy, sort_keys=True)
        name = corner_name(corner)
        arm = arms.setdefault(text, (name, strategy))[0]
        table.append(CornerArm(corner, name, arm, strategy))
    runs = [({"arm": name}, {key: strategy}) for name, strategy in arms.values()]
    full = dict.fromkeys(LEVERS, 1)
    for quarter in extra_harvests:
        if quarter == harvest_quarter:
            raise SweepError(f"extra harvest quarter {quarter} is the design's own harvest quarter", param="harvest")
        runs.append(({"arm": extra_arm(quarter)}, {key: corner_strategy(full, quarter)}))
    return table, runs


def extra_arm(quarter: int) -> str:
    """The name of the full playbook harvesting in ``quarter`` (an arm beside the factorial)."""
    return f"all@harvest_{quarter}"


# --------------------------------------------------------------------------------------------
# Effects
# --------------------------------------------------------------------------------------------
def interaction_sets(levers: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty set of levers, main effects first, then pairs, triples, ..."""
    return [s for size in range(1, len(levers) + 1) for s in itertools.combinations(levers, size)]


def contrast_weights(levels: np.ndarray, subset: Sequence[int]) -> np.ndarray:
    """prod_{i in subset} (2 x_i - 1) for each row of ``levels`` (corners x levers, 0/1)."""
    signs = 2 * levels[:, list(subset)] - 1
    return np.prod(signs, axis=1) if len(subset) else np.ones(len(levels))


def _corner_matrix(values: pd.DataFrame, levers: Sequence[str], outcome: str) -> tuple[np.ndarray, np.ndarray]:
    """(levels: corners x levers, y: corners x seeds) of a full 2^k table; refuses gaps and repeats."""
    wide = values.pivot_table(index=list(levers), columns="seed", values=outcome, aggfunc="count")
    if len(wide) != 2 ** len(levers) or (wide != 1).to_numpy().any():
        raise SweepError(
            f"{outcome}: a factorial needs each of the {2 ** len(levers)} corners once per seed "
            f"(got {len(wide)} corners, {int(wide.isna().to_numpy().sum())} missing runs)"
        )
    y = values.pivot_table(index=list(levers), columns="seed", values=outcome, aggfunc="first").sort_index()
    return np.array(list(y.index), dtype=int).reshape(len(y), len(levers)), y.to_numpy(dtype=float)


def factorial_effects(
    values: pd.DataFrame, levers: Sequence[str] = LEVERS, outcomes: Sequence[str] | None = None
) -> pd.DataFrame:
    """The factorial effects of every outcome, seed by seed, with their mean and 90% t-interval over seeds.

    ``values``: one row per corner and seed, columns ``levers`` (0/1), ``seed`` and the outcomes
    (default: every other numeric column). Rows: outcome, kind (``mean``, ``main``,
    ``interaction``, ``alone``, ``dropped``), effect (the levers joined by ``:``, as in R formulas), seeds,
    estimate (mean over seeds), low, high, sd (over seeds). ``alone``: the lever on against the
    all-off corner; ``dropped``: the all-on corner against the lever off.
    """
    from cloudwar.runs.compare import t_interval

    levers = list(levers)
    if outcomes is None:
        outcomes = [c for c in values.select_dtypes("number").columns if c not in (*levers, "seed")]
    rows = []
    k = len(levers)
    for outcome in outcomes:
        levels, y = _corner_matrix(values, levers, outcome)
        terms: list[tuple[str, str, np.ndarray]] = [("mean", "mean", y.mean(axis=0))]
        for subset in interaction_sets(levers):
            index = [levers.index(s) for s in subset]
            per_seed = 2.0 / 2**k * contrast_weights(levels, index) @ y
            terms.append(("main" if len(subset) == 1 else "interaction", ":".join(subset), per_seed))
        off, on = np.zeros(k, dtype=int), np.ones(k, dtype=int)
        row = {tuple(r): i for i, r in enumerate(levels)}
        for i, lever in enumerate(levers):
            alone, dropped = off.copy(), on.copy()
            alone[i], dropped[i] = 1, 0
            terms.append(("alone", lever, y[row[tuple(alone)]] - y[row[tuple(off)]]))
            terms.append(("dropped", lever, y[row[tuple(on)]] - y[row[tuple(dropped)]]))
        for kind, name, per_seed in terms:
            rows.append(_interval_row(outcome, kind, name, per_seed, t_interval))
    return pd.DataFrame(rows)


def _interval_row(outcome: str, kind: str, name: str, per_seed: np.ndarray, interval: Any) -> dict[str, Any]:
    mean, low, high = interval(np.asarray(per_seed, dtype=float))
    sd = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan")
    return {
        "outcome": outcome,
        "kind": kind,
        "effect": name,
        "seeds": len(per_seed),
        "estimate": mean,
        "low": low,
        "high": high,
        "sd": sd,
    }


def reconstruct(effects: pd.DataFrame, corner: dict[str, int], outcome: str) -> float:
    """A corner's mean over seeds rebuilt from the grand mean and the factorial effects of ``outcome``.

    y(x) = mean + sum_S effect_S / 2 prod_{i in S} (2 x_i - 1): exact, for the identity the tests check.
    """
    sel = effects[(effects["outcome"] == outcome) & effects["kind"].isin(["mean", "main", "interaction"])]
    total = 0.0
    for _, r in sel.iterrows():
        if r["kind"] == "mean":
            total += r["estimate"]
            continue
        sign = np.prod([2 * corner[lever] - 1 for lever in r["effect"].split(":")])
        total += r["estimate"] / 2 * sign
    return float(total)


#: Named paired comparisons: (name, arm, reference arm) by corner name; extra harvests are added.
CONTRASTS = (
    ("share_first vs margin_discipline", "price_cuts+capex_plan+ecosystem", "none"),
    ("share_first with harvest vs margin_discipline", "price_cuts+capex_plan+ecosystem+harvest", "none"),
    ("discipline keeping the ecosystem spend vs margin_discipline", "ecosystem", "none"),
    ("share_first vs discipline keeping the ecosystem spend", "price_cuts+capex_plan+ecosystem", "ecosystem"),
)


def contrasts(
    values: pd.DataFrame, chosen: Sequence[str], harvest_quarter: int, extra_harvests: Sequence[int] = ()
) -> pd.DataFrame:
    """Paired differences of named arms (:data:`CONTRASTS`, and each extra harvest against the
    factorial's), per outcome: the rows of :func:`factorial_effects` with kind ``contrast``.

    ``values``: one row per arm (column ``arm``, the corner's name or :func:`extra_arm`) and seed.
    """
    from cloudwar.runs.compare import t_interval

    full = "+".join(LEVERS)
    pairs = list(CONTRASTS) + [
        (f"harvest in quarter {q} vs in quarter {harvest_quarter}", extra_arm(q), full) for q in extra_harvests
    ]
    by_arm = values.set_index(["arm", "seed"]).sort_index()
    rows = []
    for outcome in chosen:
        for name, arm, reference in pairs:
            mine, base = by_arm.loc[arm, outcome], by_arm.loc[reference, outcome]
            if not mine.index.equals(base.index):
                raise SweepError(f"contrast {name}: the arms ran other seeds (not paired)")
            rows.append(_interval_row(outcome, "contrast", name, (mine - base).to_numpy(), t_interval))
    return pd.DataFrame(rows)


def corner_values(values: pd.DataFrame, table: Sequence[CornerArm]) -> pd.DataFrame:
    """Every corner's runs from its arm's runs (``values`` with an ``arm`` column): corner name,
    the lever columns, ``arm``, seed and the outcomes; a corner that shares its arm repeats its runs."""
    frames = []
    for entry in table:
        runs = values[values["arm"] == entry.arm]
        if runs.empty:
            raise SweepError(f"no runs of arm {entry.arm} (corner {entry.name})")
        frames.append(runs.assign(corner=entry.name, **entry.corner))
    out = pd.concat(frames, ignore_index=True)
    first = ["corner", *LEVERS, "arm", "seed"]
    return out[first + [c for c in out.columns if c not in first]]

"""Scenario discovery: in which region of the uncertain assumptions does Alibaba's margin pain pay?

The assumptions the answer leans on (:data:`UNCERTAINTIES`: those margin_pain.py's harsh worlds
stress, and the network and ecosystem weights a Morris screen puts far ahead of the rest) are
sampled by a Latin hypercube over stated ranges (:func:`sample`, seeded from the design's seed).
At every point, share_first and margin_discipline run on the same seeds; the pain *pays* at a
point when the mean over seeds of the paired difference in enterprise value is above a
threshold (0 by default). PRIM (Friedman and Fisher 1999, as ``ema_workbench.analysis.prim``
implements it) then finds boxes, limits on some of the assumptions, where the points that pay
concentrate (:func:`prim_boxes`): a box's *coverage* is the share of all paying points inside
it, its *density* the share of its points that pay, its *mass* its share of all points.

Boxes are found one after the other (each on the points no earlier box holds). Along each box's
peeling trajectory, the box kept is the one with the most coverage among those with density at
least ``min_density`` (or, if none is that dense, the densest), the usual trade-off choice.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cloudwar.errors import SweepError

RIVALS_MATCH = "rivals_match"  # not a scenario key: every rival's ``match``, see :func:`point_overrides`
LHS_STREAM = 0x4C4853  # "LHS": the sample's own stream of the design's seed, apart from the runs' seeds


@dataclass(frozen=True)
class Uncertainty:
    """An uncertain assumption: a scenario key (or :data:`RIVALS_MATCH`) sampled uniformly in [low, high]."""

    name: str
    key: str
    low: float
    high: float
    why: str


UNCERTAINTIES: tuple[Uncertainty, ...] = (
    Uncertainty(
        "network_weight",
        "choice.network_weight",
        0.1,
        1.0,
        "baseline 0.5 (assumption); from margin_pain's weak_network world (0.1) to twice the baseline; "
        "a Morris screen's leader",
    ),
    Uncertainty(
        "ecosystem_weight",
        "choice.ecosystem_weight",
        0.25,
        1.0,
        "baseline 0.5 (assumption); from the weak_network world (0.25) to twice the baseline; a Morris screen's leader",
    ),
    Uncertainty(
        "switching_cost",
        "enterprise.switching_cost",
        0.6,
        3.0,
        "baseline 2.0 utility units (calibrated: under 2% of customers a year leave a provider, the UK CMA's "
        "fewer than 1% switch); from the low_switching world (0.6, exits about 10% a year) to 1.5 x the baseline",
    ),
    Uncertainty(
        "price_sensitivity",
        "enterprise.price_sensitivity",
        0.6,
        1.4,
        "baseline multiplier 1.0 (assumption; facts.md: Chinese buyers are cost sensitive); +-40%",
    ),
    Uncertainty(
        "cloud_demand_growth",
        "products.cloud.demand_growth",
        0.35,
        0.60,
        "baseline 0.466 a year (calibrated to world cloud +27.5%, Synergy +25-30%); about +-25%",
    ),
    Uncertainty(
        "ecosystem_decay",
        "ecosystem.decay",
        0.02,
        0.10,
        "baseline 0.05 a quarter (unfunded mindshare halves in 3.5 years, assumption); half-lives 1.7 to 8.6 years",
    ),
    Uncertainty(
        RIVALS_MATCH,
        RIVALS_MATCH,
        0.0,
        1.0,
        "how far rivals follow price cuts: every rival's match is max(its own, m); 0 is the baseline "
        "(Tencent matches in full, the others not at all), 1 margin_pain's rivals_match world",
    ),
)


def check_uncertainties(uncertainties: Sequence[Uncertainty]) -> None:
    """Refuse names given twice and empty or reversed ranges (one line naming the uncertainty)."""
    names = [u.name for u in uncertainties]
    if not names:
        raise SweepError("uncertainties: none given", param="uncertainties")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SweepError(f"uncertainties: {twice[0]!r} is given twice", param="uncertainties")
    for u in uncertainties:
        if not (np.isfinite(u.low) and np.isfinite(u.high) and u.low < u.high):
            raise SweepError(f"uncertainty {u.name}: the range {u.low}:{u.high} is empty", param="uncertainties")


def sample(uncertainties: Sequence[Uncertainty], points: int, seed: int) -> pd.DataFrame:
    """``points`` Latin-hypercube points over the uncertainties' ranges, one column each (their units).

    The hypercube's stream is ``SeedSequence([seed, LHS_STREAM])``: the same ``seed`` gives the same
    points, and the points are independent of the runs' own seeds (:func:`cloudwar.runs.design.run_seed`).
    """
    from scipy.stats import qmc

    check_uncertainties(uncertainties)
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise SweepError(f"points must be at least 2, got {points!r}", param="points")
    rng = np.random.default_rng(np.random.SeedSequence([seed, LHS_STREAM]))
    unit = qmc.LatinHypercube(d=len(uncertainties), rng=rng).random(points)
    low = np.array([u.low for u in uncertainties])
    high = np.array([u.high for u in uncertainties])
    return pd.DataFrame(low + unit * (high - low), columns=[u.name for u in uncertainties])


def rival_matches(focus: str, scenario: str = "baseline") -> dict[str, float]:
    """Each rival's own ``match`` (how far it follows price cuts) in ``scenario``; rivals without one are left out."""
    from cloudwar.scenario import load_scenario
    from cloudwar.strategies import make_strategy

    found = {}
    for provider in load_scenario(scenario).providers:
        if provider.name != focus:
            match = getattr(make_strategy(provider.strategy), "match", None)
            if match is not None:
                found[provider.name] = float(match)
    return found


def point_overrides(
    values: Mapping[str, float], uncertainties: Sequence[Uncertainty], rivals: Mapping[str, float]
) -> dict[str, Any]:
    """The scenario overrides of one point: each key its value; :data:`RIVALS_MATCH` m sets every rival's
    ``match`` to max(its own, m) (``rivals``: :func:`rival_matches`), so m = 0 leaves the scenario's rivals be."""
    overrides: dict[str, Any] = {}
    for u in uncertainties:
        value = float(values[u.name])
        if u.key == RIVALS_MATCH:
            for name, own in rivals.items():
                overrides[f"providers.{name}.strategy.match"] = max(own, value)
        else:
            overrides[u.key] = value
    return overrides


def discovery_arms(
    points: pd.DataFrame,
    uncertainties: Sequence[Uncertainty],
    strategies: Mapping[str, dict[str, Any]],
    focus: str = "Alibaba",
    scenario: str = "baseline",
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every point x strategy of ``focus`` as (labels ``draw`` (the point), ``arm``; scenario overrides), points in order."""
    rivals = rival_matches(focus, scenario) if any(u.key == RIVALS_MATCH for u in uncertainties) else {}
    arms = []
    for i, row in enumerate(points.to_dict("records")):
        world = point_overrides(row, uncertainties, rivals)
        for arm, strategy in strategies.items():
            arms.append(({"draw": i, "arm": arm}, {**world, f"providers.{focus}.strategy": strategy}))
    return arms


def paired_by_point(values: pd.DataFrame, outcomes: Sequence[str], arm: str, reference: str) -> pd.DataFrame:
    """Per point, the paired difference ``arm`` - ``reference`` of each outcome: its mean over seeds
    (``<outcome>_difference``) and the share of seeds in which it is positive (``<outcome>_p_positive``).

    ``values``: one row per point, arm and seed (columns ``draw``, ``arm``, ``seed``, the outcomes).
    """
    mine = values[values["arm"] == arm].set_index(["draw", "seed"]).sort_index()
    base = values[values["arm"] == reference].set_index(["draw", "seed"]).sort_index()
    if not mine.index.equals(base.index):
        raise SweepError(f"arms {arm} and {reference} ran other points or seeds (not paired)")
    out = pd.DataFrame(index=mine.index.get_level_values("draw").unique())
    for outcome in outcomes:
        diff = (mine[outcome] - base[outcome]).groupby(level="draw")
        out[f"{outcome}_difference"] = diff.mean()
        out[f"{outcome}_p_positive"] = diff.apply(lambda d: float((d > 0).mean()))
    out["seeds"] = mine.groupby(level="draw").size()
    return out.reset_index()


# --------------------------------------------------------------------------------------------
# PRIM
# --------------------------------------------------------------------------------------------
@dataclass
class PrimResult:
    """What :func:`prim_boxes` found.

    ``boxes``: one row per box and uncertainty (box, uncertainty, low, high, restricted, and the
    box's coverage, density, mass, points, pays); ``trajectories``: each box's peeling and pasting
    trajectory (box, step, coverage, density, mass, res_dim, chosen); ``membership``: per point
    the box that holds it (1, 2, ...; 0 for none). Empty when no point, or every point, pays.
    """

    boxes: pd.DataFrame
    trajectories: pd.DataFrame
    membership: np.ndarray
    note: str = ""


BOX_COLUMNS = [
    "box",
    "uncertainty",
    "low",
    "high",
    "restricted",
    "coverage",
    "density",
    "mass",
    "points",
    "pays",
]
TRAJECTORY_COLUMNS = ["box", "step", "coverage", "density", "mass", "res_dim", "chosen"]


def in_box(x: pd.DataFrame, limits: Mapping[str, tuple[float, float]]) -> np.ndarray:
    """Which rows of ``x`` lie inside ``limits`` (uncertainty -> (low, high), both ends included)."""
    inside = np.ones(len(x), dtype=bool)
    for name, (low, high) in limits.items():
        column = x[name].to_numpy()
        inside &= (column >= low) & (column <= high)
    return inside


def _prim_module() -> Any:
    try:
        with warnings.catch_warnings():  # ema-workbench warns at import about optional parallel back ends
            warnings.simplefilter("ignore")
            from ema_workbench.analysis import prim
    except ImportError:
        raise SweepError("scenario discovery needs ema-workbench: pip install 'cloudwar[discovery]'") from None
    return prim


def choose_step(trajectory: pd.DataFrame, min_density: float) -> int:
    """The step of a peeling trajectory to keep: most coverage with density >= ``min_density``, else the densest."""
    dense = trajectory[trajectory["density"] >= min_density]
    if len(dense):
        return int(dense.sort_values(["coverage", "density"], ascending=False).index[0])
    return int(trajectory.sort_values(["density", "coverage"], ascending=False).index[0])


def prim_boxes(
    x: pd.DataFrame,
    pays: np.ndarray,
    *,
    max_boxes: int = 3,
    min_density: float = 0.8,
    mass_min: float = 0.05,
    peel_alpha: float = 0.05,
    paste_alpha: float = 0.05,
) -> PrimResult:
    """PRIM boxes of the points that pay (``pays``: one bool per row of ``x``, the uncertainties).

    Parameters as ``ema_workbench.analysis.prim.Prim`` takes them (``mass_min``: the smallest box,
    as a share of the points; ``peel_alpha``: the share peeled at a step); ``min_density`` picks the
    box on each trajectory (:func:`choose_step`). At most ``max_boxes`` boxes; fewer when no point
    that pays is left outside the boxes, or PRIM finds nothing.
    """
    pays = np.asarray(pays, dtype=bool)
    if len(pays) != len(x):
        raise SweepError(f"prim: {len(pays)} outcomes for {len(x)} points")
    empty = PrimResult(
        pd.DataFrame(columns=BOX_COLUMNS), pd.DataFrame(columns=TRAJECTORY_COLUMNS), np.zeros(len(x), int)
    )
    if not pays.any() or pays.all():
        empty.note = f"no box: the pain pays at {int(pays.sum())} of {len(pays)} points"
        return empty
    prim = _prim_module()
    x = x.astype(float).reset_index(drop=True)
    with warnings.catch_warnings():  # its pandas deprecation notices are ema-workbench's to fix, not the user's
        warnings.filterwarnings("ignore", module="ema_workbench")
        return _find_boxes(prim, x, pays, max_boxes, min_density, mass_min, peel_alpha, paste_alpha)


def _find_boxes(
    prim: Any,
    x: pd.DataFrame,
    pays: np.ndarray,
    max_boxes: int,
    min_density: float,
    mass_min: float,
    peel_alpha: float,
    paste_alpha: float,
) -> PrimResult:
    finder = prim.Prim(x, pays.astype(int), peel_alpha=peel_alpha, paste_alpha=paste_alpha, mass_min=mass_min)
    sampled = {c: (float(x[c].min()), float(x[c].max())) for c in x.columns}
    boxes, trajectories = [], []
    membership = np.zeros(len(x), dtype=int)
    for number in range(1, max_boxes + 1):
        if not pays[membership == 0].any():
            break
        box = finder.find_box()
        if box is None:
            break
        trajectory = box.peeling_trajectory.reset_index(drop=True)
        step = choose_step(trajectory, min_density)
        box.select(step)
        membership[np.asarray(box.yi)] = number
        limits = box.box_lim
        for name in x.columns:
            low, high = float(limits.loc[0, name]), float(limits.loc[1, name])
            boxes.append(
                {
                    "box": number,
                    "uncertainty": name,
                    "low": low,
                    "high": high,
                    "restricted": (low, high) != sampled[name],
                    "coverage": float(box.coverage),
                    "density": float(box.density),
                    "mass": float(box.mass),
                    "points": int(len(box.yi)),
                    "pays": int(pays[np.asarray(box.yi)].sum()),
                }
            )
        for i, r in trajectory.iterrows():
            trajectories.append(
                {
                    "box": number,
                    "step": int(i),
                    "coverage": float(r["coverage"]),
                    "density": float(r["density"]),
                    "mass": float(r["mass"]),
                    "res_dim": int(r["res_dim"]),
                    "chosen": int(i) == step,
                }
            )
    return PrimResult(pd.DataFrame(boxes, columns=BOX_COLUMNS), pd.DataFrame(trajectories), membership)


def recount(x: pd.DataFrame, pays: np.ndarray, boxes: pd.DataFrame) -> pd.DataFrame:
    """Coverage, density, mass and counts of each box counted afresh from its limits: the points inside it
    that no earlier box holds (as PRIM finds boxes one after the other). One row per box."""
    pays = np.asarray(pays, dtype=bool)
    taken = np.zeros(len(x), dtype=bool)
    rows = []
    for number, box in boxes.groupby("box", sort=True):
        limits = {r.uncertainty: (r.low, r.high) for r in box.itertuples()}
        inside = in_box(x, limits) & ~taken
        taken |= inside
        k = int(pays[inside].sum())
        rows.append(
            {
                "box": number,
                "points": int(inside.sum()),
                "pays": k,
                "coverage": k / max(int(pays.sum()), 1),
                "density": k / max(int(inside.sum()), 1),
                "mass": float(inside.mean()),
            }
        )
    return pd.DataFrame(rows)

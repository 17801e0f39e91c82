"""Calibration as inference: a posterior over the model's uncertain parameters, fitted to history.

``calibrate(out="runs/posterior", Settings(population=1000, generations=25)) -> Calibration``

Method: adaptive population Monte Carlo ABC (APMC; Lenormand, Jabot & Deffuant 2013, "Adaptive
approximate Bayesian computation for complex models", Computational Statistics 28), a sequential
Monte Carlo ABC whose generations are fixed batches of runs:

1. generation 0 draws ``population`` parameter sets from the prior and runs each once (its own
   seed); the ``keep`` fraction closest to history stays, and the largest kept distance is the
   tolerance epsilon;
2. every later generation draws ``population x (1 - keep)`` new sets from a Gaussian kernel around
   the kept ones (twice their weighted covariance, Beaumont et al. 2009), runs them, weights each
   by prior / proposal density, and keeps the closest ``keep`` fraction of old and new together;
3. it stops when fewer than ``min_acceptance`` of a generation's new sets fall inside the previous
   epsilon (the posterior has stopped moving), or after ``generations`` generations.

Why not pyabc: its parallel samplers accept the first particles to *finish* and reseed their
workers from the operating system, so a result depends on timing and on the number of workers;
here every generation is a fixed design of runs, a function of the seed and the generation before,
so the same seed gives the same posterior on any executor, and the runs go through the sweep
machinery (:func:`cloudwar.runs.runner.run_design`: pool or Dask, resumable store). A killed
calibration keeps every finished run: run the same command again and it continues where it was.

Parameters are drawn on the unit cube (uniform or log-uniform priors, :class:`Prior`); the prior
density is constant there, so a particle's weight is 1 / (the kernel mixture's density). Each
prior says whether it *transfers*: behavioural parameters (sensitivities, switching costs, network
and ecosystem weights, adoption speed, cost rules) apply to every scenario drawn from the posterior;
parameters of the history scenario's starting state (its growth, Alibaba's qualities in 2023) are
nuisance parameters, fitted so the behavioural ones are not bent to cover for them, and not carried
over to scenarios with a calibrated start of their own (the baseline's late-2025 state).

Starting state. In the fit, every particle starts from the history scenario's calibrated 2023Q3
qualities (fitted at the baseline's behaviour), and its 2023Q3 shares are targets like any other
point: a particle whose behaviour moves the start pays for it in the distance (refitting the
qualities for every particle would make each run several times slower). When the posterior is
*used* (:meth:`Posterior.overrides`), each draw's qualities are refitted so the scenario starts
where its calibrated point does (:func:`matched_start`): a draw then changes how the market
moves, not where it starts.

The distance of a run is the root mean square, over series, of each series' mean squared
standardised error ``(model - actual) / tolerance`` over its periods (:func:`distance`); every
series of the backtest (:data:`cloudwar.runs.backtest.SERIES`) that has points in 2023Q3-2025Q3
counts once, however many periods it has. Tolerances (:func:`tolerance`) follow history.csv's
confidence and the spread between its sources (history.md: Canalys's AWS share runs 2-3 points
above Synergy's; the CFO's RMB 120bn capex against 126.6bn summed from the quarterly rows).

Folder ``out``: ``calibration.json`` (what is being fitted: its identity), ``generations/`` (one
``.npz`` per finished generation), ``runs/gen_NNN`` (the stores of the runs), and once done
``posterior.csv`` (the kept particles: parameter values, weight, distance), ``parameters.csv``
(prior against posterior per parameter), ``fit.csv`` (per target: actual, tolerance, the prior's
and the posterior's model values), ``generations.csv`` and ``posterior.png``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cloudwar import quarters as calendar
from cloudwar.errors import SweepError
from cloudwar.runs.design import Design, canonical_json, digest

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMAT = 1
CONFIG = "calibration.json"
GENERATIONS = "generations"
RUNS = "runs"
SHIPPED = "posterior.csv"  # in cloudwar/scenario/data, with posterior.json (how it was made)
SHIPPED_META = "posterior.json"
#: A run whose model value of a target is undefined (a failed run, a zero revenue) is this many
#: tolerances away on that target.
MISSING_ERROR = 10.0


# --------------------------------------------------------------------------------------------
# Priors
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """A parameter's prior: uniform (``scale="linear"``) or log-uniform on [low, high].

    ``mode``: the drawn number is the ``key``'s value (``value``), a multiple of the scenario's own
    value (``scale``) or added to it (``shift``). ``transfers``: whether it applies to other
    scenarios drawn from the posterior (module docstring).
    """

    name: str
    key: str
    low: float
    high: float
    reason: str
    scale: str = "linear"
    mode: str = "value"
    transfers: bool = True

    def value(self, z: np.ndarray) -> np.ndarray:
        """Unit-cube coordinates -> parameter values."""
        z = np.asarray(z, dtype=float)
        if self.scale == "log":
            return np.exp(math.log(self.low) + z * (math.log(self.high) - math.log(self.low)))
        return self.low + z * (self.high - self.low)

    def unit(self, value: np.ndarray) -> np.ndarray:
        """Parameter values -> unit-cube coordinates."""
        value = np.asarray(value, dtype=float)
        if self.scale == "log":
            return (np.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def mean(self) -> float:
        if self.scale == "log":
            return (self.high - self.low) / (math.log(self.high) - math.log(self.low))
        return 0.5 * (self.low + self.high)

    def std(self) -> float:
        if self.scale == "log":
            zs = self.value(np.linspace(0.0, 1.0, 2001))
            return float(np.std(zs))
        return (self.high - self.low) / math.sqrt(12.0)


PRIORS: tuple[Prior, ...] = (
    Prior("network_weight", "choice.network_weight", 0.0, 1.5,
          "assumption in the baseline (0.5): no measurement of peer effects in cloud choice; from none to three "
          "times the assumed weight"),
    Prior("ecosystem_weight", "choice.ecosystem_weight", 0.0, 1.5,
          "assumption in the baseline (0.5): developer familiarity has no published size; from none to three times"),
    Prior("switching_cost", "enterprise.switching_cost", 0.5, 4.0,
          "calibrated in the baseline (2.0) to the UK CMA's under 1% of customers switching a year; from a quarter "
          "to twice that, in utility units (list prices of cloud)", scale="log"),
    Prior("price_sensitivity", "enterprise.price_sensitivity", 0.5, 2.0,
          "assumption (1.0); facts.md: Chinese buyers are cost sensitive; half to twice", scale="log"),
    Prior("multi_homing_share", "choice.multi_homing_share", 0.84, 0.93,
          "history.md: Flexera, 84-93% of organisations have a multi-cloud strategy (2019-2022): the band itself"),
    Prior("imitation", "adoption.imitation", 0.2, 0.6,
          "facts.md: typical Bass q 0.38; meta-analyses of Bass fits put most q between 0.2 and 0.6"),
    Prior("learning_exponent", "capacity.learning_exponent", 0.0, 0.35,
          "assumption (0.10): learning rates of 0-22% per doubling of experience (exponent 0.32 is the 20% of "
          "classic learning curves)"),
    Prior("hardware_decline", "capacity.hardware_decline", 0.05, 0.25,
          "assumption (0.10 a year): a dollar of cloud buys 5-25% more each year (accelerators faster, "
          "buildings and power slower)"),
    Prior("cloud_growth_scale", "products.cloud.demand_growth", 0.7, 1.3,
          "history scenario's starting state: its cloud demand growth (fitted to Synergy's +23% of 2024Q3) "
          "times 0.7-1.3; not carried over (the baseline fits its own growth to late 2025)",
          mode="scale", transfers=False),
    Prior("usage_growth_scale", "adoption.usage_growth", 0.5, 2.0,
          "history scenario's starting state: AI usage growth per adopter (the baseline's, fitted to late 2025) "
          "times 0.5-2; not carried over", scale="log", mode="scale", transfers=False),
    Prior("alibaba_ai_quality", "providers.Alibaba.quality.ai.china", -0.5, 0.5,
          "history scenario's starting state: Alibaba's China AI quality (fitted to 2023Q3 shares that are the "
          "baseline's 2025 shares, an assumption) shifted by up to half a utility unit; not carried over",
          mode="shift", transfers=False),
    Prior("alibaba_cloud_quality", "providers.Alibaba.quality.cloud.china", -0.3, 0.3,
          "history scenario's starting state: Alibaba's China cloud quality (fitted to history.csv's 2023Q3 "
          "shares, which are partly assumption) shifted by up to 0.3; not carried over",
          mode="shift", transfers=False),
)  # fmt: skip


def scenario_value(scenario: dict[str, Any], key: str) -> float:
    """The value of dotted ``key`` in a full scenario dict (``providers.NAME.`` picks a provider by name)."""
    parts = key.split(".")
    node: Any = scenario
    i = 0
    while i < len(parts):
        part = parts[i]
        if isinstance(node, list):
            match = [p for p in node if isinstance(p, dict) and p.get("name") == part]
            if not match:
                raise SweepError(f"prior {key}: no provider {part!r}", param="priors")
            node = match[0]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise SweepError(f"prior {key}: not a scenario value", param="priors")
        i += 1
    if not isinstance(node, int | float) or isinstance(node, bool):
        raise SweepError(f"prior {key}: not a number ({node!r})", param="priors")
    return float(node)


def full_scenario(raw: dict[str, Any]) -> dict[str, Any]:
    """Every value of a raw scenario table, explicit (defaults and extends resolved)."""
    from cloudwar.scenario import parse_scenario
    from cloudwar.scenario.schema import scenario_to_dict

    return scenario_to_dict(parse_scenario(raw))


def overrides_for(
    values: dict[str, float], priors: Sequence[Prior], scenario: dict[str, Any], *, transfer_only: bool = False
) -> dict[str, float]:
    """Scenario overrides of one parameter set (``{name: value}``) on ``scenario`` (a full scenario dict)."""
    out: dict[str, float] = {}
    for prior in priors:
        if prior.name not in values or (transfer_only and not prior.transfers):
            continue
        v = float(values[prior.name])
        if prior.mode == "scale":
            v *= scenario_value(scenario, prior.key)
        elif prior.mode == "shift":
            v += scenario_value(scenario, prior.key)
        out[prior.key] = round(v, 6)
    return out


# --------------------------------------------------------------------------------------------
# Targets: history.csv's points with tolerances, and the distance
# --------------------------------------------------------------------------------------------
#: Tolerance by kind of figure and history.csv's confidence: points (pp) for growth, margins and
#: shares, a fraction of the value for levels. Reasons in :data:`TOLERANCE_REASONS`.
TOLERANCES: dict[str, dict[str, float]] = {
    "share": {"high": 2.5, "medium": 3.5, "low": 5.0},
    "margin": {"high": 2.0, "medium": 3.0, "low": 5.0},
    "yoy": {"high": 4.0, "medium": 6.0, "low": 10.0},
    "level": {"high": 0.05, "medium": 0.08, "low": 0.15},
    "trailing4q": {"high": 0.055, "medium": 0.08, "low": 0.15},
}
TOLERANCE_REASONS = {
    "share": "history.md: Canalys's AWS share runs 2-3 points above Synergy's; one source (medium) or derived "
    "(low) figures one and two points more",
    "margin": "adjusted EBITA (Alibaba) against operating margin (AWS, Google) and segment re-definitions move "
    "margins by 1-3 points",
    "yoy": "growth of a level known to about 3% at each end (restatements, the segment basis) moves by about 4 "
    "points; capacity-limited quarters (history.md) are not modelled as such",
    "level": "restated company figures and market sizes of two trackers differ by about 5% (Canalys revised its "
    "history in 2024 and restated China in 2025)",
    "trailing4q": "history.csv: the CFO's RMB 120bn against 126.6bn summed from the quarterly rows (5.5%)",
}
#: Backtest series left out of the fit, and why.
EXCLUDED = {
    "tencent_fbs_revenue_yoy_pct": "a proxy: the segment includes FinTech, the model's Tencent is its cloud",
    "tencent_business_services_yoy_pct": "no comparable point (backtest)",
}


@dataclass(frozen=True)
class Target:
    """One history.csv point the calibration fits."""

    series: str
    period: str
    actual: float
    tolerance: float  # in the series' unit (points for %)
    kind: str
    confidence: str


def tolerance(kind: str, confidence: str, actual: float) -> float:
    """The tolerance of a point (:data:`TOLERANCES`); levels are relative to the actual value."""
    table = TOLERANCES[kind]
    tol = table.get(confidence, table["low"])
    if kind in ("level", "trailing4q"):
        return tol * abs(actual)
    return tol


def calibration_series() -> tuple[Any, ...]:
    from cloudwar.runs.backtest import SERIES

    return tuple(s for s in SERIES if s.name not in EXCLUDED)


def comparable(series: Any, period: str, start: str, n_quarters: int, history: pd.DataFrame) -> bool:
    """Whether the model gives ``series`` a value in ``period`` (:func:`cloudwar.runs.backtest.series_values`'s rules)."""
    from cloudwar.runs.backtest import _shift, actual_value, period_quarters

    steps = [calendar.index(q) - calendar.index(start) + 1 for q in period_quarters(period)]
    if min(steps) < 1 or max(steps) > n_quarters:
        return False
    if series.transform == "trailing4q":
        return steps[-1] - 3 >= 1
    if series.transform != "yoy":
        return True
    if len(steps) != 1 or steps[0] < 2:
        return False
    if steps[0] > 4:
        return True
    if series.base is None:
        return False
    return math.isfinite(actual_value(history, series.base, start)) and math.isfinite(
        actual_value(history, series.base, _shift(period, -4))
    )


def targets(start: str, n_quarters: int, history: pd.DataFrame | None = None) -> list[Target]:
    """Every history.csv point of :func:`calibration_series` that a run from ``start`` can be held to."""
    from cloudwar.runs.backtest import period_position, read_history

    history = read_history() if history is None else history
    out = []
    for s in calibration_series():
        rows = history[history["series"] == s.name].dropna(subset=["value"])
        points = []
        for _, row in rows.iterrows():
            period = str(row["quarter"])
            if not comparable(s, period, start, n_quarters, history):
                continue
            confidence = str(row["confidence"]) if pd.notna(row["confidence"]) else "low"
            actual = float(row["value"])
            points.append(Target(s.name, period, actual, tolerance(s.transform, confidence, actual), s.transform,
                                 confidence))  # fmt: skip
        out.extend(sorted(points, key=lambda t: period_position(t.period)))
    return out


def model_values(metrics: pd.DataFrame, n_runs: int, scenario: Any, targets_: Sequence[Target],
                 history: pd.DataFrame) -> np.ndarray:  # fmt: skip
    """(runs, targets) model values from the kept metrics of runs 0..n_runs-1 (NaN for a run without rows)."""
    from cloudwar.runs.backtest import RunValues, series_values

    out = np.full((n_runs, len(targets_)), np.nan)
    if metrics.empty:
        return out
    values = RunValues(metrics, scenario.quarters, scenario.rmb_per_usd)
    by_name = {s.name: s for s in calibration_series()}
    rows = values.runs.astype(int)
    for j, t in enumerate(targets_):
        out[rows, j] = series_values(by_name[t.series], values, scenario.start, t.period, history)
    return out


def standardised(values: np.ndarray, targets_: Sequence[Target]) -> np.ndarray:
    """(model - actual) / tolerance, with :data:`MISSING_ERROR` where the model value is undefined."""
    actual = np.array([t.actual for t in targets_])
    tol = np.array([t.tolerance for t in targets_])
    z = (values - actual) / tol
    return np.where(np.isfinite(z), z, MISSING_ERROR)


def distance(values: np.ndarray, targets_: Sequence[Target]) -> np.ndarray:
    """Per run: the root mean square over series of the mean squared standardised error of its periods."""
    z2 = standardised(values, targets_) ** 2
    names = [t.series for t in targets_]
    groups = {n: [j for j, m in enumerate(names) if m == n] for n in dict.fromkeys(names)}
    per_series = np.stack([z2[:, idx].mean(axis=1) for idx in groups.values()], axis=1)
    return np.sqrt(per_series.mean(axis=1))


# --------------------------------------------------------------------------------------------
# The algorithm (model-agnostic): APMC on the unit cube
# --------------------------------------------------------------------------------------------
@dataclass
class Generation:
    """One finished generation: every particle it ran and the kept population after it."""

    index: int
    z: np.ndarray  # (n, d) the particles it ran, unit cube
    distance: np.ndarray  # (n,)
    stats: np.ndarray  # (n, m) model values per target (may be (n, 0))
    kept_z: np.ndarray  # (k, d) the population after this generation
    kept_weight: np.ndarray  # (k,) unnormalised
    kept_distance: np.ndarray
    kept_stats: np.ndarray
    epsilon: float
    acceptance: float  # share of the new particles within the previous epsilon (1.0 in generation 0)
    seconds: float

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, index=self.index, z=self.z, distance=self.distance, stats=self.stats, kept_z=self.kept_z,
                 kept_weight=self.kept_weight, kept_distance=self.kept_distance, kept_stats=self.kept_stats,
                 epsilon=self.epsilon, acceptance=self.acceptance, seconds=self.seconds)  # fmt: skip
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Generation:
        with np.load(path) as f:
            return cls(int(f["index"]), f["z"], f["distance"], f["stats"], f["kept_z"], f["kept_weight"],
                       f["kept_distance"], f["kept_stats"], float(f["epsilon"]), float(f["acceptance"]),
                       float(f["seconds"]))  # fmt: skip

    @property
    def ess(self) -> float:
        w = self.kept_weight / self.kept_weight.sum()
        return float(1.0 / np.sum(w**2))


Simulate = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def _kernel(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Twice the weighted covariance of the population (Beaumont et al. 2009), kept positive definite."""
    wn = w / w.sum()
    mean = wn @ z
    centred = z - mean
    cov = 2.0 * (centred * wn[:, None]).T @ centred
    return cov + np.eye(z.shape[1]) * 1e-10


def _propose(rng: np.random.Generator, z: np.ndarray, w: np.ndarray, cov: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws from the kernel mixture around ``z`` (weights ``w``), each inside the unit cube."""
    chol = np.linalg.cholesky(cov)
    wn = w / w.sum()
    out = np.empty((n, z.shape[1]))
    filled = 0
    for _ in range(10_000):
        need = n - filled
        centres = z[rng.choice(len(z), size=need, p=wn)]
        draws = centres + rng.standard_normal((need, z.shape[1])) @ chol.T
        inside = draws[np.all((draws >= 0.0) & (draws <= 1.0), axis=1)]
        out[filled : filled + len(inside)] = inside
        filled += len(inside)
        if filled == n:
            return out
    raise SweepError("the proposal keeps falling outside the prior's support")  # pragma: no cover


def _mixture_density(x: np.ndarray, z: np.ndarray, w: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """The kernel mixture's density at each row of ``x``."""
    inv = np.linalg.inv(cov)
    sign, logdet = np.linalg.slogdet(cov)
    norm = -0.5 * (z.shape[1] * math.log(2 * math.pi) + logdet)
    wn = w / w.sum()
    dens = np.zeros(len(x))
    for i in range(0, len(x), 256):  # chunks keep the (chunk, particles, d) array small
        diff = x[i : i + 256, None, :] - z[None, :, :]
        q = np.einsum("abi,ij,abj->ab", diff, inv, diff)
        dens[i : i + 256] = np.exp(norm - 0.5 * q) @ wn
    return dens


def _keep(z: np.ndarray, d: np.ndarray, stats: np.ndarray, w: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    order = np.lexsort((np.arange(len(d)), d))[:k]  # by distance, ties by position: deterministic
    return z[order], w[order], d[order], stats[order]


def apmc(
    simulate: Simulate,
    dim: int,
    *,
    population: int,
    keep: float = 0.5,
    min_acceptance: float = 0.05,
    generations: int = 12,
    seed: int = 0,
    folder: Path | None = None,
    report: Callable[[Generation], None] | None = None,
) -> list[Generation]:
    """Run APMC (module docstring); ``simulate(z, generation) -> (distances, stats)``.

    With ``folder``, each finished generation is saved there and found again by a later call with
    the same arguments, which continues after the last saved one (and stops at once if it had ended).
    """
    k = int(population * keep)
    if k < 2 or population - k < 1:
        raise SweepError(
            f"population {population} with keep {keep}: need at least 2 kept and 1 new", param="population"
        )
    done: list[Generation] = []
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(generations):
            path = folder / f"gen_{t:03d}.npz"
            if not path.exists():
                break
            done.append(Generation.load(path))
    if done and (done[-1].index + 1 >= generations or (done[-1].index > 0 and done[-1].acceptance <= min_acceptance)):
        return done
    for t in range(len(done), generations):
        rng = np.random.default_rng([seed, t])
        began = time.perf_counter()
        if t == 0:
            z = rng.random((population, dim))
            d, stats = simulate(z, 0)
            weight = np.ones(population)
            kz, kw, kd, ks = _keep(z, d, stats, weight, k)
            gen = Generation(0, z, d, stats, kz, kw, kd, ks, float(kd.max()), 1.0, 0.0)
        else:
            prev = done[-1]
            cov = _kernel(prev.kept_z, prev.kept_weight)
            z = _propose(rng, prev.kept_z, prev.kept_weight, cov, population - k)
            d, stats = simulate(z, t)
            weight = 1.0 / _mixture_density(z, prev.kept_z, prev.kept_weight, cov)
            acceptance = float(np.mean(d <= prev.epsilon))
            kz, kw, kd, ks = _keep(
                np.vstack([prev.kept_z, z]),
                np.concatenate([prev.kept_distance, d]),
                np.vstack([prev.kept_stats, stats]),
                np.concatenate([prev.kept_weight, weight]),
                k,
            )
            gen = Generation(t, z, d, stats, kz, kw, kd, ks, float(kd.max()), acceptance, 0.0)
        gen.seconds = time.perf_counter() - began
        if folder is not None:
            gen.save(folder / f"gen_{t:03d}.npz")
        done.append(gen)
        if report is not None:
            report(gen)
        if t > 0 and gen.acceptance <= min_acceptance:
            break
    return done


# --------------------------------------------------------------------------------------------
# The model's side: a generation is a design of runs, one seed per particle
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParticleDesign(Design):
    """A design whose every point (particle) has a model seed of its own: ``SeedSequence([seed, point, replicate])``."""

    def run_info(self, run: int) -> tuple[int, int, int]:
        point, replicate = divmod(run, self.seeds)
        return point, replicate, int(np.random.SeedSequence([self.seed, point, replicate]).generate_state(1)[0])

    def manifest(self) -> dict[str, Any]:
        manifest = super().manifest()
        manifest["seeding"] = "one seed per point"
        return manifest


@dataclass
class Settings:
    """What a calibration fits and how (its identity: a folder holding other settings is refused)."""

    scenario: str = "history"
    fixed: dict[str, Any] = field(default_factory=dict)
    population: int = 1000
    keep: float = 0.5
    min_acceptance: float = 0.05
    generations: int = 25
    seed: int = 0
    priors: tuple[Prior, ...] = PRIORS

    def identity(self, scenario_raw: dict[str, Any], targets_: Sequence[Target]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "scenario": self.scenario,
            "scenario_sha256": digest(scenario_raw),
            "set": self.fixed,
            "population": self.population,
            "keep": self.keep,
            "min_acceptance": self.min_acceptance,
            "seed": self.seed,
            "priors": [{k: v for k, v in asdict(p).items() if k != "reason"} for p in self.priors],
            "targets_sha256": digest([asdict(t) for t in targets_]),
        }


@dataclass
class Calibration:
    """A finished (or stopped) calibration: settings, targets, generations, and the tables made from them."""

    settings: Settings
    targets: list[Target]
    generations: list[Generation]
    runs: int
    seconds: float

    @property
    def priors(self) -> tuple[Prior, ...]:
        return self.settings.priors

    @property
    def last(self) -> Generation:
        return self.generations[-1]

    def posterior(self) -> pd.DataFrame:
        """The kept particles: one column per parameter, ``weight`` (summing to 1) and ``distance``."""
        g = self.last
        table = pd.DataFrame({p.name: p.value(g.kept_z[:, i]) for i, p in enumerate(self.priors)})
        table["weight"] = g.kept_weight / g.kept_weight.sum()
        table["distance"] = g.kept_distance
        return table

    def parameters(self) -> pd.DataFrame:
        """Per parameter: prior range, mean and sd; posterior weighted mean, sd and 10/50/90% quantiles."""
        post = self.posterior()
        rows = []
        for p in self.priors:
            v, w = post[p.name].to_numpy(), post["weight"].to_numpy()
            mean = float(w @ v)
            sd = float(math.sqrt(max(w @ (v - mean) ** 2, 0.0)))
            q10, q50, q90 = weighted_quantiles(v, w, [0.1, 0.5, 0.9])
            rows.append({"parameter": p.name, "key": p.key, "mode": p.mode, "transfers": p.transfers,
                         "prior_low": p.low, "prior_high": p.high, "prior_scale": p.scale, "prior_mean": p.mean(),
                         "posterior_mean": mean, "posterior_p10": q10, "posterior_median": q50, "posterior_p90": q90,
                         "sd_ratio": sd / p.std(), "reason": p.reason})  # fmt: skip
        return pd.DataFrame(rows)

    def fit(self) -> pd.DataFrame:
        """Per target: actual and tolerance; the prior predictive (generation 0's runs) and the posterior
        (kept particles, weighted) median and 10-90% of the model value; within = the tolerance band
        around the actual overlaps the posterior's 10-90%."""
        first, last = self.generations[0], self.last
        w = last.kept_weight / last.kept_weight.sum()
        rows = []
        for j, t in enumerate(self.targets):
            prior = first.stats[:, j]
            prior = prior[np.isfinite(prior)]
            post, pw = last.kept_stats[:, j], w
            ok = np.isfinite(post)
            p10, p50, p90 = weighted_quantiles(post[ok], pw[ok], [0.1, 0.5, 0.9]) if ok.any() else (np.nan,) * 3
            rows.append({"series": t.series, "period": t.period, "actual": t.actual, "tolerance": t.tolerance,
                         "confidence": t.confidence,
                         "prior_median": float(np.median(prior)) if prior.size else np.nan,
                         "posterior_median": p50, "posterior_p10": p10, "posterior_p90": p90,
                         "posterior_error": p50 - t.actual,
                         "within": bool(p10 - t.tolerance <= t.actual <= p90 + t.tolerance)})  # fmt: skip
        return pd.DataFrame(rows)

    def generation_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"generation": g.index, "runs": len(g.z), "acceptance": g.acceptance, "epsilon": g.epsilon,
              "median_kept_distance": float(np.median(g.kept_distance)), "ess": g.ess, "seconds": g.seconds}
             for g in self.generations]
        )  # fmt: skip

    def figure(self) -> Figure:
        """Posterior against prior per parameter (histograms on the prior's range) and the distance by generation."""
        from matplotlib.figure import Figure

        n = len(self.priors) + 1
        cols = 4
        rows = math.ceil(n / cols)
        fig = Figure(figsize=(3.6 * cols, 2.6 * rows))
        axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
        post = self.posterior()
        for ax, p in zip(axes, self.priors, strict=False):
            edges = p.value(np.linspace(0, 1, 21))
            ax.hist(post[p.name], bins=edges, weights=post["weight"], density=True, color="tab:blue", alpha=0.7,
                    label="posterior")  # fmt: skip
            widths = np.diff(edges)
            ax.stairs(1.0 / (20 * widths), edges, color="grey", label="prior")
            ax.set_title(p.name + ("" if p.transfers else " (history only)"), fontsize=9)
            ax.tick_params(labelsize=7)
            if p.scale == "log":
                ax.set_xscale("log")
        axes[0].legend(fontsize=7)
        ax = axes[len(self.priors)]
        table = self.generation_table()
        ax.plot(table["generation"], table["epsilon"], marker="o", label="epsilon")
        ax.plot(table["generation"], table["median_kept_distance"], marker=".", label="median kept")
        ax.set_title("distance by generation", fontsize=9)
        ax.legend(fontsize=7)
        for extra in axes[n:]:
            extra.axis("off")
        fig.suptitle(f"Posterior of {self.settings.scenario} ({self.runs} runs, {len(self.generations)} generations)")
        fig.tight_layout()
        return fig

    def series_fit(self) -> pd.DataFrame:
        """Per series: points, points within tolerance of the posterior band, and the mean absolute
        standardised error (|model median - actual| / tolerance) of the prior predictive and the posterior."""
        from cloudwar.runs.backtest import SERIES

        labels = {s.name: s.label for s in SERIES}
        fit = self.fit()
        fit["prior_z"] = (fit["prior_median"] - fit["actual"]).abs() / fit["tolerance"]
        fit["posterior_z"] = (fit["posterior_median"] - fit["actual"]).abs() / fit["tolerance"]
        rows = []
        for name, group in fit.groupby("series", sort=False):
            rows.append({"series": name, "label": labels.get(str(name), str(name)), "points": len(group),
                         "within": int(group["within"].sum()), "prior_error": float(group["prior_z"].mean()),
                         "posterior_error": float(group["posterior_z"].mean())})  # fmt: skip
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """A markdown summary: the run, the parameters (prior against posterior), the fit per series."""
        last = self.last
        lines = [
            f"# Posterior of the {self.settings.scenario} scenario",
            "",
            f"- {self.runs} runs in {len(self.generations)} generations ({self.seconds:.0f} s of generations); "
            f"population {self.settings.population}, keep {self.settings.keep}, seed {self.settings.seed}",
            f"- final epsilon {last.epsilon:.3f} (distance: RMS over series of standardised errors); "
            f"effective sample size {last.ess:.0f} of {len(last.kept_z)} kept particles",
            "",
            "| parameter | key | prior | posterior median (10-90%) | sd / prior sd | carried over | why this prior |",
            "|---|---|---|---|---|---|---|",
        ]
        for _, r in self.parameters().iterrows():
            prior = f"{'log-' if r.prior_scale == 'log' else ''}uniform {r.prior_low:g} to {r.prior_high:g}"
            what = {"scale": " (x own value)", "shift": " (+ own value)"}.get(r["mode"], "")
            lines.append(
                f"| {r.parameter} | `{r.key}`{what} | {prior} | {r.posterior_median:.3g} ({r.posterior_p10:.3g} to "
                f"{r.posterior_p90:.3g}) | {r.sd_ratio:.2f} | {'yes' if r.transfers else 'no'} | {r.reason} |"
            )
        lines += [
            "",
            "| series | points | within tolerance of the posterior | mean error / tolerance: prior | posterior |",
            "|---|---|---|---|---|",
        ]
        for _, r in self.series_fit().iterrows():
            lines.append(f"| {r.label} | {r.points} | {r.within} | {r.prior_error:.2f} | {r.posterior_error:.2f} |")
        fit = self.fit()
        lines += [
            "",
            f"{int(fit['within'].sum())} of {len(fit)} points within tolerance of the posterior's 10-90% band.",
            "",
        ]
        return "\n".join(lines)

    def write(self, out: Path) -> list[Path]:
        """posterior.csv, parameters.csv, fit.csv, generations.csv, summary.md and posterior.png into ``out``
        (each atomically)."""
        from cloudwar.runs.output import replace_file

        written = []
        for name, table in (("posterior.csv", self.posterior()), ("parameters.csv", self.parameters()),
                            ("fit.csv", self.fit()), ("generations.csv", self.generation_table())):  # fmt: skip
            replace_file(out / name, lambda tmp, table=table: table.to_csv(tmp, index=False))
            written.append(out / name)
        text = self.summary()
        replace_file(out / "summary.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
        written.append(out / "summary.md")
        fig = self.figure()
        replace_file(out / "posterior.png", lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
        written.append(out / "posterior.png")
        return written


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> tuple[float, ...]:
    """Quantiles of a weighted sample (the inverse of its weighted empirical distribution, midpoints)."""
    order = np.argsort(values, kind="stable")
    v, w = np.asarray(values, float)[order], np.asarray(weights, float)[order]
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()
    return tuple(float(np.interp(q, cum, v)) for q in qs)


def calibrate(
    out: str | Path,
    settings: Settings | None = None,
    *,
    executor: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    connect_timeout: float = 10.0,
    log: Callable[[str], None] | None = None,
) -> Calibration:
    """Fit the posterior into folder ``out`` (module docstring); resumes what the folder holds."""
    from cloudwar.runs.backtest import metric_triples, read_history
    from cloudwar.runs.design import plan_design
    from cloudwar.runs.executors import make_executor
    from cloudwar.runs.runner import run_design
    from cloudwar.runs.store import read_sweep
    from cloudwar.scenario import parse_scenario
    from cloudwar.scenario.schema import scenario_to_dict

    settings = settings or Settings()
    out = Path(out)
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    _check_settings(settings)
    history = read_history()
    base = plan_design(settings.scenario, fixed=settings.fixed, metrics=metric_triples(calibration_series()))
    scenario = parse_scenario(base.scenario)
    full = scenario_to_dict(scenario)
    targets_ = targets(scenario.start, scenario.quarters, history)
    identity = settings.identity(base.scenario, targets_)
    _open_folder(out, identity)
    priors = settings.priors
    own = executor is None
    if own:
        executor = make_executor(workers, scheduler, connect_timeout)

    def simulate(z: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        values = np.column_stack([p.value(z[:, i]) for i, p in enumerate(priors)])
        overrides = [overrides_for(dict(zip([p.name for p in priors], row, strict=True)), priors, full)
                     for row in values]  # fmt: skip
        seed_t = int(np.random.SeedSequence([settings.seed, t]).generate_state(1)[0])
        design = plan_design(
            settings.scenario,
            [p.name for p in priors],
            [tuple(round(float(x), 6) for x in row) for row in values],
            seed=seed_t,
            fixed=settings.fixed,
            metrics=metric_triples(calibration_series()),
            design={"posterior": {"generation": t, "targets_sha256": identity["targets_sha256"]}},
            overrides=overrides,
        )
        design = ParticleDesign(**{f: getattr(design, f) for f in Design.__dataclass_fields__})
        folder = out / RUNS / f"gen_{t:03d}"
        run_design(design, folder, executor=executor, progress=progress, description=f"generation {t}")
        _, metrics = read_sweep(folder)
        stats = model_values(metrics, len(z), scenario, targets_, history)
        return distance(stats, targets_), stats

    def report(g: Generation) -> None:
        extra = "" if g.index == 0 else f", {g.acceptance:.0%} of new runs within the last epsilon"
        log(f"generation {g.index}: {len(g.z)} runs, epsilon {g.epsilon:.3f}, median kept distance "
            f"{np.median(g.kept_distance):.3f}, ESS {g.ess:.0f}{extra} ({g.seconds:.0f} s)")  # fmt: skip

    from cloudwar.runs.runner import _sigterm_as_interrupt

    try:
        with _sigterm_as_interrupt():  # between generations too: a kill stops cleanly, keeping what is done
            gens = apmc(simulate, len(priors), population=settings.population, keep=settings.keep,
                        min_acceptance=settings.min_acceptance, generations=settings.generations,
                        seed=settings.seed, folder=out / GENERATIONS, report=report)  # fmt: skip
    finally:
        if own:
            executor.close()
    total_runs = sum(len(g.z) for g in gens)
    result = Calibration(settings, targets_, gens, total_runs, sum(g.seconds for g in gens))
    return result


def _check_settings(s: Settings) -> None:
    if isinstance(s.population, bool) or not isinstance(s.population, int) or s.population < 4:
        raise SweepError(f"population must be a whole number of at least 4, got {s.population}", param="population")
    if not 0.0 < s.keep < 1.0:
        raise SweepError(
            f"keep must be above 0 and below 1 (the fraction of particles kept), got {s.keep}", param="keep"
        )
    if not 0.0 <= s.min_acceptance < 1.0:
        raise SweepError(f"min-acceptance must be in [0, 1), got {s.min_acceptance}", param="min_acceptance")
    if isinstance(s.generations, bool) or not isinstance(s.generations, int) or s.generations < 1:
        raise SweepError(f"generations must be at least 1, got {s.generations}", param="generations")
    names = [p.name for p in s.priors]
    if len(set(names)) != len(names) or len({p.key for p in s.priors}) != len(names):
        raise SweepError("priors: a name or key appears twice", param="priors")


def _open_folder(out: Path, identity: dict[str, Any]) -> None:
    """Create ``out`` with its calibration.json, or check that it holds this calibration."""
    from cloudwar.runs.output import replace_file

    if out.exists() and not out.is_dir():
        raise SweepError(f"out {out} exists and is not a folder", param="out")
    path = out / CONFIG
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as err:
            raise SweepError(f"out {out}: {CONFIG} cannot be read ({err}); delete the folder to start over",
                             param="out") from None  # fmt: skip
        if canonical_json(old) != canonical_json(identity):
            changed = sorted(
                k for k in set(old) | set(identity) if canonical_json(old.get(k)) != canonical_json(identity.get(k))
            )
            raise SweepError(
                f"out {out} holds another calibration ({', '.join(changed)} differ); use another folder, or delete "
                "it to start over",
                param="out",
            )
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SweepError(f"out {out}: cannot create it: {err.strerror}", param="out") from None
    text = json.dumps(identity, indent=2, default=str) + "\n"
    replace_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# The shipped posterior, and drawing from it
# --------------------------------------------------------------------------------------------
def shipped_path() -> Path:
    return Path(str(resources.files("cloudwar.scenario.data").joinpath(SHIPPED)))


@dataclass(frozen=True)
class Posterior:
    """A weighted sample of parameter sets (``posterior.csv``) and the priors that name its columns."""

    table: pd.DataFrame
    priors: tuple[Prior, ...] = PRIORS

    def draws(self, n: int, seed: int = 0) -> pd.DataFrame:
        """``n`` parameter sets resampled by weight (systematic resampling: each particle about n x weight
        times), in a seeded random order; column ``draw`` numbers them."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SweepError(f"posterior draws must be at least 1, got {n}", param="posterior")
        rng = np.random.default_rng([seed, 7])
        w = self.table["weight"].to_numpy(float)
        cum = np.cumsum(w / w.sum())
        picks = np.searchsorted(cum, (rng.random() + np.arange(n)) / n)
        picks = rng.permutation(np.minimum(picks, len(w) - 1))
        out = self.table.iloc[picks].reset_index(drop=True)
        out.insert(0, "draw", range(n))
        return out

    def overrides(
        self,
        n: int,
        scenario: str | Path = "baseline",
        seed: int = 0,
        fixed: dict[str, Any] | None = None,
        match_start: bool = True,
        exclude: set[str] | frozenset[str] = frozenset(),
    ) -> list[dict[str, Any]]:
        """Scenario overrides of ``n`` draws for ``scenario``: only the parameters that transfer, unless
        ``scenario`` is the one calibrated (then all). With ``match_start``, each draw's qualities are
        refitted so that the scenario starts where its calibrated point does (:func:`matched_params`):
        a draw changes how the market moves, not where it starts. Keys in ``exclude`` (set by the
        caller) are not drawn."""
        from cloudwar.scenario import apply_overrides, read_scenario_toml

        raw = apply_overrides(read_scenario_toml(scenario), dict(fixed or {}))
        full = full_scenario(raw)
        own = str(full.get("name")) == str(self.table.attrs.get("scenario", "history"))
        target, shifts = start_target(raw, self.priors) if match_start else ((), ())
        priors = tuple(p for p in self.priors if p.key not in exclude)
        names = [p.name for p in priors]
        out = []
        for _, row in self.draws(n, seed).iterrows():
            values = {k: row[k] for k in names if k in row}
            params: dict[str, Any] = overrides_for(values, priors, full, transfer_only=not own)
            if match_start:
                shifted = tuple(s for s in shifts if s[0] not in exclude) if own else ()
                params = matched_params(raw, params, np.asarray(target, dtype=float), shifted)
            out.append(params)
        return out


def load_posterior(path: str | Path | None = None) -> Posterior:
    """The shipped posterior (or ``posterior.csv`` at ``path``); one-line :class:`SweepError` if unreadable."""
    path = shipped_path() if path is None else Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise SweepError(f"posterior {path}: cannot be read ({err})", param="posterior") from None
    names = [p.name for p in PRIORS]
    missing = [c for c in [*names, "weight"] if c not in table.columns]
    if missing:
        raise SweepError(f"posterior {path}: missing columns {', '.join(missing)}", param="posterior")
    if not (np.isfinite(table["weight"]).all() and (table["weight"] >= 0).all() and table["weight"].sum() > 0):
        raise SweepError(f"posterior {path}: weights must be finite, non-negative and not all zero", param="posterior")
    meta = path.with_name(SHIPPED_META)
    if meta.exists():
        with contextlib.suppress(ValueError):
            table.attrs.update(json.loads(meta.read_text(encoding="utf-8")))
    return Posterior(table)


# --------------------------------------------------------------------------------------------
# Matching a scenario's calibrated start under a draw's behaviour
# --------------------------------------------------------------------------------------------
def starting_shares(model: Any) -> np.ndarray:
    """Expected starting volume shares (K, R, P + 1; outside option last) of a built model, per market."""
    from cloudwar.model.market import CloudMarket

    assert isinstance(model, CloudMarket)
    pop, ent = model.population, model.enterprises
    out = np.zeros((len(model.product_names), len(model.region_names), len(model.provider_names) + 1))
    for k, product in enumerate(model.product_names):
        for r in range(len(model.region_names)):
            idx = np.flatnonzero(pop.region == r)
            if product == "ai":
                idx = idx[pop.adopted[idx]]
            if idx.size == 0:
                continue
            shares = ent.volumes(k, idx) @ ent.starting_shares(k, idx)
            out[k, r] = shares / shares.sum()
    return out


def matched_start(
    raw: dict[str, Any],
    overrides: dict[str, Any],
    target: np.ndarray,
    *,
    seed: int = 0,
    iterations: int = 300,
    tolerance: float = 2e-3,
    step: float = 0.5,
    rounds: int = 4,
) -> tuple[dict[str, Any], float]:
    """Qualities under which the scenario with ``overrides`` starts with expected shares ``target``
    (:func:`starting_shares` of the calibrated point, say). Returns the quality overrides
    (``providers.NAME.quality``) and the largest log share gap of a model built with them.

    Each round builds the model and takes damped fixed-point steps of ``step x mu x`` each option's
    log share gap against the outside option's (the step halved whenever the largest gap grows:
    switching costs amplify the response). The build draws the AI customers first and the cloud
    mix leans toward each enterprise's AI provider, so a round ends by building the model again
    with the fitted qualities; the rounds stop once that model starts within ``tolerance``.

    A draw of other sensitivities or weights moves the calibrated start (an ecosystem weight twice
    the point's lifts Alibaba's starting share); refitting the qualities keeps the start the facts
    describe, so that a draw changes how the market moves, not where it starts.
    """
    from cloudwar.model.market import CloudMarket
    from cloudwar.scenario import apply_overrides, parse_scenario

    def build(quality: dict[str, Any]) -> Any:
        return CloudMarket(parse_scenario(apply_overrides(raw, {**overrides, **quality})), rng=seed)

    def gap_of(model: Any) -> np.ndarray:
        sim = starting_shares(model)
        ok = (target > 0) & (sim > 0)
        return np.where(ok, np.log(np.where(ok, target, 1.0) / np.where(ok, sim, 1.0)), 0.0)

    quality: dict[str, Any] = {}
    model = build(quality)
    worst = float(np.abs(gap_of(model)).max())
    for _ in range(rounds):
        if worst < tolerance:
            break
        size, last = step, np.inf
        for _ in range(iterations):
            gap = gap_of(model)
            inner = float(np.abs(gap).max())
            if inner < tolerance:
                break
            if inner > last:
                size *= 0.5
            last = inner
            for k in range(gap.shape[0]):
                mu = model.products[k].logit_scale
                model.quality[:, k, :] += size * mu * (gap[k, :, :-1] - gap[k, :, -1:]).T
        quality = _quality_overrides(model)
        model = build(quality)
        worst = float(np.abs(gap_of(model)).max())
    if not quality:  # already where it should start: the scenario's own qualities
        quality = _quality_overrides(model)
    return quality, worst


def _quality_overrides(model: Any) -> dict[str, Any]:
    """A built model's qualities as ``providers.NAME.quality`` overrides (5 decimals)."""
    q = model.quality
    return {
        f"providers.{name}.quality": {
            product: {region: round(float(q[j, k, r]), 5) for r, region in enumerate(model.region_names)}
            for k, product in enumerate(model.product_names)
        }
        for j, name in enumerate(model.provider_names)
    }


def start_target(
    raw: dict[str, Any], priors: Sequence[Prior] = PRIORS
) -> tuple[tuple[Any, ...], tuple[tuple[str, float], ...]]:
    """What :func:`matched_params` needs for scenario ``raw``: its calibrated point's expected starting
    shares (K, R, P + 1 as nested tuples; seed 0) and the (key, point value) of the priors that shift a quality."""
    from cloudwar.model.market import CloudMarket
    from cloudwar.scenario import parse_scenario

    shares = starting_shares(CloudMarket(parse_scenario(raw), rng=0))
    full = full_scenario(raw)
    shifts = tuple((p.key, scenario_value(full, p.key)) for p in priors if p.mode == "shift")
    nested = tuple(tuple(tuple(row) for row in market) for market in np.round(shares, 10).tolist())
    return nested, shifts


def matched_params(
    raw: dict[str, Any], params: dict[str, Any], target: np.ndarray, shifts: Sequence[tuple[str, float]], seed: int = 0
) -> dict[str, Any]:
    """``params`` with every provider's quality refitted so the run starts with ``target``'s shares
    (:func:`matched_start`, on the run's own population), then the shift-mode priors' shifts added
    to the matched qualities (``params`` holds point value + shift for those keys)."""
    shifted = {key: float(params[key]) - point for key, point in shifts if key in params}
    behaviour = {k: v for k, v in params.items() if k not in shifted}
    qualities, _ = matched_start(raw, behaviour, np.asarray(target, dtype=float), seed=seed)
    for key, delta in shifted.items():
        parts = key.split(".")
        if len(parts) != 5 or parts[0] != "providers" or parts[2] != "quality":
            raise SweepError(f"prior {key}: a shift must name providers.NAME.quality.PRODUCT.REGION", param="priors")
        table = qualities[f"providers.{parts[1]}.quality"]
        table[parts[3]][parts[4]] = round(table[parts[3]][parts[4]] + delta, 5)
    return {**behaviour, **qualities}

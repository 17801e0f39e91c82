"""What many runs are: points x seeds, the one seed rule, the plan manifest, and the size check.

A :class:`Design` is a list of *points* (one value per parameter each: a grid combination, a
sampled row, an experiment's world and arm) times ``seeds`` replicates. Run ``r`` is point
``r // seeds``, replicate ``r % seeds``, and its model seed is :func:`run_seed` ``(seed,
replicate)``: the same at every point (common random numbers), so differences between points are
the parameters' doing, and nothing depends on which worker ran what, or when. Every engine of
many runs (sweeps, sensitivity, the experiments, Q-learning sessions) uses this one rule.

A point's scenario overrides are its parameter values (``{key: value}``), or, for designs whose
parameters are labels (``world``, ``arm``), the ``overrides`` given per point.

Errors are :class:`~cloudwar.errors.SweepError` or :class:`~cloudwar.errors.ScenarioError`
whose ``param`` names the argument at fault (``seeds``, ``parameters``, ``fixed``, ...).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudwar.errors import ScenarioError, SweepError
from cloudwar.runs.tasks import METRIC_COLUMNS, ModelBatch, metrics_schema
from cloudwar.scenario import apply_overrides, parse_scenario, read_scenario_toml

FORMAT = 1
METRICS_CHOICES = ("summary", "all")
RUN_COLUMNS = ("run", "point", "replicate", "seed")
STATUS_COLUMNS = ("status", "error", "wall_time_s")
#: Most runs one design may hold: beyond this a plan is a typo (``--seeds 1000000000``), and its
#: bookkeeping alone (about :data:`BYTES_PER_PLANNED_RUN` per run while it runs) outgrows memory.
MAX_RUNS = 10_000_000
BYTES_PER_PLANNED_RUN = 400
# Seconds per enterprise-quarter of the baseline on one core (10,000 enterprises x 40 quarters
# took 0.3-1 s in 2026); only used to size batches, so it need not be exact.
SECONDS_PER_ENTERPRISE_QUARTER = 1e-6
TASKS_PER_WORKER = 8
BATCH_SECONDS = 20.0  # longest batch we aim for: an interruption or a dead worker loses at most this much
IDENTITY = ("format", "scenario_sha256", "parameters", "points_sha256", "seeds", "seed", "metrics")
_RESERVED = set(RUN_COLUMNS) | set(STATUS_COLUMNS)
__all__ = ["METRIC_COLUMNS", "Design", "plan_design", "run_seed"]


def run_seed(seed: int, replicate: int) -> int:
    """The model seed of replicate ``replicate`` of a design seeded ``seed``: the same at every point."""
    import numpy as np

    return int(np.random.SeedSequence([seed, replicate]).generate_state(1)[0])


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def grid_points(grid: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    """Every combination, the last key varying fastest (like nested loops in the order given)."""
    return list(itertools.product(*grid.values()))


def run_limit() -> int:
    """How many runs one design may hold on this machine: :data:`MAX_RUNS`, or less if memory is short."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: only the fixed cap
        return MAX_RUNS
    return max(1, min(MAX_RUNS, available // 2 // BYTES_PER_PLANNED_RUN))


def check_size(points: int, seeds: int, param: str = "seeds", what: str = "points") -> int:
    """Refuse a design too big to plan, before anything is computed or written; the number of runs.

    ``param`` names the argument to lower in the message (``seeds``, or what makes the points).
    """
    runs = points * seeds
    limit = run_limit()
    if runs > limit:
        raise SweepError(
            f"{param}: {points:,} {what} x {seeds:,} seeds = {runs:,} runs is more than a design may hold "
            f"on this machine (at most {limit:,}); give a smaller value",
            param=param,
        )
    return runs


def metrics_label(metrics: str | Sequence[Sequence[str]]) -> str | list[list[str]]:
    """The metrics choice as stored in the manifest: a name, or the kept (metric, region, product) triples."""
    return metrics if isinstance(metrics, str) else [list(m) for m in metrics]


@dataclass(frozen=True)
class Design:
    """What a design of many model runs runs. Build it with :func:`plan_design`, which validates every point.

    ``metrics``: ``"summary"``, ``"all"`` (see :func:`cloudwar.runs.tasks.select_metrics`) or a
    tuple of (metric, region, product) triples kept for every provider.
    """

    scenario_name: str
    scenario: dict[str, Any]  # the raw scenario table with the fixed overrides applied
    parameters: tuple[str, ...]
    points: tuple[tuple[Any, ...], ...]  # one value per parameter, per point
    seeds: int = 1
    seed: int = 0
    metrics: str | tuple[tuple[str, str, str], ...] = "summary"
    fixed: dict[str, Any] = field(default_factory=dict)
    design: dict[str, Any] = field(default_factory=dict)  # how the points were made (for sweep.json)
    overrides: tuple[dict[str, Any], ...] | None = None  # per point, when the parameters are labels
    identity: tuple[str, ...] = IDENTITY

    @property
    def n_runs(self) -> int:
        return len(self.points) * self.seeds

    def labels(self, point: int) -> dict[str, Any]:
        """The parameter values of point ``point`` (the runs table's parameter columns)."""
        return dict(zip(self.parameters, self.points[point], strict=True))

    def params(self, point: int) -> dict[str, Any]:
        """The scenario overrides of point ``point``."""
        return dict(self.overrides[point]) if self.overrides is not None else self.labels(point)

    def run_info(self, run: int) -> tuple[int, int, int]:
        """(point, replicate, model seed) of run ``run``."""
        point, replicate = divmod(run, self.seeds)
        return point, replicate, run_seed(self.seed, replicate)

    def manifest(self) -> dict[str, Any]:
        """The contents of ``sweep.json``; the keys in ``identity`` decide whether a folder can resume."""
        from cloudwar import __version__

        manifest = {
            "format": FORMAT,
            "scenario": self.scenario_name,
            "scenario_sha256": digest(self.scenario),
            "set": self.fixed,
            "parameters": list(self.parameters),
            "points": len(self.points),
            "points_sha256": digest([list(p) for p in self.points]),
            "seeds": self.seeds,
            "seed": self.seed,
            "runs": self.n_runs,
            "metrics": metrics_label(self.metrics),
            "design": self.design,
            "cloudwar_version": __version__,
        }
        if self.overrides is not None:
            manifest["overrides_sha256"] = digest(list(self.overrides))
        return manifest

    # --- what the runner and the store need -------------------------------------------------
    def batches(self, runs: Sequence[int], count: int) -> list[Any]:
        """``runs`` in ``count`` contiguous batches whose sizes differ by at most one."""
        cache: dict[int, dict[str, Any]] = {}  # one overrides dict per point, shared by its runs
        batches = []
        for chunk in split_evenly(runs, count):
            items = []
            for run in chunk:
                point, _, seed = self.run_info(run)
                items.append((run, cache.setdefault(point, self.params(point)), seed))
            batches.append(ModelBatch(self.scenario, self.metrics, tuple(items)))
        return batches

    def batch_count(self, n_runs: int, workers: int, max_size: int | None = None) -> int:
        """How many batches ``n_runs`` runs go in (:func:`batch_count`)."""
        return batch_count(self.seconds_per_run(), n_runs, workers, max_size)

    def seconds_per_run(self) -> float:
        """A rough cost of one run on one core (seconds), to size batches."""
        enterprises = max(self._numbers("enterprises", self.scenario.get("enterprises", 20_000)))
        quarters = max(self._numbers("quarters", self.scenario.get("quarters", 40)))
        return 0.02 + enterprises * quarters * SECONDS_PER_ENTERPRISE_QUARTER

    def _numbers(self, key: str, default: Any) -> list[float]:
        if self.overrides is not None:
            values = [o.get(key, default) for o in self.overrides]
        elif key in self.parameters:
            values = [p[self.parameters.index(key)] for p in self.points]
        else:
            values = [default]
        return [float(v) if isinstance(v, int | float) else 0.0 for v in values]

    def runs_schema(self) -> Any:
        """The runs table's columns; a parameter's type follows its values (text if they are mixed)."""
        import pyarrow as pa

        return pa.schema(
            [
                *((c, pa.int64()) for c in RUN_COLUMNS),
                *((key, column_type([p[i] for p in self.points])) for i, key in enumerate(self.parameters)),
                ("status", pa.string()),
                ("error", pa.string()),
                ("wall_time_s", pa.float64()),
            ]
        )

    def run_rows(self, status: Sequence[dict[str, Any]]) -> Any:
        """The runs-table rows (a pyarrow Table) of finished runs, from their status records."""
        import pyarrow as pa

        rows = []
        for s in status:
            point, replicate, seed = self.run_info(s["run"])
            rows.append((s["run"], point, replicate, seed, *self.points[point], *(s[c] for c in STATUS_COLUMNS)))
        schema = self.runs_schema()
        return pa.table(
            [pa.array([_cell(row[i], f.type) for row in rows], type=f.type) for i, f in enumerate(schema)],
            schema=schema,
        )

    def empty_results(self) -> Any:
        return metrics_schema().empty_table()

    def describe_difference(self, key: str) -> str:
        return {
            "format": "written by another cloudwar version",
            "scenario_sha256": "the scenario or fixed overrides differ",
            "parameters": "other parameters",
            "points_sha256": "other parameter values",
            "overrides_sha256": "other overrides per point",
            "seeds": "another number of seeds",
            "seed": "another seed",
            "metrics": "other metrics",
        }.get(key, f"another {key}")


def split_evenly(items: Sequence[int], count: int) -> list[Sequence[int]]:
    """``items`` in ``count`` contiguous chunks whose sizes differ by at most one (at least one item each)."""
    count = max(1, min(count, len(items)))
    size, extra = divmod(len(items), count)
    chunks, start = [], 0
    for i in range(count):
        chunk = items[start : start + size + (i < extra)]
        start += len(chunk)
        chunks.append(chunk)
    return chunks


def batch_count(seconds_per_run: float, n_runs: int, workers: int, max_size: int | None = None) -> int:
    """How many tasks: about eight per worker, a multiple of the workers, so that equal tasks keep
    every worker busy to the end and the progress bar moves; and no task longer than about
    :data:`BATCH_SECONDS` (what an interruption or a dead worker can lose), or ``max_size`` runs.
    A task costs a few milliseconds of overhead."""
    if max_size is None:
        max_size = max(1, int(BATCH_SECONDS / seconds_per_run))
        count = max(TASKS_PER_WORKER * max(workers, 1), math.ceil(n_runs / max_size))
    else:
        count = math.ceil(n_runs / max_size)
    return min(count, n_runs)


def column_type(values: Sequence[Any]) -> Any:
    import pyarrow as pa

    if all(isinstance(v, bool) for v in values):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pa.float64()
    return pa.string()


def _cell(value: Any, type_: Any) -> Any:
    import pyarrow as pa

    if value is None:
        return None
    if type_ == pa.float64():
        return float(value)
    if type_ == pa.string() and not isinstance(value, str):
        return canonical_json(value)
    return value


def _check_metrics(metrics: Any) -> str | tuple[tuple[str, str, str], ...]:
    if isinstance(metrics, str):
        if metrics not in METRICS_CHOICES:
            raise SweepError(f"metrics must be one of {', '.join(METRICS_CHOICES)}, got {metrics!r}", param="metrics")
        return metrics
    triples = tuple(tuple(m) for m in metrics)
    if not triples or any(len(t) != 3 or not all(isinstance(x, str) for x in t) for t in triples):
        raise SweepError("metrics must be summary, all, or (metric, region, product) triples of names", param="metrics")
    return triples  # type: ignore[return-value]


def plan_design(
    scenario: str | Path = "baseline",
    parameters: Sequence[str] = (),
    points: Sequence[Sequence[Any]] = ((),),
    *,
    seeds: int = 1,
    seed: int = 0,
    fixed: dict[str, Any] | None = None,
    metrics: str | Sequence[Sequence[str]] = "summary",
    design: dict[str, Any] | None = None,
    overrides: Sequence[dict[str, Any]] | None = None,
) -> Design:
    """Validate every point against the scenario (one-line :class:`ScenarioError` naming the key) and plan.

    Without ``overrides`` each point's values are scenario values of the ``parameters`` keys;
    with ``overrides`` (one dict per point) the parameters are labels and the dicts the values.
    The size is checked first (:func:`check_size`), so an absurd plan fails at once.
    """
    fixed = dict(fixed or {})
    parameters = tuple(parameters)
    points = tuple(tuple(p) for p in points)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SweepError(f"seeds must be at least 1, got {seeds}", param="seeds")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SweepError(f"seed must be a whole number >= 0, got {seed}", param="seed")
    metrics = _check_metrics(metrics)
    if not points:
        raise SweepError("points: the design has no points", param="points")
    check_size(len(points), seeds)
    for key in parameters:
        if overrides is None and key in fixed:
            raise SweepError(f"parameters {key}: also a fixed value (give it in one place only)", param="parameters")
        if key in _RESERVED:
            raise SweepError(f"parameters {key}: not a scenario key", param="parameters")
    for p in points:
        if len(p) != len(parameters):
            raise SweepError(f"points: a point has {len(p)} values for {len(parameters)} parameters", param="points")
    if overrides is not None:
        overrides = tuple(dict(o) for o in overrides)
        if len(overrides) != len(points):
            raise SweepError(f"overrides: {len(overrides)} for {len(points)} points", param="overrides")
    raw = read_scenario_toml(scenario)
    try:
        base = apply_overrides(raw, fixed)
        parse_scenario(base)
    except ScenarioError as err:
        raise ScenarioError(f"fixed {err}", param="fixed") from None
    for i, p in enumerate(points):
        values = overrides[i] if overrides is not None else dict(zip(parameters, p, strict=True))
        _check_point(base, values, "overrides" if overrides is not None else "parameters")
    return Design(
        scenario_name=str(scenario),
        scenario=base,
        parameters=parameters,
        points=points,
        seeds=seeds,
        seed=seed,
        metrics=metrics,
        fixed=fixed,
        design=dict(design or {}),
        overrides=overrides,
    )


def _check_point(base: dict[str, Any], values: dict[str, Any], param: str) -> None:
    try:
        parse_scenario(apply_overrides(base, values))
    except ScenarioError as err:
        # Name the culprit: the first key whose value fails on its own, else the combination.
        for key, value in values.items():
            try:
                parse_scenario(apply_overrides(base, {key: value}))
            except ScenarioError as alone:
                message = str(alone).removeprefix(f"{key}: ")
                raise ScenarioError(f"{param} {key}: {message}", param=param) from None
        where = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ScenarioError(f"{param} point ({where}): {err}", param=param) from None

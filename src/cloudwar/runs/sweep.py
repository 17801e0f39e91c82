"""Many runs: a grid of scenario overrides times seeds, on a local process pool or a Dask cluster.

``cloudwar sweep --scenario baseline --grid choice.network_weight=0.2,0.5,0.8 --seeds 4 --out DIR``

What a sweep is
    A list of *points* (one dict of dotted scenario keys -> values each, e.g. every combination
    of the ``--grid`` values) times ``seeds`` replicates. Run ``r`` is point ``r // seeds``,
    replicate ``r % seeds``. The model seed of a run depends only on the sweep seed and the
    replicate (:func:`run_seed`): every point sees the same random streams (common random
    numbers), so differences between points are the parameters' doing, not the luck of the draw,
    and nothing depends on which worker ran what, or when.

Where results go (``DIR``)
    ``sweep.json``      what the sweep is (scenario digest, points, seeds, metrics); checked on resume
    ``runs/``           Parquet table, one row per run: run, point, replicate, seed, one column per
                        parameter, status (``ok`` or ``error``), error, wall_time_s
    ``metrics/``        Parquet table, tidy: run, quarter, provider, region, product, metric, value
    Each finished batch adds one file to each folder (``part-*.parquet``), written to a hidden
    temporary name and renamed into place, metrics first, runs last: a run is finished exactly
    when its row is in ``runs/``. Read both with :func:`read_sweep`, which sorts by run, or with
    any Parquet reader (``pd.read_parquet(DIR / "runs")``) and sort yourself.

Resume
    Running the same command again skips every run already in ``runs/`` and runs the rest. A
    different sweep (other grid, seeds, scenario contents or metrics) in the same folder is
    refused. A batch whose worker died is retried up to 3 times (Dask's rule too), then left
    for the next invocation.

Which metrics are kept (``--metrics``)
    ``summary`` (default): every world-level row of every quarter (``region == "all"``: each
    provider per product and in total, market HHI per product, AI adoption) plus every row of
    the final quarter (the regional detail). About 30% of the full table. ``all``: every row of
    :meth:`CloudMarket.results`.

This module is imported by every ``cloudwar`` command, so it imports nothing heavy at the top:
pyarrow, tqdm and distributed are imported inside the functions that use them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudwar.cli.main import CliError, parse_sets, positive_int
from cloudwar.scenario import ScenarioError, apply_overrides, parse_override, parse_scenario, read_scenario_toml

FORMAT = 1
METRICS_CHOICES = ("summary", "all")
RUN_COLUMNS = ("run", "point", "replicate", "seed")
STATUS_COLUMNS = ("status", "error", "wall_time_s")
METRIC_COLUMNS = ("run", "quarter", "provider", "region", "product", "metric", "value")
MAX_ATTEMPTS = 3  # a batch whose worker died this many times is left for the next invocation
# Seconds per enterprise-quarter of the baseline on one core (10,000 enterprises x 40 quarters
# took 0.3-1 s in 2026); only used to size batches, so it need not be exact.
SECONDS_PER_ENTERPRISE_QUARTER = 1e-6
TASKS_PER_WORKER = 8
BATCH_SECONDS = 20.0  # longest batch we aim for: an interruption or a dead worker loses at most this much
LOCK_WAIT_SECONDS = 3.0
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 128 << 20
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# ------------------------------------------------------------------------------------------
# The plan: points x seeds, validated before anything runs
# ------------------------------------------------------------------------------------------
def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["key=v1,v2", ...]`` -> ``{key: [v1, v2]}``; each value is read like ``--set`` (TOML-ish)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise CliError(f"--grid {item!r}: expected key=value1,value2,...")
        key, text = (part.strip() for part in item.split("=", 1))
        if not key:
            raise CliError(f"--grid {item!r}: empty key")
        if key in grid:
            raise CliError(f"--grid {key}: given twice (list all its values in one --grid)")
        texts = [t.strip() for t in split_values(text)]
        if not text.strip() or any(not t for t in texts):
            raise CliError(f"--grid {key}: empty value in {text!r} (expected {key}=value1,value2,...)")
        try:
            values = [parse_override(f"{key}={t}")[1] for t in texts]
        except ScenarioError as err:
            raise CliError(f"--grid {str(err).removeprefix('--set ')}") from None
        if len({canonical_json(v) for v in values}) != len(values):
            raise CliError(f"--grid {key}: a value is listed twice in {text!r}")
        grid[key] = values
    return grid


def split_values(text: str) -> list[str]:
    """Split at the commas that separate values: not inside quotes, arrays or inline tables.

    ``'0.2,0.5'`` -> two values; ``'{kind="cost_plus", markup=0.4},{kind="cost_plus", markup=0.6}'`` -> two tables.
    """
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            if char == quote and text[i - 1] != "\\":
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def grid_points(grid: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    """Every combination, the last key varying fastest (like nested loops in the order given)."""
    return list(itertools.product(*grid.values()))


def run_seed(sweep_seed: int, replicate: int) -> int:
    """The model seed of replicate ``replicate``: the same at every point (common random numbers)."""
    import numpy as np

    return int(np.random.SeedSequence([sweep_seed, replicate]).generate_state(1)[0])


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep runs. Build it with :func:`plan_sweep`, which validates every point."""

    scenario_name: str
    scenario: dict[str, Any]  # the raw scenario table with the fixed overrides applied
    parameters: tuple[str, ...]
    points: tuple[tuple[Any, ...], ...]  # one value per parameter, per point
    seeds: int = 1
    seed: int = 0
    metrics: str = "summary"
    fixed: dict[str, Any] = field(default_factory=dict)
    design: dict[str, Any] = field(default_factory=dict)  # how the points were made (for sweep.json)

    @property
    def n_runs(self) -> int:
        return len(self.points) * self.seeds

    def params(self, point: int) -> dict[str, Any]:
        return dict(zip(self.parameters, self.points[point], strict=True))

    def run_info(self, run: int) -> tuple[int, int, int]:
        """(point, replicate, model seed) of run ``run``."""
        point, replicate = divmod(run, self.seeds)
        return point, replicate, run_seed(self.seed, replicate)

    def manifest(self) -> dict[str, Any]:
        """The contents of ``sweep.json``; the keys in :data:`IDENTITY` decide whether a folder can resume."""
        from cloudwar import __version__

        return {
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
            "metrics": self.metrics,
            "design": self.design,
            "cloudwar_version": __version__,
        }


IDENTITY = ("format", "scenario_sha256", "parameters", "points_sha256", "seeds", "seed", "metrics")
_RESERVED = set(RUN_COLUMNS) | set(STATUS_COLUMNS)


def plan_sweep(
    scenario: str | Path = "baseline",
    parameters: Sequence[str] = (),
    points: Sequence[Sequence[Any]] = ((),),
    *,
    seeds: int = 1,
    seed: int = 0,
    fixed: dict[str, Any] | None = None,
    metrics: str = "summary",
    design: dict[str, Any] | None = None,
    option: str = "--grid",
) -> SweepPlan:
    """Validate every point against the scenario (one-line :class:`ScenarioError` naming the key) and plan.

    ``option`` names the command-line option the parameters came from, for error messages.
    """
    fixed = dict(fixed or {})
    parameters = tuple(parameters)
    points = tuple(tuple(p) for p in points)
    if seeds < 1:
        raise CliError(f"--seeds must be at least 1, got {seeds}")
    if seed < 0:
        raise CliError(f"--seed must be >= 0, got {seed}")
    if metrics not in METRICS_CHOICES:
        raise CliError(f"--metrics must be one of {', '.join(METRICS_CHOICES)}, got {metrics!r}")
    if not points:
        raise CliError("the sweep has no points")
    for key in parameters:
        if key in fixed:
            raise CliError(f"{option} {key}: also given with --set (use one or the other)")
        if key in _RESERVED:
            raise CliError(f"{option} {key}: not a scenario key")
    for p in points:
        if len(p) != len(parameters):
            raise CliError(f"a point has {len(p)} values for {len(parameters)} parameters")
    raw = read_scenario_toml(scenario)
    try:
        base = apply_overrides(raw, fixed)
        parse_scenario(base)
    except ScenarioError as err:
        raise ScenarioError(f"--set {err}") from None
    for p in points:
        try:
            parse_scenario(apply_overrides(base, dict(zip(parameters, p, strict=True))))
        except ScenarioError as err:
            # Name the culprit: the first key whose value fails on its own, else the combination.
            for key, value in zip(parameters, p, strict=True):
                try:
                    parse_scenario(apply_overrides(base, {key: value}))
                except ScenarioError as alone:
                    message = str(alone).removeprefix(f"{key}: ")
                    raise ScenarioError(f"{option} {key}: {message}") from None
            where = ", ".join(f"{k}={v!r}" for k, v in zip(parameters, p, strict=True))
            raise ScenarioError(f"{option} point ({where}): {err}") from None
    return SweepPlan(
        scenario_name=str(scenario),
        scenario=base,
        parameters=parameters,
        points=points,
        seeds=seeds,
        seed=seed,
        metrics=metrics,
        fixed=fixed,
        design=dict(design or {}),
    )


# ------------------------------------------------------------------------------------------
# One run and one batch (what a worker does)
# ------------------------------------------------------------------------------------------
def select_metrics(results: Any, metrics: str = "summary") -> Any:
    """The rows of a run's tidy results that a sweep keeps (see the module docstring)."""
    if metrics == "all" or results.empty:
        return results
    last = results["quarter"].max()
    keep = (results["quarter"] == last) | (results["region"] == "all")
    return results[keep.to_numpy(dtype=bool, na_value=False)]


def run_one(scenario: dict[str, Any], params: dict[str, Any], seed: int, metrics: str = "summary") -> Any:
    """One model run: the raw scenario table with ``params`` applied, seeded with ``seed``; its kept metrics.

    The same as ``cloudwar run --seed SEED --set key=value ...`` with the sweep's ``--set`` and the
    point's parameters.
    """
    from cloudwar.model.market import CloudMarket

    model = CloudMarket(parse_scenario(apply_overrides(scenario, params)), rng=seed)
    return select_metrics(model.run(), metrics)


@dataclass(frozen=True)
class Batch:
    """A task: runs ``(run, params, seed)`` of one scenario, executed one after the other."""

    scenario: dict[str, Any]
    metrics: str
    runs: tuple[tuple[int, dict[str, Any], int], ...]

    @property
    def first(self) -> int:
        return self.runs[0][0]


@dataclass
class BatchResult:
    status: list[dict[str, Any]]  # run, status, error, wall_time_s
    metrics: Any  # pyarrow Table with METRIC_COLUMNS


def run_batch(batch: Batch) -> BatchResult:
    """Run a batch; a run that raises is recorded with status ``error`` and the batch goes on.

    The metrics come back as one Arrow table, built here in the worker: it crosses process and
    network boundaries as flat buffers, and leaves the coordinating process only the writing."""
    import pyarrow as pa

    _tune_allocator()
    status, tables = [], []
    schema = _metrics_schema()
    for run, params, seed in batch.runs:
        start = time.perf_counter()
        try:
            frame = run_one(batch.scenario, params, seed, batch.metrics)
        except Exception as err:  # recorded, not raised: one bad point must not sink the sweep
            message = f"{type(err).__name__}: {err}".splitlines()[0]
            status.append({"run": run, "status": "error", "error": message})
        else:
            frame = frame.assign(run=run)[list(METRIC_COLUMNS)]
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            tables.append(table.replace_schema_metadata(None))  # plain Parquet, no pandas-specific types
            status.append({"run": run, "status": "ok", "error": None})
        status[-1]["wall_time_s"] = time.perf_counter() - start
    metrics = pa.concat_tables(tables).combine_chunks() if tables else schema.empty_table()
    return BatchResult(status, metrics)


_ALLOCATOR_TUNED = False


def _tune_allocator() -> None:
    """Keep a run's numpy arrays in the heap between runs (glibc only, once per process).

    By default glibc serves arrays above a threshold with fresh mmap'd pages and returns them on
    free, so every quarter of every run page-faults its working set back in (about 5,000 faults
    per baseline run; 25,000 under Dask's default MALLOC_TRIM_THRESHOLD_=65536). With a 32 MB
    mmap threshold and a 128 MB trim threshold a process keeps that memory and reuses it: about
    400 faults per run, 5-15% faster, at the cost of up to 128 MB held per worker."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or not sys.platform.startswith("linux"):
        return
    _ALLOCATOR_TUNED = True
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD_BYTES)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, TRIM_THRESHOLD_BYTES)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: leave the allocator alone
        pass


def make_batches(plan: SweepPlan, runs: Sequence[int], count: int) -> list[Batch]:
    """``runs`` in ``count`` contiguous batches whose sizes differ by at most one."""
    count = max(1, min(count, len(runs)))
    size, extra = divmod(len(runs), count)
    batches, start = [], 0
    for i in range(count):
        chunk = runs[start : start + size + (i < extra)]
        start += len(chunk)
        items = []
        for run in chunk:
            point, _, seed = plan.run_info(run)
            items.append((run, plan.params(point), seed))
        batches.append(Batch(plan.scenario, plan.metrics, tuple(items)))
    return batches


def batch_count(plan: SweepPlan, n_runs: int, workers: int, max_size: int | None = None) -> int:
    """How many tasks: about eight per worker, a multiple of the workers, so that equal tasks keep
    every worker busy to the end and the progress bar moves; and no task longer than about
    :data:`BATCH_SECONDS` (what an interruption or a dead worker can lose), or ``max_size`` runs.
    A task costs a few milliseconds of overhead."""
    if max_size is None:
        scenario = plan.scenario
        enterprises = max(_numbers(plan, "enterprises", scenario.get("enterprises", 20_000)))
        quarters = max(_numbers(plan, "quarters", scenario.get("quarters", 40)))
        seconds = 0.02 + enterprises * quarters * SECONDS_PER_ENTERPRISE_QUARTER
        max_size = max(1, int(BATCH_SECONDS / seconds))
        count = max(TASKS_PER_WORKER * max(workers, 1), math.ceil(n_runs / max_size))
    else:
        count = math.ceil(n_runs / max_size)
    return min(count, n_runs)


def _numbers(plan: SweepPlan, key: str, default: Any) -> list[float]:
    values = [p[plan.parameters.index(key)] for p in plan.points] if key in plan.parameters else [default]
    return [float(v) if isinstance(v, int | float) else 0.0 for v in values]


# ------------------------------------------------------------------------------------------
# The folder: manifest, lock, parts written atomically
# ------------------------------------------------------------------------------------------
def _metrics_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("run", pa.int64()),
            ("quarter", pa.int64()),
            ("provider", pa.string()),
            ("region", pa.string()),
            ("product", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
        ]
    )


class SweepFolder:
    """The output folder of one sweep (see the module docstring for its layout)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.runs_dir = self.path / "runs"
        self.metrics_dir = self.path / "metrics"
        self.manifest_path = self.path / "sweep.json"
        self._lock: Any = None

    # --- opening ---------------------------------------------------------------------------
    def open(self, plan: SweepPlan) -> None:
        """Create or reopen the folder for ``plan``: lock it, check it holds this sweep, tidy leftovers."""
        if self.path.exists() and not self.path.is_dir():
            raise CliError(f"--out {self.path} exists and is not a folder")
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            self.metrics_dir.mkdir(exist_ok=True)
        except OSError as err:
            raise CliError(f"cannot create {self.path}: {err.strerror}") from None
        self._acquire_lock()
        manifest = plan.manifest()
        if self.manifest_path.exists():
            old = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            for key in IDENTITY:
                if old.get(key) != manifest[key]:
                    raise CliError(
                        f"--out {self.path} holds a different sweep ({_difference(key)}); "
                        "use another folder, or delete it to start over"
                    )
        else:
            _write_text_atomically(self.manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")
        self._remove_leftovers()

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    def _acquire_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # not on POSIX: no lock
            return
        handle = open(self.path / ".lock", "a+")  # noqa: SIM115 - held open for the sweep's lifetime
        deadline = time.monotonic() + LOCK_WAIT_SECONDS  # a sweep just interrupted may still be exiting
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    handle.close()
                    raise CliError(f"--out {self.path} is in use by another running sweep") from None
                time.sleep(0.1)
        self._lock = handle

    def _remove_leftovers(self) -> None:
        """Temporary files of an interrupted write, and metrics parts whose runs part never came."""
        for folder in (self.runs_dir, self.metrics_dir):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        runs = {p.name for p in self.runs_dir.glob("part-*.parquet")}
        for part in self.metrics_dir.glob("part-*.parquet"):
            if part.name not in runs:
                part.unlink(missing_ok=True)

    # --- reading ---------------------------------------------------------------------------
    def finished_runs(self) -> set[int]:
        return set(self._statuses())

    def error_runs(self) -> set[int]:
        """Finished runs whose status is ``error``."""
        return {run for run, status in self._statuses().items() if status != "ok"}

    def _statuses(self) -> dict[int, str]:
        import pyarrow.parquet as pq

        statuses: dict[int, str] = {}
        for part in sorted(self.runs_dir.glob("part-*.parquet")):
            table = pq.read_table(part, columns=["run", "status"])
            statuses.update(zip(table.column("run").to_pylist(), table.column("status").to_pylist(), strict=True))
        return statuses

    # --- writing ---------------------------------------------------------------------------
    def write(self, plan: SweepPlan, result: BatchResult) -> None:
        """Add one batch: metrics part first, then the runs part that marks its runs finished."""
        import pyarrow as pa

        status = sorted(result.status, key=lambda s: s["run"])
        name = f"part-{status[0]['run']:09d}-{uuid.uuid4().hex[:8]}.parquet"
        rows = []
        for s in status:
            point, replicate, seed = plan.run_info(s["run"])
            rows.append((s["run"], point, replicate, seed, *plan.points[point], *(s[c] for c in STATUS_COLUMNS)))
        schema = runs_schema(plan)
        runs = pa.table(
            [pa.array([_cell(row[i], f.type) for row in rows], type=f.type) for i, f in enumerate(schema)],
            schema=schema,
        )
        with _deferred_interrupt():  # Ctrl-C now would leave metrics without their runs part
            _write_parquet_atomically(result.metrics, self.metrics_dir / name)
            _write_parquet_atomically(runs, self.runs_dir / name)


def runs_schema(plan: SweepPlan) -> Any:
    """The runs table's columns; a parameter's type follows its values (text if they are mixed)."""
    import pyarrow as pa

    return pa.schema(
        [
            *((c, pa.int64()) for c in RUN_COLUMNS),
            *((key, _column_type([p[i] for p in plan.points])) for i, key in enumerate(plan.parameters)),
            ("status", pa.string()),
            ("error", pa.string()),
            ("wall_time_s", pa.float64()),
        ]
    )


def _column_type(values: Sequence[Any]) -> Any:
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


def _difference(key: str) -> str:
    return {
        "format": "written by another cloudwar version",
        "scenario_sha256": "the scenario or --set differs",
        "parameters": "other parameters",
        "points_sha256": "other parameter values",
        "seeds": "another --seeds",
        "seed": "another --seed",
        "metrics": "another --metrics",
    }[key]


def _write_parquet_atomically(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    _fsync_and_replace(tmp, path)


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    _fsync_and_replace(tmp, path)


def _fsync_and_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows it
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C until the block is done, then raise it (only the main thread receives signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


def read_sweep(path: str | Path) -> tuple[Any, Any]:
    """The runs table and the metrics table of a sweep folder, sorted by run (finished runs only).

    Both are the same whatever backend, worker count or order produced them, except the
    ``wall_time_s`` column.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = SweepFolder(path)
    if not folder.manifest_path.exists():
        raise CliError(f"{folder.path} is not a sweep folder (no sweep.json)")
    run_parts = sorted(folder.runs_dir.glob("part-*.parquet"))
    names = {p.name for p in run_parts}
    metric_parts = [p for p in sorted(folder.metrics_dir.glob("part-*.parquet")) if p.name in names]
    if run_parts:
        runs = pa.concat_tables([pq.read_table(p) for p in run_parts]).to_pandas()
    else:  # nothing finished yet: the same columns, no rows
        parameters = json.loads(folder.manifest_path.read_text(encoding="utf-8")).get("parameters", [])
        runs = pd.DataFrame({c: pd.Series(dtype="int64") for c in RUN_COLUMNS})
        for column in [*parameters, *STATUS_COLUMNS]:
            runs[column] = pd.Series(dtype="float64" if column == "wall_time_s" else "object")
    if metric_parts:
        metrics = pa.concat_tables([pq.read_table(p) for p in metric_parts]).to_pandas()
    else:
        metrics = _metrics_schema().empty_table().to_pandas()
    runs = runs.sort_values("run", kind="stable").reset_index(drop=True)
    metrics = metrics.sort_values("run", kind="stable").reset_index(drop=True)
    return runs, metrics


# ------------------------------------------------------------------------------------------
# Running: serial, local process pool, Dask
# ------------------------------------------------------------------------------------------
@dataclass
class SweepReport:
    """What one invocation did."""

    total: int
    already_done: int
    ran: int = 0
    errors: int = 0  # runs of this invocation that ended with status "error"
    earlier_errors: int = 0  # runs of earlier invocations that ended with status "error"
    missing: int = 0  # runs left for the next invocation (their worker died MAX_ATTEMPTS times)
    seconds: float = 0.0
    backend: str = ""
    batch_size: int = 0  # the largest batch


def run_sweep(
    plan: SweepPlan,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    connect_timeout: float = 10.0,
) -> SweepReport:
    """Run every run of ``plan`` not yet in ``out``, writing results batch by batch.

    ``scheduler`` (a Dask scheduler address) runs on that cluster; otherwise ``workers``
    processes of a local pool (default: one per CPU), or in this process if that is 1.
    """
    folder = SweepFolder(out)
    if scheduler is None and workers is None:
        workers = os.cpu_count() or 1
    client = _connect(scheduler, connect_timeout) if scheduler else None  # fail fast, before writing anything
    try:
        folder.open(plan)
        done = folder.finished_runs()
        todo = [r for r in range(plan.n_runs) if r not in done]
        report = SweepReport(
            total=plan.n_runs, already_done=plan.n_runs - len(todo), earlier_errors=len(folder.error_runs())
        )
        if not todo:
            return report
        n_workers = max(sum(client.nthreads().values()), 1) if client is not None else (workers or 1)
        batches = make_batches(plan, todo, batch_count(plan, len(todo), n_workers, batch_size))
        report.batch_size = max(len(b.runs) for b in batches)
        start = time.perf_counter()
        from tqdm import tqdm

        with tqdm(
            total=plan.n_runs,
            initial=report.already_done,
            unit="run",
            desc=f"sweep {Path(plan.scenario_name).stem}",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        ) as bar:

            def finished(result: BatchResult) -> None:
                folder.write(plan, result)
                report.ran += len(result.status)
                report.errors += sum(s["status"] != "ok" for s in result.status)
                bar.update(len(result.status))

            def abandoned(batch: Batch) -> None:
                report.missing += len(batch.runs)

            if client is not None:
                report.backend = f"dask {scheduler}"
                _run_dask(client, batches, finished, abandoned)
            elif n_workers <= 1 or len(batches) == 1:
                report.backend = "serial"
                for batch in batches:
                    finished(run_batch(batch))
            else:
                n_workers = min(n_workers, len(batches))
                report.backend = f"pool of {n_workers}"
                _run_pool(batches, n_workers, finished, abandoned)
        report.seconds = time.perf_counter() - start
        return report
    finally:
        folder.close()
        if client is not None:
            client.close()


def _worker_init(coordinator: int | None = None) -> None:
    # Ctrl-C goes to the whole process group; only the coordinating process handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if coordinator is not None:
        threading.Thread(target=_exit_with, args=(coordinator,), name="cloudwar-watchdog", daemon=True).start()


def _exit_with(coordinator: int, interval: float = 0.5) -> None:
    """End this worker once the coordinating process is gone (killed with -9, say).

    Pool workers are children of the fork server, not of the command, so nothing else would
    stop them: they would finish their batch for nobody and hold the command's output open.
    """
    while _alive(coordinator):
        time.sleep(interval)
    os._exit(1)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs: it exists and (on Linux) is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # the pid now belongs to another user's process: ours is gone
            return False
        return True


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Worker processes started inside this block use one BLAS thread each, as Dask's nanny sets it:
    with one worker per core, more threads only compete for the same cores."""
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _pool_context() -> Any:
    """forkserver where the OS has it, else spawn (never plain fork: this process has threads).

    The fork server imports cloudwar once and forks ready workers from it, so a pool starts in
    the time of one import, and a pool rebuilt after a worker died starts at once."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["cloudwar.runs.sweep", "cloudwar.model.market", "pyarrow", "pyarrow.parquet"])
        return context
    return multiprocessing.get_context("spawn")


def _run_pool(
    batches: list[Batch],
    workers: int,
    finished: Callable[[BatchResult], None],
    abandoned: Callable[[Batch], None],
) -> None:
    """A process pool. If a worker dies the pool breaks: the batches in flight are resubmitted to a
    fresh pool, each up to MAX_ATTEMPTS times in all."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = _pool_context()
    queue = deque(batches)
    attempts: Counter[int] = Counter()
    executor: ProcessPoolExecutor | None = None
    inflight: dict[Any, Batch] = {}
    clean_exit = False
    try:
        with _single_threaded_blas():
            while queue or inflight:
                if executor is None:
                    executor = ProcessPoolExecutor(
                        workers, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),)
                    )
                broken = False
                # Only as many batches in flight as workers, so a broken pool costs only those.
                while queue and len(inflight) < workers:
                    try:
                        future = executor.submit(run_batch, queue[0])
                    except BrokenProcessPool:  # broke since the last look: this batch never started
                        broken = True
                        break
                    inflight[future] = queue.popleft()
                lost = []
                if not broken:
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for future in done:
                        batch = inflight.pop(future)
                        error = future.exception()
                        if error is None:
                            finished(future.result())
                        elif isinstance(error, BrokenProcessPool):
                            broken = True
                            lost.append(batch)
                        else:
                            raise error
                if broken:  # every batch still in flight went down with the pool
                    wait(inflight, timeout=60)
                    for future, batch in inflight.items():
                        if future.done() and not future.cancelled() and future.exception() is None:
                            finished(future.result())
                        else:
                            lost.append(batch)
                    inflight.clear()
                    executor.shutdown(wait=True, cancel_futures=True)
                    executor = None
                    for batch in sorted(lost, key=lambda b: b.first, reverse=True):
                        attempts[batch.first] += 1
                        if attempts[batch.first] >= MAX_ATTEMPTS:
                            abandoned(batch)
                        else:
                            queue.appendleft(batch)
        clean_exit = True
    finally:
        if executor is not None:
            if clean_exit:
                executor.shutdown(wait=True)
            else:  # interrupted or failed: stop the workers now, their batches are lost
                processes = list((executor._processes or {}).values())
                executor.shutdown(wait=False, cancel_futures=True)
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.join(5)


def _connect(address: str, timeout: float) -> Any:
    """A client of an existing Dask cluster, or a one-line error within ``timeout`` seconds."""
    try:
        from distributed import Client
    except ImportError:
        raise CliError("--scheduler needs the distributed package: pip install 'cloudwar[dask]'") from None
    from distributed.comm import get_address_host_port

    try:
        get_address_host_port(address)  # a malformed address fails here, not inside Client
    except (ValueError, TypeError) as err:
        raise CliError(f"--scheduler {address!r} is not a scheduler address like tcp://HOST:PORT ({err})") from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        del err
        _collect_quietly()  # the half-built Client's __del__ would print a traceback at exit
        raise CliError(f"cannot reach the Dask scheduler at {address} ({detail})") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        client.close()
        raise CliError(f"the Dask scheduler at {address} has no workers (waited {timeout:g} s)") from None
    try:
        versions = set(client.run(_cloudwar_version).values())
    except Exception as err:
        client.close()
        raise CliError(f"the Dask workers at {address} cannot run cloudwar ({type(err).__name__}: {err})") from None
    from cloudwar import __version__

    if versions != {__version__}:
        client.close()
        found = ", ".join(sorted(versions))
        raise CliError(f"the Dask workers at {address} run cloudwar {found}, this is {__version__}")
    return client


def _collect_quietly() -> None:
    """Silence the finalizer of a Client that failed to connect, now and whenever it runs.

    distributed's ``Client.__del__`` tries to close the connection that never opened and, at
    exit, prints a traceback after our one-line error. Only that finalizer is silenced.
    """
    import gc

    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if "Client.__del__" not in getattr(unraisable.object, "__qualname__", ""):
            previous(unraisable)

    sys.unraisablehook = hook
    gc.collect()


def _cloudwar_version() -> str:
    from cloudwar import __version__

    return __version__


def _run_dask(
    client: Any,
    batches: list[Batch],
    finished: Callable[[BatchResult], None],
    abandoned: Callable[[Batch], None],
) -> None:
    """Every batch a task. The scheduler reruns the task of a dead worker elsewhere, and gives up
    after ``distributed.scheduler.allowed-failures`` deaths (KilledWorker)."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    token = uuid.uuid4().hex[:8]
    futures = {
        client.submit(run_batch, batch, key=f"cloudwar-batch-{token}-{batch.first}", pure=False): batch
        for batch in batches
    }
    try:
        for future in as_completed(list(futures), loop=client.loop):
            batch = futures.pop(future)
            try:
                result = future.result()
            except KilledWorker:
                abandoned(batch)
                continue
            except (FutureCancelledError, OSError) as err:
                raise CliError(
                    f"lost the Dask cluster ({type(err).__name__}: {err}); finished runs are saved, "
                    "run the same command again to continue"
                ) from None
            finished(result)
    finally:
        if futures:
            client.cancel(list(futures))


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------
def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``sweep`` and ``sensitivity``: where and how the runs execute."""
    parser.add_argument("--scenario", default="baseline", help="shipped scenario name or TOML file (default: baseline)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario value in every run, e.g. --set enterprises=5000 --set quarters=20",
    )
    parser.add_argument("--seeds", type=positive_int, default=1, help="replicates per point (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="sweep seed; run seeds derive from it (default: 0)")
    parser.add_argument(
        "--workers",
        type=positive_int,
        help="local worker processes (default: one per CPU; 1 runs in this process)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing Dask cluster, e.g. tcp://127.0.0.1:8786 (needs cloudwar[dask])",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, help="at most this many runs per task (default: chosen from the sweep size)"
    )
    parser.add_argument(
        "--metrics",
        choices=METRICS_CHOICES,
        default="summary",
        help="summary: world rows of every quarter + all rows of the final quarter; all: everything",
    )
    parser.add_argument("--timeout", type=seconds, default=10.0, help="seconds to wait for the Dask scheduler")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )
    parser.add_argument("--out", required=True, help="folder for the results (resumed if it holds this sweep)")


def seconds(text: str) -> float:
    """An argument type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0), got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds (a finite number > 0), got {text!r}")
    return value


def execute(args: argparse.Namespace, plan: SweepPlan) -> SweepReport:
    """Run ``plan`` as the command line asked (shared by ``sweep`` and ``sensitivity``)."""
    if args.scheduler is not None and not args.scheduler.strip():
        raise CliError("--scheduler: empty address (expected tcp://HOST:PORT)")
    if args.scheduler and args.workers:
        raise CliError("--workers does not apply with --scheduler (the cluster has its own workers)")
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    try:
        return run_sweep(
            plan,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            batch_size=args.batch_size,
            progress=progress,
            connect_timeout=args.timeout,
        )
    except KeyboardInterrupt:
        done = SweepFolder(args.out).finished_runs() if (Path(args.out) / "runs").is_dir() else set()
        print(
            f"cloudwar: interrupted: {len(done)} of {plan.n_runs} runs are saved in {args.out}; "
            "run the same command again to finish",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


def describe_report(report: SweepReport, out: str) -> str:
    if report.ran == 0 and report.already_done == report.total:
        return f"all {report.total} runs were already done in {out}"
    rate = report.ran / report.seconds if report.seconds > 0 else float("nan")
    text = (
        f"ran {report.ran} of {report.total} runs ({report.already_done} already done) on {report.backend}, "
        f"batches of up to {report.batch_size}, in {report.seconds:.1f} s ({rate:.2f} runs/s)"
    )
    return text


def report_problems(report: SweepReport, out: str) -> int:
    """Print what went wrong, if anything; the exit status."""
    status = 0
    errors = report.errors + report.earlier_errors
    if errors:
        earlier = f", {report.earlier_errors} of them in an earlier invocation" if report.earlier_errors else ""
        print(
            f"cloudwar: warning: {errors} runs ended with an error{earlier} (columns status and error of {out}/runs)",
            file=sys.stderr,
        )
        status = 1
    if report.missing:
        print(
            f"cloudwar: warning: {report.missing} runs did not finish (a worker died {MAX_ATTEMPTS} times running them); "
            "run the same command again to retry them",
            file=sys.stderr,
        )
        status = 1
    return status


def cmd_sweep(args: argparse.Namespace) -> int:
    grid = parse_grid(args.grid)
    plan = plan_sweep(
        args.scenario,
        tuple(grid),
        grid_points(grid),
        seeds=args.seeds,
        seed=args.seed,
        fixed=parse_sets(args.set),
        metrics=args.metrics,
        design={"grid": grid},
    )
    report = execute(args, plan)
    print(describe_report(report, args.out))
    finished = report.already_done + report.ran
    print(f"tables: {Path(args.out) / 'runs'} ({finished} of {plan.n_runs} runs), {Path(args.out) / 'metrics'}")
    return report_problems(report, args.out)


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="run a grid of scenario values times seeds (local pool or Dask), resumable, to Parquet",
        description="Run every combination of the --grid values times --seeds replicates. Results go to "
        "OUT/runs and OUT/metrics (Parquet), batch by batch; run the same command again to resume.",
    )
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="values of one scenario key, e.g. --grid choice.network_weight=0.2,0.5,0.8 (repeat for more keys)",
    )
    add_execution_arguments(sweep)
    sweep.set_defaults(func=cmd_sweep)

    from cloudwar.runs import sensitivity

    sensitivity.register_cli(subparsers)

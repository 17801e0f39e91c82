"""Many runs: a grid of scenario overrides times seeds, on a local process pool or a Dask cluster.

``plan_sweep(...)`` then ``run_sweep(plan, DIR)``; on the command line ``cloudwar sweep --grid KEY=V1,V2 --seeds 4 --out DIR``

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

The parts live in :mod:`cloudwar.runs.design` (the plan and the seed rule), :mod:`~cloudwar.runs.tasks`
(what a worker runs), :mod:`~cloudwar.runs.executors` (serial, pool, Dask), :mod:`~cloudwar.runs.store`
(the folder) and :mod:`~cloudwar.runs.runner` (:func:`run_design`); this module gives them the
names sweeps have always had. Heavy imports (pyarrow, tqdm, distributed) happen inside functions.
"""

from __future__ import annotations

from cloudwar.runs.design import (
    FORMAT,
    IDENTITY,
    METRIC_COLUMNS,
    METRICS_CHOICES,
    RUN_COLUMNS,
    STATUS_COLUMNS,
    Design,
    canonical_json,
    digest,
    grid_points,
    plan_design,
    run_seed,
)
from cloudwar.runs.executors import MAX_ATTEMPTS
from cloudwar.runs.runner import RunReport, run_design
from cloudwar.runs.store import Store, read_sweep
from cloudwar.runs.tasks import Batch, BatchResult, run_batch, run_one, select_metrics

SweepPlan = Design
SweepFolder = Store
SweepReport = RunReport
plan_sweep = plan_design
run_sweep = run_design

__all__ = [
    "FORMAT",
    "IDENTITY",
    "MAX_ATTEMPTS",
    "METRICS_CHOICES",
    "METRIC_COLUMNS",
    "RUN_COLUMNS",
    "STATUS_COLUMNS",
    "Batch",
    "BatchResult",
    "SweepFolder",
    "SweepPlan",
    "SweepReport",
    "canonical_json",
    "digest",
    "grid_points",
    "plan_sweep",
    "read_sweep",
    "run_batch",
    "run_one",
    "run_seed",
    "run_sweep",
    "select_metrics",
]

"""What a worker does: one model run, one batch of runs, the rows of the results a design keeps.

A batch is a picklable object with a ``run()`` method that returns a :class:`BatchResult`; the
executors (:mod:`cloudwar.runs.executors`) run any such batch, so model runs and Q-learning
sessions (:mod:`cloudwar.runs.sessions`) go through the same machinery.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cloudwar.scenario import apply_overrides, parse_scenario

METRIC_COLUMNS = ("run", "quarter", "calendar", "provider", "region", "product", "metric", "value")
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 128 << 20


@dataclass
class BatchResult:
    status: list[dict[str, Any]]  # run, status, error, wall_time_s
    table: Any  # pyarrow Table of the batch's results (the design's results schema)

    @property
    def metrics(self) -> Any:  # the name a model design's results have
        return self.table


def metrics_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("run", pa.int64()),
            ("quarter", pa.int64()),
            ("calendar", pa.string()),  # the quarter as a calendar label (2026Q1)
            ("provider", pa.string()),
            ("region", pa.string()),
            ("product", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
        ]
    )


def select_metrics(results: Any, metrics: str | Sequence[Sequence[str]] = "summary") -> Any:
    """The rows of a run's tidy results that a design keeps.

    ``summary``: every world-level row of every quarter (``region == "all"``) plus every row of
    the final quarter; ``all``: everything; (metric, region, product) triples: those rows, for
    every provider and ``all``.
    """
    if isinstance(metrics, str):
        if metrics == "all" or results.empty:
            return results
        last = results["quarter"].max()
        keep = (results["quarter"] == last) | (results["region"] == "all")
        return results[keep.to_numpy(dtype=bool, na_value=False)]
    import pandas as pd

    wanted = pd.MultiIndex.from_tuples([tuple(m) for m in metrics], names=["metric", "region", "product"])
    index = pd.MultiIndex.from_frame(results[["metric", "region", "product"]].astype(object))
    return results[index.isin(wanted)]


def run_one(
    scenario: dict[str, Any], params: dict[str, Any], seed: int, metrics: str | Sequence[Sequence[str]] = "summary"
) -> Any:
    """One model run: the raw scenario table with ``params`` applied, seeded with ``seed``; its kept metrics.

    The same as ``cloudwar run --seed SEED --set key=value ...`` with the design's fixed values
    and the point's overrides.
    """
    from cloudwar.model.market import CloudMarket

    model = CloudMarket(parse_scenario(apply_overrides(scenario, params)), rng=seed)
    return select_metrics(model.run(), metrics)


@dataclass(frozen=True)
class ModelBatch:
    """A task: runs ``(run, params, seed)`` of one scenario, executed one after the other."""

    scenario: dict[str, Any]
    metrics: Any
    runs: tuple[tuple[int, dict[str, Any], int], ...]

    @property
    def first(self) -> int:
        return self.runs[0][0]

    def __len__(self) -> int:
        return len(self.runs)

    def run(self) -> BatchResult:
        """Run the batch; a run that raises is recorded with status ``error`` and the batch goes on.

        The metrics come back as one Arrow table, built here in the worker: it crosses process and
        network boundaries as flat buffers, and leaves the coordinating process only the writing."""
        import pyarrow as pa

        tune_allocator()
        status, tables = [], []
        schema = metrics_schema()
        for run, params, seed in self.runs:
            start = time.perf_counter()
            try:
                frame = run_one(self.scenario, params, seed, self.metrics)
            except Exception as err:  # recorded, not raised: one bad point must not sink the design
                status.append({"run": run, "status": "error", "error": error_text(err)})
            else:
                frame = frame.assign(run=run)[list(METRIC_COLUMNS)]
                table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
                tables.append(table.replace_schema_metadata(None))  # plain Parquet, no pandas-specific types
                status.append({"run": run, "status": "ok", "error": None})
            status[-1]["wall_time_s"] = time.perf_counter() - start
        metrics = pa.concat_tables(tables).combine_chunks() if tables else schema.empty_table()
        return BatchResult(status, metrics)


Batch = ModelBatch  # the name sweeps used


def run_batch(batch: Any) -> BatchResult:
    """Run any batch (what every executor calls in its workers)."""
    return batch.run()


def error_text(err: BaseException) -> str:
    """An exception as the one line the runs table stores."""
    return f"{type(err).__name__}: {err}".splitlines()[0]


_ALLOCATOR_TUNED = False


def tune_allocator() -> None:
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


_tune_allocator = tune_allocator  # the benchmark's name

"""Q-learning sessions (Calvano et al. 2020) as runs of the runs layer: same executors, same seed rule.

Session ``k`` of a design seeded ``seed`` learns from ``numpy.random.default_rng(run_seed(seed, k))``
(:func:`cloudwar.runs.design.run_seed`, the rule every engine of many runs uses), so a session's
result depends only on the master seed and its number: not on how sessions are batched, which
executor ran them, or whether the design was interrupted and resumed.

* :func:`run_sessions`: in memory, on any executor (serial, pool, Dask); ``record_q`` keeps the Q-tables;
* :class:`SessionDesign` + :func:`cloudwar.runs.runner.run_design`: into a resumable store folder
  (``experiments/collusion.py``), read back with :func:`read_sessions`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloudwar.errors import SweepError
from cloudwar.runs.design import FORMAT, check_size, digest, run_seed, split_evenly
from cloudwar.runs.executors import Executor, make_executor
from cloudwar.runs.store import Store
from cloudwar.runs.tasks import BatchResult, error_text
from cloudwar.strategies.learning import QLearningConfig, SessionResults, simulate_sessions

#: Sessions per batch at most: they advance side by side (vectorised), so bigger batches cost less
#: per session, but a killed batch loses all of its sessions.
SESSIONS_PER_BATCH = 25
IDENTITY = ("format", "kind", "config_sha256", "sessions", "seed")


def session_seeds(seed: int, sessions: Sequence[int] | int) -> np.ndarray:
    """The seeds of sessions ``sessions`` (numbers, or a count from 0) of a design seeded ``seed``."""
    numbers = range(sessions) if isinstance(sessions, int) else sessions
    return np.array([run_seed(seed, k) for k in numbers], dtype=np.int64)


@dataclass(frozen=True)
class SessionBatch:
    """A task: sessions ``runs`` of one config, learning side by side."""

    config: QLearningConfig
    runs: tuple[int, ...]
    seeds: tuple[int, ...]
    record_q: bool = False

    @property
    def first(self) -> int:
        return self.runs[0]

    def __len__(self) -> int:
        return len(self.runs)

    def run(self) -> BatchResult:
        start = time.perf_counter()
        try:
            results = simulate_sessions(self.config, np.array(self.seeds, dtype=np.int64), record_q=self.record_q)
        except Exception as err:  # recorded for every session of the batch, as a model run's error is
            seconds = (time.perf_counter() - start) / len(self.runs)
            status = [
                {"run": r, "status": "error", "error": error_text(err), "wall_time_s": seconds} for r in self.runs
            ]
            return BatchResult(status, results_schema(self.config.n_firms).empty_table())
        seconds = (time.perf_counter() - start) / len(self.runs)  # they ran together: an equal share each
        status = [{"run": r, "status": "ok", "error": None, "wall_time_s": seconds} for r in self.runs]
        result = BatchResult(status, results_table(self.runs, results))
        result.q = results.q  # type: ignore[attr-defined]  # in memory only (run_sessions with record_q)
        return result


def results_schema(n_firms: int) -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("run", pa.int64()),
            ("seed", pa.int64()),
            ("converged", pa.bool_()),
            ("periods", pa.int64()),
            ("cycle_length", pa.int64()),
            *((f"price_{i + 1}", pa.float64()) for i in range(n_firms)),
            *((f"profit_{i + 1}", pa.float64()) for i in range(n_firms)),
            ("delta", pa.float64()),
        ]
    )


def results_table(runs: Sequence[int], results: SessionResults) -> Any:
    """Sessions' results as an Arrow table (one row per session)."""
    import pyarrow as pa

    n_firms = results.prices.shape[1]
    columns = [np.asarray(runs, dtype=np.int64), results.seed, results.converged, results.periods]
    columns += [results.cycle_length, *results.prices.T, *results.profits.T, results.delta]
    return pa.table(columns, schema=results_schema(n_firms))


def sessions_from_table(frame: Any, n_firms: int) -> SessionResults:
    """:class:`SessionResults` from a results table (pandas, sorted by run)."""
    return SessionResults(
        seed=frame["seed"].to_numpy(dtype=np.int64),
        converged=frame["converged"].to_numpy(dtype=bool),
        periods=frame["periods"].to_numpy(dtype=np.int64),
        cycle_length=frame["cycle_length"].to_numpy(dtype=np.int64),
        prices=frame[[f"price_{i + 1}" for i in range(n_firms)]].to_numpy(dtype=float),
        profits=frame[[f"profit_{i + 1}" for i in range(n_firms)]].to_numpy(dtype=float),
        delta=frame["delta"].to_numpy(dtype=float),
    )


@dataclass(frozen=True)
class SessionDesign:
    """``sessions`` independent Q-learning sessions of ``config``, seeded by the one seed rule from ``seed``."""

    config: QLearningConfig
    sessions: int
    seed: int = 0
    record_q: bool = False
    identity: tuple[str, ...] = IDENTITY

    def __post_init__(self) -> None:
        if isinstance(self.sessions, bool) or not isinstance(self.sessions, int) or self.sessions < 1:
            raise SweepError(f"sessions must be at least 1, got {self.sessions}", param="sessions")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SweepError(f"seed must be a whole number >= 0, got {self.seed}", param="seed")
        check_size(self.sessions, 1, param="sessions", what="sessions")

    @property
    def n_runs(self) -> int:
        return self.sessions

    def manifest(self) -> dict[str, Any]:
        from cloudwar import __version__

        config = _plain(asdict(self.config))
        return {
            "format": FORMAT,
            "kind": "q_learning_sessions",
            "config": config,
            "config_sha256": digest(config),
            "sessions": self.sessions,
            "seed": self.seed,
            "runs": self.sessions,
            "cloudwar_version": __version__,
        }

    def describe_difference(self, key: str) -> str:
        return {"config_sha256": "other learning settings", "kind": "not Q-learning sessions"}.get(
            key, f"another {key}"
        )

    def batch_count(self, n_runs: int, workers: int, max_size: int | None = None) -> int:
        size = max_size or SESSIONS_PER_BATCH
        return min(n_runs, max(workers, math.ceil(n_runs / size)))

    def batches(self, runs: Sequence[int], count: int) -> list[SessionBatch]:
        return [
            SessionBatch(
                self.config, tuple(chunk), tuple(int(s) for s in session_seeds(self.seed, chunk)), self.record_q
            )
            for chunk in split_evenly(list(runs), count)
        ]

    def runs_schema(self) -> Any:
        import pyarrow as pa

        return pa.schema(
            [("run", pa.int64()), ("seed", pa.int64()), ("status", pa.string()), ("error", pa.string())]
            + [("wall_time_s", pa.float64())]
        )

    def run_rows(self, status: Sequence[dict[str, Any]]) -> Any:
        import pyarrow as pa

        runs = [s["run"] for s in status]
        columns = [runs, session_seeds(self.seed, runs).tolist(), [s["status"] for s in status]]
        columns += [[s["error"] for s in status], [float(s["wall_time_s"]) for s in status]]
        return pa.table(columns, schema=self.runs_schema())

    def empty_results(self) -> Any:
        return results_schema(self.config.n_firms).empty_table()


def _plain(value: Any) -> Any:
    """Arrays as lists, so the manifest is plain JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


def _check_ok(status: Sequence[dict[str, Any]] | Any) -> None:
    failed = [s for s in status if s["status"] != "ok"]
    if failed:
        raise SweepError(f"{len(failed)} sessions failed, e.g. session {failed[0]['run']}: {failed[0]['error']}")


def run_sessions(
    config: QLearningConfig,
    n_sessions: int,
    seed: int = 0,
    *,
    workers: int = 1,
    executor: Executor | None = None,
    record_q: bool = False,
) -> SessionResults:
    """Run ``n_sessions`` independent sessions in memory, on ``executor`` (default: ``workers`` local processes).

    Session ``k`` is seeded ``run_seed(seed, k)``, so one master seed gives identical results
    whatever runs them. With worker processes, call this from code guarded by
    ``if __name__ == "__main__":``.
    """
    design = SessionDesign(config, n_sessions, seed, record_q)
    own = executor is None
    executor = executor or make_executor(max(1, int(workers)))
    parts: list[BatchResult] = []
    try:
        batches = design.batches(range(n_sessions), design.batch_count(n_sessions, executor.slots))
        executor.run(batches, parts.append, lambda batch: parts.append(_lost(batch)))
    finally:
        if own:
            executor.close()
    parts.sort(key=lambda part: part.status[0]["run"])
    _check_ok([s for part in parts for s in part.status])
    import pyarrow as pa

    frame = pa.concat_tables([part.table for part in parts]).to_pandas()
    results = sessions_from_table(frame, config.n_firms)
    if record_q:
        results.q = np.concatenate([part.q for part in parts])  # type: ignore[attr-defined]
    return results


def _lost(batch: SessionBatch) -> BatchResult:
    status = [{"run": r, "status": "error", "error": "its worker died", "wall_time_s": 0.0} for r in batch.runs]
    return BatchResult(status, None)


def read_sessions(path: str | Path, design: SessionDesign) -> SessionResults:
    """The sessions a store folder holds (all of ``design``'s, or a one-line SweepError)."""
    store = Store(path)
    runs, results = store.read(design.runs_schema().empty_table(), design.empty_results())
    _check_ok(runs.to_dict("records"))
    if len(runs) != design.sessions:
        raise SweepError(f"{path} holds {len(runs)} of {design.sessions} sessions; run the same command again")
    return sessions_from_table(results, design.config.n_firms)

"""The resumable Parquet folder of a design.

Layout (``DIR``)
    ``sweep.json``  what the design is (scenario digest, points, seeds, metrics); checked on resume
    ``runs/``       Parquet table, one row per finished run: run, point, replicate, seed, one column
                    per parameter, status (``ok`` or ``error``), error, wall_time_s
    ``metrics/``    Parquet table of the runs' results (for model runs, tidy: run, quarter, provider,
                    region, product, metric, value)
    ``.lock``       held (:mod:`filelock`) while a process writes into the folder

Each finished batch adds one file to each folder (``part-*.parquet``), written to a hidden
temporary name and renamed into place, metrics first, runs last: a run is finished exactly when
its row is in ``runs/``. Opening a folder checks ``sweep.json`` before creating anything, removes
temporary files and metrics parts whose runs part never came, and a part that cannot be read (a
truncated file) is removed with its partner so that its runs are run again (reported in one line
each). :func:`read_sweep` reads both tables with :mod:`pyarrow.dataset` and never returns part of
a table: an unreadable or missing part is a one-line :class:`~cloudwar.errors.SweepError` naming
the file.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cloudwar.errors import SweepError, Terminated
from cloudwar.runs.design import RUN_COLUMNS, STATUS_COLUMNS
from cloudwar.runs.output import replace_file

LOCK_WAIT_SECONDS = 3.0  # a sweep just interrupted may still be exiting
MANIFEST = "sweep.json"


class Store:
    """The output folder of one design (see the module docstring for its layout)."""

    def __init__(self, path: str | Path, param: str = "out"):
        self.path = Path(path)
        self.param = param  # the argument that named the folder, for messages
        self.runs_dir = self.path / "runs"
        self.metrics_dir = self.path / "metrics"
        self.manifest_path = self.path / MANIFEST
        self._lock: Any = None
        self._statuses: dict[int, str] = {}

    # --- opening ---------------------------------------------------------------------------
    def open(self, design: Any, replace: bool = False) -> list[str]:
        """Create or reopen the folder for ``design``: check, lock, tidy; one line per part that was unreadable.

        The manifest is checked before anything is created. A folder holding another design is
        refused, or with ``replace`` emptied of its runs and started anew.
        """
        if self.path.exists() and not self.path.is_dir():
            raise SweepError(f"{self.param} {self.path} exists and is not a folder", param=self.param)
        manifest = design.manifest()
        stale = self._difference(design, manifest)
        if stale and not replace:
            raise SweepError(
                f"{self.param} {self.path} holds a different sweep ({stale}); "
                "use another folder, or delete it to start over",
                param=self.param,
            )
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            self.metrics_dir.mkdir(exist_ok=True)
        except OSError as err:
            raise SweepError(f"{self.param} {self.path}: cannot create it: {err.strerror}", param=self.param) from None
        self._acquire_lock()
        try:
            if stale or self._difference(design, manifest):  # checked again under the lock: another may have written
                if not replace:
                    raise SweepError(f"{self.param} {self.path} holds a different sweep", param=self.param)
                self._reset()
            if not self.manifest_path.exists():
                text = json.dumps(manifest, indent=2, default=str) + "\n"
                replace_file(self.manifest_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
            self._remove_leftovers()
            return self._check_parts()
        except BaseException:
            self.close()
            raise

    def _difference(self, design: Any, manifest: dict[str, Any]) -> str:
        """What differs between the folder's manifest and ``manifest`` ("" if none, or no manifest yet)."""
        if not self.manifest_path.exists():
            return ""
        try:
            old = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError, OSError) as err:
            raise SweepError(
                f"{self.param} {self.path}: {MANIFEST} cannot be read ({type(err).__name__}: {err}); "
                "use another folder, or delete it to start over",
                param=self.param,
            ) from None
        for key in design.identity:
            if old.get(key) != manifest.get(key):
                return design.describe_difference(key)
        for key in ("overrides_sha256",):  # present only in some designs
            if old.get(key) != manifest.get(key):
                return design.describe_difference(key)
        return ""

    def _reset(self) -> None:
        for folder in (self.runs_dir, self.metrics_dir):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        self.manifest_path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _acquire_lock(self) -> None:
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / ".lock"), timeout=LOCK_WAIT_SECONDS)
        try:
            lock.acquire()
        except Timeout:
            raise SweepError(f"{self.param} {self.path} is in use by another running sweep", param=self.param) from None
        self._lock = lock

    def _remove_leftovers(self) -> None:
        """Temporary files of an interrupted write, and metrics parts whose runs part never came."""
        for folder in (self.runs_dir, self.metrics_dir):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        runs = {p.name for p in self.runs_dir.glob("part-*.parquet")}
        for part in self.metrics_dir.glob("part-*.parquet"):
            if part.name not in runs:
                part.unlink(missing_ok=True)

    def _check_parts(self) -> list[str]:
        """Read every runs part and the footer of every metrics part; remove the pairs that fail."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        notes, statuses = [], {}
        for part in sorted(self.runs_dir.glob("part-*.parquet")):
            partner = self.metrics_dir / part.name
            try:
                table = pq.read_table(part, columns=["run", "status"])
                if not partner.exists():
                    raise FileNotFoundError(f"{partner} is missing")
                pq.read_metadata(partner)
            except (pa.ArrowException, OSError) as err:
                bad = partner if partner.exists() and _readable(part) else part
                part.unlink(missing_ok=True)
                partner.unlink(missing_ok=True)
                notes.append(
                    f"{bad} could not be read ({type(err).__name__}: {' '.join(str(err).split())[:120]}); "
                    "removed, its runs will be run again"
                )
                continue
            statuses.update(zip(table.column("run").to_pylist(), table.column("status").to_pylist(), strict=True))
        self._statuses = statuses
        return notes

    # --- reading ---------------------------------------------------------------------------
    def finished_runs(self) -> set[int]:
        return set(self._statuses)

    def error_runs(self) -> set[int]:
        """Finished runs whose status is ``error``."""
        return {run for run, status in self._statuses.items() if status != "ok"}

    def saved_runs(self) -> int:
        """How many runs the folder holds now (reads the runs parts; for messages after an interruption)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        count = 0
        for part in self.runs_dir.glob("part-*.parquet"):
            with contextlib.suppress(pa.ArrowException, OSError):
                count += pq.read_metadata(part).num_rows
        return count

    # --- writing ---------------------------------------------------------------------------
    def write(self, design: Any, result: Any) -> None:
        """Add one batch: results part first, then the runs part that marks its runs finished."""
        import pyarrow.parquet as pq

        status = sorted(result.status, key=lambda s: s["run"])
        name = f"part-{status[0]['run']:09d}-{uuid.uuid4().hex[:8]}.parquet"
        runs = design.run_rows(status)
        with deferred_interrupt():  # Ctrl-C now would leave results without their runs part
            replace_file(self.metrics_dir / name, lambda tmp: pq.write_table(result.table, tmp))
            replace_file(self.runs_dir / name, lambda tmp: pq.write_table(runs, tmp))
        self._statuses.update((s["run"], s["status"]) for s in status)

    # --- the tables ------------------------------------------------------------------------
    def read(self, empty_runs: Any = None, empty_results: Any = None) -> tuple[Any, Any]:
        """The runs table and the results table, sorted by run (finished runs only), as pandas frames.

        ``empty_runs``/``empty_results``: pyarrow tables (no rows) to return when nothing finished.
        """
        if not self.manifest_path.exists():
            raise SweepError(f"{self.path} is not a sweep folder (no {MANIFEST})")
        run_parts = sorted(self.runs_dir.glob("part-*.parquet"))
        metric_parts = []
        for part in run_parts:
            partner = self.metrics_dir / part.name
            if not partner.exists():
                raise SweepError(f"{partner} is missing: run the same command again to redo its runs")
            metric_parts.append(partner)
        runs = _read_parts(run_parts) if run_parts else empty_runs
        metrics = _read_parts(metric_parts) if metric_parts else empty_results
        runs = runs.to_pandas().sort_values("run", kind="stable").reset_index(drop=True)
        metrics = metrics.to_pandas().sort_values("run", kind="stable").reset_index(drop=True)
        return runs, metrics


def _readable(part: Path) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(part)
    except (pa.ArrowException, OSError):
        return False
    return True


def _read_parts(parts: Sequence[Path]) -> Any:
    """One table of Parquet parts, read as a dataset; an unreadable part is a one-line error naming it."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    try:
        return ds.dataset([str(p) for p in parts], format="parquet").to_table()
    except (pa.ArrowException, OSError) as err:
        for part in parts:  # which one: the dataset's message does not always say
            try:
                pq.read_table(part)
            except (pa.ArrowException, OSError) as bad:
                raise SweepError(
                    f"{part} cannot be read ({type(bad).__name__}: {' '.join(str(bad).split())[:120]}); "
                    "run the same command again to redo its runs"
                ) from None
        raise SweepError(f"{parts[0].parent} cannot be read ({type(err).__name__}: {err})") from None


def read_sweep(path: str | Path) -> tuple[Any, Any]:
    """The runs table and the metrics table of a sweep folder, sorted by run (finished runs only).

    Both are the same whatever backend, worker count or order produced them, except the
    ``wall_time_s`` column. A part that cannot be read is a one-line :class:`SweepError`.
    """
    import pyarrow as pa

    from cloudwar.runs.tasks import metrics_schema

    store = Store(path)
    if not store.manifest_path.exists():
        raise SweepError(f"{store.path} is not a sweep folder (no {MANIFEST})")
    try:
        manifest = json.loads(store.manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise SweepError(f"{store.manifest_path} cannot be read ({type(err).__name__}: {err})") from None
    parameters = manifest.get("parameters", [])
    fields = [(c, pa.int64()) for c in RUN_COLUMNS]
    fields += [(c, pa.float64() if c == "wall_time_s" else pa.string()) for c in [*parameters, *STATUS_COLUMNS]]
    return store.read(pa.schema(fields).empty_table(), metrics_schema().empty_table())


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block is done, then raise them (only the main thread gets signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            raise Terminated if signal.SIGTERM in received else KeyboardInterrupt


_SIGNALS = (signal.SIGINT, signal.SIGTERM)

"""The one runner: every run of a design not yet in its store, on an executor, batch by batch.

``run_design(design, out, executor=..., workers=..., scheduler=..., progress=...) -> RunReport``

Used by ``cloudwar sweep`` and ``cloudwar sensitivity``, the experiment scripts and the
Q-learning sessions alike. Run the same design into the same folder again and only the runs
that are missing are run (:mod:`cloudwar.runs.store`). SIGTERM is handled like Ctrl-C: the batch
being written is finished, the workers are stopped, and :class:`~cloudwar.errors.Terminated` (a
``KeyboardInterrupt``) is raised for the caller to report.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudwar.errors import Terminated
from cloudwar.runs.executors import MAX_ATTEMPTS, Executor, make_executor
from cloudwar.runs.store import Store


@dataclass
class RunReport:
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
    repaired: list[str] = field(default_factory=list)  # one line per unreadable part removed (its runs redone)

    def describe(self, out: str | Path) -> str:
        """One line for the user: what ran, where, how fast."""
        if self.ran == 0 and self.already_done == self.total:
            return f"all {self.total} runs were already done in {out}"
        rate = self.ran / self.seconds if self.seconds > 0 else float("nan")
        return (
            f"ran {self.ran} of {self.total} runs ({self.already_done} already done) on {self.backend}, "
            f"batches of up to {self.batch_size}, in {self.seconds:.1f} s ({rate:.2f} runs/s)"
        )

    def problems(self, out: str | Path) -> list[str]:
        """Warnings for the user (empty if all went well): failed runs, runs left undone."""
        lines = []
        errors = self.errors + self.earlier_errors
        if errors:
            earlier = f", {self.earlier_errors} of them in an earlier invocation" if self.earlier_errors else ""
            lines.append(f"{errors} runs ended with an error{earlier} (columns status and error of {out}/runs)")
        if self.missing:
            lines.append(
                f"{self.missing} runs did not finish (a worker died {MAX_ATTEMPTS} times running them); "
                "run the same command again to retry them"
            )
        return lines


def run_design(
    design: Any,
    out: str | Path,
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    connect_timeout: float = 10.0,
    replace: bool = False,
    description: str = "",
) -> RunReport:
    """Run every run of ``design`` not yet in the store folder ``out``, writing results batch by batch.

    ``executor`` runs the batches; without one, :func:`~cloudwar.runs.executors.make_executor`
    builds it from ``workers``/``scheduler`` (and closes it after). ``replace``: a folder holding
    another design is emptied instead of refused. ``description``: the progress bar's label.
    """
    store = Store(out)
    own = executor is None
    if executor is None:
        executor = make_executor(workers, scheduler, connect_timeout)  # fail fast, before writing anything
    try:
        with _sigterm_as_interrupt():
            repaired = store.open(design, replace=replace)
            try:
                return _run(design, store, executor, batch_size, progress, description, repaired)
            finally:
                store.close()
    finally:
        if own:
            executor.close()


def _run(
    design: Any,
    store: Store,
    executor: Executor,
    batch_size: int | None,
    progress: bool,
    description: str,
    repaired: list[str],
) -> RunReport:
    done = store.finished_runs()
    todo = [r for r in range(design.n_runs) if r not in done]
    report = RunReport(
        total=design.n_runs,
        already_done=design.n_runs - len(todo),
        earlier_errors=len(store.error_runs()),
        repaired=repaired,
    )
    if not todo:
        return report
    batches = design.batches(todo, design.batch_count(len(todo), executor.slots, batch_size))
    report.batch_size = max(len(b) for b in batches)
    start = time.perf_counter()
    from tqdm import tqdm

    with tqdm(
        total=design.n_runs,
        initial=report.already_done,
        unit="run",
        desc=description or "runs",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:

        def finished(result: Any) -> None:
            store.write(design, result)
            report.ran += len(result.status)
            report.errors += sum(s["status"] != "ok" for s in result.status)
            bar.update(len(result.status))

        def abandoned(batch: Any) -> None:
            report.missing += len(batch)

        report.backend = executor.run(batches, finished, abandoned)
    report.seconds = time.perf_counter() - start
    return report


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread while the block runs (as Ctrl-C would)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

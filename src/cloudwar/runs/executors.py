"""Where batches run: in this process, on a local process pool, or on a Dask cluster; one interface.

An :class:`Executor` takes a list of batches (picklable objects with a ``run()`` method, see
:mod:`cloudwar.runs.tasks`) and calls ``finished(result)`` in this process for each finished
batch, in any order, and ``abandoned(batch)`` for a batch whose worker died too often
(:data:`MAX_ATTEMPTS`; Dask's ``allowed-failures`` there). What a batch computes never depends
on the executor, so the same design gives bit-identical tables on each.

Build one with :func:`make_executor` (``workers=1``: serial; ``workers=N``: a pool; ``scheduler=``
a Dask address) and use it as a context manager (a Dask executor holds a client).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cloudwar.errors import SweepError
from cloudwar.runs.output import pid_alive

MAX_ATTEMPTS = 3  # a batch whose worker died this many times is left for the next invocation
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
Finished = Callable[[Any], None]


class Executor:
    """Runs batches; see the module docstring. ``slots``: how many batches run at once."""

    backend = "serial"

    @property
    def slots(self) -> int:
        return 1

    def run(self, batches: Sequence[Any], finished: Finished, abandoned: Finished) -> str:
        """Run every batch; the name of the backend that ran them (for reports)."""
        from cloudwar.runs.tasks import run_batch

        for batch in batches:
            finished(run_batch(batch))
        return self.backend

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialExecutor(Executor):
    """Every batch in this process, one after the other."""


class PoolExecutor(Executor):
    """A local process pool of ``workers`` processes (fork server where the OS has one, else spawn).

    If a worker dies the pool breaks: the batches in flight are resubmitted to a fresh pool, each
    up to :data:`MAX_ATTEMPTS` times in all. Workers end by themselves if this process is killed.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise SweepError(f"workers must be at least 1, got {workers}", param="workers")
        self.workers = workers

    @property
    def slots(self) -> int:
        return self.workers

    def run(self, batches: Sequence[Any], finished: Finished, abandoned: Finished) -> str:
        if self.workers <= 1 or len(batches) <= 1:
            return super().run(batches, finished, abandoned)
        workers = min(self.workers, len(batches))
        _run_pool(list(batches), workers, finished, abandoned)
        return f"pool of {workers}"


class DaskExecutor(Executor):
    """Every batch a task on an existing Dask cluster (connected, and checked, when built)."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = address
        self.client = _connect(address, timeout)  # fail fast, before anything is written

    @property
    def slots(self) -> int:
        return max(sum(self.client.nthreads().values()), 1)

    def run(self, batches: Sequence[Any], finished: Finished, abandoned: Finished) -> str:
        _run_dask(self.client, list(batches), finished, abandoned)
        return f"dask {self.address}"

    def close(self) -> None:
        self.client.close()


def make_executor(workers: int | None = None, scheduler: str | None = None, timeout: float = 10.0) -> Executor:
    """``scheduler`` (a Dask address): that cluster; else ``workers`` local processes (default: one
    per CPU), or this process alone if that is 1."""
    if scheduler is not None and not scheduler.strip():
        raise SweepError("scheduler: empty address (expected tcp://HOST:PORT)", param="scheduler")
    if scheduler and workers:
        raise SweepError("workers does not apply with a scheduler (the cluster has its own workers)", param="workers")
    if scheduler:
        return DaskExecutor(scheduler, timeout)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    return SerialExecutor() if workers <= 1 else PoolExecutor(workers)


# ------------------------------------------------------------------------------------------
# The local pool
# ------------------------------------------------------------------------------------------
def _worker_init(coordinator: int | None = None) -> None:
    # Ctrl-C goes to the whole process group, SIGTERM to whoever is told: only the coordinating
    # process handles them (it stops the workers itself).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if coordinator is not None:
        threading.Thread(target=_exit_with, args=(coordinator,), name="cloudwar-watchdog", daemon=True).start()


def _exit_with(coordinator: int, interval: float = 0.5) -> None:
    """End this worker once the coordinating process is gone (killed with -9, say).

    Pool workers are children of the fork server, not of the command, so nothing else would
    stop them: they would finish their batch for nobody and hold the command's output open.
    """
    while pid_alive(coordinator):
        time.sleep(interval)
    os._exit(1)


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
        context.set_forkserver_preload(
            ["cloudwar.runs.tasks", "cloudwar.runs.sessions", "cloudwar.model.market", "pyarrow", "pyarrow.parquet"]
        )
        return context
    return multiprocessing.get_context("spawn")


def _run_pool(batches: list[Any], workers: int, finished: Finished, abandoned: Finished) -> None:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from cloudwar.runs.tasks import run_batch

    context = _pool_context()
    queue = deque(batches)
    attempts: Counter[int] = Counter()
    executor: ProcessPoolExecutor | None = None
    inflight: dict[Any, Any] = {}
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


# ------------------------------------------------------------------------------------------
# Dask
# ------------------------------------------------------------------------------------------
def _connect(address: str, timeout: float) -> Any:
    """A client of an existing Dask cluster, or a one-line error within ``timeout`` seconds."""
    try:
        from distributed import Client
    except ImportError:
        raise SweepError(
            "scheduler needs the distributed package: pip install 'cloudwar[dask]'", param="scheduler"
        ) from None
    from distributed.comm import get_address_host_port

    try:
        get_address_host_port(address)  # a malformed address fails here, not inside Client
    except (ValueError, TypeError) as err:
        raise SweepError(
            f"scheduler {address!r} is not a scheduler address like tcp://HOST:PORT ({err})", param="scheduler"
        ) from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        del err
        _collect_quietly()  # the half-built Client's __del__ would print a traceback at exit
        raise SweepError(f"cannot reach the Dask scheduler at {address} ({detail})") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        client.close()
        raise SweepError(f"the Dask scheduler at {address} has no workers (waited {timeout:g} s)") from None
    try:
        versions = set(client.run(_cloudwar_version).values())
    except Exception as err:
        client.close()
        raise SweepError(f"the Dask workers at {address} cannot run cloudwar ({type(err).__name__}: {err})") from None
    from cloudwar import __version__

    if versions != {__version__}:
        client.close()
        found = ", ".join(sorted(versions))
        raise SweepError(f"the Dask workers at {address} run cloudwar {found}, this is {__version__}")
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


def _run_dask(client: Any, batches: list[Any], finished: Finished, abandoned: Finished) -> None:
    """Every batch a task. The scheduler reruns the task of a dead worker elsewhere, and gives up
    after ``distributed.scheduler.allowed-failures`` deaths (KilledWorker)."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    from cloudwar.runs.tasks import run_batch

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
                raise SweepError(
                    f"lost the Dask cluster ({type(err).__name__}: {err}); finished runs are saved, "
                    "run the same command again to continue"
                ) from None
            finished(result)
    finally:
        if futures:
            client.cancel(list(futures))

"""A Dask scheduler and workers on 127.0.0.1 only, as subprocesses: shared by the tests and the benchmarks.

Every server they open (the scheduler's comm and HTTP ports, each worker's and nanny's comm and
HTTP ports) binds the loopback interface: ``--host 127.0.0.1`` for the comm ports and
``--dashboard-address 127.0.0.1:0`` for the HTTP ones (``--no-dashboard`` alone still opens the
scheduler's HTTP port on every interface). tests/test_hardening.py lists the listening sockets of
these processes to check it.

    with loopback_dask_cluster(folder, worker_commands=2) as cluster:
        run_sweep(plan, out, scheduler=cluster.address)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
#: HTTP (dashboard, health, metrics) on the loopback interface, on a free port.
HTTP_ON_LOOPBACK = ("--dashboard-address", f"{LOOPBACK}:0")


def dask_executable() -> str:
    """The ``dask`` command of this interpreter's environment."""
    return str(Path(sys.executable).with_name("dask"))


def scheduler_command(scheduler_file: Path) -> list[str]:
    """``dask scheduler`` on a free loopback port, writing its address to ``scheduler_file``."""
    return [dask_executable(), "scheduler", "--host", LOOPBACK, "--port", "0", *HTTP_ON_LOOPBACK] + [
        "--scheduler-file",
        str(scheduler_file),
    ]


def worker_command(address: str, nworkers: int, local_directory: Path, name: str | None = None) -> list[str]:
    """``dask worker`` (a nanny with ``nworkers`` single-threaded workers) listening on loopback only."""
    command = [dask_executable(), "worker", address, "--nworkers", str(nworkers), "--nthreads", "1"]
    command += ["--host", LOOPBACK, *HTTP_ON_LOOPBACK, "--local-directory", str(local_directory)]
    return command + (["--name", name] if name else [])


@dataclass
class LoopbackCluster:
    """A running cluster: the scheduler's address and the processes started for it."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the ``dask worker`` commands (nannies; the workers are their children)."""
        return [p.pid for p in self.workers]

    @property
    def pids(self) -> list[int]:
        return [self.scheduler.pid, *self.worker_pids]


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a process started here in a session of its own, with the processes it started."""
    if process.poll() is not None:
        return
    own_group = os.getpgid(process.pid) == process.pid
    kill = os.killpg if own_group else os.kill
    kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(process.pid, signal.SIGKILL)
        process.wait(timeout)


@contextlib.contextmanager
def loopback_dask_cluster(
    folder: Path, worker_commands: int = 2, nworkers: int = 1, timeout: float = 60
) -> Iterator[LoopbackCluster]:
    """Start a scheduler and ``worker_commands`` x ``nworkers`` worker processes on 127.0.0.1; stop them after.

    ``folder`` holds the scheduler file and the workers' local directories. Waits (at most
    ``timeout`` seconds) until every worker has joined. Output goes to the null device.
    """
    from distributed import Client

    folder = Path(folder)
    scheduler_file = folder / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True, "cwd": folder}
    scheduler = subprocess.Popen(scheduler_command(scheduler_file), **quiet)
    cluster = None
    try:
        deadline = time.monotonic() + timeout
        while not scheduler_file.exists():
            if time.monotonic() > deadline or scheduler.poll() is not None:
                raise RuntimeError("the Dask scheduler did not start")
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        cluster = LoopbackCluster(address, scheduler)
        for i in range(worker_commands):
            name = f"w{i}" if nworkers == 1 else None  # --name is per worker; a nanny of several names them itself
            command = worker_command(address, nworkers, folder / f"worker{i}", name)
            cluster.workers.append(subprocess.Popen(command, **quiet))
        with Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(worker_commands * nworkers, timeout=timeout)
        yield cluster
    finally:
        for process in reversed(cluster.workers if cluster else []):
            stop(process)
        stop(scheduler)

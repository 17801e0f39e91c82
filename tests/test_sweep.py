"""Sweeps: planning, Parquet output, resume, and the same tables on every backend.

The slow tests start real processes: the ``cloudwar`` command, a local pool, and a Dask
scheduler with two worker processes on 127.0.0.1, and kill or interrupt some of them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cloudwar import CloudMarket, ScenarioError
from cloudwar.cli.main import main
from cloudwar.cli.sweep import parse_grid
from cloudwar.errors import CloudwarError, SweepError
from cloudwar.runs.sweep import (
    RUN_COLUMNS,
    STATUS_COLUMNS,
    SweepFolder,
    grid_points,
    plan_sweep,
    read_sweep,
    run_seed,
    run_sweep,
    select_metrics,
)
from tests.dask_cluster import loopback_dask_cluster
from tests.dask_cluster import stop as _stop

SMALL = {"enterprises": 400, "quarters": 4}
GRID = {"choice.network_weight": [0.2, 0.8], "enterprise.switching_cost": [0.0, 0.5]}
# 12 runs for the tests that kill or interrupt a sweep: the first six (2,000 enterprises, about
# 0.1 s each) store parts quickly, the last six (30,000 enterprises, about 0.6 s each, and slower
# on a loaded machine just as the test is) keep the sweep going for seconds after that, so a kill
# or Ctrl-C sent once the first parts are there lands in the middle of the sweep.
SLOWER = ["--set", "quarters=8"]
SLOWER_GRID = ["--grid", "enterprises=2000,30000", "--grid", "choice.network_weight=0.1,0.4,0.7"]


def small_plan(seeds: int = 2, metrics: str = "summary"):
    return plan_sweep(
        "baseline", tuple(GRID), grid_points(GRID), seeds=seeds, fixed=SMALL, metrics=metrics, design={"grid": GRID}
    )


def comparable(tables: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Everything but the wall time, which is the only thing allowed to differ."""
    runs, metrics = tables
    return runs.drop(columns="wall_time_s"), metrics


def assert_same_tables(a, b) -> None:
    (runs_a, metrics_a), (runs_b, metrics_b) = comparable(a), comparable(b)
    pd.testing.assert_frame_equal(runs_a, runs_b)
    pd.testing.assert_frame_equal(metrics_a, metrics_b)  # exact: bit-identical floats


def assert_every_run_once(path: Path, n_runs: int, complete: bool = True) -> int:
    """Every run of the sweep (of ``n_runs``) saved once with all its rows; how many are saved.

    ``complete=False``: a sweep stopped part way, whose saved runs need not be the first ones
    (batches on several workers finish in any order).
    """
    runs, metrics = read_sweep(path)
    saved = runs["run"].tolist()
    if complete:
        assert saved == list(range(n_runs))
    else:
        assert len(set(saved)) == len(saved) and set(saved) <= set(range(n_runs)), saved
    assert (runs["status"] == "ok").all()
    keys = ["run", "quarter", "provider", "region", "product", "metric"]
    assert not metrics.duplicated(keys).any()
    rows = metrics.groupby("run").size()
    assert rows.index.tolist() == saved
    assert rows.nunique() == 1  # every run's rows written exactly once
    return len(saved)


# The command as a user runs it: the installed script beside this interpreter.
COMMAND = [str(Path(sys.executable).with_name("cloudwar"))]
if not Path(COMMAND[0]).exists():
    COMMAND = [sys.executable, "-m", "cloudwar.cli"]


def cloudwar(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=300, **kwargs)


# ------------------------------------------------------------------------------------------
# Planning and input errors
# ------------------------------------------------------------------------------------------
def test_parse_grid_reads_toml_values_in_order():
    grid = parse_grid(["choice.network_weight=0.2, 0.8", "network.kind=clustered,none", "enterprises=100,200"])
    assert grid == {
        "choice.network_weight": [0.2, 0.8],
        "network.kind": ["clustered", "none"],
        "enterprises": [100, 200],
    }
    assert grid_points({"a": [1, 2], "b": ["x", "y"]}) == [(1, "x"), (1, "y"), (2, "x"), (2, "y")]


@pytest.mark.parametrize(
    "items, message",
    [
        (["choice.network_weight="], "empty value"),
        (["choice.network_weight=1,,2"], "empty value"),
        (["choice.network_weight"], "expected key=value1,value2"),
        (["a=1", "a=2"], "given twice"),
        (["a=1,1"], "listed twice"),
    ],
)
def test_parse_grid_errors(items, message):
    with pytest.raises(CloudwarError, match=message):
        parse_grid(items)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--grid", "choice.no_such_key=1,2"], "--grid choice.no_such_key: unknown key 'choice.no_such_key'"),
        (["--grid", "choice.network_weight="], "--grid choice.network_weight: empty value"),
        (["--grid", "choice.network_weight=-1,1"], "--grid choice.network_weight: must be >= 0"),
        (["--grid", "providers.Nobody.price.ai=1"], "no provider named 'Nobody'"),
        (["--grid", "quarters=2", "--set", "quarters=3"], "--grid quarters: also a fixed value"),
        (["--grid", "quarters=2", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers does not apply"),
        (["--grid", "quarters=2", "--scheduler", "nonsense"], "not a scheduler address"),
        (["--seeds", "0"], "must be at least 1"),
    ],
)
def test_bad_input_is_a_one_line_error(args, message, tmp_path, capsys):
    assert main(["sweep", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cloudwar: error: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "out").exists()


def test_unreachable_scheduler_fails_fast_with_one_line(tmp_path, capsys):
    start = time.monotonic()
    out = tmp_path / "out"
    code = main(
        ["sweep", "--grid", "quarters=2", "--scheduler", "tcp://127.0.0.1:9", "--timeout", "2", "--out", str(out)]
    )
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cloudwar: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert err.count("\n") == 1
    assert elapsed < 10
    assert not out.exists()


def test_plan_checks_every_combination_and_names_the_culprit():
    keys = ("regions.china.enterprise_share", "regions.global.enterprise_share")
    plan_sweep("baseline", keys, [(0.35, 0.65), (0.5, 0.5)])  # each combination adds up to 1
    with pytest.raises(
        ScenarioError, match=r"^parameters regions.china.enterprise_share: .*must add up to 1, got 1.15$"
    ):
        plan_sweep("baseline", keys, [(0.35, 0.65), (0.5, 0.65)])


def test_run_seed_depends_only_on_sweep_seed_and_replicate():
    plan = small_plan(seeds=3)
    seeds = {plan.run_info(r)[1]: plan.run_info(r)[2] for r in range(plan.n_runs)}
    assert all(plan.run_info(r)[2] == seeds[r % 3] for r in range(plan.n_runs))  # common random numbers
    assert len(set(seeds.values())) == 3
    assert run_seed(0, 1) == run_seed(0, 1) != run_seed(1, 1)
    assert run_seed(0, 0) == int(np.random.SeedSequence([0, 0]).generate_state(1)[0])


# ------------------------------------------------------------------------------------------
# Output tables
# ------------------------------------------------------------------------------------------
def test_serial_sweep_writes_runs_and_tidy_metrics(tmp_path):
    plan = small_plan(seeds=2)
    report = run_sweep(plan, tmp_path, workers=1)
    assert (report.ran, report.already_done, report.errors, report.missing) == (8, 0, 0, 0)
    runs, metrics = read_sweep(tmp_path)
    assert list(runs.columns) == [
        "run",
        "point",
        "replicate",
        "seed",
        "choice.network_weight",
        "enterprise.switching_cost",
        "status",
        "error",
        "wall_time_s",
    ]
    assert runs["point"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert runs["replicate"].tolist() == [0, 1] * 4
    assert runs["choice.network_weight"].tolist() == [0.2] * 4 + [0.8] * 4
    assert (runs["wall_time_s"] > 0).all()
    assert list(metrics.columns) == ["run", "quarter", "calendar", "provider", "region", "product", "metric", "value"]
    assert (metrics.loc[metrics.quarter == 2, "calendar"] == "2026Q1").all()  # baseline starts 2025Q4
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert manifest["runs"] == 8 and manifest["set"] == SMALL and manifest["design"]["grid"] == GRID

    # Run 5 is point 2, replicate 1: the same numbers as running the model directly with its seed.
    row = runs.loc[5]
    direct = CloudMarket(
        "baseline",
        rng=int(row["seed"]),
        overrides={**SMALL, "choice.network_weight": 0.8, "enterprise.switching_cost": 0.0},
    ).run()
    expected = select_metrics(direct).reset_index(drop=True)
    got = metrics[metrics["run"] == 5].drop(columns="run").reset_index(drop=True)
    np.testing.assert_array_equal(got["value"].to_numpy(), expected["value"].to_numpy())
    assert got["metric"].tolist() == expected["metric"].tolist()
    # The summary: world rows of every quarter, every row of the final one.
    assert set(got.loc[got["quarter"] < 4, "region"]) == {"all"}
    assert {"china", "global", "all"} <= set(got.loc[got["quarter"] == 4, "region"])
    assert len(got) < len(direct)


def test_metrics_all_keeps_every_row(tmp_path):
    plan = plan_sweep("baseline", (), [()], fixed=SMALL, metrics="all")
    run_sweep(plan, tmp_path, workers=1)
    _, metrics = read_sweep(tmp_path)
    direct = CloudMarket("baseline", rng=plan.run_info(0)[2], overrides=SMALL).run()
    assert len(metrics) == len(direct)
    np.testing.assert_array_equal(metrics["value"].to_numpy(), direct["value"].to_numpy())


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    # Nobody has adopted AI at the start, so the AI market size cannot be matched: the model raises.
    args = ["sweep", "--set", "enterprises=300", "--set", "quarters=2", "--grid", "adoption.initial_share=0,0.3"]
    assert main([*args, "--workers", "1", "--out", str(tmp_path)]) == 1
    assert "1 runs ended with an error" in capsys.readouterr().err
    runs, metrics = read_sweep(tmp_path)
    assert runs["status"].tolist() == ["error", "ok"]
    assert runs.loc[0, "error"].startswith("ScenarioError: regions.")
    assert set(metrics["run"]) == {1}
    # A rerun does not retry it (an error is a result) but still says so, with the same exit status.
    assert main([*args, "--workers", "1", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "already done" in captured.out
    assert "1 runs ended with an error, 1 of them in an earlier invocation" in captured.err


# ------------------------------------------------------------------------------------------
# Resume and folder safety
# ------------------------------------------------------------------------------------------
def test_resume_runs_only_what_is_missing(tmp_path):
    plan = small_plan(seeds=2)
    reference = tmp_path / "reference"
    run_sweep(plan, reference, workers=1)
    out = tmp_path / "out"
    run_sweep(plan, out, workers=1, batch_size=2)
    parts = sorted((out / "runs").glob("part-*.parquet"))
    assert len(parts) == 4
    # As a crash would leave it: one batch never written, one with only its metrics part, a temp file.
    parts[1].unlink()
    (out / "metrics" / parts[1].name).unlink()
    parts[2].unlink()
    (out / "runs" / ".part-x.parquet.123.tmp").write_bytes(b"half a file")
    report = run_sweep(plan, out, workers=1, batch_size=2)
    assert (report.already_done, report.ran) == (4, 4)
    assert not list((out / "runs").glob(".*.tmp"))
    assert_same_tables(read_sweep(out), read_sweep(reference))
    assert_every_run_once(out, plan.n_runs)
    again = run_sweep(plan, out, workers=1)
    assert (again.already_done, again.ran) == (8, 0)


def test_a_different_sweep_in_the_same_folder_is_refused(tmp_path, capsys):
    args = ["sweep", "--set", "enterprises=300", "--set", "quarters=2", "--workers", "1", "--out", str(tmp_path)]
    assert main([*args, "--grid", "choice.network_weight=0.1,0.2"]) == 0
    assert main([*args, "--grid", "choice.network_weight=0.1,0.3"]) == 2
    assert "holds a different sweep (other parameter values)" in capsys.readouterr().err
    assert main([*args, "--grid", "choice.network_weight=0.1,0.2", "--seeds", "2"]) == 2
    assert "(another number of seeds)" in capsys.readouterr().err


def test_a_folder_in_use_is_refused(tmp_path, monkeypatch):
    from cloudwar.runs import store
    from cloudwar.runs.sweep import SweepFolder

    monkeypatch.setattr(store, "LOCK_WAIT_SECONDS", 0.3)
    plan = small_plan(seeds=1)
    holder = SweepFolder(tmp_path)
    holder.open(plan)
    try:
        with pytest.raises(CloudwarError, match="in use by another running sweep"):
            run_sweep(plan, tmp_path, workers=1)
    finally:
        holder.close()
    assert run_sweep(plan, tmp_path, workers=1).ran == 4


class _BreakingPool:
    """Stands in for ProcessPoolExecutor: runs batches here, and breaks where ``breaks`` says.

    ``breaks`` maps (pool number, submission number), or ("any", first run of a batch), to how:
    "submit" (the pool broke before the submission, which raises) or "worker" (the worker
    running it died)."""

    pools = 0
    breaks: dict[tuple[int, int], str] = {}
    _processes: dict = {}

    def __init__(self, *args, **kwargs):
        type(self).pools += 1
        self.number, self.submitted = type(self).pools, 0

    def submit(self, fn, batch):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        self.submitted += 1
        how = self.breaks.get((self.number, self.submitted)) or self.breaks.get(("any", batch.first))
        if how == "submit":
            raise BrokenProcessPool("the pool broke")
        future = Future()
        if how == "worker":
            future.set_exception(BrokenProcessPool("a child process terminated abruptly"))
        else:
            future.set_result(fn(batch))
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        pass


@pytest.fixture
def breaking_pool(monkeypatch):
    import concurrent.futures

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", _BreakingPool)
    monkeypatch.setattr(_BreakingPool, "pools", 0)
    return _BreakingPool


def test_a_pool_that_breaks_at_submission_or_in_a_worker_loses_no_run(tmp_path, breaking_pool, reference):
    # Pool 1 breaks before its second submission; in pool 2 the first batch's worker dies.
    breaking_pool.breaks = {(1, 2): "submit", (2, 1): "worker"}
    report = run_sweep(small_plan(seeds=2), tmp_path, workers=2, batch_size=2)
    assert (report.ran, report.missing) == (8, 0)
    assert breaking_pool.pools == 3
    assert_same_tables(read_sweep(tmp_path), reference)


def test_a_batch_whose_worker_always_dies_is_left_for_next_time(tmp_path, breaking_pool):
    breaking_pool.breaks = {("any", 0): "worker"}
    plan = small_plan(seeds=2)
    report = run_sweep(plan, tmp_path, workers=2, batch_size=2)
    assert (report.ran, report.missing) == (6, 2)
    assert read_sweep(tmp_path)[0]["run"].tolist() == [2, 3, 4, 5, 6, 7]
    breaking_pool.breaks = {}
    assert run_sweep(plan, tmp_path, workers=2, batch_size=2).ran == 2


# ------------------------------------------------------------------------------------------
# Backends: local pool and a real Dask cluster
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A Dask scheduler and two single-threaded worker processes, on 127.0.0.1 only (tests/dask_cluster.py)."""
    with loopback_dask_cluster(tmp_path_factory.mktemp("dask"), worker_commands=2) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small sweep run serially, to compare every backend against."""
    out = tmp_path_factory.mktemp("reference")
    run_sweep(small_plan(seeds=2), out, workers=1)
    return read_sweep(out)


@pytest.mark.slow
def test_pool_and_dask_give_bit_identical_tables(tmp_path, dask_cluster, reference):
    plan = small_plan(seeds=2)
    pool = run_sweep(plan, tmp_path / "pool", workers=2, batch_size=1)
    assert pool.backend == "pool of 2" and pool.ran == 8
    dask = run_sweep(plan, tmp_path / "dask", scheduler=dask_cluster.address, batch_size=3)
    assert dask.backend.startswith("dask") and dask.ran == 8
    assert_same_tables(read_sweep(tmp_path / "pool"), reference)
    assert_same_tables(read_sweep(tmp_path / "dask"), reference)
    # Half on Dask, the rest resumed on the pool: still the same tables.
    mixed = tmp_path / "mixed"
    run_sweep(plan, mixed, scheduler=dask_cluster.address, batch_size=2)
    for part in sorted((mixed / "runs").glob("part-*.parquet"))[::2]:
        part.unlink()
    assert run_sweep(plan, mixed, workers=2, batch_size=1).ran == 4
    assert_same_tables(read_sweep(mixed), reference)


def _wait_for_parts(out: Path, process: subprocess.Popen, count: int = 1, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(list((out / "runs").glob("part-*.parquet"))) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no batch finished in time"
        time.sleep(0.05)


def _worker_processes(pid: int) -> list:
    """The worker processes under a process: the leaves of its process tree, but not the
    resource tracker (pool workers hang from a fork server, Dask workers from their nanny)."""
    import psutil

    return [
        child
        for child in psutil.Process(pid).children(recursive=True)
        if not child.children() and not any("resource_tracker" in part for part in child.cmdline())
    ]


def _start_sweep(args: list[str], out: Path, **popen) -> subprocess.Popen:
    """``cloudwar sweep ...`` as a user would run it, in a subprocess, with Ctrl-C not ignored.

    (A pytest started in the background by a shell without job control, ``... &`` in a script,
    ignores SIGINT, and a child inherits that through exec: Ctrl-C would not reach the sweep.)
    """
    command = [*COMMAND, *args, "--out", str(out)]
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:  # a handler, unlike "ignore", is reset to the default in the child
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pool", "dask"])
def test_a_killed_worker_loses_no_run(tmp_path, backend, request):
    out = tmp_path / "out"
    args = ["sweep", *SLOWER, *SLOWER_GRID, "--seeds", "2", "--batch-size", "1"]
    if backend == "pool":
        args += ["--workers", "2"]
    else:
        cluster = request.getfixturevalue("dask_cluster")
        args += ["--scheduler", cluster.address]
    process = _start_sweep(args, out)
    try:
        _wait_for_parts(out, process)
        # Pool workers hang from the command's fork server; each `dask worker` is a nanny whose
        # child is the worker (the nanny starts a new one).
        victims = _worker_processes(process.pid if backend == "pool" else cluster.worker_pids[0])
        assert victims, "no worker process found"
        victims[0].kill()  # SIGKILL, mid-batch
        stdout, stderr = process.communicate(timeout=300)
    finally:
        _stop(process)
    assert process.returncode == 0, stderr
    assert "ran 12 of 12 runs" in stdout
    assert_every_run_once(out, 12)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "kill -9"])
def test_an_interrupted_sweep_resumes_without_doing_a_run_twice(tmp_path, how):
    import psutil

    out = tmp_path / "out"
    args = ["sweep", *SLOWER, *SLOWER_GRID, "--seeds", "2", "--workers", "2", "--batch-size", "1"]
    process = _start_sweep(args, out, start_new_session=True)  # its own process group, as in a terminal
    try:
        _wait_for_parts(out, process, count=2)
        group = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        if how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)  # what the terminal sends to the foreground group
        else:
            os.killpg(process.pid, signal.SIGKILL)  # the command and its workers die at once: no cleanup
        _, stderr = process.communicate(timeout=60)
        _, alive = psutil.wait_procs(group, timeout=30)
        assert not alive, f"processes left behind: {alive}"
    finally:
        _stop(process)
    if how == "ctrl-c":
        assert process.returncode == 130
        assert "interrupted:" in stderr and "run the same command again" in stderr
        assert "Traceback" not in stderr
    saved = assert_every_run_once(out, 12, complete=False)
    assert 2 <= saved < 12
    again = cloudwar(*args, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert f"ran {12 - saved} of 12 runs ({saved} already done)" in again.stdout
    assert_every_run_once(out, 12)


@pytest.mark.slow
def test_pool_workers_end_when_the_command_alone_is_killed(tmp_path):
    import psutil

    out = tmp_path / "out"
    args = ["sweep", *SLOWER, *SLOWER_GRID, "--seeds", "2", "--workers", "2", "--batch-size", "1"]
    process = _start_sweep(args, out, start_new_session=True)
    try:
        _wait_for_parts(out, process)
        descendants = psutil.Process(process.pid).children(recursive=True)
        assert descendants, "no pool processes found"
        os.kill(process.pid, signal.SIGKILL)  # only the command: its fork server and workers are orphaned
        process.communicate(timeout=60)  # returns only once no orphan holds its output open
        _, alive = psutil.wait_procs(descendants, timeout=20)
        assert not alive, f"processes left behind: {alive}"
    finally:
        _stop(process)
    # Killed in the middle (the workers had runs to do), and what was saved before is whole.
    assert 1 <= assert_every_run_once(out, 12, complete=False) < 12


@pytest.mark.parametrize(
    "args, message",
    [
        (["--timeout", "nan"], "--timeout: expected seconds"),
        (["--timeout", "-1"], "--timeout: expected seconds"),
        (["--scheduler", ""], "--scheduler: empty address"),
        (["--scheduler", "tls://127.0.0.1:1", "--timeout", "2"], "cannot reach the Dask scheduler"),
        (["--grid", 'providers.Alibaba.strategy={kind="cost_plus"'], "--grid providers.Alibaba.strategy: "),
    ],
)
def test_more_bad_execution_options_are_one_line(args, message, tmp_path):
    done = cloudwar("sweep", "--grid", "quarters=2", *args, "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.startswith("cloudwar: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "out").exists()


def test_grid_values_may_be_inline_tables_with_commas():
    grid = parse_grid(['providers.Alibaba.strategy={kind="cost_plus", markup=0.4},{kind="cost_plus", markup=0.6}'])
    assert grid["providers.Alibaba.strategy"] == [
        {"kind": "cost_plus", "markup": 0.4},
        {"kind": "cost_plus", "markup": 0.6},
    ]
    assert parse_grid(['name="a,b",c']) == {"name": ["a,b", "c"]}


def test_a_sweep_with_no_finished_run_reads_with_its_columns(tmp_path):
    plan = small_plan(seeds=1)
    folder = SweepFolder(tmp_path)
    folder.open(plan)
    folder.close()
    runs, metrics = read_sweep(tmp_path)
    assert runs.empty and metrics.empty
    assert list(runs.columns) == [*RUN_COLUMNS, *plan.parameters, *STATUS_COLUMNS]


# ------------------------------------------------------------------------------------------
# Hardening: unreadable parts, absurd sizes, broken manifests, stale temporaries, SIGTERM
# ------------------------------------------------------------------------------------------
SMALL_ARGS = ["--set", "enterprises=400", "--set", "quarters=4", "--seeds", "2", "--workers", "1"]
SMALL_ARGS += ["--grid", "choice.network_weight=0.2,0.8", "--grid", "enterprise.switching_cost=0.0,0.5"]


@pytest.mark.parametrize("folder", ["runs", "metrics"])
def test_an_unreadable_part_is_redone_and_never_read_as_half_a_table(tmp_path, capsys, folder, reference):
    out = tmp_path / "out"
    assert main(["sweep", *SMALL_ARGS, "--batch-size", "2", "--out", str(out)]) == 0
    victim = sorted((out / folder).glob("part-*.parquet"))[1]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated, as a full disk or a crash leaves it
    with pytest.raises(SweepError, match=rf"^{victim} cannot be read \(ArrowInvalid"):
        read_sweep(out)
    capsys.readouterr()
    assert main(["sweep", *SMALL_ARGS, "--batch-size", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "could not be read" in line]
    assert len(warnings) == 1 and str(victim) in warnings[0] and "Traceback" not in captured.err
    assert "ran 2 of 8 runs (6 already done)" in captured.out
    assert_same_tables(read_sweep(out), reference)
    assert_every_run_once(out, 8)


def test_a_runs_part_without_its_metrics_part_is_an_error_not_half_a_table(tmp_path):
    run_sweep(small_plan(seeds=1), tmp_path, workers=1, batch_size=2)
    part = sorted((tmp_path / "metrics").glob("part-*.parquet"))[0]
    part.unlink()
    with pytest.raises(SweepError, match=f"{part} is missing"):
        read_sweep(tmp_path)


@pytest.mark.parametrize(
    "args, option",
    [
        (["--grid", "quarters=2,3", "--seeds", "1000000000"], "--seeds: "),
        (["--grid", "quarters=2,3", "--seeds", str(2**62)], "--seeds: "),
    ],
)
def test_an_absurd_plan_is_refused_before_anything_is_written(tmp_path, capsys, args, option):
    out = tmp_path / "out"
    start = time.monotonic()
    assert main(["sweep", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cloudwar: error: {option}") and err.count("\n") == 1, err
    assert "runs is more than a design may hold" in err
    assert time.monotonic() - start < 10
    assert not out.exists()


@pytest.mark.parametrize("manifest", ["{not json", '{"format": 1, "seeds": 99}', "[1, 2]"])
def test_a_broken_or_foreign_manifest_is_refused_before_anything_is_created(tmp_path, capsys, manifest):
    (tmp_path / "sweep.json").write_text(manifest)
    assert main(["sweep", *SMALL_ARGS, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cloudwar: error: --out ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "JSONDecodeError" not in err.split(":")[2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.json"]  # no .lock, runs/ or metrics/


def test_a_later_run_removes_the_temporary_folders_of_dead_processes(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.tmp-{int(dead.stdout)}-abcd"
    (stale / "results.csv").parent.mkdir()
    (stale / "results.csv").write_text("half")
    live = tmp_path / f".out.tmp-{os.getpid()}-efgh"  # a run in progress (this process): left alone
    live.mkdir()
    done = cloudwar("run", "--quarters", "1", "--set", "enterprises=200", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out"]


@pytest.mark.slow
def test_a_terminated_sweep_saves_says_so_and_exits_143(tmp_path):
    out = tmp_path / "out"
    args = ["sweep", *SLOWER, *SLOWER_GRID, "--seeds", "2", "--workers", "2", "--batch-size", "1"]
    process = _start_sweep(args, out, start_new_session=True)
    try:
        _wait_for_parts(out, process, count=1)
        os.kill(process.pid, signal.SIGTERM)  # only the command, as a service manager or `kill` does
        _, stderr = process.communicate(timeout=60)
    finally:
        _stop(process)
    assert process.returncode == 143, stderr
    saved = assert_every_run_once(out, 12, complete=False)
    assert stderr.strip().splitlines() == [
        f"cloudwar: terminated: {saved} of 12 runs are saved in {out}; run the same command again to finish"
    ]
    assert 1 <= saved < 12

"""cloudwar compare and run --seeds: arms paired by seed, differences, resume after a kill, bad input."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cloudwar import CloudMarket
from cloudwar.runs.compare import ARMS, Arm, compare, t_interval
from cloudwar.runs.design import run_seed
from cloudwar.runs.store import read_sweep
from tests.conftest import ROOT

CLI = [sys.executable, "-m", "cloudwar.cli"]
SMALL = {"enterprises": 400, "quarters": 5}
DISCIPLINE = {"providers.Alibaba.strategy.kind": "margin_discipline"}


def cloudwar(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "out"
    arms = [Arm("base", "baseline"), Arm("twin", "baseline"), Arm("discipline", "baseline", DISCIPLINE)]
    return compare(arms, out, seeds=3, seed=5, fixed=dict(SMALL), workers=1)


def test_every_arm_runs_the_same_seeds(compared):
    seeds = {}
    for name in ("base", "twin", "discipline"):
        runs, _ = read_sweep(compared.out / ARMS / name)
        seeds[name] = list(runs.sort_values("replicate")["seed"])
    assert seeds["base"] == [run_seed(5, r) for r in range(3)]
    assert seeds["base"] == seeds["twin"] == seeds["discipline"]


def test_an_arm_identical_to_the_first_differs_by_exactly_zero(compared):
    table = pd.read_csv(compared.out / "compare.csv")
    assert set(table["arm"]) == {"twin", "discipline"}
    twin = table[table["arm"] == "twin"]
    assert len(twin) > 0 and (twin[["difference", "low", "high"]].to_numpy() == 0).all()
    assert (twin["seeds"] == 3).all()
    # The other arm really differs: Alibaba's margin moves when it stops cutting prices.
    margin = table[(table.arm == "discipline") & (table.provider == "Alibaba") & (table.metric == "operating_margin")]
    assert len(margin) == 1 and margin["difference"].iloc[0] != 0
    assert margin["low"].iloc[0] <= margin["difference"].iloc[0] <= margin["high"].iloc[0]
    metrics = set(table["metric"])
    assert {"npv", "enterprise_value", "revenue_share", "customer_share", "operating_margin"} <= metrics
    assert (compared.out / "compare.png").stat().st_size > 10_000


def test_the_differences_are_the_paired_values(compared):
    values = compared.values
    key = ["replicate", "provider", "metric", "product"]
    base = values[values.arm == "base"].set_index(key)["value"]
    other = values[values.arm == "discipline"].set_index(key)["value"]
    diff = (other - base).groupby(level=["provider", "metric", "product"]).mean()
    table = compared.differences.query("arm == 'discipline'").set_index(["provider", "metric", "product"])
    np.testing.assert_allclose(table["difference"], diff.reindex(table.index), rtol=1e-12, atol=0)


def test_the_interval_is_students_t():
    mean, low, high = t_interval(np.array([1.0, 2.0, 3.0]))
    half = 2.919985580353726 / np.sqrt(3)  # t(0.95, 2 degrees of freedom) x sd 1 / sqrt(3)
    assert mean == 2.0 and low == pytest.approx(2 - half, rel=1e-12) and high == pytest.approx(2 + half, rel=1e-12)
    one = t_interval(np.array([4.0]))
    assert one[0] == 4.0 and np.isnan(one[1]) and np.isnan(one[2])


# --- resume ------------------------------------------------------------------------------------
SLOWER = ["--set", "enterprises=2000", "--set", "quarters=8", "--seeds", "3", "--workers", "1"]
ARGS = ["compare", "--arm", "base=baseline", "--arm", "cut=baseline,providers.Alibaba.price.ai=0.5", *SLOWER]


def saved_runs(out: Path) -> int:
    return sum(len(read_sweep(folder)[0]) for folder in (out / ARMS).iterdir())


@pytest.mark.slow
def test_compare_resumes_after_a_kill_running_only_what_is_missing(tmp_path):
    reference = cloudwar(*ARGS, "--out", str(tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    process = subprocess.Popen(
        [*CLI, *ARGS, "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(f"{ARMS}/*/runs/part-*.parquet")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no batch finished in time"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    saved = saved_runs(out)
    assert 1 <= saved < 6
    assert not (out / "compare.csv").exists()  # the outputs appear only when every run is done
    again = cloudwar(*ARGS, "--out", str(out))
    assert again.returncode == 0, again.stderr
    ran = [(int(a), int(b)) for a, b in re.findall(r"ran (\d+) of 3 runs \((\d+) already done\)", again.stdout)]
    done = len(re.findall(r"all 3 runs were already done", again.stdout))
    assert sum(r for r, _ in ran) == 6 - saved and sum(d for _, d in ran) + 3 * done == saved, again.stdout
    pd.testing.assert_frame_equal(pd.read_csv(out / "compare.csv"), pd.read_csv(tmp_path / "reference" / "compare.csv"))
    third = cloudwar(*ARGS, "--out", str(out))
    assert third.returncode == 0 and third.stdout.count("all 3 runs were already done") == 2


# --- run --seeds -------------------------------------------------------------------------------
def test_run_seeds_writes_every_seed_tidy_with_its_seed(tmp_path):
    out = tmp_path / "ensemble"
    done = cloudwar(
        "run", "--seeds", "3", "--seed", "2", "--set", "enterprises=400", "--quarters", "4", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns[:2]) == ["seed", "replicate"]
    assert sorted(results["seed"].unique()) == sorted(run_seed(2, r) for r in range(3))
    # Each seed's rows are that seed's own run, as `cloudwar run --seed S` would make it.
    first = results[results["replicate"] == 0].drop(columns=["seed", "replicate"]).reset_index(drop=True)
    alone = CloudMarket("baseline", rng=run_seed(2, 0), overrides={"enterprises": 400, "quarters": 4}).run()
    pd.testing.assert_frame_equal(first, alone, check_dtype=False, check_exact=False, rtol=1e-15)
    summary = pd.read_csv(out / "summary.csv")
    assert {"median", "p10", "p90"} <= set(summary.columns)
    assert (summary["p10"] <= summary["median"]).all() and (summary["median"] <= summary["p90"]).all()
    assert (out / "bands.png").stat().st_size > 10_000
    again = cloudwar(
        "run", "--seeds", "3", "--seed", "2", "--set", "enterprises=400", "--quarters", "4", "--out", str(out)
    )
    assert again.returncode == 0 and "all 3 runs were already done" in again.stdout


# --- bad input ---------------------------------------------------------------------------------
ARM = ["--arm", "a=baseline"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", *ARM], "--arm: a comparison needs at least 2 arms, got 1"),
        (["compare", "--arm", "baseline", *ARM], "--arm 'baseline': expected NAME=SCENARIO[,KEY=VALUE...]"),
        (["compare", *ARM, *ARM], "--arm: the name 'a' is given twice"),
        (["compare", *ARM, "--arm", "b/c=baseline"], "--arm: name 'b/c': use letters"),
        (["compare", *ARM, "--arm", "b=nowhere"], "arm b: unknown scenario 'nowhere'"),
        (["compare", *ARM, "--arm", "b=baseline,choice.bogus=1"], "arm b: choice.bogus: unknown key"),
        (["compare", *ARM, "--arm", "b=baseline,enterprises"], "--arm b: 'enterprises': expected key=value"),
        (["compare", *ARM, "--arm", "b=calvano_duopoly"], "--provider 'Alibaba' is not in arm b"),
        (["compare", *ARM, "--arm", "b=baseline", "--seeds", "0"], "--seeds: must be at least 1, got 0"),
        (["run", "--seeds", "2"], "--seeds needs --out"),
        (["run", "--workers", "2"], "--workers and --scheduler apply only with --seeds N"),
        (["run", "--seeds", "2", "--set", "valuation.tax_rate=2"], "valuation.tax_rate: must be <= 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, message):
    out = tmp_path / "out"
    done = cloudwar(*args, *(["--out", str(out)] if "needs --out" not in message else []), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cloudwar: error: "), done.stderr
    assert message in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_changed_arm_is_refused_before_anything_runs(compared):
    before = sorted(p.relative_to(compared.out) for p in compared.out.rglob("*"))
    args = ["compare", "--arm", "base=baseline", "--arm", "twin=baseline,providers.Alibaba.price.ai=0.5"]
    sets = [x for k, v in SMALL.items() for x in ("--set", f"{k}={v}")]
    done = cloudwar(*args, *sets, "--seeds", "3", "--seed", "5", "--workers", "1", "--out", str(compared.out))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"cloudwar: error: --out {compared.out}: arm twin there ran another scenario, overrides, seeds or seed; "
        "use another folder, or delete it to start over"
    ]
    assert sorted(p.relative_to(compared.out) for p in compared.out.rglob("*")) == before

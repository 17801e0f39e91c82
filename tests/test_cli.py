"""The command line as a user meets it: real subprocesses, real files."""

import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT

CLI = [sys.executable, "-m", "cloudwar.cli"]


def run(*args, cwd=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_run_writes_table_figure_and_prints_a_summary(tmp_path):
    out = tmp_path / "out"
    done = run("run", "--quarters", "4", "--seed", "3", "--set", "enterprises=2000", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "Alibaba" in done.stdout and "operating margin" in done.stdout
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == ["quarter", "provider", "region", "product", "metric", "value"]
    assert results.quarter.max() == 4
    png = (out / "shares_and_margins.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "shares_and_margins.png", "summary.csv"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def test_same_seed_same_csv(tmp_path):
    for name in ("a", "b"):
        assert run("run", "--quarters", "3", "--set", "enterprises=1500", "--out", str(tmp_path / name)).returncode == 0
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--quarters", "0"], "--quarters: must be at least 1"),
        (["run", "--set", "enterprises=-5"], "enterprises: must be >= 1"),
        (["run", "--set", "nope=1"], "unknown key 'nope'"),
        (["run", "--set", "providers.AWS.price.ai=-1"], "must be >= 0"),
        (["run", "--set", "regions.china.enterprise_share=2"], "must be <= 1"),
        (["run", "--set", "quarters"], "expected key=value"),
        (["run", "--scenario", "missing.toml"], "scenario file not found"),
        (["run", "--scenario", "{bad}"], "malformed TOML"),
        (["walk"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(tmp_path, args, message):
    bad = tmp_path / "bad.toml"
    bad.write_text("quarters = = 3\n")
    args = [str(bad) if a == "{bad}" else a for a in args]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    done = run(*args, "--out", str(out)) if args[0] == "run" else run(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cloudwar: error:"), done.stderr
    assert message in lines[0]
    assert "Traceback" not in done.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_scenarios_and_describe_list_what_is_there():
    listed = run("scenarios")
    assert listed.returncode == 0 and "baseline" in listed.stdout and "calvano_duopoly" in listed.stdout
    described = run("describe")
    assert described.returncode == 0 and "choice.network_weight" in described.stdout


def test_installed_entry_point_works():
    exe = ROOT / ".venv" / "bin" / "cloudwar"
    if not exe.exists():
        pytest.fail("the test command installs the package into .venv; cloudwar entry point missing")
    done = subprocess.run([str(exe), "scenarios"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "baseline" in done.stdout

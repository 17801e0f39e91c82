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
    assert list(results.columns) == ["quarter", "calendar", "provider", "region", "product", "metric", "value"]
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
        (["run", "--seed", "-1"], "--seed: must be >= 0"),
        (["run", "--scenario", "{latin1}"], "not a UTF-8 text file"),
        (["run", "--scenario", "{folder}"], "is a folder, not a TOML file"),
        (["run", "--set", "name=[1,"], "is not a valid TOML value"),
        (["run", "--set", "start=hello"], "expected a calendar quarter"),
        (["run", "--set", "enterprises=500", "--set", "network.mean_degree=1e9"], "must be below the number"),
        (["run", "--set", "enterprise.industries=99999999999999999999"], "must be <= 32,767"),
        (["run", "--set", "providers.Alibaba.strategy={bogus=1}"], "no 'kind'"),
        (["run", "--set", 'providers.Alibaba.strategy={kind="share_first", capex_plan=inf}'], "finite number"),
        (["run", "--set", 'providers.Alibaba.strategy={kind="share_first", price_ratio={cloud=1}}'], "'ai'"),
        (["run", "--set", 'providers.Alibaba.strategy={kind="price_cut", product="gpu"}'], "'gpu' is not a product"),
        (["run", "--set", 'providers.Alibaba.strategy={kind=":X"}'], "absolute module name"),
        (["run", "--set", 'providers.Alibaba.strategy={kind="user_strategies:RaisesWhenBuilt"}'], "ValueError: bad"),
        (["run", "--set", 'providers.Alibaba.strategy={kind="user_strategies:NeedsAnArgument"}'], "TypeError"),
        (["run", "--set", 'providers.Alibaba.strategy={kind="user_import_fails:X"}'], "RuntimeError: cannot"),
        (["run", "--quarters", "2", "--set", "enterprises=500", "--set", "{raises_in_run}"], "quarter 1: RuntimeError"),
        (["run", "--quarters", "2", "--set", "enterprises=500", "--set", "{nan_prices}"], "invalid prices [[nan, nan]"),
        (["run", "--no-progress", "--set", "enterprises=2000000000"], "GB of memory, more than"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(tmp_path, args, message, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("quarters = = 3\n")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b"# caf\xe9\nquarters = 3\n")
    (tmp_path / "folder.toml").mkdir()
    (tmp_path / "user_strategies.py").write_text(USER_STRATEGIES)
    (tmp_path / "user_import_fails.py").write_text("raise RuntimeError('cannot import me')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    placeholders = {
        "{bad}": str(bad),
        "{latin1}": str(latin1),
        "{folder}": str(tmp_path / "folder.toml"),
        "{raises_in_run}": 'providers.Alibaba.strategy={kind="user_strategies:RaisesInRun"}',
        "{nan_prices}": 'providers.Alibaba.strategy={kind="user_strategies:NaNPrices"}',
    }
    args = [placeholders.get(a, a) for a in args]
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


USER_STRATEGIES = """
from dataclasses import dataclass

import numpy as np

from cloudwar.strategies import Strategy


@dataclass
class RaisesWhenBuilt(Strategy):
    def validate(self):
        raise ValueError("bad\\nvalue")


class NeedsAnArgument(Strategy):
    def __init__(self, x):
        pass


@dataclass
class RaisesInRun(Strategy):
    def set_prices(self, provider, market):
        raise RuntimeError("boom")


@dataclass
class NaNPrices(Strategy):
    def set_prices(self, provider, market):
        return provider.prices * np.nan
"""


def test_out_below_a_file_is_refused_before_the_run(tmp_path):
    (tmp_path / "file").write_text("x")
    done = run(
        "run", "--progress", "--quarters", "3", "--set", "enterprises=500", "--out", str(tmp_path / "file" / "o")
    )
    assert done.returncode == 2 and "is a file, not a folder" in done.stderr
    assert "quarter" not in done.stderr  # refused before the progress bar started


def test_a_shipped_name_wins_over_a_folder_of_that_name(tmp_path):
    first = run("run", "--quarters", "1", "--set", "enterprises=500", "--out", "baseline", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run("run", "--quarters", "1", "--set", "enterprises=500", "--out", "baseline", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    (tmp_path / "calvano_duopoly").write_text("x = 1\n")
    named = run("run", "--scenario", "calvano_duopoly", "--quarters", "1", "--set", "enterprises=200", cwd=tmp_path)
    assert named.returncode == 0, named.stderr


def test_a_folder_in_the_way_of_an_output_file_leaves_out_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("old")
    (out / "summary.csv").mkdir()
    done = run("run", "--quarters", "1", "--set", "enterprises=500", "--out", str(out))
    assert done.returncode == 2 and "in the way" in done.stderr
    assert (out / "results.csv").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_closed_pipe_is_not_an_error():
    done = subprocess.run(
        f"{sys.executable} -m cloudwar.cli describe | head -1", shell=True, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "" and done.stdout.startswith("name")


def test_scenarios_and_describe_list_what_is_there():
    listed = run("scenarios")
    assert listed.returncode == 0 and "baseline" in listed.stdout and "calvano_duopoly" in listed.stdout
    described = run("describe")
    assert described.returncode == 0 and "choice.network_weight" in described.stdout
    assert "share_first" in described.stdout and "price_cut=0.1" in described.stdout  # strategies and parameters


def test_installed_entry_point_works():
    exe = ROOT / ".venv" / "bin" / "cloudwar"
    if not exe.exists():
        pytest.fail("the test command installs the package into .venv; cloudwar entry point missing")
    done = subprocess.run([str(exe), "scenarios"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "baseline" in done.stdout

"""The experiment scripts as a user runs them: --quick mode writes CSV, PNG and a summary atomically;
bad arguments give one line, exit status 2 and no output; a killed run resumes where it stopped."""

import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import ROOT

PNG = b"\x89PNG\r\n\x1a\n"
SCRIPTS = {
    "margin_pain.py": (
        ["runs.csv", "trajectories.csv", "worlds.csv", "posterior.csv"],
        ["trajectories.png", "npv.png", "worlds.png", "posterior.png"],
    ),
    "price_war.py": (["runs.csv", "trajectories.csv", "posterior.csv"], ["price_war.png"]),
    "capex_plans.py": (["runs.csv", "plans.csv", "posterior.csv"], ["capex_plans.png"]),
}


def script(name: str, *args: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / name), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Each script once in --quick mode: (working folder, output folder, completed process) by name."""
    runs = {}
    for name in SCRIPTS:
        cwd = tmp_path_factory.mktemp(name.removesuffix(".py"))
        out = cwd / "result"
        runs[name] = (cwd, out, script(name, "--quick", "--out", str(out), cwd=cwd))
    return runs


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_quick_mode_writes_tables_figures_and_summary(quick, name):
    cwd, out, done = quick[name]
    assert done.returncode == 0, done.stderr
    tables, figures = SCRIPTS[name]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*tables, *figures, "summary.md", "store", "store_posterior"]
    )
    assert "Across the posterior: parameter uncertainty" in (out / "summary.md").read_text()
    for table in tables:
        assert len(pd.read_csv(out / table)) > 0
    for figure in figures:
        assert (out / figure).read_bytes()[:8] == PNG
    summary = (out / "summary.md").read_text()
    assert "QUICK MODE" in summary and "command:" in summary
    assert sorted(p.name for p in cwd.iterdir()) == ["result"]  # no temporary folders left behind


def test_margin_pain_compares_arms_seed_by_seed(quick):
    _, out, done = quick["margin_pain.py"]
    assert done.returncode == 0, done.stderr
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs.arm) == {"share_first", "share_first_harvest", "margin_discipline"}
    assert set(runs.world) == {"baseline", "rivals_match", "weak_network", "low_switching", "all_harsh", "posterior"}
    fixed = runs[runs.world != "posterior"]
    assert fixed.groupby(["world", "arm"]).seed.apply(sorted).map(tuple).nunique() == 1  # same seeds everywhere
    worlds = pd.read_csv(out / "worlds.csv")
    assert worlds.p_higher_npv.between(0, 1).all()
    # In the first quarters the aggressive path is worth less than discipline: the pain.
    base = runs[runs.world == "baseline"].set_index(["arm", "seed"])
    assert (base.loc["share_first"].npv_bn < base.loc["margin_discipline"].npv_bn).all()
    # The quick run goes past the harvest quarter, so the harvest arm is a different path.
    harvest, forever = base.loc["share_first_harvest"], base.loc["share_first"]
    assert (harvest.margin_last_year > forever.margin_last_year).all()
    # The posterior world: each draw runs every arm on the same seeds, and its table pairs them.
    drawn = runs[runs.world == "posterior"]
    assert drawn.groupby(["draw", "seed"]).arm.nunique().eq(3).all() and drawn.draw.nunique() == 2
    post = pd.read_csv(out / "posterior.csv").set_index(["arm", "draw"])
    paired = drawn.set_index(["arm", "draw", "seed"]).sort_index()
    for (arm, draw), row in post.iterrows():
        diff = paired.loc[(arm, draw)].value_bn - paired.loc[("margin_discipline", draw)].value_bn
        assert row.value_difference_bn == pytest.approx(diff.mean(), abs=2e-3)  # both tables keep 6 digits
    assert "Across the posterior: parameter uncertainty" in (out / "summary.md").read_text()


def test_price_war_and_capex_plans_pair_their_arms_by_posterior_draw(quick):
    """posterior.csv holds, per draw, the mean over its seeds of arm minus reference, from the same-draw runs."""
    from cloudwar.runs.store import read_sweep

    _, out, done = quick["price_war.py"]
    assert done.returncode == 0, done.stderr
    post = pd.read_csv(out / "posterior.csv")
    assert sorted(post["arm"].unique()) == ["cut", "cut_rivals_match"] and sorted(post["draw"].unique()) == [0, 1]
    runs, metrics = read_sweep(out / "store_posterior")
    after = 2 + 4  # the quick run's cut quarter + a year
    sel = metrics[(metrics.metric == "volume_share") & (metrics.provider == "Alibaba") & (metrics.quarter == after)
                  & (metrics.region == "china") & (metrics["product"] == "ai")]  # fmt: skip
    volume = sel.merge(runs[["run", "arm", "draw"]], on="run").set_index(["arm", "draw"])["value"]
    for _, row in post.iterrows():
        expected = volume[(row.arm, row.draw)] - volume[("no_cut", row.draw)]
        assert row.volume_share_after_1y == pytest.approx(expected, abs=2e-6)  # 6 digits kept
    _, out, done = quick["capex_plans.py"]
    assert done.returncode == 0, done.stderr
    post = pd.read_csv(out / "posterior.csv")
    assert set(post["plan"]) == {"0.5x", "1x", "1.5x"} and set(post["playbook"]) == {
        "share_first",
        "share_first_harvest",
    }
    assert len(post) == 3 * 2 * 2  # plans x playbooks x draws


def test_a_second_run_replaces_the_first(tmp_path):
    out = tmp_path / "pw"
    assert script("price_war.py", "--quick", "--seeds", "2", "--out", str(out), cwd=tmp_path).returncode == 0
    first = pd.read_csv(out / "runs.csv")
    again = script("price_war.py", "--quick", "--seeds", "1", "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(pd.read_csv(out / "runs.csv")) == len(first) // 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pw"]


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("margin_pain.py", ["--seeds", "0"]),
        ("margin_pain.py", ["--seed", "x"]),
        ("margin_pain.py", ["--nonsense"]),
        ("price_war.py", ["--cut", "2"]),
        ("price_war.py", ["--cutter", "Nobody"]),
        ("price_war.py", ["--region", "mars"]),
        ("price_war.py", ["--at-quarter", "50"]),
        ("capex_plans.py", ["--enterprises", "-5"]),
        ("capex_plans.py", ["--workers", "zero"]),
    ],
)
def test_bad_arguments_give_one_line_and_write_nothing(tmp_path, name, bad):
    done = script(name, *bad, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr  # as in the cloudwar command
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "o").exists()


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("keep me")
    done = script("capex_plans.py", "--quick", "--out", str(target), cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert target.read_text() == "keep me"


def test_other_files_in_out_are_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "summary.md").write_text("an older summary")
    done = script("price_war.py", "--quick", "--seeds", "1", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "notes.txt").read_text() == "my notes"
    assert "QUICK MODE" in (out / "summary.md").read_text()  # its own files are replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


@pytest.mark.parametrize("name", ["price_war.py", "collusion.py"])
def test_out_below_a_file_is_refused_before_anything_runs(tmp_path, name):
    (tmp_path / "file").write_text("keep me")
    done = script(name, "--quick", "--out", str(tmp_path / "file" / "sub"), cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "is a file" in done.stderr and "runs in" not in done.stderr


@pytest.mark.parametrize("firms", ["1", "5"])
def test_collusion_refuses_firm_counts_it_cannot_run(tmp_path, firms):
    done = script("collusion.py", "--quick", "--firms", firms, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "o").exists()


def test_margin_pain_resumes_after_a_kill_and_gives_the_uninterrupted_output(quick, tmp_path):
    """Kill -9 after the first runs are stored; the same command again runs only the missing runs."""
    from cloudwar.runs.store import read_sweep

    _, reference, done = quick["margin_pain.py"]
    assert done.returncode == 0, done.stderr
    out = tmp_path / "result"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    command = [sys.executable, str(ROOT / "experiments" / "margin_pain.py"), "--quick", "--out", str(out)]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not list((out / "store" / "runs").glob("part-*.parquet")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no batch finished in time"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    saved = len(read_sweep(out / "store")[0])
    assert 1 <= saved < 45
    assert not (out / "runs.csv").exists()  # the outputs appear only when everything is done
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    ran = re.search(r"ran (\d+) of 45 runs \((\d+) already done\)", again.stderr)
    assert ran and (int(ran[1]), int(ran[2])) == (45 - saved, saved), again.stderr
    for table in SCRIPTS["margin_pain.py"][0]:
        pd.testing.assert_frame_equal(pd.read_csv(out / table), pd.read_csv(reference / table))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]  # no temporary folders left behind

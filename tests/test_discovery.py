"""Scenario discovery (experiments/scenario_discovery.py, cloudwar.runs.discovery): Latin hypercube + PRIM.

The sample is a Latin hypercube from the seed, the rivals' matching leaves the scenario be at 0,
PRIM (ema-workbench, real) finds a planted box, its coverage and density agree with a recount of
the points inside, and the script at a tiny size writes boxes consistent with its points, reuses
its store for a new threshold, and refuses bad options in one line.
"""

import subprocess

import numpy as np
import pandas as pd
import pytest

from cloudwar.runs import discovery as disc
from tests.test_experiments import script as run_script

TINY = ["--seeds", "2", "--enterprises", "1500", "--quarters", "8", "--points", "6", "--workers", "1"]
RUNS = 6 * 2 * 2
UNIT = [disc.Uncertainty(n, f"x.{n}", 0.0, 1.0, "") for n in "abc"]


def script(*args: str, cwd) -> subprocess.CompletedProcess:
    """The experiment run as a user runs it (the helper the other experiment scripts' tests use)."""
    return run_script("scenario_discovery.py", *args, cwd=cwd)


def test_the_sample_is_a_latin_hypercube_from_the_seed():
    points = disc.sample(disc.UNCERTAINTIES, 20, seed=5)
    assert list(points.columns) == [u.name for u in disc.UNCERTAINTIES] and len(points) == 20
    for u in disc.UNCERTAINTIES:
        strata = np.floor((points[u.name] - u.low) / (u.high - u.low) * 20).astype(int)
        assert sorted(strata) == list(range(20)), u.name  # one point in each twentieth of every range
    pd.testing.assert_frame_equal(points, disc.sample(disc.UNCERTAINTIES, 20, seed=5))
    assert not points.equals(disc.sample(disc.UNCERTAINTIES, 20, seed=6))
    with pytest.raises(Exception, match="empty"):
        disc.sample([disc.Uncertainty("a", "x.a", 1.0, 1.0, "")], 5, 0)


def test_rivals_match_zero_leaves_the_rivals_as_the_scenario_has_them():
    rivals = disc.rival_matches("Alibaba")
    assert rivals["Tencent"] == 1.0 and rivals["AWS"] == 0.0 and "Alibaba" not in rivals
    match = [u for u in disc.UNCERTAINTIES if u.key == disc.RIVALS_MATCH]
    at_zero = disc.point_overrides({disc.RIVALS_MATCH: 0.0}, match, rivals)
    assert at_zero == {f"providers.{name}.strategy.match": own for name, own in rivals.items()}
    partly = disc.point_overrides({disc.RIVALS_MATCH: 0.4}, match, rivals)
    assert partly["providers.Tencent.strategy.match"] == 1.0 and partly["providers.AWS.strategy.match"] == 0.4
    arms = disc.discovery_arms(
        disc.sample(disc.UNCERTAINTIES, 3, 0), disc.UNCERTAINTIES, {"x": {"kind": "share_first"}, "y": {}}
    )
    assert [labels for labels, _ in arms][:2] == [{"draw": 0, "arm": "x"}, {"draw": 0, "arm": "y"}]
    assert arms[0][1]["choice.network_weight"] == arms[1][1]["choice.network_weight"]  # paired per point


def test_prim_finds_a_planted_box_and_its_statistics_recount():
    x = disc.sample(UNIT, 400, seed=3)
    pays = ((x.a > 0.6) & (x.b < 0.5)).to_numpy() | ((x.a < 0.15) & (x.c > 0.7)).to_numpy()
    result = disc.prim_boxes(x, pays)
    boxes = result.boxes
    first = boxes[boxes["box"] == 1].set_index("uncertainty")
    assert first.loc["a", "low"] == pytest.approx(0.6, abs=0.05) and first.loc["a", "restricted"]
    assert first.loc["b", "high"] == pytest.approx(0.5, abs=0.05) and first.loc["b", "restricted"]
    assert not first.loc["c", "restricted"]
    stats = boxes.drop_duplicates("box").set_index("box")
    assert stats[["coverage", "density", "mass"]].stack().between(0, 1).all()
    assert stats.loc[1, "density"] >= 0.8  # the kept box meets min_density
    again = disc.recount(x, pays, boxes).set_index("box")
    for column in ("coverage", "density", "mass", "points", "pays"):
        np.testing.assert_allclose(again[column], stats[column], rtol=1e-12)
    for number in stats.index:
        assert (result.membership == number).sum() == stats.loc[number, "points"]
    assert stats["coverage"].sum() <= 1 + 1e-12  # boxes hold disjoint points


def test_prim_with_nothing_to_separate_finds_no_box():
    x = disc.sample(UNIT, 30, seed=1)
    result = disc.prim_boxes(x, np.zeros(30, dtype=bool))
    assert result.boxes.empty and (result.membership == 0).all() and "0 of 30" in result.note


def check_boxes_against_points(out):
    points = pd.read_csv(out / "points.csv")
    boxes = pd.read_csv(out / "boxes.csv")
    names = [u.name for u in disc.UNCERTAINTIES]
    if len(boxes):
        stats = boxes.drop_duplicates("box").set_index("box")
        assert stats[["coverage", "density", "mass"]].stack().between(0, 1).all()
        again = disc.recount(points[names], points["pays"].to_numpy(), boxes).set_index("box")
        for column in ("coverage", "density", "mass", "points", "pays"):
            np.testing.assert_allclose(again[column], stats[column], rtol=1e-9)
        assert (points.groupby("box").size().drop(0, errors="ignore") == stats["points"]).all()
    return points, boxes


def test_tiny_run_then_a_new_threshold_reuses_the_runs(tmp_path):
    out = tmp_path / "result"
    done = script(*TINY, "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"ran {RUNS} of {RUNS} runs" in done.stderr
    names = ["points.csv", "boxes.csv", "trajectories.csv", "prim.png", "summary.md", "store"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert (out / "prim.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points, _ = check_boxes_against_points(out)
    assert len(points) == 6 and (points["seeds"] == 2).all()
    assert (points["pays"] == (points["enterprise_value_difference"] > 0)).all()
    assert points["enterprise_value_p_positive"].between(0, 1).all()
    # A threshold between the points' differences: some pay and some do not, so PRIM has a box to find.
    middle = float(np.median(points["enterprise_value_difference"])) / 1e9
    again = script(*TINY, "--threshold", f"{middle:.9f}", "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"all {RUNS} runs were already done" in again.stderr, again.stderr
    points2, boxes2 = check_boxes_against_points(out)
    assert 0 < points2["pays"].sum() < len(points2) and len(boxes2) > 0
    pd.testing.assert_frame_equal(points2.drop(columns=["pays", "box"]), points.drop(columns=["pays", "box"]))
    assert "| 1 |" in (out / "summary.md").read_text()


@pytest.mark.parametrize(
    "bad",
    [["--points", "2"], ["--harvest-quarter", "1"], ["--min-density", "0"], ["--threshold", "nan"], ["--boxes", "0"]],
)
def test_bad_options_give_one_line_and_write_nothing(tmp_path, bad):
    done = script(*bad, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "scenario_discovery.py: error:" in done.stderr, done.stderr
    assert not (tmp_path / "o").exists()

"""Attribution (experiments/attribution.py, cloudwar.runs.attribution): the 2^4 factorial of Alibaba's levers.

Real runs at a tiny size (1,500 enterprises, 8 quarters, 2 seeds): the corners are the strategies
they say (all off is margin discipline to the bit), the effects rebuild the corner means exactly,
the CSVs follow from the runs, a partial store resumes to the same CSVs, bad options are one line.
"""

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from cloudwar.runs import attribution as attr
from tests.test_experiments import script as run_script

TINY = ["--seeds", "2", "--enterprises", "1500", "--quarters", "8", "--harvest-quarter", "5", "--also-harvest", "3",
        "--posterior", "2", "--posterior-seeds", "1"]  # fmt: skip
RUNS = 13 * 2  # 12 distinct corner strategies + 1 extra harvest arm, 2 seeds
TABLES = ("attribution.csv", "corners.csv", "runs.csv")


def script(*args: str, cwd) -> subprocess.CompletedProcess:
    """The experiment run as a user runs it (the helper the other experiment scripts' tests use)."""
    return run_script("attribution.py", *args, cwd=cwd)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("attribution")
    out = cwd / "result"
    done = script(*TINY, "--workers", "1", "--out", str(out), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return cwd, out, done


def results(strategy: dict, seed: int = 7) -> pd.DataFrame:
    from cloudwar import CloudMarket

    market = CloudMarket(
        "baseline", rng=seed, overrides={"enterprises": 1500, "quarters": 6, "providers.Alibaba.strategy": strategy}
    )
    market.run()
    return market.results()


@pytest.mark.parametrize("spend", [0.0, attr.ECOSYSTEM_SPEND])
def test_share_first_with_every_lever_off_is_margin_discipline_to_the_bit(spend):
    """Why the all-off corner may be written as margin_discipline: share_first says the same thing."""
    discipline = results({"kind": "margin_discipline", "ecosystem_spend": spend})
    levers_off = results({"kind": "share_first", "harvest_quarter": 1, "plan_quarters": 0, "ecosystem_spend": spend})
    assert discipline.drop(columns="value").equals(levers_off.drop(columns="value"))
    assert np.array_equal(discipline["value"].to_numpy(), levers_off["value"].to_numpy(), equal_nan=True)
    share_first = results({"kind": "share_first", "ecosystem_spend": spend})  # and the check can fail
    assert not np.array_equal(discipline["value"].to_numpy(), share_first["value"].to_numpy(), equal_nan=True)


def test_corners_are_the_strategies_the_design_says():
    table, arms = attr.corner_arms(13, [3])
    assert len(table) == 16 and len({c.name for c in table}) == 16
    by_name = {c.name: c for c in table}
    assert by_name["none"].strategy == {"kind": "margin_discipline"}
    assert by_name["ecosystem"].strategy == {"kind": "margin_discipline", "ecosystem_spend": attr.ECOSYSTEM_SPEND}
    assert by_name["price_cuts+capex_plan+ecosystem"].strategy == {"kind": "share_first"}  # the shipped playbook
    assert by_name["price_cuts+capex_plan+ecosystem+harvest"].strategy == {"kind": "share_first", "harvest_quarter": 13}
    # Without price cuts the harvest changes nothing: those corners read the runs of their partner.
    for c in table:
        if c.corner["harvest"] and not c.corner["price_cuts"]:
            assert c.arm == attr.corner_name({**c.corner, "harvest": 0})
        else:
            assert c.arm == c.name
    names = [labels["arm"] for labels, _ in arms]
    assert len(names) == 13 and names[-1] == "all@harvest_3" and len(set(names)) == 13
    assert arms[-1][1] == {"providers.Alibaba.strategy": {"kind": "share_first", "harvest_quarter": 3}}


def test_factorial_effects_of_a_known_response():
    """y = 5 + 4a + 6 b c + noise: main effect of a is 4, of b and c 3, b:c 3, every other effect 0."""
    rng = np.random.default_rng(1)
    levers = ["a", "b", "c"]
    rows = []
    for seed in range(6):
        noise = rng.normal(0, 1)  # common to a seed's corners: paired differences cancel it
        for corner in attr.corners(levers):
            a, b, c = corner["a"], corner["b"], corner["c"]
            rows.append({**corner, "seed": seed, "y": 5 + 4 * a + 6 * b * c + noise})
    all_effects = attr.factorial_effects(pd.DataFrame(rows), levers)
    effects = all_effects[all_effects["kind"].isin(["main", "interaction"])].set_index("effect")
    expected = {"a": 4, "b": 3, "c": 3, "a:b": 0, "a:c": 0, "b:c": 3, "a:b:c": 0}
    for name, value in expected.items():
        assert effects.loc[name, "estimate"] == pytest.approx(value, abs=1e-12)
        assert effects.loc[name, "high"] - effects.loc[name, "low"] == pytest.approx(0, abs=1e-9)  # paired: no spread
    alone = all_effects[all_effects["kind"] == "alone"]["estimate"]
    assert list(alone) == pytest.approx([4, 0, 0])  # b alone (c off) and c alone (b off) do nothing
    with pytest.raises(Exception, match="each of the 8 corners once per seed"):
        attr.factorial_effects(pd.DataFrame(rows).iloc[1:], levers)


def test_tiny_run_writes_tables_figure_and_summary(tiny):
    _, out, done = tiny
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*TABLES, "posterior.csv", "attribution.png", "summary.md", "store", "store_posterior"]
    )
    assert (out / "attribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"ran {RUNS} of {RUNS} runs" in done.stderr
    effects = pd.read_csv(out / "attribution.csv")
    outcomes = [o.name for o in attr.outcomes()]
    assert set(effects["outcome"]) == set(outcomes)
    assert {"npv", "enterprise_value", "china_ai_revenue_share", "china_ai_customer_share"} <= set(outcomes)
    counts = effects[effects["outcome"] == "npv"]["kind"].value_counts().to_dict()
    assert counts == {"mean": 1, "main": 4, "interaction": 11, "alone": 4, "dropped": 4, "contrast": 5}
    assert (effects["seeds"] == 2).all()
    assert ((effects["low"] <= effects["estimate"]) & (effects["estimate"] <= effects["high"])).all()
    corners = pd.read_csv(out / "corners.csv")
    assert len(corners) == 17 and corners["in_factorial"].sum() == 16
    strategy = json.loads(corners.set_index("corner").loc["ecosystem", "strategy"])
    assert strategy == {"kind": "margin_discipline", "ecosystem_spend": attr.ECOSYSTEM_SPEND}
    assert "discipline keeping the ecosystem spend" in (out / "summary.md").read_text()


def test_effects_rebuild_every_corner_mean_and_follow_from_the_runs(tiny):
    _, out, _ = tiny
    runs = pd.read_csv(out / "runs.csv")
    outcomes = [o.name for o in attr.outcomes()]
    effects = attr.factorial_effects(runs, attr.LEVERS, outcomes)
    means = runs.groupby("corner")[outcomes].mean()
    for corner in attr.corners():
        for outcome in outcomes:
            mean = means.loc[attr.corner_name(corner), outcome]
            assert attr.reconstruct(effects, corner, outcome) == pytest.approx(mean, rel=1e-12, abs=1e-12)
    written = pd.read_csv(out / "attribution.csv")
    written = written[written["kind"] != "contrast"].reset_index(drop=True)
    for column in ("estimate", "low", "high"):
        np.testing.assert_allclose(written[column], effects[column], rtol=1e-8, atol=1e-9)
    # The main effect is the mean over the other levers' corners of on - off, by hand.
    on = runs[runs["ecosystem"] == 1].sort_values([*attr.LEVERS, "seed"])
    off = runs[runs["ecosystem"] == 0].sort_values([*attr.LEVERS, "seed"])
    by_hand = on["npv"].to_numpy() - off["npv"].to_numpy()
    main = effects[(effects["kind"] == "main") & (effects["effect"] == "ecosystem") & (effects["outcome"] == "npv")]
    assert main["estimate"].iloc[0] == pytest.approx(by_hand.mean(), rel=1e-12)
    # The counterfactual that keeps the ecosystem spend is a corner: its contrast is that corner's effect alone.
    contrast = pd.read_csv(out / "attribution.csv").set_index(["kind", "effect", "outcome"])["estimate"]
    assert contrast[("contrast", "discipline keeping the ecosystem spend vs margin_discipline", "npv")] == (
        pytest.approx(contrast[("alone", "ecosystem", "npv")], rel=1e-9)
    )


def test_resume_after_a_partial_store_gives_identical_csvs(tiny, tmp_path):
    _, reference, _ = tiny
    out = tmp_path / "result"
    shutil.copytree(reference, out)
    for table in TABLES:
        (out / table).unlink()
    parts = sorted((out / "store" / "runs").glob("part-*.parquet"))[:3]
    for part in parts:
        part.unlink()
        (out / "store" / "metrics" / part.name).unlink()
    done = script(*TINY, "--workers", "1", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ran = re.search(rf"ran (\d+) of {RUNS} runs \((\d+) already done\)", done.stderr)
    assert ran and 0 < int(ran[1]) < RUNS and int(ran[1]) + int(ran[2]) == RUNS, done.stderr
    for table in TABLES:
        assert (out / table).read_bytes() == (reference / table).read_bytes(), table


@pytest.mark.parametrize(
    "bad",
    [
        ["--harvest-quarter", "1"],
        ["--harvest-quarter", "9", "--quarters", "8"],
        ["--also-harvest", "13"],
        ["--also-harvest", "x"],
        ["--seeds", "0"],
    ],
)
def test_bad_options_give_one_line_and_write_nothing(tmp_path, bad):
    done = script(*bad, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "attribution.py: error:" in done.stderr, done.stderr
    assert not (tmp_path / "o").exists()


def test_effects_across_the_posterior_are_each_draws_paired_differences(tiny):
    """posterior.csv: every effect for each of the 2 draws; an effect alone is that draw's corner minus
    margin discipline's, from the posterior store's runs (1 seed each)."""
    from cloudwar.runs.store import read_sweep

    _, out, done = tiny
    assert done.returncode == 0, done.stderr
    per_draw = pd.read_csv(out / "posterior.csv")
    assert sorted(per_draw["draw"].unique()) == [0, 1]
    runs, metrics = read_sweep(out / "store_posterior")
    last = metrics[
        (metrics.metric == "npv") & (metrics.provider == "Alibaba") & (metrics.quarter == metrics.quarter.max())
    ]
    npv = last.merge(runs[["run", "arm", "draw"]], on="run").set_index(["draw", "arm"])["value"]
    for d in (0, 1):
        row = per_draw[(per_draw.draw == d) & (per_draw.kind == "alone") & (per_draw.effect == "ecosystem")
                       & (per_draw.outcome == "npv")]  # fmt: skip
        assert row["estimate"].iloc[0] == pytest.approx(npv[(d, "ecosystem")] - npv[(d, "none")], rel=1e-9)
    assert "Across the posterior: parameter uncertainty (2 draws x 1 seeds)" in (out / "summary.md").read_text()

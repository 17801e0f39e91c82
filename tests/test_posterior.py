"""Calibration as inference (cloudwar.runs.posterior, ``cloudwar calibrate``) and the shipped posterior.

The algorithm is checked against a posterior known in closed form (normal means under flat priors),
the machinery for reproducibility (same seed, same posterior on one worker, two workers or a Dask
cluster; killed and resumed, the same), the command for its errors, and the shipped posterior for
what it claims: it was made by the command it records, and its particles fit history better than
the prior does with the model as it is now.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from cloudwar.cli.main import main
from cloudwar.errors import SweepError
from cloudwar.runs import posterior as post
from tests.dask_cluster import loopback_dask_cluster

TINY = ["--set", "enterprises=300", "--set", "oracle_sample=200", "--population", "12", "--generations", "2"]


# --------------------------------------------------------------------------------------------
# The algorithm on a posterior known in closed form
# --------------------------------------------------------------------------------------------
TRUE_MEANS = np.array([1.3, -0.7])
NOBS = np.array([20, 50])  # observations per mean (sigma 1): posterior sd 1/sqrt(n)
PRIOR = (-5.0, 5.0)  # flat prior on each mean


def _observed() -> np.ndarray:
    rng = np.random.default_rng(12345)
    return np.array([rng.normal(m, 1.0, n).mean() for m, n in zip(TRUE_MEANS, NOBS, strict=True)])


def _normal_means_simulator(observed: np.ndarray):
    """Simulated sample means of NOBS draws at each particle's means; the distance is Euclidean.

    The sample mean is sufficient, so the ABC posterior tends to the exact one as epsilon -> 0."""

    def simulate(z: np.ndarray, generation: int) -> tuple[np.ndarray, np.ndarray]:
        theta = PRIOR[0] + z * (PRIOR[1] - PRIOR[0])
        rng = np.random.default_rng([99, generation])
        means = theta + rng.standard_normal(theta.shape) / np.sqrt(NOBS)
        return np.sqrt((((means - observed) / (1 / np.sqrt(NOBS))) ** 2).sum(axis=1)), means

    return simulate


def _moments(gen: post.Generation) -> tuple[np.ndarray, np.ndarray]:
    theta = PRIOR[0] + gen.kept_z * (PRIOR[1] - PRIOR[0])
    w = gen.kept_weight / gen.kept_weight.sum()
    mean = w @ theta
    sd = np.sqrt(w @ (theta - mean) ** 2)
    return mean, sd


def test_apmc_recovers_the_normal_means_posterior():
    """Flat prior, normal likelihood: the posterior is N(sample mean, 1/n). After 40 generations the
    tolerance is about half a posterior sd, which widens the ABC posterior by under 5%; the weighted
    mean must be within 4 Monte Carlo standard errors (sd / sqrt(ESS)) of the exact mean, and the sd
    within 15% of the exact sd (5% from the tolerance, the rest two standard errors of an sd
    estimated from an ESS over 100: 1 / sqrt(2 x 100) = 7%)."""
    observed = _observed()
    gens = post.apmc(_normal_means_simulator(observed), 2, population=2000, keep=0.5, min_acceptance=0.02,
                     generations=40, seed=2)  # fmt: skip
    last = gens[-1]
    mean, sd = _moments(last)
    exact_sd = 1.0 / np.sqrt(NOBS)
    ess = last.ess
    assert ess > 100, f"ESS {ess:.0f}"
    assert last.epsilon < 0.6  # in posterior sds (the distance is standardised)
    assert np.all(np.abs(mean - observed) < 4 * exact_sd / math.sqrt(ess)), (mean, observed)
    assert np.all(np.abs(sd / exact_sd - 1.0) < 0.15), (sd, exact_sd)
    assert gens[0].epsilon > 5 * last.epsilon  # the generations did tighten the tolerance
    # the prior's sd is 10/sqrt(12) = 2.9; the posterior's a tenth of that or less
    assert np.all(sd < 0.1 * (PRIOR[1] - PRIOR[0]) / math.sqrt(12))


def test_apmc_stops_when_few_new_particles_are_accepted():
    gens = post.apmc(_normal_means_simulator(_observed()), 2, population=400, keep=0.5, min_acceptance=0.2,
                     generations=40, seed=1)  # fmt: skip
    assert len(gens) < 40
    assert gens[-1].acceptance <= 0.2 < min(g.acceptance for g in gens[1:-1])


def test_apmc_resumes_from_its_folder_to_the_same_result(tmp_path):
    """Three generations, then a call for six continues from the saved three; a generation interrupted
    half-way is redone; the result is the same as six generations in one go."""
    simulate = _normal_means_simulator(_observed())
    kwargs = {"population": 200, "keep": 0.5, "min_acceptance": 0.0, "seed": 5}
    straight = post.apmc(simulate, 2, generations=6, folder=tmp_path / "straight", **kwargs)

    post.apmc(simulate, 2, generations=3, folder=tmp_path / "resumed", **kwargs)
    assert len(list((tmp_path / "resumed").glob("gen_*.npz"))) == 3
    calls = []

    def dies_in_generation_4(z, t):
        calls.append(t)
        if t == 4:
            raise KeyboardInterrupt
        return simulate(z, t)

    with pytest.raises(KeyboardInterrupt):
        post.apmc(dies_in_generation_4, 2, generations=6, folder=tmp_path / "resumed", **kwargs)
    assert calls == [3, 4]  # generations 0-2 were not run again
    resumed = post.apmc(simulate, 2, generations=6, folder=tmp_path / "resumed", **kwargs)
    assert len(resumed) == len(straight) == 6
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_array_equal(a.kept_z, b.kept_z)
        np.testing.assert_array_equal(a.kept_weight, b.kept_weight)
        assert a.epsilon == b.epsilon


def test_kernel_mixture_density_integrates_to_one():
    """The importance weights rest on the mixture density: on a grid over a wide box it integrates to 1."""
    rng = np.random.default_rng(0)
    z = rng.random((5, 2)) * 0.2 + 0.4
    w = rng.random(5) + 0.1
    cov = post._kernel(z, w)
    grid = np.linspace(-1.0, 2.0, 301)
    xx, yy = np.meshgrid(grid, grid)
    dens = post._mixture_density(np.column_stack([xx.ravel(), yy.ravel()]), z, w, cov)
    assert dens.sum() * (grid[1] - grid[0]) ** 2 == pytest.approx(1.0, abs=1e-3)


# --------------------------------------------------------------------------------------------
# Priors, targets, distance
# --------------------------------------------------------------------------------------------
def test_priors_map_the_unit_cube_onto_their_ranges_and_back():
    z = np.linspace(0.0, 1.0, 11)
    for prior in post.PRIORS:
        v = prior.value(z)
        assert v[0] == pytest.approx(prior.low) and v[-1] == pytest.approx(prior.high)
        np.testing.assert_allclose(prior.unit(v), z, atol=1e-12)
        assert prior.reason and prior.mode in ("value", "scale", "shift")


def test_overrides_apply_value_scale_and_shift_to_the_scenario_own_values():
    from cloudwar.scenario import load_scenario, read_scenario_toml

    full = post.full_scenario(read_scenario_toml("history"))
    values = {p.name: float(p.value(0.25)) for p in post.PRIORS}
    got = post.overrides_for(values, post.PRIORS, full)
    hist = load_scenario("history")
    assert got["products.cloud.demand_growth"] == pytest.approx(values["cloud_growth_scale"] *
                                                                hist.products["cloud"].demand_growth, abs=1e-6)  # fmt: skip
    alibaba = next(p for p in hist.providers if p.name == "Alibaba")
    assert got["providers.Alibaba.quality.ai.china"] == pytest.approx(
        alibaba.quality["ai"]["china"] + values["alibaba_ai_quality"], abs=1e-6
    )
    assert got["enterprise.switching_cost"] == pytest.approx(values["switching_cost"], abs=1e-6)
    moved = load_scenario("history", got)  # every override is a valid scenario value
    assert moved.enterprise.switching_cost == pytest.approx(values["switching_cost"], abs=1e-6)
    transfer = post.overrides_for(values, post.PRIORS, full, transfer_only=True)
    assert set(transfer) == {p.key for p in post.PRIORS if p.transfers}


def test_targets_are_history_points_the_run_covers_with_their_tolerances():
    from cloudwar.runs.backtest import read_history

    history = read_history()
    ts = post.targets("2023Q3", 9, history)
    names = {t.series for t in ts}
    assert not names & set(post.EXCLUDED)
    by = {(t.series, t.period): t for t in ts}
    aws = by[("synergy_share_aws_pct", "2023Q4")]
    assert aws.actual == 31.0 and aws.tolerance == post.TOLERANCES["share"][aws.confidence]
    capex = by[("alibaba_ai_cloud_capex_trailing4q_rmb_bn", "2025Q3")]
    assert capex.tolerance == pytest.approx(0.055 * 120.0)
    # growth in quarter 1 is never a target; 2023Q4's only where history.csv has the base year
    assert ("alibaba_cloud_revenue_yoy_pct", "2023Q3") not in by
    assert all(t.period not in ("2023Q1", "2023Q2", "2025Q4") for t in ts)


def test_distance_weights_each_series_once():
    ts = [post.Target("a", "2024Q1", 10.0, 2.0, "share", "high"), post.Target("a", "2024Q2", 10.0, 2.0, "share", "high"),
          post.Target("b", "2024Q1", 5.0, 1.0, "share", "high")]  # fmt: skip
    values = np.array([[12.0, 14.0, 5.0], [10.0, 10.0, np.nan]])
    d = post.distance(values, ts)
    # series a: mean of 1^2 and 2^2 = 2.5; series b: 0 -> sqrt((2.5 + 0) / 2)
    assert d[0] == pytest.approx(math.sqrt(1.25))
    assert d[1] == pytest.approx(math.sqrt(post.MISSING_ERROR**2 / 2))


# --------------------------------------------------------------------------------------------
# The command: reproducible on any executor, resumable after a kill, clear errors
# --------------------------------------------------------------------------------------------
def _posterior(out) -> pd.DataFrame:
    return pd.read_csv(out / "posterior.csv")


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    out = tmp_path_factory.mktemp("calibrate") / "one"
    assert main(["calibrate", *TINY, "--workers", "1", "--out", str(out)]) == 0
    return out


def test_calibrate_writes_the_posterior_its_diagnostics_and_figure(one_worker):
    out = one_worker
    table = _posterior(out)
    assert list(table.columns) == [p.name for p in post.PRIORS] + ["weight", "distance"]
    assert len(table) == 6 and table["weight"].sum() == pytest.approx(1.0)
    for p in post.PRIORS:
        assert table[p.name].between(p.low - 1e-9, p.high + 1e-9).all()
    params = pd.read_csv(out / "parameters.csv")
    assert list(params["parameter"]) == [p.name for p in post.PRIORS]
    fit = pd.read_csv(out / "fit.csv")
    assert len(fit) == len(post.targets("2023Q3", 9)) and fit["posterior_median"].notna().mean() > 0.9
    gens = pd.read_csv(out / "generations.csv")
    assert list(gens["runs"]) == [12, 6]
    assert gens["epsilon"].iloc[1] <= gens["epsilon"].iloc[0]  # kept old particles bound it
    assert (out / "posterior.png").stat().st_size > 10_000
    assert table["distance"].max() == pytest.approx(gens["epsilon"].iloc[-1])


def test_calibrate_is_the_same_on_two_workers_and_on_dask(one_worker, tmp_path):
    two = tmp_path / "two"
    assert main(["calibrate", *TINY, "--workers", "2", "--out", str(two)]) == 0
    pd.testing.assert_frame_equal(_posterior(one_worker), _posterior(two))
    (tmp_path / "dask").mkdir()
    with loopback_dask_cluster(tmp_path / "dask", worker_commands=2) as cluster:
        on_dask = tmp_path / "dask_out"
        assert main(["calibrate", *TINY, "--scheduler", cluster.address, "--out", str(on_dask)]) == 0
    pd.testing.assert_frame_equal(_posterior(one_worker), _posterior(on_dask))
    again = main(["calibrate", *TINY, "--workers", "2", "--out", str(two)])  # finished: nothing runs again
    assert again == 0
    pd.testing.assert_frame_equal(_posterior(one_worker), _posterior(two))


def test_calibrate_killed_keeps_its_runs_and_resumes_to_the_same_posterior(one_worker, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "cloudwar.cli.main", "calibrate", *TINY, "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((out / "runs" / "gen_000" / "metrics").glob("*.parquet")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, "the calibration ended before it was killed: make it longer"
    assert "run the same command to continue" in err and "Traceback" not in err
    assert not (out / "posterior.csv").exists()
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    pd.testing.assert_frame_equal(_posterior(one_worker), _posterior(out))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--population", "3"], "population must be a whole number of at least 4"),
        (["--keep", "1.5"], "--keep"),
        (["--keep", "0"], "keep must be above 0"),
        (["--set", "enterprises=-5"], "enterprises"),
        (["--scenario", "no_such_scenario"], "no_such_scenario"),
    ],
)
def test_calibrate_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    try:
        code = main(["calibrate", *TINY, *args, "--out", str(out)])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (out / "posterior.csv").exists()


def test_calibrate_refuses_a_folder_of_another_calibration_and_leaves_it(one_worker, tmp_path, capsys):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(one_worker, out)
    before = (out / "posterior.csv").read_bytes()
    assert main(["calibrate", *TINY, "--seed", "9", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds another calibration (seed differ)" in err
    assert (out / "posterior.csv").read_bytes() == before


# --------------------------------------------------------------------------------------------
# The shipped posterior
# --------------------------------------------------------------------------------------------
def test_shipped_posterior_is_a_weighted_sample_inside_the_priors():
    shipped = post.load_posterior()
    table = shipped.table
    assert table["weight"].sum() == pytest.approx(1.0, abs=1e-9)
    for p in post.PRIORS:
        assert table[p.name].between(p.low - 1e-6, p.high + 1e-6).all(), p.name
    meta = json.loads(post.shipped_path().with_name(post.SHIPPED_META).read_text())
    assert meta["command"].startswith("cloudwar calibrate") and meta["runs"] > 1000
    assert meta["wall_seconds"] < 3600  # the bar: under an hour on the 2-core machine
    assert meta["enterprises"] == 10_000  # fitted at the size the experiments use
    # parameter uncertainty left: every transferring parameter's posterior is narrower than its prior
    params = pd.DataFrame(meta["parameters"])
    assert (params.loc[params["transfers"], "sd_ratio"] < 1.0).sum() >= 4


def test_shipped_posterior_draws_transfer_only_behaviour_to_the_baseline():
    shipped = post.load_posterior()
    draws = shipped.draws(40, seed=2)
    assert len(draws) == 40 and list(draws["draw"]) == list(range(40))
    pd.testing.assert_frame_equal(draws, shipped.draws(40, seed=2))
    over = shipped.overrides(3, "baseline", seed=2, match_start=False)
    keys = {p.key for p in post.PRIORS if p.transfers}
    assert all(set(o) == keys for o in over)
    own = shipped.overrides(2, "history", seed=2, match_start=False)
    assert set(own[0]) == {p.key for p in post.PRIORS}


def test_matched_draws_start_where_the_calibrated_point_starts():
    """A draw moves the baseline's expected starting shares (by several points for some); with the
    qualities matched, every market's shares are back within 0.3% (relative) of the point's."""
    from cloudwar.model.market import CloudMarket
    from cloudwar.scenario import apply_overrides, load_scenario, parse_scenario, read_scenario_toml

    shipped = post.load_posterior()
    raw = apply_overrides(read_scenario_toml("baseline"), {"enterprises": 3000})
    point = post.starting_shares(CloudMarket(parse_scenario(raw), rng=0))
    plain = shipped.overrides(2, "baseline", seed=5, fixed={"enterprises": 3000}, match_start=False)
    matched = shipped.overrides(2, "baseline", seed=5, fixed={"enterprises": 3000})
    moved = []
    for p, m in zip(plain, matched, strict=True):
        assert set(m) == set(p) | {f"providers.{q.name}.quality" for q in load_scenario("baseline").providers}
        before = post.starting_shares(CloudMarket(parse_scenario(apply_overrides(raw, p)), rng=0))
        after = post.starting_shares(CloudMarket(parse_scenario(apply_overrides(raw, m)), rng=0))
        big = point > 1e-3
        moved.append(np.abs(before[big] / point[big] - 1).max())
        np.testing.assert_allclose(after[big], point[big], rtol=3e-3)
    assert max(moved) > 0.05  # matching had something to do


def test_shipped_posterior_still_fits_history_better_than_the_prior(tmp_path):
    """Six posterior draws and six prior draws, run now at the calibration's size: the posterior's
    median distance to history is below the prior's (the shipped file is not stale)."""
    from cloudwar.runs.backtest import metric_triples, read_history
    from cloudwar.runs.design import plan_design
    from cloudwar.runs.runner import run_design
    from cloudwar.runs.store import read_sweep
    from cloudwar.scenario import parse_scenario

    shipped = post.load_posterior()
    over_post = shipped.overrides(6, "history", seed=4)
    full = post.full_scenario(plan_design("history").scenario)
    rng = np.random.default_rng(4)
    over_prior = [post.overrides_for({p.name: float(p.value(rng.random())) for p in post.PRIORS}, post.PRIORS, full)
                  for _ in range(6)]  # fmt: skip
    series = post.calibration_series()
    design = plan_design("history", ["which"], [(i,) for i in range(12)], overrides=over_post + over_prior,
                         metrics=metric_triples(series), seed=4)  # fmt: skip
    run_design(design, tmp_path / "store", workers=2)
    _, metrics = read_sweep(tmp_path / "store")
    scenario = parse_scenario(design.scenario)
    ts = post.targets(scenario.start, scenario.quarters)
    d = post.distance(post.model_values(metrics, 12, scenario, ts, read_history()), ts)
    assert np.median(d[:6]) < np.median(d[6:]), d


def test_load_posterior_rejects_a_bad_file(tmp_path):
    bad = tmp_path / "posterior.csv"
    bad.write_text("network_weight,weight\n0.5,1\n")
    with pytest.raises(SweepError, match="missing columns"):
        post.load_posterior(bad)
    with pytest.raises(SweepError, match="cannot be read"):
        post.load_posterior(tmp_path / "none.csv")


def test_compare_across_the_posterior_pairs_by_draw_and_seed(tmp_path):
    """``compare(..., posterior=K)``: the same K draws in every arm (an arm's own keys not drawn), K x
    seeds runs per arm, and the difference is the mean of per-draw mean paired differences, with the
    5-95% quantiles across draws as its interval."""
    from cloudwar.runs.compare import ARMS, Arm, arm_results, compare, plan_arms

    small = {"enterprises": 800, "oracle_sample": 300, "quarters": 6}
    arms = [Arm("base", "baseline"), Arm("sc", "baseline", {"enterprise.switching_cost": 1.0})]
    designs = plan_arms(arms, 2, 3, small, posterior=2)
    for d in range(2):
        a, b = (design.overrides[d] for design in designs)
        assert a["choice.network_weight"] == b["choice.network_weight"]  # the same draw in both arms
        assert b["enterprise.switching_cost"] == 1.0 and a["enterprise.switching_cost"] != 1.0
    result = compare(arms, tmp_path, seeds=2, seed=3, fixed=small, posterior=2, workers=2)
    runs = {arm.name: arm_results(tmp_path / ARMS / arm.name) for arm in arms}
    for table in runs.values():
        assert sorted(table.groupby(["draw", "replicate"]).size().index) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    row = result.differences.query("arm == 'sc' and provider == 'Alibaba' and metric == 'npv'").iloc[0]
    npv = {
        name: t[(t.metric == "npv") & (t.provider == "Alibaba") & (t.quarter == 6) & (t.region == "all")]
        .set_index(["draw", "replicate"])["value"]
        .sort_index()
        for name, t in runs.items()
    }
    per_draw = (npv["sc"] - npv["base"]).groupby(level="draw").mean()
    assert row["draws"] == 2 and row["seeds"] == 2 and "posterior" in row["interval"]
    assert row["difference"] == pytest.approx(per_draw.mean(), rel=1e-9)
    assert row["low"] == pytest.approx(np.percentile(per_draw, 5), rel=1e-9)
    assert row["high"] == pytest.approx(np.percentile(per_draw, 95), rel=1e-9)
    assert (tmp_path / "compare.png").stat().st_size > 10_000

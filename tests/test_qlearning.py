"""Tabular Q-learning pricing (Calvano et al., AER 2020): construction, determinism, reproduction."""

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cloudwar import theory
from cloudwar.runs.design import run_seed
from cloudwar.runs.sessions import SessionDesign, read_sessions, run_sessions, session_seeds
from cloudwar.strategies.learning import (
    QLearningConfig,
    SessionResults,
    TabularQLearner,
    game_tables,
    greedy_cycle,
    initial_q_values,
    price_grid,
    q_update,
    simulate_sessions,
    state_actions,
    state_index,
)

ROOT = Path(__file__).resolve().parents[1]
#: Fast but qualitatively similar setting (NOT the paper's): quicker exploration decay, short window.
FAST = dict(beta=2e-4, convergence_window=2_000, max_periods=200_000)


def _assert_same(a: SessionResults, b: SessionResults) -> None:
    for name in ("seed", "converged", "periods", "cycle_length", "prices", "profits", "delta"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    if a.q is not None or b.q is not None:
        np.testing.assert_array_equal(a.q, b.q)


# --------------------------------------------------------------------------- construction


def test_price_grid_matches_paper_construction():
    tables = game_tables(QLearningConfig())
    p_n, p_m = 1.4729266, 1.9249809
    spread = p_m - p_n
    grid = tables.grid
    assert grid.shape == (15,)
    assert grid[0] == pytest.approx(p_n - 0.1 * spread, abs=1e-6)  # 1.42772
    assert grid[-1] == pytest.approx(p_m + 0.1 * spread, abs=1e-6)  # 1.97018
    np.testing.assert_allclose(np.diff(grid), 1.2 * spread / 14, atol=1e-7)
    np.testing.assert_allclose(price_grid(1.0, 2.0, 5, 0.5), [0.5, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(tables.nash_price, [1.47293] * 2, atol=5e-6)
    np.testing.assert_allclose(tables.monopoly_profit, [0.33749] * 2, atol=5e-6)


def test_state_index_encodes_last_prices_of_all_firms():
    m = 15
    assert state_index(np.array([3, 7]), m) == 3 * 15 + 7
    states = np.arange(m**3)
    np.testing.assert_array_equal(state_index(state_actions(states, m, 3), m), states)
    tables = game_tables(QLearningConfig())
    # profit table row s = profits at the joint action s
    a = np.array([2, 11])
    expected = theory.profits(tables.grid[a], np.full(2, 2.0), 1.0, 0.0, 0.25)
    np.testing.assert_allclose(tables.profit[state_index(a, m)], expected)


@pytest.mark.parametrize("n_firms, n_prices", [(2, 15), (3, 4)])
def test_initial_q_is_discounted_payoff_against_uniform_rivals(n_firms, n_prices):
    config = QLearningConfig(game=theory.calvano_baseline(n_firms), n_prices=n_prices)
    tables = game_tables(config)
    m, delta = n_prices, config.delta
    for i in range(n_firms):
        for a in range(m):
            total = 0.0
            for joint in itertools.product(range(m), repeat=n_firms):
                if joint[i] == a:
                    total += tables.profit[state_index(np.array(joint), m), i]
            assert tables.initial_q[i, a] == pytest.approx(total / ((1 - delta) * m ** (n_firms - 1)), rel=1e-12)
    np.testing.assert_allclose(tables.initial_q, initial_q_values(tables.profit, m, delta))
    learner = TabularQLearner.for_firm(config, 0, tables)
    assert learner.q.shape == (m**n_firms, m)
    np.testing.assert_array_equal(learner.q, np.broadcast_to(tables.initial_q[0], learner.q.shape))
    # the simulator starts from the same table
    out = simulate_sessions(QLearningConfig(game=config.game, n_prices=m, max_periods=1, beta=0.0), [5], record_q=True)
    changed = np.argwhere(out.q[0] != tables.initial_q[None, :, None, :][0])
    assert len(changed) <= n_firms  # only one cell per firm was updated in one period


def test_q_update_hand_worked_example():
    # Q = 1.0, profit 0.3, max next Q = 2.0: 1 + 0.15 * (0.3 + 0.95 * 2 - 1) = 1.18
    assert q_update(1.0, 0.3, 2.0, 0.15, 0.95) == pytest.approx(1.18, abs=1e-15)
    learner = TabularQLearner(3, 2, alpha=0.15, delta=0.95, beta=0.0)
    learner.q[:] = [[1.0, 0.5], [0.0, 0.0], [2.0, -1.0]]
    learner.learn(state=0, action=0, reward=0.3, next_state=2)
    np.testing.assert_allclose(learner.q, [[1.18, 0.5], [0.0, 0.0], [2.0, -1.0]], atol=1e-15)
    assert learner.t == 1
    # self-loop uses the value before the update: 0.5 + 0.15 * (1 + 0.95 * 1.18 - 0.5)
    learner.learn(state=0, action=1, reward=1.0, next_state=0)
    assert learner.q[0, 1] == pytest.approx(0.5 + 0.15 * (1 + 0.95 * 1.18 - 0.5), abs=1e-15)


def test_learner_exploration_schedule_and_greedy_action():
    learner = TabularQLearner(2, 4, beta=1e-3, initial_q=np.array([0.0, 3.0, 1.0, 3.0]))
    assert learner.epsilon == 1.0
    learner.t = 1000
    assert learner.epsilon == pytest.approx(np.exp(-1.0))
    assert learner.greedy(0) == 1  # lowest index on ties
    learner.t = 10**9  # epsilon ~ 0: always greedy
    rng = np.random.default_rng(0)
    assert {learner.act(1, rng) for _ in range(50)} == {1}
    learner.t = 0  # epsilon = 1: uniform over actions
    assert {learner.act(1, rng) for _ in range(400)} == {0, 1, 2, 3}


def test_greedy_cycle_follows_strategies_until_a_state_repeats():
    m = 3
    greedy = np.zeros((2, m * m), dtype=int)
    # from (0,0) play (1,2); from (1,2) play (2,2); from (2,2) play (1,2): cycle (1,2) <-> (2,2)
    greedy[:, state_index(np.array([0, 0]), m)] = [1, 2]
    greedy[:, state_index(np.array([1, 2]), m)] = [2, 2]
    greedy[:, state_index(np.array([2, 2]), m)] = [1, 2]
    cycle = greedy_cycle(greedy, state_index(np.array([0, 0]), m), m)
    np.testing.assert_array_equal(state_actions(cycle, m, 2), [[1, 2], [2, 2]])


# --------------------------------------------------------------------------- simulator


def test_vectorised_simulator_matches_per_firm_learners_bit_for_bit():
    config = QLearningConfig(beta=1e-3, convergence_window=10**9, max_periods=2_000)
    tables = game_tables(config)
    seeds = [11, 12]
    batch = simulate_sessions(config, seeds, record_q=True)
    m = config.n_prices
    for k, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        learners = [TabularQLearner.for_firm(config, i, tables) for i in range(2)]
        state = int(state_index((rng.random(2) * m).astype(int), m))
        for _ in range(config.max_periods):
            actions = [learner.act(state, rng) for learner in learners]
            next_state = int(state_index(np.array(actions), m))
            for i, learner in enumerate(learners):
                learner.learn(state, actions[i], tables.profit[next_state, i], next_state)
            state = next_state
        for i in range(2):
            np.testing.assert_array_equal(learners[i].q, batch.q[k, i])


def test_same_seed_gives_identical_results_independent_of_batching():
    config = QLearningConfig(**FAST)
    a = run_sessions(config, 6, 42, record_q=True)
    b = run_sessions(config, 6, 42, record_q=True)
    _assert_same(a, b)
    # the one seed rule of every engine of many runs: session k of master seed 42 is replicate k
    assert a.seed.tolist() == [run_seed(42, k) for k in range(6)] == session_seeds(42, 6).tolist()
    assert a.converged.all()
    assert len(set(a.periods.tolist())) > 1  # sessions converge at different times (exercises masking)
    # split into uneven batches, and in another order
    parts = [
        simulate_sessions(config, a.seed[:1], record_q=True),
        simulate_sessions(config, a.seed[1:], record_q=True),
    ]
    _assert_same(a, SessionResults.concatenate(parts))
    reverse = simulate_sessions(config, a.seed[::-1], record_q=True)
    order = np.arange(6)[::-1]
    np.testing.assert_array_equal(reverse.delta[order], a.delta)
    np.testing.assert_array_equal(reverse.q[order], a.q)
    # another master seed gives other results
    c = run_sessions(config, 6, 43)
    assert not np.array_equal(a.delta, c.delta)


def test_results_do_not_depend_on_number_of_processes():
    config = QLearningConfig(**FAST)
    one = run_sessions(config, 5, 7, workers=1)
    two = run_sessions(config, 5, 7, workers=2)
    _assert_same(one, two)


def test_sessions_in_a_store_resume_and_equal_the_in_memory_run(tmp_path):
    from cloudwar.runs.runner import run_design

    config = QLearningConfig(**FAST)
    design = SessionDesign(config, 6, 7)
    first = run_design(design, tmp_path, workers=1, batch_size=2)
    assert (first.ran, first.already_done) == (6, 0)
    parts = sorted((tmp_path / "runs").glob("part-*.parquet"))
    assert len(parts) == 3
    parts[1].unlink()  # as a kill would leave it: one batch never finished
    again = run_design(design, tmp_path, workers=2, batch_size=2)
    assert (again.ran, again.already_done) == (2, 4)
    _assert_same(read_sessions(tmp_path, design), run_sessions(config, 6, 7))


def test_sessions_hitting_the_cap_are_reported_unconverged():
    config = QLearningConfig(beta=2e-4, convergence_window=2_000, max_periods=3_000)
    out = run_sessions(config, 3, 1)
    assert not out.converged.any()
    np.testing.assert_array_equal(out.periods, 3_000)
    assert np.all(np.isfinite(out.delta)) and np.all(out.cycle_length >= 1)


def test_three_firms_run_and_converge():
    config = QLearningConfig(game=theory.calvano_baseline(3), n_prices=5, **FAST)
    out = run_sessions(config, 3, 3)
    assert out.prices.shape == (3, 3)
    assert out.converged.all()
    tables = game_tables(config)
    assert np.all((out.prices >= tables.grid[0]) & (out.prices <= tables.grid[-1]))


def test_moderate_run_learns_prices_above_nash():
    """24 sessions with faster exploration decay than the paper (beta=2e-5, 20,000-period window)."""
    config = QLearningConfig(beta=2e-5, convergence_window=20_000)
    tables = game_tables(config)
    out = run_sessions(config, 24, 2024)
    p_n, p_m = tables.nash_price[0], tables.monopoly_price[0]
    assert out.converged.all()
    assert out.prices.mean() > p_n + 0.25 * (p_m - p_n)
    assert np.mean(out.prices.mean(axis=1) > p_n) >= 0.9
    assert out.delta.mean() > 0.5


@pytest.mark.slow
def test_paper_baseline_reproduces_average_profit_gain():
    """The reproduction at the paper's settings: mean Delta of 50 sessions in [0.80, 0.90].

    Sessions are the first 50 of ``experiments/collusion.py``'s default run (same master seed;
    session k is seeded run_seed(seed, k) whatever the count). Over its 100 sessions one
    session's Delta has a standard deviation of 0.096, so the mean of 50 has a standard error of
    0.0135: the band (the paper's 0.85 +- 0.05) is 3.7 standard errors either side of the paper's
    value, and the 50-session mean (0.865; 0.872 over 100) lies 2.6 of them below its top, 4.8 above
    its bottom. About 45 s on 2 processes of 2 idle cores (the 100 sessions took 82 s).
    """
    start = time.perf_counter()
    out = run_sessions(QLearningConfig(), 50, 20200101, workers=2)
    elapsed = time.perf_counter() - start
    assert out.converged.all(), f"{(~out.converged).sum()} sessions hit the cap"
    assert 0.80 <= out.delta.mean() <= 0.90, f"mean Delta {out.delta.mean():.4f} (took {elapsed:.0f} s)"
    assert 1_000_000 < out.periods.mean() < 3_000_000


# --------------------------------------------------------------------------- experiment script


def _script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "collusion.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_quick_mode_writes_csv_png_and_summary(tmp_path):
    out = tmp_path / "collusion"
    result = _script("--quick", "--sessions", "4", "--seed", "5", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = (out / "sessions.csv").read_text().strip().splitlines()
    assert rows[0].split(",")[:4] == ["session", "seed", "converged", "periods"]
    assert "delta" in rows[0] and len(rows) == 5
    assert (out / "prices.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    assert "NOT the paper setting" in summary and "mean profit gain Delta" in summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collusion"]  # no temp dirs left behind
    # a second run replaces the first atomically
    again = _script("--quick", "--sessions", "2", "--seed", "5", "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len((out / "sessions.csv").read_text().strip().splitlines()) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collusion"]


@pytest.mark.parametrize("bad", [["--sessions", "0"], ["--seed", "x"], ["--nonsense"], ["--sessions", "-3"]])
def test_bad_arguments_give_one_line_error(tmp_path, bad):
    result = _script(*bad, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()

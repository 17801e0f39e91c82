"""Reproduce Calvano, Calzolari, Denicolo & Pastorello (AER 2020): Q-learning pricing agents collude.

Runs independent sessions of two (or more) tabular Q-learning firms in the paper's logit Bertrand
game and reports the average profit gain Delta = (profit - Nash) / (monopoly - Nash); the paper
finds about 0.85 in its baseline.

Usage::

    PYTHONPATH=src python experiments/collusion.py                   # paper baseline, 100 sessions
    PYTHONPATH=src python experiments/collusion.py --quick           # seconds; NOT the paper setting

Writes, atomically, into ``--out`` (default ``out/collusion``): ``sessions.csv`` (one row per
session), ``prices.png`` and ``summary.md``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from _common import (
    STORE,
    Parser,
    add_output_options,
    check_out,
    execute,
    main,
    output_folder,
    positive_int,
    ran_on,
    seed,
)

#: Quick mode: much faster exploration decay and a short convergence window. Not the paper setting.
QUICK = {"beta": 2e-4, "convergence_window": 2_000, "max_periods": 200_000, "sessions": 8}
#: The paper reports an average profit gain of about 0.85; we call [0.80, 0.90] a reproduction.
PAPER_DELTA = 0.85
REPRODUCTION_RANGE = (0.80, 0.90)
#: Largest state space (15 prices ^ firms) a session may have: its Q-tables take firms x states x 15
#: x 8 bytes (4 firms: 24 MB a session), the same cap as the q_learning strategy's.
MAX_STATES = 100_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = Parser(prog="collusion.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=positive_int, default=None, help="sessions to run (default 100)")
    parser.add_argument("--seed", type=seed, default=20200101, help="master seed (default 20200101)")
    parser.add_argument("--firms", type=positive_int, default=2, help="number of firms (default 2)")
    parser.add_argument(
        "--max-periods",
        type=positive_int,
        default=None,
        help="cap on periods per session (default 5,000,000)",
    )
    add_output_options(parser, "collusion")
    args = parser.parse_args(argv)
    if args.sessions is None:
        args.sessions = QUICK["sessions"] if args.quick else 100
    if args.workers is None and not args.scheduler:
        args.workers = 1 if args.quick else 2
    if args.firms < 2:
        parser.error("--firms must be at least 2 (with one firm the Nash and monopoly prices coincide)")
    states = 15**args.firms
    if states > MAX_STATES:
        parser.error(
            f"--firms {args.firms}: 15^{args.firms} = {states:,} states per firm is too many (at most {MAX_STATES:,})"
        )
    check_out(args.out)
    return args


def _write_csv(path: Path, results, n_firms: int) -> None:
    header = ["session", "seed", "converged", "periods", "cycle_length"]
    header += [f"price_{i + 1}" for i in range(n_firms)] + [f"profit_{i + 1}" for i in range(n_firms)]
    header += ["delta"]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for k in range(results.seed.size):
            writer.writerow(
                [k, int(results.seed[k]), bool(results.converged[k]), int(results.periods[k])]
                + [int(results.cycle_length[k])]
                + [f"{x:.6f}" for x in results.prices[k]]
                + [f"{x:.6f}" for x in results.profits[k]]
                + [f"{results.delta[k]:.6f}"]
            )


def _plot(path: Path, results, tables, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_sessions, n_firms = results.prices.shape
    fig, (ax, hist) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [2.2, 1]})
    order = np.argsort(results.prices.mean(axis=1))
    x = np.arange(1, n_sessions + 1)
    markers = "os^vD"
    for i in range(n_firms):
        ax.scatter(x, results.prices[order, i], s=14, marker=markers[i % 5], alpha=0.75, label=f"firm {i + 1}")
    p_n, p_m = float(tables.nash_price.mean()), float(tables.monopoly_price.mean())
    ax.axhline(p_n, color="tab:red", ls="--", label=f"one-shot Nash price {p_n:.3f}")
    ax.axhline(p_m, color="tab:green", ls="--", label=f"joint-profit (monopoly) price {p_m:.3f}")
    ax.axhspan(tables.grid[0], tables.grid[-1], color="0.92", zorder=0, label="range of the 15-price grid")
    ax.set_xlabel("session (sorted by average learned price)")
    ax.set_ylabel("learned price, averaged over the greedy cycle\n(price units; marginal cost = 1)")
    ax.set_title("Prices learned by Q-learning firms")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(tables.grid[0] - 0.03, tables.grid[-1] + 0.12)

    hist.hist(results.delta, bins=20, color="tab:blue", alpha=0.8)
    hist.axvline(0, color="tab:red", ls="--", label="Nash (0)")
    hist.axvline(1, color="tab:green", ls="--", label="monopoly (1)")
    hist.axvline(results.delta.mean(), color="k", label=f"mean {results.delta.mean():.3f}")
    hist.set_xlabel("profit gain Delta\n(0 = Nash profit, 1 = monopoly profit)")
    hist.set_ylabel("sessions")
    hist.set_title("Profit gain per session")
    hist.legend(fontsize=8, loc="upper left")
    fig.suptitle(label, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _summary(results, tables, config, args, runtime: float, label: str, command: str) -> str:
    from cloudwar.strategies.learning import mean_confidence_interval

    mean, low, high = mean_confidence_interval(results.delta)
    converged = results.converged
    conv_periods = results.periods[converged]
    lo, hi = REPRODUCTION_RANGE
    verdict = "within" if lo <= mean <= hi else "OUTSIDE"
    lines = [
        "# Calvano et al. (2020) reproduction: Q-learning pricing",
        "",
        f"**{label}**",
        "",
        f"- command: `{command}`",
        f"- sessions: {results.seed.size}, firms: {config.n_firms}, master seed: {args.seed}, on {ran_on(args)}",
        f"- settings: m={config.n_prices} prices, xi={config.xi}, alpha={config.alpha}, "
        f"delta={config.delta}, "
        f"beta={config.beta:g}, convergence window={config.convergence_window:,} periods, "
        f"cap={config.max_periods:,} periods",
        f"- Nash price {tables.nash_price.mean():.5f}, monopoly price {tables.monopoly_price.mean():.5f} "
        f"(price units); Nash profit {tables.nash_profit.mean():.5f}, "
        f"monopoly profit {tables.monopoly_profit.mean():.5f} (per firm per period)",
        "",
        "| result | value |",
        "|---|---|",
        f"| mean profit gain Delta | {mean:.4f} |",
        f"| 95% confidence interval (t) | [{low:.4f}, {high:.4f}] |",
        f"| median Delta (min, max) | {np.median(results.delta):.4f} "
        f"({results.delta.min():.4f}, {results.delta.max():.4f}) |",
        f"| mean learned price (price units) | {results.prices.mean():.5f} |",
        f"| share of sessions converged | {converged.mean():.3f} ({converged.sum()}/{converged.size}) |",
        f"| sessions that hit the period cap | {int((~converged).sum())} |",
        f"| mean periods to convergence (converged sessions) | "
        f"{(conv_periods.mean() if conv_periods.size else float('nan')):,.0f} |",
        f"| max periods | {results.periods.max():,} |",
        f"| share of sessions ending in a fixed price (cycle length 1) | {(results.cycle_length == 1).mean():.3f} |",
        f"| runtime | {runtime:.1f} s |",
        "",
        f"Paper: average Delta about {PAPER_DELTA}. "
        + (
            "Quick mode does not use the paper's settings, so no comparison applies."
            if args.quick
            else f"This run's mean is {verdict} the reproduction range [{lo:.2f}, {hi:.2f}]."
        ),
        "",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace, command: str) -> Path:
    """Run the experiment described by ``args`` and publish the outputs; returns the output dir."""
    from cloudwar import theory
    from cloudwar.runs.sessions import SessionDesign, read_sessions
    from cloudwar.strategies.learning import QLearningConfig, game_tables

    settings = {}
    if args.quick:
        settings = {k: QUICK[k] for k in ("beta", "convergence_window", "max_periods")}
    if args.max_periods is not None:
        settings["max_periods"] = args.max_periods
    config = QLearningConfig(game=theory.calvano_baseline(args.firms), **settings)
    paper = not args.quick and args.firms == 2 and config.max_periods >= 5_000_000
    label = (
        "Paper baseline setting (Calvano et al. 2020)"
        if paper
        else "QUICK MODE: NOT the paper setting (fast exploration decay, short convergence window)"
        if args.quick
        else "Modified setting (see settings below)"
    )
    tables = game_tables(config)

    design = SessionDesign(config, args.sessions, args.seed)
    start = time.perf_counter()
    execute(args, design, "collusion.py")
    runtime = time.perf_counter() - start
    results = read_sessions(args.out / STORE, design)
    with output_folder(args.out) as tmp:
        _write_csv(tmp / "sessions.csv", results, config.n_firms)
        _plot(tmp / "prices.png", results, tables, label)
        summary = _summary(results, tables, config, args, runtime, label, command)
        (tmp / "summary.md").write_text(summary)
    print(summary)
    return args.out


if __name__ == "__main__":
    sys.exit(main("collusion.py", parse_args, run))

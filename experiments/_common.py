"""Shared plumbing of the experiment scripts: arguments, errors, many runs through the runs layer.

Every script in ``experiments/`` answers one question with the model and writes CSV tables, PNG
figures and a short ``summary.md`` into one output folder. They share:

* the command line's parser and argument types (:mod:`cloudwar.cli.common`): one-line errors,
  exit status 2 for every user error, 130 on Ctrl-C, 143 on SIGTERM (:func:`main`);
* :func:`add_run_options`: seeds, size, ``--workers``/``--scheduler`` (a local pool or Dask), output, quick mode;
* :func:`run_arms`: the arms x worlds as a design of the runs layer (:mod:`cloudwar.runs`), seeded
  by its one seed rule, run into a resumable store folder ``OUT/store`` (re-running the same
  command after a kill runs only the missing runs; another command replaces the store);
* :func:`output_folder` (:mod:`cloudwar.runs.output`): the tables and figures are written beside
  ``--out`` and moved in only when all are written; other files of ``--out`` are left alone;
* small helpers for the figures and the finance (:func:`band`, :func:`terminal_value`).

Import it as ``from _common import ...``: the scripts run as ``python experiments/<name>.py``,
which puts this folder on ``sys.path``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cloudwar.cli.common import RUN_OPTIONS, Parser, guard, interrupted, positive_int, saved_runs
from cloudwar.cli.common import seed_int as seed
from cloudwar.cli.sweep import add_executor_arguments
from cloudwar.errors import SweepError
from cloudwar.plots import band  # noqa: F401  (re-exported: one band for every figure)
from cloudwar.runs.output import check_out_folder, output_folder

ROOT = Path(__file__).resolve().parents[1]
STORE = "store"  # the runs of an experiment, inside its --out (resumable)
POSTERIOR_STORE = "store_posterior"  # the runs of its posterior world, beside it
POSTERIOR = {"posterior": 20, "posterior_seeds": 2}  # draws x seeds of an experiment's posterior runs
QUICK_POSTERIOR = {"posterior": 2, "posterior_seeds": 1}
OPTIONS = {**RUN_OPTIONS, "sessions": "--sessions"}
__all__ = ["Parser", "output_folder", "positive_int", "seed"]


# --------------------------------------------------------------------------------------------
# Arguments and errors
# --------------------------------------------------------------------------------------------
def check_out(out: Path) -> None:
    """Refuse, before anything runs, an ``--out`` that cannot become a folder (the check ``cloudwar run`` makes)."""
    check_out_folder(out)


def add_run_options(parser: argparse.ArgumentParser, name: str, seeds: int, quarters: str) -> None:
    """The options every multi-seed experiment shares: seeds, size, executor, output, quick mode."""
    parser.add_argument("--seeds", type=positive_int, default=None, help=f"seeds per arm (default {seeds})")
    parser.add_argument("--seed", type=seed, default=1, help="master seed; run seeds derive from it (default 1)")
    parser.add_argument("--enterprises", type=positive_int, default=None, help="enterprises (default 10,000)")
    parser.add_argument("--quarters", type=positive_int, default=None, help=f"quarters (default {quarters})")
    add_output_options(parser, name)


def add_output_options(parser: argparse.ArgumentParser, name: str) -> None:
    """Executor (``--workers``, ``--scheduler``, ``--timeout``), ``--out`` and ``--quick``."""
    add_executor_arguments(parser, default_workers="2; 1 with --quick")
    parser.add_argument("--out", type=Path, default=Path(f"out/{name}"), help="output directory")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run: NOT a result")


def fill_run_defaults(args: argparse.Namespace, quick: dict[str, Any], full: dict[str, Any]) -> None:
    """Fill the options left unset from the quick or the full defaults; 2 workers (1 when quick), none on Dask."""
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.workers is None and not args.scheduler:
        args.workers = 1 if args.quick else 2


def parse_run_args(
    script: str,
    doc: str,
    name: str,
    seeds: int,
    quick: dict[str, Any],
    argv: Sequence[str] | None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options of a multi-seed experiment, filled and checked; ``extra(parser)`` adds its own."""
    parser = Parser(prog=script, description=doc.split("\n\n")[0])
    if extra is not None:
        extra(parser)
    add_run_options(parser, name, seeds=seeds, quarters="the scenario's 40")
    args = parser.parse_args(argv)
    fill_run_defaults(args, quick, {"seeds": seeds, "enterprises": 10_000, "quarters": None})
    check_out(args.out)
    return args


def fixed_values(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario values every run of an experiment shares: its size and, if given, its length."""
    fixed: dict[str, Any] = {"enterprises": args.enterprises}
    if args.quarters is not None:
        fixed["quarters"] = args.quarters
    return fixed


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that reproduces this run, for the summary."""
    import shlex

    args = sys.argv[1:] if argv is None else list(argv)
    return f"python experiments/{script} {shlex.join(args)}".strip()


def main(
    name: str,
    parse: Callable[[Sequence[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace, str], Any],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse, then run; every user error is one line on stderr and exit status 2, as in ``cloudwar``."""

    def body() -> None:
        run(parse(argv), command_line(name, argv))

    return guard(name, body, lambda: OPTIONS)


def ran_on(args: argparse.Namespace) -> str:
    """The executor the runs used, for the summaries."""
    return f"the Dask cluster at {args.scheduler}" if args.scheduler else f"{args.workers} workers"


# --------------------------------------------------------------------------------------------
# Many runs
# --------------------------------------------------------------------------------------------
def execute(args: argparse.Namespace, design: Any, name: str, store_name: str = STORE) -> Any:
    """Run ``design`` into ``OUT/STORE_NAME`` on the executor the options name; the report (also on stderr)."""
    from cloudwar.runs.runner import run_design

    store = Path(args.out) / store_name
    try:
        report = run_design(
            design,
            store,
            workers=args.workers,
            scheduler=args.scheduler,
            connect_timeout=args.timeout,
            progress=sys.stderr.isatty(),
            replace=True,  # another command's runs are replaced, not refused: --out is this experiment's
            description=name,
        )
    except KeyboardInterrupt as err:
        raise SystemExit(interrupted(err, name, saved_runs(store, design.n_runs))) from None
    for line in [*report.repaired, *report.problems(store)]:
        print(f"{name}: warning: {line}", file=sys.stderr)
    print(f"{name}: {report.describe(store)}", file=sys.stderr)
    if report.missing:
        raise SweepError(f"{report.missing} runs did not finish; run the same command again")
    return report


def run_arms(
    args: argparse.Namespace,
    name: str,
    arms: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    keep: Sequence[tuple[str, str, str]],
    fixed: dict[str, Any],
    seeds: int | None = None,
    store: str = STORE,
) -> pd.DataFrame:
    """Every arm (labels, scenario overrides) x ``seeds`` (default ``args.seeds``) seeds of the baseline,
    through the runs layer, into ``OUT/STORE``.

    Returns the kept metrics as one tidy table with the label columns and the run's model seed
    (``seed``, the same in every arm: common random numbers), in the order of the arms.
    """
    from cloudwar.runs.design import plan_design
    from cloudwar.runs.store import read_sweep

    labels = list(arms[0][0])
    design = plan_design(
        "baseline",
        labels,
        [tuple(label[k] for k in labels) for label, _ in arms],
        overrides=[overrides for _, overrides in arms],
        seeds=args.seeds if seeds is None else seeds,
        seed=args.seed,
        fixed=fixed,
        metrics=keep,
        design={"experiment": name},
    )
    execute(args, design, name, store)
    runs, metrics = read_sweep(Path(args.out) / store)
    failed = runs[runs["status"] != "ok"]
    if len(failed):
        first = failed.iloc[0]
        raise SweepError(f"{len(failed)} runs ended with an error, e.g. run {first['run']}: {first['error']}")
    table = metrics.merge(runs[["run", *labels, "seed"]], on="run", how="left", sort=False)
    return table.drop(columns=["run", "calendar"], errors="ignore")  # quarters are steps here; figures label them


# --------------------------------------------------------------------------------------------
# Across the posterior: the same arms on parameter sets drawn from the shipped posterior
# --------------------------------------------------------------------------------------------
def add_posterior_options(parser: argparse.ArgumentParser, draws: int, seeds: int) -> None:
    """``--posterior K`` (draws; 0: none) and ``--posterior-seeds S`` (seeds per draw)."""
    parser.add_argument(
        "--posterior",
        type=seed,
        default=None,
        help=f"draws from the shipped posterior, each running every arm (default {draws}; 0: none)",
    )
    parser.add_argument("--posterior-seeds", type=positive_int, default=None, help=f"seeds per draw (default {seeds})")


def fill_posterior_defaults(args: argparse.Namespace, quick: dict[str, int], full: dict[str, int]) -> None:
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def run_posterior_arms(
    args: argparse.Namespace,
    name: str,
    arms: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    keep: Sequence[tuple[str, str, str]],
    fixed: dict[str, Any],
) -> pd.DataFrame:
    """Every arm on ``args.posterior`` draws from the shipped posterior x ``args.posterior_seeds`` seeds,
    paired by draw and seed, into ``OUT/store_posterior``; the tidy table with a ``draw`` column.

    Each draw's overrides come first and the arm's own win; each draw's qualities are refitted so the
    baseline starts where its calibrated point does (:meth:`cloudwar.runs.posterior.Posterior.overrides`).
    """
    from cloudwar.runs.posterior import load_posterior

    draws = load_posterior().overrides(args.posterior, "baseline", seed=args.seed, fixed=fixed)
    drawn = [
        ({**labels, "draw": d}, {**draw, **overrides}) for d, draw in enumerate(draws) for labels, overrides in arms
    ]
    return run_arms(args, name, drawn, keep, fixed, args.posterior_seeds, POSTERIOR_STORE)


def per_draw_differences(
    runs: pd.DataFrame, arm: str, reference: str, columns: Sequence[str], within: Sequence[str] = ()
) -> pd.DataFrame:
    """Per draw (and ``within`` groups), each arm's mean over the draw's seeds of (arm - ``reference``), paired
    by draw and seed: one row per arm, draw and group, the ``columns`` as differences."""
    index = [*within, "draw", "seed"]
    base = runs[runs[arm] == reference].set_index(index)[list(columns)]
    rows = []
    for name in pd.unique(runs[arm]):
        if name == reference:
            continue
        mine = runs[runs[arm] == name].set_index(index)[list(columns)].reindex(base.index)
        diff = (mine - base).groupby(level=[*within, "draw"]).mean().reset_index()
        diff.insert(0, arm, name)
        rows.append(diff)
    return pd.concat(rows, ignore_index=True)


def draw_interval(values: Any, scale: float = 1.0) -> str:
    """'median (5-95%: low to high)' across posterior draws, signed (:func:`quantiles`)."""
    return quantiles(np.asarray(values, dtype=float) * scale, (5, 95), signed=True)


def series(table: pd.DataFrame, metric: str, provider: str, region: str = "all", product: str = "all") -> pd.DataFrame:
    """One metric of one provider as a wide table: one row per run (label columns + seed), quarters across."""
    sel = table[
        (table.metric == metric)
        & (table.provider == provider)
        & (table.region == region)
        & (table["product"] == product)
    ]
    labels = [c for c in sel.columns if c not in ("quarter", "provider", "region", "product", "metric", "value")]
    return sel.pivot_table(index=labels, columns="quarter", values="value", sort=False)


# --------------------------------------------------------------------------------------------
# Finance and figures
# --------------------------------------------------------------------------------------------
def terminal_value(operating_income_last_year: np.ndarray, discount_rate: float, quarters: int) -> np.ndarray:
    """Present value (USD) of the business at the horizon: :func:`cloudwar.valuation.terminal_value` with
    the scenario defaults, a no-growth pre-tax perpetuity of the last four quarters' operating income
    (0 if negative) at ``discount_rate``, discounted from the horizon (``quarters``) to the start."""
    from cloudwar.valuation import terminal_value as value

    return np.asarray(value(operating_income_last_year, discount_rate, quarters), dtype=float)


def quantiles(values: np.ndarray, bounds: tuple[float, float] = (10, 90), signed: bool = False) -> str:
    """'median (10-90%: low to high)' of an array (other ``bounds``; ``signed``: with + signs), for the summaries."""
    low, mid, high = np.nanpercentile(values, [bounds[0], 50, bounds[1]])
    sign = "+" if signed else ""
    return f"{mid:{sign},.1f} ({low:{sign},.1f} to {high:{sign},.1f})"


def figure_path(folder: Path, name: str) -> Path:
    """Where a figure goes; the caller saves it."""
    return folder / f"{name}.png"


def matplotlib_pyplot() -> Any:
    """pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

"""``cloudwar sweep``: a grid of scenario values times seeds, through the runs layer (:mod:`cloudwar.runs`).

``cloudwar sweep --scenario baseline --grid choice.network_weight=0.2,0.5,0.8 --seeds 4 --out DIR``

Only the command line lives here (parsing ``--grid``, the options every many-runs command
shares, the report lines); planning, running and the folder are :mod:`cloudwar.runs`.
Cheap to import: the runs layer is imported inside the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloudwar.cli.common import RUN_OPTIONS, interrupted, parse_sets, positive_int, saved_runs, seconds, seed_int
from cloudwar.errors import ScenarioError, UsageError

METRICS_CHOICES = ("summary", "all")  # cloudwar.runs.design.METRICS_CHOICES, without importing it


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["key=v1,v2", ...]`` -> ``{key: [v1, v2]}``; each value is read like ``--set`` (TOML-ish)."""
    from cloudwar.runs.design import canonical_json
    from cloudwar.scenario import parse_override

    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--grid {item!r}: expected key=value1,value2,...")
        key, text = (part.strip() for part in item.split("=", 1))
        if not key:
            raise UsageError(f"--grid {item!r}: empty key")
        if key in grid:
            raise UsageError(f"--grid {key}: given twice (list all its values in one --grid)")
        texts = [t.strip() for t in split_values(text)]
        if not text.strip() or any(not t for t in texts):
            raise UsageError(f"--grid {key}: empty value in {text!r} (expected {key}=value1,value2,...)")
        try:
            values = [parse_override(f"{key}={t}")[1] for t in texts]
        except ScenarioError as err:
            raise UsageError(f"--grid {str(err).removeprefix('--set ')}") from None
        if len({canonical_json(v) for v in values}) != len(values):
            raise UsageError(f"--grid {key}: a value is listed twice in {text!r}")
        grid[key] = values
    return grid


def split_values(text: str) -> list[str]:
    """Split at the commas that separate values: not inside quotes, arrays or inline tables.

    ``'0.2,0.5'`` -> two values; ``'{kind="cost_plus", markup=0.4},{kind="cost_plus", markup=0.6}'`` -> two tables.
    """
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            if char == quote and text[i - 1] != "\\":
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``sweep`` and ``sensitivity``: the scenario, seeds, and where the runs execute."""
    parser.add_argument("--scenario", default="baseline", help="shipped scenario name or TOML file (default: baseline)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario value in every run, e.g. --set enterprises=5000 --set quarters=20",
    )
    parser.add_argument("--seeds", type=positive_int, default=1, help="replicates per point (default: 1)")
    parser.add_argument("--seed", type=seed_int, default=0, help="sweep seed; run seeds derive from it (default: 0)")
    add_executor_arguments(parser)
    parser.add_argument(
        "--batch-size", type=positive_int, help="at most this many runs per task (default: chosen from the sweep size)"
    )
    parser.add_argument(
        "--metrics",
        choices=METRICS_CHOICES,
        default="summary",
        help="summary: world rows of every quarter + all rows of the final quarter; all: everything",
    )
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )
    parser.add_argument("--out", required=True, help="folder for the results (resumed if it holds this sweep)")


def add_executor_arguments(parser: argparse.ArgumentParser, default_workers: str = "one per CPU") -> None:
    """``--workers``, ``--scheduler``, ``--timeout``: where runs execute (sweeps and experiments)."""
    parser.add_argument(
        "--workers",
        type=positive_int,
        help=f"local worker processes (default: {default_workers}; 1 runs in this process)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing Dask cluster, e.g. tcp://127.0.0.1:8786 (needs cloudwar[dask])",
    )
    parser.add_argument("--timeout", type=seconds, default=10.0, help="seconds to wait for the Dask scheduler")


def show_progress(args: argparse.Namespace) -> bool:
    return args.progress if args.progress is not None else sys.stderr.isatty()


def report_problems(report: Any, out: str | Path) -> int:
    """Print the report's warnings (repaired parts, failed or missing runs); the exit status."""
    for line in report.repaired:
        print(f"cloudwar: warning: {line}", file=sys.stderr)
    problems = report.problems(out)
    for line in problems:
        print(f"cloudwar: warning: {line}", file=sys.stderr)
    return 1 if problems else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from cloudwar.runs.design import grid_points, plan_design
    from cloudwar.runs.runner import run_design

    grid = parse_grid(args.grid)
    design = plan_design(
        args.scenario,
        tuple(grid),
        grid_points(grid),
        seeds=args.seeds,
        seed=args.seed,
        fixed=parse_sets(args.set),
        metrics=args.metrics,
        design={"grid": grid},
    )
    try:
        report = run_design(
            design,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            batch_size=args.batch_size,
            progress=show_progress(args),
            connect_timeout=args.timeout,
            description=f"sweep {Path(args.scenario).stem}",
        )
    except KeyboardInterrupt as err:
        raise SystemExit(interrupted(err, "cloudwar", saved_runs(args.out, design.n_runs))) from None
    status = report_problems(report, args.out)
    print(report.describe(args.out))
    finished = report.already_done + report.ran
    print(f"tables: {Path(args.out) / 'runs'} ({finished} of {design.n_runs} runs), {Path(args.out) / 'metrics'}")
    return status


def register(subparsers: argparse._SubParsersAction) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="run a grid of scenario values times seeds (local pool or Dask), resumable, to Parquet",
        description="Run every combination of the --grid values times --seeds replicates. Results go to "
        "OUT/runs and OUT/metrics (Parquet), batch by batch; run the same command again to resume.",
    )
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="values of one scenario key, e.g. --grid choice.network_weight=0.2,0.5,0.8 (repeat for more keys)",
    )
    add_execution_arguments(sweep)
    sweep.set_defaults(func=cmd_sweep, options={**RUN_OPTIONS, "parameters": "--grid", "points": "--grid"})

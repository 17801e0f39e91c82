"""``cloudwar sensitivity``: the command line of :func:`cloudwar.runs.sensitivity.sensitivity`.

``cloudwar sensitivity --method sobol --param choice.network_weight=0:1 --param enterprise.switching_cost=0:1
--output revenue_share,provider=Alibaba --out DIR``

Cheap to import: the analysis is imported inside the command.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from cloudwar.cli.common import RUN_OPTIONS, interrupted, parse_sets, positive_int, saved_runs
from cloudwar.cli.sweep import add_execution_arguments, report_problems, show_progress
from cloudwar.errors import UsageError

METHODS = ("sobol", "morris")  # cloudwar.runs.sensitivity.METHODS, without importing it


def parse_param(text: str) -> Any:
    """``key=low:high`` -> :class:`~cloudwar.runs.sensitivity.Parameter` (one-line error if malformed or empty)."""
    from cloudwar.runs.sensitivity import make_parameter
    from cloudwar.scenario import parse_override

    if "=" not in text or ":" not in text.split("=", 1)[1]:
        raise UsageError(f"--param {text!r}: expected key=low:high, e.g. choice.network_weight=0:1")
    key, bounds = (part.strip() for part in text.split("=", 1))
    values = []
    for bound in (part.strip() for part in bounds.split(":", 1)):
        value = parse_override(f"{key}={bound}")[1] if bound else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise UsageError(f"--param {key}: bounds must be numbers, got {bounds!r}")
        values.append(value)
    return make_parameter(key, *values)


def cmd_sensitivity(args: argparse.Namespace) -> int:
    import pandas as pd

    from cloudwar.runs.sensitivity import sensitivity

    if not args.param:
        raise UsageError("--param: give at least one key=low:high")
    parameters = [parse_param(text) for text in args.param]
    planned: list[Any] = []

    def announce(line: str, design: Any) -> None:
        planned.append(design)
        print(line, file=sys.stderr)

    try:
        result = sensitivity(
            args.scenario,
            parameters,
            args.output,
            out=args.out,
            method=args.method,
            samples=args.samples,
            seeds=args.seeds,
            seed=args.seed,
            fixed=parse_sets(args.set),
            metrics=args.metrics,
            second_order=args.second_order,
            levels=args.levels,
            workers=args.workers,
            scheduler=args.scheduler,
            batch_size=args.batch_size,
            progress=show_progress(args),
            connect_timeout=args.timeout,
            announce=announce,
        )
    except KeyboardInterrupt as err:
        raise SystemExit(
            interrupted(err, "cloudwar", saved_runs(args.out, planned[0].n_runs if planned else 0))
        ) from None
    print(result.report.describe(args.out), file=sys.stderr)
    status = report_problems(result.report, args.out)
    for line in result.warnings:
        print(f"cloudwar: warning: --{line}", file=sys.stderr)
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.float_format", "{:.4f}".format):
        print(result.indices.to_string(index=False))
    print(f"wrote {Path(args.out) / 'indices.csv'}, {Path(args.out) / 'sensitivity.png'}")
    return status


def register(subparsers: argparse._SubParsersAction) -> None:
    sens = subparsers.add_parser(
        "sensitivity",
        help="Sobol or Morris global sensitivity of a metric to scenario keys (SALib), on the sweep machinery",
        description="Sample the --param box with SALib, run the points as a sweep (resumable, local pool or Dask) "
        "and write the indices of each --output to OUT/indices.csv and OUT/sensitivity.png.",
    )
    sens.add_argument("--method", choices=METHODS, default="sobol", help="sobol (variance-based) or morris (screening)")
    sens.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=LOW:HIGH",
        help="a scenario key and its range, e.g. --param choice.network_weight=0:1 (repeat for more)",
    )
    sens.add_argument(
        "--output",
        action="append",
        required=True,
        metavar="METRIC[,provider=P][,region=R][,product=K][,quarter=Q]",
        help="the number to explain, e.g. revenue_share,provider=Alibaba (default labels: all; quarter: the last)",
    )
    sens.add_argument(
        "--samples",
        type=positive_int,
        help="Sobol: base samples N, a power of 2 (default 64); Morris: trajectories (default 10)",
    )
    sens.add_argument("--second-order", action="store_true", help="Sobol: also second-order indices S2")
    sens.add_argument("--levels", type=positive_int, default=4, help="Morris: grid levels (default 4)")
    add_execution_arguments(sens)
    sens.set_defaults(func=cmd_sensitivity, options={**RUN_OPTIONS, "parameters": "--param", "points": "--param"})

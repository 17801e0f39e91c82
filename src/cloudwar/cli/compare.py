"""``cloudwar compare``: named scenarios side by side, paired by seed; and ``cloudwar run --seeds N``.

``cloudwar compare --arm base=baseline --arm 'discipline=baseline,providers.Alibaba.strategy.kind=margin_discipline'
--seeds 8 --set enterprises=5000 --out DIR``

An arm is ``NAME=SCENARIO[,KEY=VALUE...]``: a name (it names the arm's folder and its band), a
shipped scenario name or TOML file, and that arm's own overrides, read like ``--set`` (values
may hold commas inside quotes, arrays or inline tables). ``--set`` applies to every arm; an
arm's own keys win. Only the command line lives here; the work is :mod:`cloudwar.runs.compare`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cloudwar.cli.common import RUN_OPTIONS, interrupted, parse_sets, positive_int, seed_int
from cloudwar.cli.sweep import add_executor_arguments, show_progress, split_values
from cloudwar.errors import ScenarioError, UsageError

OPTIONS = {**RUN_OPTIONS, "arms": "--arm", "provider": "--provider", "posterior": "--posterior"}


def parse_arm(text: str) -> Any:
    """``NAME=SCENARIO[,KEY=VALUE...]`` -> :class:`cloudwar.runs.compare.Arm` (a one-line UsageError if malformed)."""
    from cloudwar.runs.compare import Arm
    from cloudwar.scenario import parse_override

    head, *sets = (part.strip() for part in split_values(text))
    name, _, scenario = (part.strip() for part in head.partition("="))
    if not name or not scenario:
        raise UsageError(f"--arm {text!r}: expected NAME=SCENARIO[,KEY=VALUE...], e.g. --arm base=baseline")
    overrides: dict[str, Any] = {}
    for item in sets:
        try:
            key, value = parse_override(item)
        except ScenarioError as err:
            raise UsageError(f"--arm {name}: {str(err).removeprefix('--set ')}") from None
        if key in overrides:
            raise UsageError(f"--arm {name}: {key} is given twice")
        overrides[key] = value
    return Arm(name, scenario, overrides)


def _saved(folders: list[Path]) -> str:
    from cloudwar.runs.store import Store

    saved = sum(Store(f).saved_runs() for f in folders if (f / "runs").is_dir())
    return f"{saved} runs are saved in {folders[0].parent}; run the same command again to finish"


def cmd_compare(args: argparse.Namespace) -> int:
    from cloudwar.runs.compare import ARMS, compare

    arms = [parse_arm(text) for text in args.arm]
    out = Path(args.out)
    try:
        result = compare(
            arms,
            out,
            seeds=args.seeds,
            seed=args.seed,
            fixed=parse_sets(args.set),
            provider=args.provider,
            workers=args.workers,
            scheduler=args.scheduler,
            connect_timeout=args.timeout,
            progress=show_progress(args),
            posterior=args.posterior,
        )
    except KeyboardInterrupt as err:
        raise SystemExit(interrupted(err, "cloudwar", _saved([out / ARMS / a.name for a in arms]))) from None
    for name, report in result.reports.items():
        for line in [*report.repaired, *report.problems(out / ARMS / name)]:
            print(f"cloudwar: warning: arm {name}: {line}", file=sys.stderr)
        print(f"arm {name}: {report.describe(out / ARMS / name)}")
    _print_differences(result.differences, result.provider)
    print(f"wrote {out / 'compare.csv'}, {out / 'compare.png'}; runs in {out / ARMS}")
    return 0


def _print_differences(differences: Any, provider: str) -> None:
    import pandas as pd

    shown = differences[differences["provider"] == provider].copy()
    money = shown["unit"] == "USD"
    for column in ("reference", "mean", "difference", "low", "high"):
        shown[column] = shown[column].where(~money, shown[column] / 1e9)
    shown["unit"] = shown["unit"].where(~money, "USD bn")
    columns = ["arm", "metric", "product", "unit", "reference", "mean", "difference", "low", "high"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        interval = shown["interval"].iloc[0] if len(shown) else ""
        print(f"{provider} at the horizon, each arm minus the first; low-high: {interval}")
        print(shown[columns].to_string(index=False))


def cmd_run_seeds(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """``cloudwar run --seeds N``: N seeds of one scenario into --out (resumable), tidy results with a seed column."""
    from cloudwar.runs.compare import STORE, ensemble

    if args.seeds is None:
        raise UsageError("--workers and --scheduler apply only with --seeds N (one run runs in this process)")
    if args.out is None:
        raise UsageError("--seeds needs --out (the runs are stored there, and resumed)")
    out = Path(args.out)
    try:
        result = ensemble(
            args.scenario,
            out,
            seeds=args.seeds,
            seed=args.seed,
            overrides=overrides,
            workers=args.workers,
            scheduler=args.scheduler,
            connect_timeout=args.timeout,
            progress=show_progress(args),
        )
    except KeyboardInterrupt as err:
        raise SystemExit(interrupted(err, "cloudwar", _saved([out / STORE]))) from None
    for line in [*result.report.repaired, *result.report.problems(out / STORE)]:
        print(f"cloudwar: warning: {line}", file=sys.stderr)
    print(result.report.describe(out / STORE))
    print(f"wrote {out / 'results.csv'}, {out / 'summary.csv'}, {out / 'bands.png'}; runs in {out / STORE}")
    return 0


def add_run_seeds_arguments(parser: argparse.ArgumentParser) -> None:
    """``run``'s ensemble options: ``--seeds`` and where the runs execute."""
    parser.add_argument(
        "--seeds",
        type=positive_int,
        help="run N seeds (derived from --seed by the runs layer's one rule) into --out, resumable",
    )
    add_executor_arguments(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    cmp = subparsers.add_parser(
        "compare",
        help="named scenarios side by side, paired by seed: differences with intervals, bands, resumable",
        description="Run --seeds paired replicates of every --arm (the same seeds in each), then write "
        "OUT/compare.csv (each arm minus the first at the horizon: mean and 90%% t-interval over seeds) and "
        "OUT/compare.png (median and 10-90%% bands over calendar time). Runs are kept in OUT/arms/NAME; "
        "run the same command again to resume.",
    )
    cmp.add_argument(
        "--arm",
        action="append",
        default=[],
        required=True,
        metavar="NAME=SCENARIO[,KEY=VALUE...]",
        help="an arm: a name, a shipped scenario or TOML file, and its own overrides, e.g. "
        "--arm 'cut=baseline,providers.Alibaba.price.ai=0.5'; the first arm is the reference (give two or more)",
    )
    cmp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario value in every arm (an arm's own value wins), e.g. --set enterprises=5000",
    )
    cmp.add_argument("--seeds", type=positive_int, default=8, help="paired replicates per arm (default: 8)")
    cmp.add_argument("--seed", type=seed_int, default=0, help="master seed; run seeds derive from it (default: 0)")
    cmp.add_argument("--provider", help="the provider the figure and the printed table follow (default: the first)")
    cmp.add_argument(
        "--posterior",
        type=seed_int,
        default=0,
        metavar="K",
        help="run every arm on K parameter sets drawn from the shipped posterior (parameter uncertainty; the "
        "interval is then 5-95%% across draws); default 0: the calibrated point only",
    )
    add_executor_arguments(cmp)
    cmp.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )
    cmp.add_argument("--out", required=True, help="folder for compare.csv, compare.png and the runs (resumed)")
    cmp.set_defaults(func=cmd_compare, options=OPTIONS)

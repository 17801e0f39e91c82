"""``cloudwar backtest``: replay 2023Q3-2025Q3 over many seeds and compare with history.csv.

``cloudwar backtest --seeds 20 --out runs/backtest [--set enterprises=5000] [--workers W | --scheduler ADDR]``

The runs go to ``OUT/store`` (resumable: the same command again runs only the missing runs); the
comparison is written atomically into ``OUT``: ``backtest.csv`` (one row per series x period:
actual, median, p10, p90, error, within_band, confidence), ``summary.csv`` (per series),
``share_order.csv``, ``backtest.png`` (the headline series) and ``backtest_all.png`` (every
series). Machinery: :mod:`cloudwar.runs.backtest`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudwar.cli.common import RUN_OPTIONS, interrupted, parse_sets, positive_int, saved_runs, seed_int
from cloudwar.cli.sweep import add_executor_arguments, report_problems, show_progress


def cmd_backtest(args: argparse.Namespace) -> int:
    import pandas as pd

    from cloudwar.runs.backtest import HEADLINE, STORE, run_backtest
    from cloudwar.runs.output import check_out_folder, write_atomically

    out = Path(args.out)
    check_out_folder(out)
    try:
        result = run_backtest(
            args.scenario,
            args.seeds,
            out=out,
            seed=args.seed,
            fixed=parse_sets(args.set),
            history=args.history,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=show_progress(args),
            connect_timeout=args.timeout,
        )
    except KeyboardInterrupt as err:
        raise SystemExit(interrupted(err, "cloudwar", saved_runs(out / STORE, args.seeds))) from None
    status = report_problems(result.report, out / STORE) if result.report is not None else 0
    title = (
        f"{Path(args.scenario).stem} from {result.start}: model median and 10-90% of {args.seeds} seeds vs history.csv"
    )

    def write(tmp: Path) -> None:
        result.table.to_csv(tmp / "backtest.csv", index=False)
        result.summary.to_csv(tmp / "summary.csv", index=False)
        result.order.to_csv(tmp / "share_order.csv", index=False)
        result.figure(HEADLINE, title=title).savefig(tmp / "backtest.png", dpi=100)
        result.figure(title=title).savefig(tmp / "backtest_all.png", dpi=80)

    write_atomically(out, write)
    if result.report is not None:
        print(result.report.describe(out / STORE))
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.1f}".format):
        print(result.summary.drop(columns=["series"]).to_string(index=False))
    kept = int(result.order["order_kept"].sum())
    print(f"world share order kept in {kept} of {len(result.order)} quarters")
    print(f"wrote {out / 'backtest.csv'}, {out / 'summary.csv'}, {out / 'share_order.csv'}, {out / 'backtest.png'}")
    return status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backtest",
        help="run the history scenario over seeds and compare with history.csv (table and figures)",
        description="Run the history scenario (2023Q3-2025Q3) over --seeds seeds and compare every series of "
        "history.csv the model represents: OUT/backtest.csv, summary.csv, share_order.csv, backtest.png. "
        "Runs are kept in OUT/store; run the same command again to resume.",
    )
    parser.add_argument("--scenario", default="history", help="shipped scenario name or TOML file (default: history)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario value in every run, e.g. --set enterprises=5000",
    )
    parser.add_argument("--seeds", type=positive_int, default=20, help="runs, one per seed (default: 20)")
    parser.add_argument("--seed", type=seed_int, default=0, help="master seed; run seeds derive from it (default: 0)")
    parser.add_argument("--history", help="history.csv to compare with (default: the shipped copy)")
    add_executor_arguments(parser)
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )
    parser.add_argument("--out", required=True, help="folder for the tables, figures and the runs (OUT/store)")
    parser.set_defaults(func=cmd_backtest, options={**RUN_OPTIONS, "history": "--history"})

"""``cloudwar calibrate``: the posterior of the uncertain parameters, fitted to history.csv by ABC.

``cloudwar calibrate --out runs/posterior [--population 1000] [--generations 25] [--workers W | --scheduler ADDR]``

Adaptive population Monte Carlo ABC over the history scenario (2023Q3-2025Q3) at its own size
(10,000 enterprises, one seed per particle); machinery and method: :mod:`cloudwar.runs.posterior`.
Every generation's runs go to ``OUT/runs/gen_NNN`` (resumable stores) and every finished
generation to ``OUT/generations``: killed, the same command continues where it stopped, with the
same result. Once done: ``OUT/posterior.csv``, ``parameters.csv``, ``fit.csv``,
``generations.csv``, ``posterior.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudwar.cli.common import RUN_OPTIONS, interrupted, parse_sets, positive_int, seed_int
from cloudwar.cli.sweep import add_executor_arguments, show_progress


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def cmd_calibrate(args: argparse.Namespace) -> int:
    import time

    import pandas as pd

    from cloudwar.runs.posterior import GENERATIONS, Settings, calibrate

    out = Path(args.out)
    settings = Settings(
        scenario=args.scenario,
        fixed=parse_sets(args.set),
        population=args.population,
        keep=args.keep,
        min_acceptance=args.min_acceptance,
        generations=args.generations,
        seed=args.seed,
    )
    began = time.perf_counter()
    try:
        result = calibrate(
            out,
            settings,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=show_progress(args),
            connect_timeout=args.timeout,
        )
    except KeyboardInterrupt as err:
        done = len(list((out / GENERATIONS).glob("gen_*.npz"))) if (out / GENERATIONS).is_dir() else 0
        what = f"{done} generations and every finished run are saved in {out}; run the same command to continue"
        raise SystemExit(interrupted(err, "cloudwar", what)) from None
    written = result.write(out)
    table = result.parameters()
    shown = table[["parameter", "prior_low", "prior_high", "posterior_median", "posterior_p10", "posterior_p90",
                   "sd_ratio", "transfers"]]  # fmt: skip
    fit = result.fit()
    last = result.last
    print(
        f"{result.runs} runs in {len(result.generations)} generations ({result.seconds:.0f} s of generations, "
        f"{time.perf_counter() - began:.0f} s this invocation); epsilon {last.epsilon:.3f}, "
        f"ESS {last.ess:.0f} of {len(last.kept_z)} kept"
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3g}".format):
        print(shown.to_string(index=False))
    print(f"{int(fit['within'].sum())} of {len(fit)} targets within tolerance of the posterior's 10-90% band")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="fit the posterior of the uncertain parameters to history.csv (ABC; resumable)",
        description="Adaptive population Monte Carlo ABC: parameter sets drawn from the priors, run over the "
        "history scenario (2023Q3-2025Q3, one seed each) and kept by their distance to history.csv, generation "
        "after generation. Writes OUT/posterior.csv, parameters.csv, fit.csv, generations.csv, posterior.png. "
        "Kill it and run the same command again to continue.",
    )
    parser.add_argument("--scenario", default="history", help="scenario to fit (default: history)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a value in every run")
    parser.add_argument(
        "--population", type=positive_int, default=1000, help="particles per generation (default: 1000)"
    )
    parser.add_argument("--keep", type=fraction, default=0.5, help="fraction kept each generation (default: 0.5)")
    parser.add_argument(
        "--min-acceptance",
        type=fraction,
        default=0.05,
        help="stop when fewer new particles than this fall within the last tolerance (default: 0.05)",
    )
    parser.add_argument("--generations", type=positive_int, default=25, help="most generations (default: 25)")
    parser.add_argument("--seed", type=seed_int, default=0, help="master seed (default: 0)")
    add_executor_arguments(parser)
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )
    parser.add_argument("--out", required=True, help="folder for the calibration (resumable) and its tables")
    parser.set_defaults(
        func=cmd_calibrate,
        options={
            **RUN_OPTIONS,
            "population": "--population",
            "keep": "--keep",
            "min_acceptance": "--min-acceptance",
            "generations": "--generations",
        },  # fmt: skip
    )

"""Make the shipped posterior: ``cloudwar calibrate`` with the shipped settings, then copy it into the package.

Runs (or resumes) ``cloudwar calibrate --out OUT --population 1000 --generations 25 --seed 0 --workers 2``
over the history scenario at its own size (10,000 enterprises, the size the experiments use), then
writes ``cloudwar/scenario/data/posterior.csv`` (the kept particles and their weights) and
``posterior.json`` (the command, runs, wall time, the parameter table and the generations), and
copies the figure to ``docs/figures/posterior.png``. Experiments draw from the shipped file
(:func:`cloudwar.runs.posterior.load_posterior`).

Usage: python experiments/calibrate_posterior.py [--out out/posterior] [--workers 2 | --scheduler ADDR]
       [--population 1000] [--generations 25] [--seed 0] [--no-ship]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from _common import ROOT, Parser, main

import cloudwar
from cloudwar.errors import SweepError

DATA = Path(cloudwar.__file__).parent / "scenario" / "data"


def parse_args(argv=None) -> argparse.Namespace:
    parser = Parser(prog="calibrate_posterior.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/posterior"), help="the calibration's folder")
    parser.add_argument("--population", type=int, default=1000, help="particles per generation (default 1000)")
    parser.add_argument("--generations", type=int, default=25, help="most generations (default 25)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="local workers (default 2)")
    parser.add_argument("--scheduler", help="a Dask scheduler's address instead of local workers")
    parser.add_argument("--no-ship", action="store_true", help="only calibrate; leave the package's file alone")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, command: str) -> None:
    from cloudwar.cli.main import main as cloudwar_main
    from cloudwar.scenario import load_scenario

    where = ["--scheduler", args.scheduler] if args.scheduler else ["--workers", str(args.workers or 2)]
    argv = ["calibrate", "--population", str(args.population), "--generations", str(args.generations),
            "--seed", str(args.seed), *where, "--out", str(args.out)]  # fmt: skip
    began = time.perf_counter()
    status = cloudwar_main(argv)
    if status != 0:
        raise SweepError(f"cloudwar calibrate ended with status {status}")
    invocation = time.perf_counter() - began
    if args.no_ship:
        return
    gens = pd.read_csv(args.out / "generations.csv")
    params = pd.read_csv(args.out / "parameters.csv")
    fit = pd.read_csv(args.out / "fit.csv")
    meta = {
        "command": "cloudwar " + shlex.join(argv),
        "script": command,
        "scenario": "history",
        "enterprises": load_scenario("history").enterprises,
        "population": args.population,
        "seed": args.seed,
        "generations_run": len(gens),
        "runs": int(gens["runs"].sum()),
        "wall_seconds": float(gens["seconds"].sum()),
        "this_invocation_seconds": invocation,
        "made": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cloudwar_version": cloudwar.__version__,
        "targets": len(fit),
        "targets_within": int(fit["within"].sum()),
        "parameters": params.drop(columns=["reason"]).to_dict(orient="records"),
        "generations": gens.to_dict(orient="records"),
    }
    shutil.copyfile(args.out / "posterior.csv", DATA / "posterior.csv")
    (DATA / "posterior.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    shutil.copyfile(args.out / "posterior.png", ROOT / "docs" / "figures" / "posterior.png")
    shutil.copyfile(args.out / "fit.csv", ROOT / "docs" / "figures" / "posterior_fit.csv")
    shutil.copyfile(args.out / "parameters.csv", ROOT / "docs" / "figures" / "posterior_parameters.csv")
    print(f"shipped {DATA / 'posterior.csv'} ({meta['runs']} runs, {meta['wall_seconds']:.0f} s of generations)")


if __name__ == "__main__":
    sys.exit(main("calibrate_posterior.py", parse_args, run))

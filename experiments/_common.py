"""Shared plumbing of the experiment scripts: arguments, atomic output folders, many runs, bands.

Every script in ``experiments/`` answers one question with the model and writes CSV tables, PNG
figures and a short ``summary.md`` into one output folder. They share:

* :class:`Parser`: argparse with one-line errors (exit 2, no usage dump), and the argument types
  :func:`positive_int` and :func:`seed`;
* :func:`output_folder`: write into a temporary folder beside the target, then move its files
  into place, so a failed or interrupted run leaves the previous output untouched and no debris,
  and files of the target that the run does not write are never touched;
* :func:`run_many`: many model runs on a spawn-context process pool (or in this process), each
  returning a small table of the metrics asked for (:func:`simulate`);
* :func:`main`: the entry point wrapper: user errors become one line on stderr, exit 1;
* small helpers for the figures and the finance (:func:`band`, :func:`terminal_value`).

Import it as ``from _common import ...``: the scripts run as ``python experiments/<name>.py``,
which puts this folder on ``sys.path`` (spawned workers inherit it).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cloudwar.cli.main import positive_int as cli_positive_int
from cloudwar.cli.main import seed_int as cli_seed_int
from cloudwar.plots import band  # noqa: F401  (re-exported: one band for every figure)

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit status 2) instead of the usage dump."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


# The argument types of the command line: a whole number >= 1, and a seed (a whole number >= 0).
positive_int = cli_positive_int
seed = cli_seed_int


def check_out(parser: argparse.ArgumentParser, out: Path) -> None:
    """Refuse, before anything runs, an ``--out`` that cannot become a folder (one-line error).

    The same check as ``cloudwar run``'s: ``out`` is a folder or does not exist yet, and its
    nearest existing ancestor is a folder this process may write in.
    """
    from cloudwar.cli.main import CliError, check_out_folder

    try:
        check_out_folder(out)
    except CliError as err:
        parser.error(str(err))


def add_run_options(parser: argparse.ArgumentParser, name: str, seeds: int, quarters: str) -> None:
    """The options every multi-seed experiment shares: seeds, size, workers, output, quick mode."""
    parser.add_argument("--seeds", type=positive_int, default=None, help=f"seeds per arm (default {seeds})")
    parser.add_argument("--seed", type=seed, default=1, help="first seed (default 1)")
    parser.add_argument("--enterprises", type=positive_int, default=None, help="enterprises (default 10,000)")
    parser.add_argument("--quarters", type=positive_int, default=None, help=f"quarters (default {quarters})")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes (default 2; 1 with --quick)")
    parser.add_argument("--out", type=Path, default=Path(f"out/{name}"), help="output directory")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run: NOT a result")


def fill_run_defaults(args: argparse.Namespace, quick: dict[str, Any], full: dict[str, Any]) -> None:
    """Fill the options left unset from the quick or the full defaults; 2 workers (1 when quick)."""
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.workers is None:
        args.workers = 1 if args.quick else 2


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that reproduces this run, for the summary."""
    import shlex

    args = sys.argv[1:] if argv is None else list(argv)
    return f"python experiments/{script} {shlex.join(args)}".strip()


# --------------------------------------------------------------------------------------------
# Output folders
# --------------------------------------------------------------------------------------------
def publish(tmp: Path, out: Path) -> None:
    """Move every file of the finished temporary folder into ``out``, replacing older versions of them.

    Files in ``out`` that this run did not write (a user's notes, another experiment's output)
    are left alone: ``--out`` may be any folder, never emptied.
    """
    out.mkdir(exist_ok=True)
    for item in sorted(tmp.iterdir()):
        target = out / item.name
        if target.is_dir() and not item.is_dir():
            raise OSError(f"cannot write {target}: a folder of that name is in the way")
        if item.is_dir() and target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(item, target)
    tmp.rmdir()


@contextlib.contextmanager
def output_folder(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write into; moved to ``out`` only if the block succeeds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700
        yield tmp
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(name: str, run: Callable[[], Any]) -> int:
    """Call ``run``; user-facing failures become one line on stderr and exit status 1 (130 on Ctrl-C)."""
    from cloudwar.scenario import ScenarioError

    try:
        run()
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no output written", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError, ScenarioError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{name}: error: {message}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------------------------
# Many runs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One model run: scenario, seed and overrides, plus what to keep of its results.

    ``label`` is copied into every row (e.g. ``{"world": "baseline", "arm": "share_first"}``);
    ``keep`` lists (metric, region, product) triples, kept for every provider (and ``all``).
    """

    label: dict[str, Any]
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)
    keep: tuple[tuple[str, str, str], ...] = ()
    scenario: str = "baseline"


def simulate(job: Job) -> pd.DataFrame:
    """Run one job; its results as a tidy table of the kept metrics, with the label columns."""
    from cloudwar import CloudMarket

    results = CloudMarket(job.scenario, rng=job.seed, overrides=job.overrides).run()
    wanted = pd.MultiIndex.from_tuples(job.keep, names=["metric", "region", "product"])
    index = pd.MultiIndex.from_frame(results[["metric", "region", "product"]].astype(object))
    kept = results[index.isin(wanted)].copy()
    for key, value in job.label.items():
        kept[key] = value
    kept["seed"] = job.seed
    return kept.reset_index(drop=True)


def _init_worker() -> None:
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"


def run_many(jobs: Sequence[Job], workers: int, progress: str = "") -> pd.DataFrame:
    """Run every job (in order) on ``workers`` processes (spawn context; 1 = in this process)."""
    start = time.perf_counter()
    if workers == 1 or len(jobs) <= 1:
        parts = [simulate(job) for job in jobs]
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker) as pool:
            parts = list(pool.imap(simulate, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    if progress:
        print(f"{progress}: {len(jobs)} runs in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return pd.concat(parts, ignore_index=True)


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
    """Present value (USD) of the business at the horizon, as a no-growth perpetuity.

    The last four quarters' operating income, a year's worth, is taken as the cash flow of every
    later year (without growth, capex only replaces what depreciates, so cash flow = operating
    income, pre-tax), valued at ``discount_rate`` and discounted from the horizon (``quarters``)
    to the start. A business losing money is worth 0 (it can close), not minus its losses forever.
    """
    perpetuity = np.maximum(operating_income_last_year, 0.0) / discount_rate
    return perpetuity / (1.0 + discount_rate) ** (quarters / 4.0)


def quantiles(values: np.ndarray) -> str:
    """'median (10-90%: low to high)' of an array, for the summaries."""
    low, mid, high = np.nanpercentile(values, [10, 50, 90])
    return f"{mid:,.1f} ({low:,.1f} to {high:,.1f})"


def figure_path(folder: Path, name: str) -> Path:
    """Where a figure goes; the caller saves it."""
    return folder / f"{name}.png"


def matplotlib_pyplot() -> Any:
    """pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

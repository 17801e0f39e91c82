"""Whole-run throughput: build + 40 quarters + results, side by side with the bare-numpy floor.

Prints a markdown table: for the baseline scenario at 10,000 enterprises (and any other
``--sizes``), the median CPU seconds over ``--repeats`` runs of

(a) building the :class:`~cloudwar.model.market.CloudMarket`,
(b) stepping it ``--quarters`` quarters (40),
(c) ``results()``, the tidy table,
(d) the total of the three, one whole run;

the bare-numpy floor's stepping of the same quarters (``BareQuarter`` of reference_benchmark.py:
the quarter's enterprise arithmetic and nothing else) measured in the same process, interleaved
with the runs; the ratio total / floor; and runs per second per core (1 / total CPU seconds).
Then the bar of issue 12: at 10,000 enterprises a whole run takes under 3 times the floor's
stepping (the calibration needs thousands of runs).

    python benchmarks/throughput_benchmark.py
    python benchmarks/throughput_benchmark.py --sizes 10000 20000 --repeats 5

Everything runs in one Python process with one numerical thread (the script re-executes itself
with OMP, OpenBLAS and MKL threads set to 1). Times are CPU seconds of that process, so a
busy shared machine inflates them less than wall seconds. One untimed warm-up run per size
comes first (lazy imports and first-call caches belong to the process, not to a run); then the
repeats alternate a whole run and a floor run, so both see the same machine. Seed r of the
repeats is ``--seed + r``, the same for the run and the floor. "total / floor" is the ratio of
the medians; "paired" the median over repeats of each run's total over the floor run right after
it, which moves less when other processes come and go. The bar asks both to be under 3.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from engine_benchmark import SINGLE_THREAD, machine, markdown_table
from reference_benchmark import BareQuarter

SIZES = (10_000,)
QUARTERS = 40
BAR_ENTERPRISES, BAR_RATIO = 10_000, 3.0
PARTS = ("build", "step", "results")


def cpu() -> float:
    """CPU seconds of this process so far."""
    return time.process_time()


def whole_run(scenario: str, size: int, quarters: int, seed: int) -> dict[str, float]:
    """CPU seconds of one run's build, stepping of ``quarters`` quarters, and results table."""
    from cloudwar.model.market import CloudMarket

    t0 = cpu()
    model = CloudMarket(scenario, rng=seed, enterprises=size)
    t1 = cpu()
    for _ in range(quarters):
        model.step()
    t2 = cpu()
    table = model.results()
    t3 = cpu()
    assert len(table) > 0
    return {"build": t1 - t0, "step": t2 - t1, "results": t3 - t2, "total": t3 - t0}


def floor_run(scenario: str, size: int, quarters: int, seed: int) -> float:
    """CPU seconds of the bare-numpy floor stepping ``quarters`` quarters from the same starting market."""
    from cloudwar.model.market import CloudMarket

    floor = BareQuarter(CloudMarket(scenario, rng=seed, enterprises=size))  # the start is not timed
    t0 = cpu()
    for _ in range(quarters):
        floor.step()
    return cpu() - t0


def measure(scenario: str, size: int, quarters: int, seed: int, repeats: int) -> dict[str, Any]:
    """Every repeat's times at one size (after one untimed warm-up of each), and their medians."""
    whole_run(scenario, size, quarters, seed)
    floor_run(scenario, size, quarters, seed)
    runs, floors = [], []
    for r in range(repeats):
        print(f"  {size:>9,} enterprises, repeat {r + 1}/{repeats} ...", file=sys.stderr, flush=True)
        runs.append(whole_run(scenario, size, quarters, seed + r))
        floors.append(floor_run(scenario, size, quarters, seed + r))
    median = {key: statistics.median(run[key] for run in runs) for key in (*PARTS, "total")}
    # Each run is compared with the floor run right after it (the same machine load), then the median.
    paired = statistics.median(run["total"] / floor for run, floor in zip(runs, floors, strict=True))
    return {
        "enterprises": size,
        "runs": runs,
        "floor": floors,
        "median": median,
        "floor_median": statistics.median(floors),
        "paired_ratio": paired,
    }


def table(results: list[dict[str, Any]], quarters: int) -> str:
    rows = []
    for m in results:
        med, floor = m["median"], m["floor_median"]
        rows.append(
            [
                f"{m['enterprises']:,}",
                f"{med['build']:.3f}",
                f"{med['step']:.3f}",
                f"{med['results']:.3f}",
                f"{med['total']:.3f}",
                f"{floor:.3f}",
                f"{med['total'] / floor:.2f}",
                f"{m['paired_ratio']:.2f}",
                f"{1.0 / med['total']:.2f}",
            ]
        )
    header = [
        "enterprises",
        "(a) build (s)",
        f"(b) {quarters} quarters (s)",
        "(c) results (s)",
        "(d) total (s)",
        f"floor, {quarters} quarters (s)",
        "total / floor",
        "total / floor, paired",
        "runs/s per core",
    ]
    return markdown_table(header, rows)


def bar(results: list[dict[str, Any]]) -> str:
    at = [m for m in results if m["enterprises"] == BAR_ENTERPRISES]
    if not at:
        return f"(bar not checked: run with {BAR_ENTERPRISES:,} enterprises)"
    ratio = at[0]["median"]["total"] / at[0]["floor_median"]
    paired = at[0]["paired_ratio"]
    met = ratio < BAR_RATIO and paired < BAR_RATIO
    return (
        f"- whole run / floor stepping at {BAR_ENTERPRISES:,}: {ratio:.2f}x of the medians, {paired:.2f}x paired "
        f"(bar < {BAR_RATIO:.0f}x): {'met' if met else 'NOT MET'}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="enterprise counts")
    parser.add_argument("--quarters", type=int, default=QUARTERS)
    parser.add_argument("--scenario", default="baseline")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first repeat (repeat r uses seed + r)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per size (and as many floor runs)")
    parser.add_argument("--json", type=Path, help="also write every repeat's times here")
    args = parser.parse_args(argv)
    about = machine()
    results = [measure(args.scenario, n, args.quarters, args.seed, max(1, args.repeats)) for n in args.sizes]
    print(
        f"Whole runs of CloudMarket, scenario {args.scenario}, {args.quarters} quarters; CPU seconds, medians of "
        f"{args.repeats} runs per size in one single-threaded process, interleaved with as many floor runs "
        f"(bare numpy, the same quarters). {about}.\n"
    )
    print(table(results, args.quarters))
    print()
    print(bar(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if any(os.environ.get(k) != v for k, v in SINGLE_THREAD.items()):
        # One numerical thread, set before numpy is imported: re-execute with it.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **SINGLE_THREAD})
    main()

"""Speed and memory of the fast engine (CloudMarket) on the baseline scenario.

Prints a markdown table: for 10,000, 100,000 and 1,000,000 enterprises (average 20 network
links each), the build time, the stepping time of 40 quarters, enterprise-quarters per second
(enterprises x quarters / stepping seconds) and peak memory; then the bar of issue 2:
1,000,000 enterprises run 40 quarters in under 10 s of stepping on one core, under 1.5 GB peak.

    python benchmarks/engine_benchmark.py
    python benchmarks/engine_benchmark.py --sizes 10000 100000 --quarters 20 --json engine.json

Every size runs in a fresh Python process with one numerical thread (OMP, OpenBLAS and MKL
threads set to 1), so its peak memory (``ru_maxrss``) is its own. "Interpreter and imports" is
the peak measured the same way in that process right after its imports, before the model is
built; bytes per enterprise are (peak - that) / enterprises ("at peak") and (resident memory
after the run - that) / enterprises ("held"). This is a script, not a timed test: times depend
on the machine and on what else it runs.

``reference_benchmark.py`` imports the helpers below to put the engine side by side with the
plain-Mesa reference and a bare-numpy floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SIZES = (10_000, 100_000, 1_000_000)
QUARTERS = 40
BAR_ENTERPRISES = 1_000_000
BAR_STEPPING_SECONDS = 10.0
BAR_PEAK_BYTES = 1.5e9
SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


# --- measuring inside a worker process ---------------------------------------------------------
def peak_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def resident_bytes() -> int:
    """Resident memory of this process now (Linux); falls back to the peak elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_bytes()


class Stopwatch:
    """CPU seconds of this (single-threaded) process, and wall seconds, since it was started.

    CPU time is what the bars are about ("seconds on one core"); unlike wall time it does not
    count the time the process waits for a core that other processes hold.
    """

    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def read(self) -> tuple[float, float]:
        return time.process_time() - self.cpu, time.perf_counter() - self.wall


def time_run(model: Any, quarters: int) -> dict[str, list[float]]:
    """Step ``model`` for ``quarters`` quarters; CPU and wall seconds per quarter."""
    cpu, wall = [], []
    for _ in range(quarters):
        watch = Stopwatch()
        model.step()
        c, w = watch.read()
        cpu.append(c)
        wall.append(w)
    return {"quarter_seconds": cpu, "quarter_wall_seconds": wall}


def reset_peak() -> bool:
    """Reset this process's peak resident memory to its current value (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_model(build: Callable[[], Any], quarters: int) -> dict[str, Any]:
    """Build a model and step it, measuring time and memory; memory is split into building and stepping.

    The peak is reset after the build, so ``step_peak_bytes`` is the peak while stepping alone
    (None where the peak cannot be reset); ``peak_bytes`` is the peak of the whole process.
    """
    baseline = peak_bytes()
    watch = Stopwatch()
    model = build()
    build_cpu, build_wall = watch.read()
    build_peak = peak_bytes()
    can_reset = reset_peak()
    timing = time_run(model, quarters)
    step_peak = peak_bytes() if can_reset else None
    return {
        "build_seconds": build_cpu,
        "build_wall_seconds": build_wall,
        **timing,
        "baseline_bytes": baseline,
        "build_peak_bytes": build_peak,
        "step_peak_bytes": step_peak,
        "peak_bytes": max(build_peak, step_peak or peak_bytes()),
        "held_bytes": resident_bytes(),
        "model": model,
    }


def worker_fast(size: int, quarters: int, scenario: str, seed: int) -> dict[str, Any]:
    """Build and run CloudMarket in this process; called with imports already done."""
    from cloudwar.model.market import CloudMarket

    result = measure_model(lambda: CloudMarket(scenario, rng=seed, enterprises=size), quarters)
    model = result.pop("model")
    result["links_per_enterprise"] = 2 * getattr(model.network, "links", 0) / size
    return result


WORKERS: dict[str, Callable[..., dict[str, Any]]] = {"fast": worker_fast}


def worker_main(workers: dict[str, Callable[..., dict[str, Any]]], argv: list[str] | None = None) -> None:
    """Entry point of a worker process: run one measurement, print it as one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True, choices=sorted(workers))
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--quarters", type=int, required=True)
    parser.add_argument("--scenario", default="baseline")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    import cloudwar.model.market  # noqa: F401  (the imports belong to the baseline, not to the model)
    import cloudwar.model.reference  # noqa: F401

    result = workers[args.worker](args.size, args.quarters, args.scenario, args.seed)
    result.update(kind=args.worker, enterprises=args.size, quarters=args.quarters, scenario=args.scenario)
    print(json.dumps(result))


# --- the parent process ------------------------------------------------------------------------
def measure(script: str | Path, kind: str, size: int, quarters: int, scenario: str, seed: int) -> dict[str, Any]:
    """Run one worker (``script --worker kind``) in a fresh single-threaded process; its result."""
    env = {**os.environ, **SINGLE_THREAD}
    command = [sys.executable, str(script), "--worker", kind, "--size", str(size), "--quarters", str(quarters)]
    command += ["--scenario", scenario, "--seed", str(seed)]
    print(f"  {kind:<9} {size:>9,} enterprises, {quarters} quarters ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker at {size} enterprises failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


MEMORY_KEYS = ("build_peak_bytes", "step_peak_bytes", "peak_bytes", "held_bytes")


def measure_repeated(
    script: str | Path, kind: str, size: int, quarters: int, scenario: str, seed: int, repeats: int
) -> dict[str, Any]:
    """``repeats`` fresh-process measurements of one worker, folded into one.

    A quarter of 100,000 enterprises takes about 10 ms, so one run's timings move by 10-20% with
    whatever else the machine does. The folded result takes, quarter by quarter, the median CPU
    (and wall) seconds over the repeats, the median build time, and the highest memory figures
    (beyond each process's own interpreter and imports). ``repeat_seconds`` keeps every repeat's
    total stepping time.
    """
    runs = [measure(script, kind, size, quarters, scenario, seed) for _ in range(max(1, repeats))]
    folded = dict(runs[0])
    for key in ("quarter_seconds", "quarter_wall_seconds"):
        folded[key] = [float(x) for x in np.median([r[key] for r in runs], axis=0)]
    for key in ("build_seconds", "build_wall_seconds"):
        folded[key] = float(np.median([r[key] for r in runs]))
    for key in MEMORY_KEYS:
        if all(r.get(key) is not None for r in runs):
            folded[key] = folded["baseline_bytes"] + max(r[key] - r["baseline_bytes"] for r in runs)
    folded["repeats"] = len(runs)
    folded["repeat_seconds"] = [sum(r["quarter_seconds"]) for r in runs]
    return folded


def throughput(result: dict[str, Any], quarters: int | None = None) -> float:
    """Enterprise-quarters per CPU second of stepping, over the first ``quarters`` quarters (default all)."""
    seconds = result["quarter_seconds"][:quarters]
    return result["enterprises"] * len(seconds) / sum(seconds)


def bytes_per_enterprise(result: dict[str, Any], key: str = "peak_bytes") -> float | None:
    """Memory per enterprise beyond the interpreter and imports (None if not measured)."""
    if result.get(key) is None:
        return None
    return (result[key] - result["baseline_bytes"]) / result["enterprises"]


def fmt(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    import mesa
    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = f", load average {os.getloadavg()[0]:.1f} at the start" if hasattr(os, "getloadavg") else ""
    return f"Python {platform.python_version()}, numpy {numpy.__version__}, Mesa {mesa.__version__}, {cpu}{load}"


def engine_table(results: list[dict[str, Any]]) -> str:
    rows = [
        [
            f"{r['enterprises']:,}",
            f"{r['links_per_enterprise']:.1f}",
            f"{r['build_seconds']:.2f}",
            f"{sum(r['quarter_seconds']):.2f}",
            f"{sum(r['quarter_wall_seconds']):.2f}",
            f"{throughput(r):,.0f}",
            f"{r['peak_bytes'] / 1e6:,.0f}",
            fmt(bytes_per_enterprise(r, "build_peak_bytes")),
            fmt(bytes_per_enterprise(r, "step_peak_bytes")),
            fmt(bytes_per_enterprise(r, "held_bytes")),
        ]
        for r in results
    ]
    header = [
        "enterprises",
        "links per enterprise",
        "build, CPU (s)",
        f"stepping {results[0]['quarters']} quarters, CPU (s)",
        "stepping, wall (s)",
        "enterprise-quarters/s",
        "peak memory (MB)",
        "B/enterprise, build peak",
        "B/enterprise, stepping peak",
        "B/enterprise held",
    ]
    return markdown_table(header, rows)


def engine_bar(results: list[dict[str, Any]]) -> str:
    at_bar = [r for r in results if r["enterprises"] == BAR_ENTERPRISES]
    if not at_bar:
        return f"(bar not checked: run with {BAR_ENTERPRISES:,} enterprises)"
    r = at_bar[0]
    stepping = sum(r["quarter_seconds"]) * QUARTERS / r["quarters"]
    lines = [
        f"- stepping {QUARTERS} quarters of {BAR_ENTERPRISES:,} enterprises: {stepping:.1f} s "
        f"(bar < {BAR_STEPPING_SECONDS:.0f} s): {'met' if stepping < BAR_STEPPING_SECONDS else 'NOT MET'}"
        + ("" if r["quarters"] == QUARTERS else f" (scaled from {r['quarters']} quarters)"),
        f"- peak memory: {r['peak_bytes'] / 1e9:.2f} GB (bar < {BAR_PEAK_BYTES / 1e9:.1f} GB): "
        f"{'met' if r['peak_bytes'] < BAR_PEAK_BYTES else 'NOT MET'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="enterprise counts")
    parser.add_argument("--quarters", type=int, default=QUARTERS)
    parser.add_argument("--scenario", default="baseline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per size; per-quarter medians")
    parser.add_argument("--json", type=Path, help="also write the raw measurements here")
    args = parser.parse_args(argv)
    about = machine()
    results = [
        measure_repeated(__file__, "fast", n, args.quarters, args.scenario, args.seed, args.repeats) for n in args.sizes
    ]
    print(
        f"Fast engine (CloudMarket), scenario {args.scenario}, one thread per process, per-quarter median of "
        f"{args.repeats} processes per size. {about}.\n"
    )
    print(engine_table(results))
    print()
    print(engine_bar(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_main(WORKERS)
    else:
        main()

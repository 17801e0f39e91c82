"""Global sensitivity analysis with SALib, run on the sweep machinery.

``cloudwar sensitivity --method sobol --param choice.network_weight=0:1 --param enterprise.switching_cost=0:1
--output revenue_share,provider=Alibaba --out DIR``

1. **Sample.** SALib draws the design over the box of ``--param key=low:high`` bounds: Sobol
   (Saltelli's scheme on a scrambled Sobol sequence, ``N (D + 2)`` points, ``N (2D + 2)`` with
   ``--second-order``) or Morris (``N`` trajectories of ``D + 1`` points on a ``--levels`` grid).
   Whole-number scenario keys (``enterprises``, ``quarters``, ...) are rounded; the analysis uses
   the nominal design.
2. **Run.** The design's points are a sweep (:mod:`cloudwar.runs.sweep`): same folder layout, same
   backends, resumable, bit-identical whatever runs it. With ``--seeds R`` each point is run R
   times (the same R random streams at every point) and the output is their mean.
3. **Analyse.** Each ``--output`` picks one number per run from the metrics table and SALib
   computes the indices: Sobol first-order S1 and total ST (and S2) with bootstrap confidence
   intervals; Morris mu, mu* and sigma of the elementary effects.

``DIR`` gets the sweep's ``sweep.json``, ``runs/`` and ``metrics/``, plus ``indices.csv`` (tidy:
output, parameter, index, value, conf) and ``sensitivity.png``. The outputs are not part of the
sweep: rerun with another ``--output`` and only the analysis is redone.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from cloudwar.cli.main import CliError, parse_sets, positive_int, write_atomically
from cloudwar.scenario import Scenario, parse_override, parse_scenario

METHODS = ("sobol", "morris")


# ------------------------------------------------------------------------------------------
# Parameters and outputs
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parameter:
    """One uncertain scenario key and its range."""

    key: str
    low: float
    high: float
    integer: bool = False


def parse_param(text: str) -> Parameter:
    """``key=low:high`` -> :class:`Parameter` (one-line :class:`CliError` if malformed or empty)."""
    if "=" not in text or ":" not in text.split("=", 1)[1]:
        raise CliError(f"--param {text!r}: expected key=low:high, e.g. choice.network_weight=0:1")
    key, bounds = (part.strip() for part in text.split("=", 1))
    low_text, high_text = (part.strip() for part in bounds.split(":", 1))
    values = []
    for bound in (low_text, high_text):
        value = parse_override(f"{key}={bound}")[1] if bound else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise CliError(f"--param {key}: bounds must be numbers, got {bounds!r}")
        values.append(float(value))
    low, high = values
    if not low < high:
        raise CliError(f"--param {key}: empty range {bounds!r} (low must be below high)")
    kind = key_type(key)
    if kind in (bool, str):
        raise CliError(f"--param {key}: only numeric keys can vary, this one is {kind.__name__}")
    if kind is int and math.ceil(low) > math.floor(high):
        raise CliError(f"--param {key}: no whole number in {bounds!r}")
    return Parameter(key, low, high, integer=kind is int)


def key_type(key: str) -> type | None:
    """The Python type of a dotted scenario key from the schema, or None if the schema cannot tell
    (strategy parameters, unknown keys: validation reports those)."""
    t: Any = Scenario
    for part in key.split("."):
        if dataclasses.is_dataclass(t):
            hints = get_type_hints(t)
            if part not in hints:
                return None
            t = hints[part]
        elif get_origin(t) in (list, dict):  # a provider by name, a region, a product
            t = get_args(t)[-1]
        else:
            return None
    while get_origin(t) is dict:  # "a number, or a table per region"
        t = get_args(t)[-1]
    return t if t in (int, float, bool, str) else None


@dataclass(frozen=True)
class Output:
    """Which number of a run to analyse: one metric at one provider, region, product and quarter."""

    metric: str
    provider: str = "all"
    region: str = "all"
    product: str = "all"
    quarter: int | None = None  # None: each run's final quarter

    @property
    def label(self) -> str:
        where = [f"{k}={getattr(self, k)}" for k in ("provider", "region", "product") if getattr(self, k) != "all"]
        if self.quarter is not None:
            where.append(f"quarter={self.quarter}")
        return self.metric + (f" ({', '.join(where)})" if where else "")


def parse_output(text: str) -> Output:
    """``metric[,provider=P][,region=R][,product=K][,quarter=Q]``; unnamed labels are ``all``, the quarter the last."""
    metric, *items = (part.strip() for part in text.split(","))
    if not metric or "=" in metric:
        raise CliError(f"--output {text!r}: expected METRIC[,provider=NAME][,region=NAME][,product=NAME][,quarter=N]")
    fields: dict[str, Any] = {}
    for item in items:
        key, _, value = (part.strip() for part in item.partition("="))
        if key not in ("provider", "region", "product", "quarter") or not value:
            raise CliError(f"--output {text!r}: unknown selector {item!r} (use provider=, region=, product=, quarter=)")
        if key == "quarter":
            if not value.isdigit():
                raise CliError(f"--output {text!r}: quarter must be a whole number, got {value!r}")
            fields[key] = int(value)
        else:
            fields[key] = value
    return Output(metric, **fields)


def check_output(output: Output, scenario: Scenario) -> None:
    """Fail before running if ``output`` names a metric, provider, region or product the runs will not have."""
    from cloudwar.results import METRICS

    known = [m for m in METRICS if m != "ai_adoption" or "ai" in scenario.product_names]
    if output.metric not in known:
        raise CliError(f"--output {output.label}: no metric {output.metric!r} (known: {', '.join(known)})")
    for column, names in (
        ("provider", scenario.provider_names),
        ("region", scenario.region_names),
        ("product", scenario.product_names),
    ):
        wanted = getattr(output, column)
        if wanted != "all" and wanted not in names:
            raise CliError(f"--output {output.label}: no {column} {wanted!r} (known: {', '.join(names)}, all)")
    if output.quarter is not None and not 1 <= output.quarter <= scenario.quarters:
        raise CliError(f"--output {output.label}: quarter must be between 1 and {scenario.quarters}")


def output_values(runs: Any, metrics: Any, output: Output, seeds: int, n_points: int) -> Any:
    """One value per point: ``output`` of each run, averaged over the point's replicates."""
    import numpy as np

    failed = runs[runs["status"] != "ok"]
    if len(failed):
        first = failed.iloc[0]
        raise CliError(f"{len(failed)} runs ended with an error, e.g. run {first['run']}: {first['error']}")
    sel = metrics[
        (metrics["metric"] == output.metric)
        & (metrics["provider"] == output.provider)
        & (metrics["region"] == output.region)
        & (metrics["product"] == output.product)
    ]
    if output.quarter is None:
        last = metrics.groupby("run")["quarter"].transform("max")
        sel = sel[sel["quarter"] == last[sel.index]]
    else:
        sel = sel[sel["quarter"] == output.quarter]
    if sel.empty:
        raise CliError(f"--output {output.label}: {_why_empty(metrics, output)}")
    if sel["run"].duplicated().any():
        raise CliError(f"--output {output.label}: more than one row per run")
    values = sel.set_index("run")["value"].reindex(runs["run"])
    if values.isna().any():
        run = int(values[values.isna()].index[0])
        raise CliError(f"--output {output.label}: no value for run {run} (NaN or missing); choose another output")
    per_run = values.to_numpy().reshape(n_points, seeds)
    return np.asarray(per_run.mean(axis=1), dtype=float)


def _why_empty(metrics: Any, output: Output) -> str:
    """Which selector matches nothing, narrowing step by step, with the values that would match."""
    rows = metrics
    for column in ("metric", "provider", "region", "product"):
        wanted = getattr(output, column)
        known = sorted(set(rows[column].unique()))
        if wanted not in known:
            where = "" if column == "metric" else f" for {output.metric}"
            return f"no {column} {wanted!r}{where} (there is: {', '.join(map(str, known))})" + _RERUN
        rows = rows[rows[column] == wanted]
    if output.quarter is not None:
        return f"no rows in quarter {output.quarter} (summary metrics keep regions only in the final quarter)" + _RERUN
    return "no such row" + _RERUN


_RERUN = "; the runs are saved: run again with another --output to analyse them"


# ------------------------------------------------------------------------------------------
# Sampling and analysis (model-free: these take and return arrays)
# ------------------------------------------------------------------------------------------
def problem(parameters: list[Parameter]) -> dict[str, Any]:
    """The SALib problem definition."""
    return {
        "num_vars": len(parameters),
        "names": [p.key for p in parameters],
        "bounds": [[p.low, p.high] for p in parameters],
    }


def sample(
    method: str, problem: dict[str, Any], n: int, *, seed: int = 0, second_order: bool = False, levels: int = 4
) -> Any:
    """The design: one row per point, one column per parameter."""
    _require_salib()
    if method == "sobol":
        from SALib.sample import sobol

        if n < 2 or n & (n - 1):
            raise CliError(f"--samples must be a power of 2 for Sobol sampling, got {n}")
        return sobol.sample(problem, n, calc_second_order=second_order, scramble=True, seed=seed)
    if method == "morris":
        from SALib.sample import morris

        if levels < 2 or levels % 2:
            raise CliError(f"--levels must be an even number of at least 2, got {levels}")
        return morris.sample(problem, n, num_levels=levels, seed=seed)
    raise CliError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")


def _require_salib() -> None:
    try:
        import SALib  # noqa: F401
    except ImportError:
        raise CliError("sensitivity analysis needs SALib: pip install 'cloudwar[sensitivity]'") from None


def _analysis_seed(seed: int) -> int:
    """The seed of SALib's bootstrap confidence intervals, derived from ``seed`` and never 0.

    SALib seeds its bootstrap only ``if seed:``, so a seed of 0 would leave the intervals to
    chance; the sweep's default seed is 0.
    """
    import numpy as np

    return int(np.random.SeedSequence([seed, 0x5A1B]).generate_state(1)[0]) or 1


def analyze(
    method: str,
    problem: dict[str, Any],
    x: Any,
    y: Any,
    *,
    seed: int = 0,
    second_order: bool = False,
    levels: int = 4,
) -> Any:
    """Sensitivity indices as a tidy table: parameter, index, value, conf (95% half-width, or NaN)."""
    import numpy as np
    import pandas as pd

    rows: list[tuple[str, str, float, float]] = []
    names = problem["names"]
    if method == "sobol":
        from SALib.analyze import sobol

        with np.errstate(divide="ignore", invalid="ignore"):
            si = sobol.analyze(problem, y, calc_second_order=second_order, seed=_analysis_seed(seed))
        for i, name in enumerate(names):
            rows.append((name, "S1", si["S1"][i], si["S1_conf"][i]))
            rows.append((name, "ST", si["ST"][i], si["ST_conf"][i]))
        if second_order:
            for i in range(len(names)):
                for j in range(i + 1, len(names)):
                    rows.append((f"{names[i]} x {names[j]}", "S2", si["S2"][i, j], si["S2_conf"][i, j]))
    elif method == "morris":
        from SALib.analyze import morris

        si = morris.analyze(problem, x, y, num_levels=levels, seed=_analysis_seed(seed))
        for i, name in enumerate(names):
            rows.append((name, "mu", si["mu"][i], np.nan))
            rows.append((name, "mu_star", si["mu_star"][i], si["mu_star_conf"][i]))
            rows.append((name, "sigma", si["sigma"][i], np.nan))
    else:
        raise CliError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    frame = pd.DataFrame(rows, columns=["parameter", "index", "value", "conf"])
    frame["value"] = frame["value"].astype(float)
    frame["conf"] = frame["conf"].astype(float)
    return frame


def design_points(parameters: list[Parameter], x: Any) -> list[tuple[Any, ...]]:
    """The design as scenario values: whole-number keys rounded, the rest plain floats."""
    return [
        tuple(int(round(float(v))) if p.integer else float(v) for p, v in zip(parameters, row, strict=True))
        for row in x
    ]


# ------------------------------------------------------------------------------------------
# Figure
# ------------------------------------------------------------------------------------------
def plot_indices(indices: Any, method: str, path: str | Path, title: str = "") -> Path:
    """One panel per output: Sobol S1 and ST bars with 95% intervals, or the Morris mu* - sigma plane."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    outputs = list(dict.fromkeys(indices["output"]))
    fig, axes = plt.subplots(1, len(outputs), figsize=(6.0 * len(outputs), 4.5), squeeze=False)
    for ax, output in zip(axes[0], outputs, strict=True):
        table = indices[indices["output"] == output]
        if method == "sobol":
            names = list(dict.fromkeys(table.loc[table["index"] == "S1", "parameter"]))
            ypos = np.arange(len(names))
            for offset, index, colour in ((-0.2, "S1", "tab:blue"), (0.2, "ST", "tab:orange")):
                part = table[table["index"] == index].set_index("parameter").reindex(names)
                label = "first order S1" if index == "S1" else "total ST"
                ax.barh(ypos + offset, part["value"], 0.38, xerr=part["conf"], label=label, color=colour, capsize=3)
            ax.set_yticks(ypos, names)
            ax.invert_yaxis()
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_xlabel("Sobol index (share of the output's variance)")
            ax.legend(frameon=False)
        else:
            wide = table.pivot(index="parameter", columns="index", values="value")
            conf = table[table["index"] == "mu_star"].set_index("parameter")["conf"].reindex(wide.index)
            ax.errorbar(wide["mu_star"], wide["sigma"], xerr=conf, fmt="o", capsize=3)
            for name, row in wide.iterrows():
                ax.annotate(name, (row["mu_star"], row["sigma"]), textcoords="offset points", xytext=(4, 4))
            ax.set_xlabel("mu* (mean |elementary effect|: output change over the parameter's range)")
            ax.set_ylabel("sigma (spread of the elementary effects)")
            ax.margins(0.15)
            ax.set_xlim(left=0)
            ax.set_ylim(bottom=0)
        ax.set_title(output)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------
def cmd_sensitivity(args: argparse.Namespace) -> int:
    import pandas as pd

    from cloudwar.runs.sweep import describe_report, execute, plan_sweep, read_sweep, report_problems

    if not args.param:
        raise CliError("--param: give at least one key=low:high")
    parameters = [parse_param(text) for text in args.param]
    keys = [p.key for p in parameters]
    if len(set(keys)) != len(keys):
        raise CliError(f"--param {next(k for k in keys if keys.count(k) > 1)}: given twice")
    outputs = [parse_output(text) for text in args.output]
    samples = args.samples or (64 if args.method == "sobol" else 10)
    prob = problem(parameters)
    x = sample(args.method, prob, samples, seed=args.seed, second_order=args.second_order, levels=args.levels)
    design = {
        "method": args.method,
        "samples": samples,
        "second_order": args.second_order,
        "levels": args.levels,
        "parameters": {p.key: [p.low, p.high] for p in parameters},
    }
    # Check both ends of every range first: a clearer message than one about a sampled point.
    for p in parameters:
        plan_sweep(
            args.scenario,
            (p.key,),
            design_points([p], [[p.low], [p.high]]),
            fixed=parse_sets(args.set),
            option="--param",
        )
    plan = plan_sweep(
        args.scenario,
        keys,
        design_points(parameters, x),
        seeds=args.seeds,
        seed=args.seed,
        fixed=parse_sets(args.set),
        metrics=args.metrics,
        design=design,
        option="--param",
    )
    base = parse_scenario(plan.scenario)
    for output in outputs:
        check_output(output, base)
    what = "base samples" if args.method == "sobol" else "trajectories"
    print(
        f"{args.method}: {len(parameters)} parameter{'s' * (len(parameters) > 1)}, {samples} {what}"
        f" -> {len(plan.points)} points"
        f" x {args.seeds} seeds = {plan.n_runs} runs",
        file=sys.stderr,
    )
    report = execute(args, plan)
    print(describe_report(report, args.out), file=sys.stderr)
    status = report_problems(report, args.out)
    if report.missing:
        raise CliError(f"{report.missing} runs are missing; run the same command again before the analysis")
    runs, metrics = read_sweep(args.out)
    tables = []
    for output in outputs:
        y = output_values(runs, metrics, output, args.seeds, len(plan.points))
        if float(y.std()) == 0.0:
            print(f"cloudwar: warning: --output {output.label} is the same at every point", file=sys.stderr)
        table = analyze(args.method, prob, x, y, seed=args.seed, second_order=args.second_order, levels=args.levels)
        table.insert(0, "output", output.label)
        tables.append(table)
    indices = pd.concat(tables, ignore_index=True)
    title = (
        f"{args.method} sensitivity, {Path(args.scenario).stem}: {len(plan.points)} points x {args.seeds} seeds"
        f" (95% intervals)"
    )

    def write(tmp: Path) -> None:
        indices.to_csv(tmp / "indices.csv", index=False)
        plot_indices(indices, args.method, tmp / "sensitivity.png", title=title)

    write_atomically(Path(args.out), write)
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.float_format", "{:.4f}".format):
        print(indices.to_string(index=False))
    print(f"wrote {Path(args.out) / 'indices.csv'}, {Path(args.out) / 'sensitivity.png'}")
    return status


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    from cloudwar.runs.sweep import add_execution_arguments

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
    sens.set_defaults(func=cmd_sensitivity)

"""Global sensitivity analysis with SALib, run on the sweep machinery.

``sensitivity("baseline", {"choice.network_weight": (0, 1)}, ["revenue_share,provider=Alibaba"], out=DIR)``,
on the command line ``cloudwar sensitivity --param choice.network_weight=0:1 --output revenue_share,provider=Alibaba --out DIR``

1. **Sample.** SALib draws the design over the box of the parameters' (low, high) bounds: Sobol
   (Saltelli's scheme on a scrambled Sobol sequence, ``N (D + 2)`` points, ``N (2D + 2)`` with
   ``second_order``) or Morris (``N`` trajectories of ``D + 1`` points on a ``levels`` grid).
   Whole-number scenario keys (``enterprises``, ``quarters``, ...) are rounded; the analysis uses
   the nominal design.
2. **Run.** The design's points are a sweep (:mod:`cloudwar.runs.sweep`): same folder layout, same
   backends, resumable, bit-identical whatever runs it. With ``seeds=R`` each point is run R
   times (the same R random streams at every point) and the output is their mean.
3. **Analyse.** Each output picks one number per run from the metrics table and SALib
   computes the indices: Sobol first-order S1 and total ST (and S2) with bootstrap confidence
   intervals; Morris mu, mu* and sigma of the elementary effects.

``DIR`` gets the sweep's ``sweep.json``, ``runs/`` and ``metrics/``, plus ``indices.csv`` (tidy:
output, parameter, index, value, conf) and ``sensitivity.png``. The outputs are not part of the
sweep: rerun with another output and only the analysis is redone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from cloudwar.errors import SweepError
from cloudwar.runs.design import Design, check_size, plan_design
from cloudwar.runs.executors import Executor
from cloudwar.runs.output import write_atomically
from cloudwar.runs.runner import RunReport, run_design
from cloudwar.runs.store import read_sweep
from cloudwar.scenario import Scenario, parse_scenario

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


def make_parameter(key: str, low: float, high: float) -> Parameter:
    """A checked :class:`Parameter`: finite numeric bounds, low below high, a numeric key
    (one-line :class:`SweepError` naming ``parameters`` otherwise)."""
    values = []
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
            raise SweepError(
                f"parameters {key}: bounds must be finite numbers, got {low!r}:{high!r}", param="parameters"
            )
        values.append(float(bound))
    low, high = values
    if not low < high:
        raise SweepError(f"parameters {key}: empty range {low:g}:{high:g} (low must be below high)", param="parameters")
    kind = key_type(key)
    if kind in (bool, str):
        raise SweepError(
            f"parameters {key}: only numeric keys can vary, this one is {kind.__name__}", param="parameters"
        )
    if kind is int and math.ceil(low) > math.floor(high):
        raise SweepError(f"parameters {key}: no whole number in {low:g}:{high:g}", param="parameters")
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
        raise SweepError(
            f"outputs {text!r}: expected METRIC[,provider=NAME][,region=NAME][,product=NAME][,quarter=N]",
            param="outputs",
        )
    fields: dict[str, Any] = {}
    for item in items:
        key, _, value = (part.strip() for part in item.partition("="))
        if key not in ("provider", "region", "product", "quarter") or not value:
            raise SweepError(
                f"outputs {text!r}: unknown selector {item!r} (use provider=, region=, product=, quarter=)",
                param="outputs",
            )
        if key == "quarter":
            if not value.isdigit():
                raise SweepError(f"outputs {text!r}: quarter must be a whole number, got {value!r}", param="outputs")
            fields[key] = int(value)
        else:
            fields[key] = value
    return Output(metric, **fields)


def check_output(output: Output, scenario: Scenario) -> None:
    """Fail before running if ``output`` names a metric, provider, region or product the runs will not have."""
    from cloudwar.results import METRICS

    known = [m for m in METRICS if m != "ai_adoption" or "ai" in scenario.product_names]
    if output.metric not in known:
        raise SweepError(
            f"outputs {output.label}: no metric {output.metric!r} (known: {', '.join(known)})", param="outputs"
        )
    for column, names in (
        ("provider", scenario.provider_names),
        ("region", scenario.region_names),
        ("product", scenario.product_names),
    ):
        wanted = getattr(output, column)
        if wanted != "all" and wanted not in names:
            raise SweepError(
                f"outputs {output.label}: no {column} {wanted!r} (known: {', '.join(names)}, all)", param="outputs"
            )
    if output.quarter is not None and not 1 <= output.quarter <= scenario.quarters:
        raise SweepError(f"outputs {output.label}: quarter must be between 1 and {scenario.quarters}", param="outputs")


def output_values(runs: Any, metrics: Any, output: Output, seeds: int, n_points: int) -> Any:
    """One value per point: ``output`` of each run, averaged over the point's replicates."""
    import numpy as np

    failed = runs[runs["status"] != "ok"]
    if len(failed):
        first = failed.iloc[0]
        raise SweepError(f"{len(failed)} runs ended with an error, e.g. run {first['run']}: {first['error']}")
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
        raise SweepError(f"outputs {output.label}: {_why_empty(metrics, output)}", param="outputs")
    if sel["run"].duplicated().any():
        raise SweepError(f"outputs {output.label}: more than one row per run", param="outputs")
    values = sel.set_index("run")["value"].reindex(runs["run"])
    if values.isna().any():
        run = int(values[values.isna()].index[0])
        raise SweepError(
            f"outputs {output.label}: no value for run {run} (NaN or missing); choose another output", param="outputs"
        )
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


_RERUN = "; the runs are saved: run again with another output to analyse them"


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
            raise SweepError(f"samples must be a power of 2 for Sobol sampling, got {n}", param="samples")
        return sobol.sample(problem, n, calc_second_order=second_order, scramble=True, seed=seed)
    if method == "morris":
        from SALib.sample import morris

        if levels < 2 or levels % 2:
            raise SweepError(f"levels must be an even number of at least 2, got {levels}", param="levels")
        return morris.sample(problem, n, num_levels=levels, seed=seed)
    raise SweepError(f"method must be one of {', '.join(METHODS)}, got {method!r}", param="method")


def _require_salib() -> None:
    try:
        import SALib  # noqa: F401
    except ImportError:
        raise SweepError("sensitivity analysis needs SALib: pip install 'cloudwar[sensitivity]'") from None


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
        raise SweepError(f"method must be one of {', '.join(METHODS)}, got {method!r}", param="method")
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
# The whole analysis as one function
# ------------------------------------------------------------------------------------------
@dataclass
class SensitivityResult:
    """What :func:`sensitivity` found: the indices (tidy: output, parameter, index, value, conf),
    the run report, the design that ran, and warnings for the user (one line each)."""

    indices: Any
    report: RunReport
    design: Design
    warnings: list[str] = field(default_factory=list)


def design_size(method: str, n_parameters: int, samples: int, second_order: bool = False) -> int:
    """How many points SALib's design has for ``samples`` (Sobol base samples or Morris trajectories)."""
    if method == "sobol":
        return samples * ((2 * n_parameters + 2) if second_order else (n_parameters + 2))
    return samples * (n_parameters + 1)


def sensitivity(
    scenario: str | Path = "baseline",
    parameters: Mapping[str, tuple[float, float]] | Sequence[Parameter] = (),
    outputs: Sequence[Output | str] = (),
    *,
    out: str | Path,
    method: str = "sobol",
    samples: int | None = None,
    seeds: int = 1,
    seed: int = 0,
    fixed: dict[str, Any] | None = None,
    metrics: str = "summary",
    second_order: bool = False,
    levels: int = 4,
    executor: Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    connect_timeout: float = 10.0,
    announce: Callable[[str, Design], None] | None = None,
) -> SensitivityResult:
    """Sample the parameters' box, run the points as a design into ``out`` (resumable), analyse each output.

    ``parameters``: ``{key: (low, high)}`` or :class:`Parameter` objects; ``outputs``:
    :class:`Output` objects or their text (``"revenue_share,provider=Alibaba"``). Writes
    ``indices.csv`` and ``sensitivity.png`` into ``out`` beside the runs. ``announce`` receives a
    line describing the plan, and the design, before anything runs. Errors name the argument at fault.
    """
    if method not in METHODS:
        raise SweepError(f"method must be one of {', '.join(METHODS)}, got {method!r}", param="method")
    if isinstance(parameters, Mapping):
        parameters = [make_parameter(key, *bounds) for key, bounds in parameters.items()]
    parameters = list(parameters)
    if not parameters:
        raise SweepError("parameters: give at least one key with its (low, high) range", param="parameters")
    keys = [p.key for p in parameters]
    if len(set(keys)) != len(keys):
        raise SweepError(f"parameters {next(k for k in keys if keys.count(k) > 1)}: given twice", param="parameters")
    outputs = [o if isinstance(o, Output) else parse_output(o) for o in outputs]
    if not outputs:
        raise SweepError("outputs: give at least one output to analyse", param="outputs")
    samples = samples or (64 if method == "sobol" else 10)
    points = check_size(design_size(method, len(parameters), samples, second_order), 1, param="samples")
    check_size(points, seeds)
    prob = problem(parameters)
    x = sample(method, prob, samples, seed=seed, second_order=second_order, levels=levels)
    info = {
        "method": method,
        "samples": samples,
        "second_order": second_order,
        "levels": levels,
        "parameters": {p.key: [p.low, p.high] for p in parameters},
    }
    # Check both ends of every range first: a clearer message than one about a sampled point.
    for p in parameters:
        plan_design(scenario, (p.key,), design_points([p], [[p.low], [p.high]]), fixed=fixed)
    design = plan_design(
        scenario, keys, design_points(parameters, x), seeds=seeds, seed=seed, fixed=fixed, metrics=metrics, design=info
    )
    base = parse_scenario(design.scenario)
    for output in outputs:
        check_output(output, base)
    if announce is not None:
        what = "base samples" if method == "sobol" else "trajectories"
        announce(
            f"{method}: {len(parameters)} parameter{'s' * (len(parameters) > 1)}, {samples} {what}"
            f" -> {len(design.points)} points x {seeds} seeds = {design.n_runs} runs",
            design,
        )
    report = run_design(
        design,
        out,
        executor=executor,
        workers=workers,
        scheduler=scheduler,
        batch_size=batch_size,
        progress=progress,
        connect_timeout=connect_timeout,
        description=f"sensitivity {Path(str(scenario)).stem}",
    )
    if report.missing:
        raise SweepError(f"{report.missing} runs are missing; run the same command again before the analysis")
    import pandas as pd

    runs, table = read_sweep(out)
    tables, warnings = [], []
    for output in outputs:
        y = output_values(runs, table, output, seeds, len(design.points))
        if float(y.std()) == 0.0:
            warnings.append(f"output {output.label} is the same at every point")
        frame = analyze(method, prob, x, y, seed=seed, second_order=second_order, levels=levels)
        frame.insert(0, "output", output.label)
        tables.append(frame)
    indices = pd.concat(tables, ignore_index=True)
    title = (
        f"{method} sensitivity, {Path(str(scenario)).stem}: {len(design.points)} points x {seeds} seeds (95% intervals)"
    )

    def write(tmp: Path) -> None:
        indices.to_csv(tmp / "indices.csv", index=False)
        plot_indices(indices, method, tmp / "sensitivity.png", title=title)

    write_atomically(out, write)
    return SensitivityResult(indices, report, design, warnings)

"""Ensembles of named scenarios, paired by seed: ``compare(arms, out, seeds=...)`` and ``ensemble(...)``.

An *arm* is a named scenario: a shipped name or TOML file with its own overrides
(:class:`Arm`). Every arm runs the same ``seeds`` replicates, whose model seeds follow the runs
layer's one seed rule (:func:`cloudwar.runs.design.run_seed`): replicate ``r`` of every arm sees
the same random streams (common random numbers), so the difference between two arms in one
replicate is the arms' doing, not the luck of the draw.

Each arm's runs go to its own resumable store, ``OUT/arms/NAME`` (the folder layout of
:mod:`cloudwar.runs.store`, readable with ``read_sweep``), all through one executor. Run the
same comparison again and only the missing runs run; an arm whose scenario, overrides, seeds or
seed changed is refused (before anything runs) with one line naming it.

:func:`compare` then writes, atomically (:func:`cloudwar.runs.output.write_atomically`):

* ``compare.csv``: the paired differences of every arm against the first, per provider and
  headline metric at the horizon (:data:`HEADLINE`): the mean over seeds, and a 90% Student-t
  interval of the mean difference (``mean +- t(0.95, n - 1) sd / sqrt(n)``; empty with one seed);
* ``compare.png``: one panel per headline metric, one band per arm (median and 10-90% over
  seeds) over calendar time, for one provider.

With ``posterior=K``, every arm runs ``K`` parameter sets drawn from the shipped posterior
(:func:`cloudwar.runs.posterior.load_posterior`, the same draws in every arm, each refitted to
start where the arm's scenario starts) x ``seeds`` replicates, paired by draw and replicate. The
difference is then the mean over draws of each draw's mean paired difference, and ``low``-``high``
the 5-95% quantiles of the per-draw differences across draws: parameter uncertainty, with the
Monte Carlo noise of ``seeds`` replicates inside each draw (column ``interval`` says which).
Keys an arm or ``fixed`` sets are not drawn.

:func:`ensemble` is the one-arm case that ``cloudwar run --seeds N`` uses: the tidy results of
every seed with a ``seed`` column, quantiles at the horizon and a band figure per provider.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cloudwar.errors import SweepError
from cloudwar.runs.design import Design, plan_design
from cloudwar.runs.executors import Executor, make_executor
from cloudwar.runs.output import check_out_folder, write_atomically
from cloudwar.runs.runner import RunReport, run_design
from cloudwar.runs.store import Store, read_sweep

ARMS = "arms"  # the arms' stores, inside OUT
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
INTERVAL = 0.90  # the coverage of the interval of the mean difference
#: Headline metrics of a provider at the horizon: (metric, product, label, unit, scale for the figure).
#: ``product=None`` stands for each product of the scenario.
HEADLINE: tuple[tuple[str, str | None, str, str, float], ...] = (
    ("revenue_share", "all", "revenue share", "%", 100.0),
    ("volume_share", None, "volume share", "%", 100.0),
    ("customer_share", None, "customer share", "%", 100.0),
    ("operating_margin", "all", "operating margin", "%", 100.0),
    ("npv", "all", "NPV of free cash flow", "USD bn", 1e-9),
    ("enterprise_value", "all", "enterprise value", "USD bn", 1e-9),
)
UNITS = {"%": "fraction", "USD bn": "USD"}  # the table keeps the results' own units


@dataclass(frozen=True)
class Arm:
    """A named scenario: ``scenario`` (shipped name or TOML path) with ``overrides`` (dotted keys)."""

    name: str
    scenario: str | Path = "baseline"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompareResult:
    """What :func:`compare` produced: the paired-differences table, the horizon values per run, the reports."""

    differences: pd.DataFrame  # compare.csv
    values: pd.DataFrame  # arm, replicate, seed, provider, metric, product, value (at the horizon)
    reports: dict[str, RunReport]
    out: Path
    provider: str  # the provider the figure follows


def plan_arms(
    arms: Sequence[Arm],
    seeds: int,
    seed: int = 0,
    fixed: dict[str, Any] | None = None,
    minimum: int = 2,
    posterior: int = 0,
) -> list[Design]:
    """One design per arm (validated, one line naming the arm and key otherwise), the same seeds in each.

    ``fixed`` applies to every arm, before the arm's own overrides (an arm's own keys win). With
    ``posterior`` draws, each arm's points are the draws (module docstring).
    """
    if len(arms) < minimum:
        raise SweepError(f"arms: a comparison needs at least {minimum} arms, got {len(arms)}", param="arms")
    names = [arm.name for arm in arms]
    for name in names:
        if not NAME.fullmatch(name):
            raise SweepError(
                f"arms: name {name!r}: use letters, digits, '_', '.', '-' (it names a folder)", param="arms"
            )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SweepError(f"arms: the name {twice[0]!r} is given twice (every arm needs its own name)", param="arms")
    if isinstance(posterior, bool) or not isinstance(posterior, int) or posterior < 0:
        raise SweepError(f"posterior must be a whole number of draws >= 0, got {posterior}", param="posterior")
    if posterior:
        from cloudwar.runs.posterior import load_posterior

        shipped = load_posterior()
    designs = []
    for arm in arms:
        own = {**(fixed or {}), **arm.overrides}
        try:
            if posterior:
                draws = shipped.overrides(posterior, arm.scenario, seed=seed, fixed=own, exclude=set(own))
                labels, points = ("arm", "draw"), [(arm.name, d) for d in range(posterior)]
                overrides = [{**draw, **own} for draw in draws]
            else:
                labels, points, overrides = ("arm",), [(arm.name,)], [own]
            designs.append(
                plan_design(
                    arm.scenario,
                    labels,
                    points,
                    overrides=overrides,
                    seeds=seeds,
                    seed=seed,
                    metrics="summary",
                    design={
                        "arm": arm.name,
                        "scenario": str(arm.scenario),
                        "overrides": arm.overrides,
                        "posterior": posterior,
                    },
                )
            )
        except SweepError as err:
            if err.param in ("seeds", "seed"):
                raise
            raise SweepError(f"arm {arm.name}: {err}", param="arms") from None
        except ValueError as err:  # a ScenarioError: name the arm
            message = str(err).removeprefix("overrides ")
            raise SweepError(f"arm {arm.name}: {message}", param="arms") from None
    return designs


def check_stores(designs: Sequence[Design], folders: Sequence[Path], what: Sequence[str]) -> None:
    """Refuse, before anything runs, a store folder that holds other runs than its design (``what``: how to name it)."""
    for design, folder, name in zip(designs, folders, what, strict=True):
        if Store(folder, param="out")._difference(design, design.manifest()):
            raise SweepError(
                f"out {name} ran another scenario, overrides, seeds or seed; use another folder, or delete it to start over",
                param="out",
            )


def run_stores(
    designs: Sequence[Design],
    folders: Sequence[Path],
    labels: Sequence[str],
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    connect_timeout: float = 10.0,
    progress: bool = False,
) -> list[RunReport]:
    """Every design's missing runs into its store folder, one after the other on one executor; the reports.

    Raises :class:`SweepError` if runs are left undone (a worker died too often): run again."""
    own = executor is None
    if executor is None:
        executor = make_executor(workers, scheduler, connect_timeout)
    try:
        reports = [
            run_design(design, folder, executor=executor, progress=progress, description=label)
            for design, folder, label in zip(designs, folders, labels, strict=True)
        ]
    finally:
        if own:
            executor.close()
    missing = sum(r.missing for r in reports)
    if missing:
        raise SweepError(f"{missing} runs did not finish; run the same command again")
    return reports


def arm_results(folder: Path) -> pd.DataFrame:
    """An arm's kept results, tidy, with ``replicate`` and ``seed`` (the model seed) instead of ``run``."""
    runs, metrics = read_sweep(folder)
    failed = runs[runs["status"] != "ok"]
    if len(failed):
        first = failed.iloc[0]
        raise SweepError(
            f"{len(failed)} runs of {folder} ended with an error, e.g. run {first['run']}: {first['error']}"
        )
    keep = ["run", "replicate", "seed", *(["draw"] if "draw" in runs.columns else [])]
    table = metrics.merge(runs[keep], on="run", how="left", sort=False)
    return table.drop(columns="run")


def headline(table: pd.DataFrame) -> list[tuple[str, str, str, str, float]]:
    """The headline (metric, product, label, unit, scale) rows for the products of ``table`` (any table
    with a ``product`` column), each product's rows where :data:`HEADLINE` says ``None``."""
    products = [p for p in pd.unique(table["product"]) if p != "all"]
    rows = []
    for metric, product, label, unit, scale in HEADLINE:
        for k in products if product is None else [product]:
            rows.append((metric, k, label if product is not None else f"{k} {label}", unit, scale))
    return rows


def horizon_values(results: pd.DataFrame) -> pd.DataFrame:
    """Each run's headline metrics at its last quarter, per provider: replicate, seed, provider, metric, product, value."""
    last = results[(results["quarter"] == results["quarter"].max()) & (results["region"] == "all")]
    last = last[last["provider"] != "all"]
    keep = pd.MultiIndex.from_tuples([(m, k) for m, k, *_ in headline(results)])
    picked = last[pd.MultiIndex.from_frame(last[["metric", "product"]].astype(object)).isin(keep)]
    draw = ["draw"] if "draw" in picked.columns else []
    return picked[[*draw, "replicate", "seed", "provider", "metric", "product", "value"]].reset_index(drop=True)


def t_interval(differences: np.ndarray, coverage: float = INTERVAL) -> tuple[float, float, float]:
    """(mean, low, high): the mean of paired differences and its Student-t interval (NaN bounds for one value)."""
    from scipy import stats

    n = len(differences)
    mean = float(np.mean(differences))
    if n < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + coverage / 2, n - 1) * np.std(differences, ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half


def paired_differences(values: pd.DataFrame) -> pd.DataFrame:
    """Every arm against the first (``values`` from :func:`horizon_values` with an ``arm`` column, arms in order).

    Rows: arm, provider, metric, product, unit, seeds, reference (the first arm's mean), mean (this
    arm's), difference, low, high (the 90% t-interval of the mean difference). Providers missing
    from either arm are left out. Pairs are matched by replicate, whose seed must be the same.
    """
    units = {(m, k): UNITS[u] for m, k, _, u, _ in headline(values)}
    arms = list(pd.unique(values["arm"]))
    drawn = "draw" in values.columns and values["draw"].notna().all()
    keys = [*(["draw"] if drawn else []), "replicate", "provider", "metric", "product"]
    reference = values[values["arm"] == arms[0]].set_index(keys)
    rows = []
    for arm in arms[1:]:
        other = values[values["arm"] == arm].set_index(keys)
        pairs = reference.merge(other, how="inner", left_index=True, right_index=True, suffixes=("_ref", ""))
        if not (pairs["seed_ref"] == pairs["seed"]).all():
            raise SweepError(f"arm {arm}: its replicates ran other seeds than arm {arms[0]}'s (not paired)")
        for (provider, metric, product), group in pairs.groupby(level=["provider", "metric", "product"], sort=False):
            diff = group["value"].to_numpy() - group["value_ref"].to_numpy()
            if drawn:
                per_draw = pd.Series(diff, index=group.index.get_level_values("draw")).groupby(level=0).mean()
                mean = float(per_draw.mean())
                low, high = (float(q) for q in np.percentile(per_draw.to_numpy(), [5, 95]))
            else:
                mean, low, high = t_interval(diff)
            rows.append(
                {
                    "arm": arm,
                    "provider": provider,
                    "metric": metric,
                    "product": product,
                    "unit": units[(metric, product)],
                    "seeds": len(diff) // (int(per_draw.size) if drawn else 1),
                    "draws": int(per_draw.size) if drawn else 0,
                    "interval": "5-95% across posterior draws" if drawn else f"{INTERVAL:.0%} t over seeds",
                    "reference": float(group["value_ref"].mean()),
                    "mean": float(group["value"].mean()),
                    "difference": mean,
                    "low": low,
                    "high": high,
                }
            )
    return pd.DataFrame(rows)


def calendar_index(start: str, steps: Sequence[int]) -> np.ndarray:
    """Model steps as running calendar quarters (:func:`cloudwar.quarters.index`), so arms that start apart line up."""
    from cloudwar.quarters import index

    return index(start) - 1 + np.asarray(steps, dtype=int)


def _quarter_label(x: float, _: Any = None) -> str:
    q = int(round(x))
    return f"{q // 4}Q{q % 4 + 1}"


def band_figure(
    ensembles: dict[str, tuple[pd.DataFrame, str]],
    provider: str | None = None,
    title: str = "",
) -> Any:
    """One panel per headline metric over calendar time, median and 10-90% band over seeds.

    ``ensembles``: label -> (tidy results with ``replicate``, the scenario's start quarter). With
    ``provider``, one band per label (the arms) for that provider; without, the one ensemble's
    providers, one band each.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    from cloudwar.plots import band, provider_colours

    first = next(iter(ensembles.values()))[0]
    rows = headline(first)
    cols = 3
    fig = Figure(figsize=(5.2 * cols, 3.6 * -(-len(rows) // cols)))
    axes = list(fig.subplots(-(-len(rows) // cols), cols, squeeze=False).ravel())
    if provider is None:
        results, start = first, next(iter(ensembles.values()))[1]
        names = [p for p in pd.unique(results["provider"]) if p != "all"]
        colours = provider_colours(names)
        curves = [(name, results[results["provider"] == name], start, colours[name]) for name in names]
    else:
        palette = [f"C{i}" for i in range(10)]
        curves = [
            (label, results[results["provider"] == provider], start, palette[i % 10])
            for i, (label, (results, start)) in enumerate(ensembles.items())
        ]
    for ax, (metric, product, label, unit, scale) in zip(axes, rows, strict=False):
        for name, results, start, colour in curves:
            sel = results[
                (results["metric"] == metric) & (results["region"] == "all") & (results["product"] == product)
            ]
            if sel.empty:
                continue
            index = ["draw", "replicate"] if "draw" in sel.columns else "replicate"
            wide = sel.pivot_table(index=index, columns="quarter", values="value")
            wide.columns = calendar_index(start, wide.columns)
            band(ax, wide, name, colour, scale)
        ax.set_title(label + (f", {provider}" if provider else ""))
        ax.set_ylabel(unit)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))  # whole quarters, labelled 2026Q1
        ax.xaxis.set_major_formatter(FuncFormatter(_quarter_label))
    for ax in axes[len(rows) :]:
        ax.axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return fig


def compare(
    arms: Sequence[Arm],
    out: str | Path,
    *,
    seeds: int = 8,
    seed: int = 0,
    fixed: dict[str, Any] | None = None,
    provider: str | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    connect_timeout: float = 10.0,
    progress: bool = False,
    posterior: int = 0,
) -> CompareResult:
    """Run ``seeds`` paired replicates of every arm into ``out`` (resumable) and write compare.csv and compare.png.

    ``posterior``: draws from the shipped posterior per arm (module docstring); 0 for the calibrated point.

    ``provider``: the provider the figure follows (default: the first arm's first provider; it
    must be in every arm). Everything is validated before anything is run or written.
    """
    out = check_out_folder(out)
    arms = [arm if isinstance(arm, Arm) else Arm(*arm) for arm in arms]
    designs = plan_arms(arms, seeds, seed, fixed, posterior=posterior)
    names = [arm.name for arm in arms]
    providers = [[p["name"] for p in d.scenario.get("providers", [])] for d in designs]
    provider = provider if provider is not None else (providers[0][0] if providers[0] else "")
    for name, have in zip(names, providers, strict=True):
        if provider not in have:
            raise SweepError(
                f"provider {provider!r} is not in arm {name} (its providers: {', '.join(have)})", param="provider"
            )
    folders = [out / ARMS / name for name in names]
    check_stores(designs, folders, [f"{out}: arm {name} there" for name in names])
    reports = run_stores(
        designs,
        folders,
        names,
        executor=executor,
        workers=workers,
        scheduler=scheduler,
        connect_timeout=connect_timeout,
        progress=progress,
    )
    ensembles = {
        name: (arm_results(out / ARMS / name), _start(design)) for name, design in zip(names, designs, strict=True)
    }
    values = pd.concat(
        [horizon_values(results).assign(arm=name) for name, (results, _) in ensembles.items()], ignore_index=True
    )
    values = values[["arm", *[c for c in values.columns if c != "arm"]]]
    differences = paired_differences(values)

    def write(tmp: Path) -> None:
        from cloudwar.plots import FIGURE_DPI

        differences.to_csv(tmp / "compare.csv", index=False)
        runs = f"{posterior} posterior draws x {seeds} paired seeds" if posterior else f"{seeds} paired seeds"
        title = f"{' vs '.join(names)}: {runs} (median, 10-90%)"
        band_figure(ensembles, provider, title).savefig(tmp / "compare.png", dpi=FIGURE_DPI)

    write_atomically(out, write)
    return CompareResult(differences, values, dict(zip(names, reports, strict=True)), out, provider)


@dataclass
class EnsembleResult:
    """What :func:`ensemble` produced: every seed's results (tidy, with ``replicate`` and ``seed``), the summary."""

    results: pd.DataFrame
    summary: pd.DataFrame  # provider, metric, product, unit, median, p10, p90 at the horizon
    report: RunReport
    out: Path


STORE = "store"  # the runs of ``run --seeds``, inside OUT


def ensemble(
    scenario: str | Path,
    out: str | Path,
    *,
    seeds: int,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    connect_timeout: float = 10.0,
    progress: bool = False,
) -> EnsembleResult:
    """``seeds`` runs of one scenario (seeds by the one rule from ``seed``) into ``OUT/store`` (resumable), and
    ``results.csv`` (every row of every run, tidy, with ``replicate`` and ``seed``), ``summary.csv`` (the
    headline metrics at the horizon per provider: median and 10-90%) and ``bands.png`` (one band per provider)."""
    out = check_out_folder(out)
    design = plan_design(
        scenario,
        (),
        [()],
        overrides=[dict(overrides or {})],
        seeds=seeds,
        seed=seed,
        metrics="all",
        design={"run": str(scenario)},
    )
    check_stores([design], [out / STORE], [f"{out}: its runs"])
    (report,) = run_stores(
        [design],
        [out / STORE],
        [str(scenario)],
        executor=executor,
        workers=workers,
        scheduler=scheduler,
        connect_timeout=connect_timeout,
        progress=progress,
    )
    results = arm_results(out / STORE)
    results = results[["seed", "replicate", *[c for c in results.columns if c not in ("seed", "replicate")]]]
    values = horizon_values(results)
    units = {(m, k): UNITS[u] for m, k, _, u, _ in headline(results)}
    summary = (
        values.groupby(["provider", "metric", "product"], sort=False)["value"]
        .quantile([0.1, 0.5, 0.9])
        .unstack()
        .rename(columns={0.1: "p10", 0.5: "median", 0.9: "p90"})
        .reset_index()
    )
    summary.insert(3, "unit", [units[(m, k)] for m, k in zip(summary["metric"], summary["product"], strict=True)])
    summary = summary[["provider", "metric", "product", "unit", "median", "p10", "p90"]]
    name = design.scenario.get("name", str(scenario))

    def write(tmp: Path) -> None:
        from cloudwar.plots import FIGURE_DPI

        results.to_csv(tmp / "results.csv", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
        title = f"{name}: {seeds} seeds (median, 10-90%)"
        band_figure({name: (results, _start(design))}, None, title).savefig(tmp / "bands.png", dpi=FIGURE_DPI)

    write_atomically(out, write)
    return EnsembleResult(results, summary, report, out)


def _start(design: Design) -> str:
    return str(design.params(0).get("start", design.scenario.get("start", "2025Q4")))

"""Alibaba's capex plan at 0.5x, 1x and 1.5x (and none): what share does capacity buy, at what value?

Alibaba plays ``share_first`` in the calibrated baseline with its committed plan scaled:
``capex_plan`` = multiple x RMB 380bn spent evenly over 12 quarters whatever demand does
(facts.md), then capex for demand; the reference arm ``for demand`` has no plan and builds for
demand from the start (the utilisation rule; the calibration sets capex costs so that this
spends RMB 120bn in the first year, Alibaba's last four quarters). Each plan is run twice: for
ever share-first, and harvesting after the plan (from quarter 13 prices steer the margin to
30%). All arms run on the same seeds (common random numbers).

Value: NPV of free cash flow over the run and NPV plus a terminal value (the last year's
operating income as a no-growth perpetuity, 0 if negative), USD bn discounted to 2025Q4.

Usage::

    python experiments/capex_plans.py               # 60 seeds x 4 capex paths x 2 playbooks, 10,000 enterprises
    python experiments/capex_plans.py --quick       # seconds; a smoke test, not a result

Writes, atomically, into ``--out`` (default ``out/capex_plans``): ``runs.csv`` (one row per run),
``plans.csv`` (medians per plan and playbook), ``posterior.csv``, ``capex_plans.png`` and ``summary.md``.

Across the posterior (``--posterior K``, default 20, x ``--posterior-seeds S``, default 2): every
plan and playbook on K parameter sets drawn from the shipped posterior (each start matched),
paired by draw and seed; each plan minus building for demand per draw in ``posterior.csv``, the
median and 5-95% across draws in the summary (runs in ``OUT/store_posterior``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    POSTERIOR,
    QUICK_POSTERIOR,
    add_posterior_options,
    draw_interval,
    fill_posterior_defaults,
    fixed_values,
    main,
    matplotlib_pyplot,
    output_folder,
    parse_run_args,
    per_draw_differences,
    quantiles,
    ran_on,
    run_arms,
    run_posterior_arms,
    series,
    terminal_value,
)

FOCUS = "Alibaba"
PLAN_RMB = 380e9  # facts.md: RMB 380bn over three years
PLANS = ("for demand", "0.5x", "1x", "1.5x")


def plan_overrides(plan: str) -> dict:
    """Overrides of Alibaba's strategy for a plan label."""
    if plan == "for demand":
        return {f"providers.{FOCUS}.strategy.plan_quarters": 0}
    return {f"providers.{FOCUS}.strategy.capex_plan": float(plan.removesuffix("x")) * PLAN_RMB}


PLAYBOOKS = {"share_first": {}, "share_first_harvest": {f"providers.{FOCUS}.strategy.harvest_quarter": 13}}
KEEP = (
    ("npv", "all", "all"),
    ("operating_income", "all", "all"),
    ("operating_margin", "all", "all"),
    ("capex", "all", "all"),
    ("capacity_utilisation", "all", "all"),
    ("service_level", "china", "all"),
    ("revenue_share", "china", "ai"),
    ("revenue_share", "china", "cloud"),
    ("revenue_share", "all", "cloud"),
)
QUICK = {"seeds": 3, "enterprises": 2000, "quarters": 16}  # past harvest_quarter 13, so the harvest arm harvests
#: Each plan against building for demand across the posterior: column -> (label, scale, unit).
POSTERIOR_COLUMNS = {
    "npv_bn": ("NPV", 1, "USD bn"),
    "value_bn": ("NPV + terminal value", 1, "USD bn"),
    "share_China_cloud_mean": ("China cloud share, mean", 100, "points"),
    "utilisation_first_3y": ("utilisation, first 3 years", 100, "points"),
}
MARKERS = {"share_first": "o", "share_first_harvest": "s"}


def parse_args(argv: list[str] | None = None):
    """Command-line options."""

    def extra(parser) -> None:
        add_posterior_options(parser, POSTERIOR["posterior"], POSTERIOR["posterior_seeds"])

    args = parse_run_args("capex_plans.py", __doc__, "capex_plans", 60, QUICK, argv, extra)
    fill_posterior_defaults(args, QUICK_POSTERIOR, POSTERIOR)
    return args


def _arms(args) -> tuple[list[tuple[dict, dict]], dict]:
    """The points of the design (labels, overrides), plan by plan, and the values fixed in every run."""
    fixed = fixed_values(args)
    arms = [
        ({"plan": plan, "playbook": playbook}, {**overrides, **plan_overrides(plan)})
        for plan in PLANS
        for playbook, overrides in PLAYBOOKS.items()
    ]
    return arms, fixed


def runs_table(table: pd.DataFrame, discount_rate: float) -> pd.DataFrame:
    """One row per run: capex, value, margins and shares."""
    npv = series(table, "npv", FOCUS)
    quarters = int(npv.columns.max())
    income = series(table, "operating_income", FOCUS)
    last_year = income.loc[:, income.columns > quarters - 4].sum(axis=1)
    out = pd.DataFrame(index=npv.index)
    out["capex_first_3y_bn"] = series(table, "capex", FOCUS).loc[:, lambda d: d.columns <= 12].sum(axis=1) / 1e9
    out["npv_bn"] = npv[quarters] / 1e9
    out["value_bn"] = out.npv_bn + terminal_value(last_year.to_numpy(), discount_rate, quarters) / 1e9
    margin = series(table, "operating_margin", FOCUS)
    out["margin_first_3y"] = margin.loc[:, margin.columns <= 12].mean(axis=1)
    out["margin_last_year"] = margin.loc[:, margin.columns > quarters - 4].mean(axis=1)
    out["utilisation_first_3y"] = (
        series(table, "capacity_utilisation", FOCUS).loc[:, lambda d: d.columns <= 12].mean(axis=1)
    )
    out["service_level_china_min"] = series(table, "service_level", FOCUS, "china").min(axis=1)
    for (region, product), label in {
        ("china", "ai"): "China_AI",
        ("china", "cloud"): "China_cloud",
        ("all", "cloud"): "world_cloud",
    }.items():
        share = series(table, "revenue_share", FOCUS, region, product)
        out[f"share_{label}_mean"] = share.mean(axis=1)
        out[f"share_{label}_end"] = share[quarters]
    return out.reset_index()


def plot(runs: pd.DataFrame, path: Path) -> None:
    plt = matplotlib_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    colours = dict(zip(PLANS, plt.cm.viridis(np.linspace(0.1, 0.85, len(PLANS))), strict=True))
    for ax, column, title in [
        (axes[0], "npv_bn", "NPV over the run"),
        (axes[1], "value_bn", "NPV plus terminal value"),
    ]:
        for (plan, playbook), group in runs.groupby(["plan", "playbook"], sort=False):
            ax.scatter(
                100 * group.share_China_cloud_mean,
                group[column],
                s=8,
                alpha=0.35,
                color=colours[plan],
                marker=MARKERS[playbook],
            )
            ax.scatter(
                100 * group.share_China_cloud_mean.median(),
                group[column].median(),
                s=90,
                color=colours[plan],
                marker=MARKERS[playbook],
                edgecolor="black",
                label=f"{plan if plan == 'for demand' else plan + ' plan'}, {playbook.replace('_', ' ')}",
            )
        ax.set_xlabel("Alibaba's share of China cloud revenue, mean over the run (%)")
        ax.set_ylabel("USD bn, discounted to 2025Q4")
        ax.set_title(title, fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(
        "Alibaba's capex plan (multiple of RMB 380bn over 12 quarters, or none): share against value", fontsize=11
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def summary(args, runs: pd.DataFrame, runtime: float, command: str, quarters: int) -> str:
    lines = [
        "# Capex plans: share against NPV",
        "",
        *(["**QUICK MODE: a smoke test, NOT a result.**", ""] if args.quick else []),
        f"- command: `{command}`",
        f"- {args.seeds} seeds (master seed {args.seed}) x {len(PLANS)} plans x {len(PLAYBOOKS)} playbooks, "
        f"{args.enterprises:,} enterprises, {quarters} quarters; runtime {runtime:.0f} s on {ran_on(args)}",
        "- median (10-90% across seeds); value = NPV plus the last year's operating income as a no-growth "
        "perpetuity; USD bn discounted to 2025Q4",
        "",
        "| plan | playbook | capex, first 3 years (USD bn) | utilisation, first 3 years | China cloud share, mean "
        "| China AI share, mean | margin, first 3 years | NPV (USD bn) | NPV + terminal value |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (plan, playbook), r in runs.groupby(["plan", "playbook"], sort=False):
        lines.append(
            f"| {plan} | {playbook} | {r.capex_first_3y_bn.median():.0f} | {100 * r.utilisation_first_3y.median():.0f}% "
            f"| {100 * r.share_China_cloud_mean.median():.1f}% | {100 * r.share_China_AI_mean.median():.1f}% "
            f"| {100 * r.margin_first_3y.median():.1f}% | {quantiles(r.npv_bn)} | {quantiles(r.value_bn)} |"
        )
    return "\n".join(lines) + "\n"


def posterior_lines(args, post: pd.DataFrame) -> list[str]:
    """Each plan against building for demand across the posterior, as a markdown section."""
    if post.empty:
        return []
    lines = [
        "",
        f"## Across the posterior: parameter uncertainty ({args.posterior} draws x {args.posterior_seeds} seeds)",
        "",
        "Each plan minus building for demand, same playbook, paired by draw and seed: the median over draws of "
        "each draw's mean over its seeds, and its 5-95% across draws.",
        "",
        "| plan | playbook | "
        + " | ".join(f"{label} ({unit})" for label, _, unit in POSTERIOR_COLUMNS.values())
        + " |",
        "|---|---|" + "---|" * len(POSTERIOR_COLUMNS),
    ]
    for (plan, playbook), r in post.groupby(["plan", "playbook"], sort=False):
        cells = [draw_interval(r[c], scale) for c, (_, scale, _) in POSTERIOR_COLUMNS.items()]
        lines.append(f"| {plan} | {playbook} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def run(args, command: str) -> Path:
    from cloudwar import load_scenario

    discount_rate = load_scenario("baseline").discount_rate
    start = time.perf_counter()
    arms, fixed = _arms(args)
    table = run_arms(args, "capex_plans.py", arms, KEEP, fixed)
    post = pd.DataFrame()
    if args.posterior:
        drawn = runs_table(run_posterior_arms(args, "capex_plans.py", arms, KEEP, fixed), discount_rate)
        post = per_draw_differences(drawn, "plan", "for demand", list(POSTERIOR_COLUMNS), within=["playbook"])
    runtime = time.perf_counter() - start
    runs = runs_table(table, discount_rate)
    plans = runs.groupby(["plan", "playbook"], sort=False).median(numeric_only=True).drop(columns="seed").reset_index()
    with output_folder(args.out) as tmp:
        runs.to_csv(tmp / "runs.csv", index=False, float_format="%.6g")
        plans.to_csv(tmp / "plans.csv", index=False, float_format="%.6g")
        if not post.empty:
            post.to_csv(tmp / "posterior.csv", index=False, float_format="%.6g")
        plot(runs, tmp / "capex_plans.png")
        text = summary(args, runs, runtime, command, int(table.quarter.max())) + "\n".join(posterior_lines(args, post))
        (tmp / "summary.md").write_text(text)
    print(text)
    return args.out


if __name__ == "__main__":
    sys.exit(main("capex_plans.py", parse_args, run))

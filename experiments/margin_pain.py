"""Is Alibaba's margin pain justified? share_first against a margin_discipline counterfactual.

Alibaba plays one of three playbooks in the calibrated baseline, every other provider its own:

* ``share_first``: the baseline playbook, for ever (price 10% below its starting position
  against rivals, the RMB 380bn capex plan over 12 quarters, USD 0.3bn a quarter on open source);
* ``share_first_harvest``: the same for the three years of the plan, then prices steer the
  operating margin to 30% (the article's hope: pain now, AWS-like margins later);
* ``margin_discipline``: the counterfactual, AWS's playbook from the start (hold a 30-36%
  operating margin, capex by utilisation, no open-source spending, so the funded part of its
  ecosystem fades).

Every arm runs on the same seeds (common random numbers), so arms are compared seed by seed:
the spread across seeds is Monte Carlo noise under one set of assumptions. Parameter uncertainty
comes from the ``posterior`` world: ``--posterior`` draws (40) from the shipped posterior
(``cloudwar calibrate``: the behavioural parameters fitted to 2023Q3-2025Q3, see
:mod:`cloudwar.runs.posterior`) x ``--posterior-seeds`` seeds (5) x the three arms, paired by draw
and seed; its interval is across draws. Then the same in harsher worlds: ``rivals_match`` (every rival matches price cuts in full),
``weak_network`` (network and ecosystem effects cut: network weight 0.5 -> 0.1, ecosystem
weight 0.5 -> 0.25), ``low_switching`` (switching cost 2.0 -> 0.6) and ``all_harsh`` (all three).

Value: NPV of free cash flow over the run (the model's ``npv``) and NPV plus a terminal value
(the last year's operating income as a no-growth perpetuity at the scenario's discount rate,
0 if negative; :func:`_common.terminal_value`).

Usage::

    python experiments/margin_pain.py                 # 100 seeds x 3 arms x 5 worlds + 40 draws x 5 seeds x 3 arms
    python experiments/margin_pain.py --quick         # seconds; a smoke test, not a result

Writes, atomically, into ``--out`` (default ``out/margin_pain``): ``runs.csv`` (one row per
run), ``trajectories.csv`` (10/50/90% bands per arm, world and quarter), ``worlds.csv`` (the
comparison per world), ``posterior.csv`` (per posterior draw and aggressive arm: its parameters and
the paired differences, mean over its seeds), ``trajectories.png``, ``npv.png``, ``worlds.png``,
``posterior.png`` and ``summary.md``. The posterior world's runs are kept in ``OUT/store_posterior``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    QUICK_POSTERIOR,
    add_posterior_options,
    band,
    draw_interval,
    fill_posterior_defaults,
    fixed_values,
    main,
    matplotlib_pyplot,
    output_folder,
    parse_run_args,
    quantiles,
    ran_on,
    run_arms,
    run_posterior_arms,
    series,
    terminal_value,
)

from cloudwar.plots import calendar_axis
from cloudwar.scenario import load_scenario

START = load_scenario("baseline").start  # figures' calendar axes: quarter 1 is the baseline's start

FOCUS = "Alibaba"
ARMS = {
    "share_first": {},
    "share_first_harvest": {f"providers.{FOCUS}.strategy.harvest_quarter": 13},
    "margin_discipline": {f"providers.{FOCUS}.strategy": {"kind": "margin_discipline"}},
}
AGGRESSIVE = ("share_first", "share_first_harvest")
COUNTERFACTUAL = "margin_discipline"
HARSH = {
    "rivals_match": "every rival matches price cuts in full (match = 1)",
    "weak_network": "network weight 0.5 -> 0.1 and ecosystem weight 0.5 -> 0.25",
    "low_switching": "switching cost 2.0 -> 0.6 utility units (exits about 10% a year)",
}
KEEP = (
    ("npv", "all", "all"),
    ("operating_income", "all", "all"),
    ("operating_margin", "all", "all"),
    ("revenue", "all", "all"),
    ("capex", "all", "all"),
    ("revenue_share", "china", "ai"),
    ("volume_share", "china", "ai"),
    ("customer_share", "china", "ai"),
    ("revenue_share", "china", "cloud"),
    ("revenue_share", "all", "cloud"),
)
SHARES = {
    ("china", "ai"): "China AI cloud",
    ("china", "cloud"): "China cloud",
    ("all", "cloud"): "world cloud",
}
QUICK = {"seeds": 3, "enterprises": 2000, "quarters": 16}  # past harvest_quarter 13, so the harvest arm harvests
POSTERIOR = {"posterior": 40, "posterior_seeds": 5}  # draws x seeds of the posterior world
POINT = -1  # the draw label of the calibrated point (every world but the posterior one)
COLORS = {"share_first": "tab:orange", "share_first_harvest": "tab:red", "margin_discipline": "tab:blue"}


def world_overrides(name: str) -> dict:
    """Scenario overrides of a world."""
    from cloudwar import load_scenario

    if name == "baseline":
        return {}
    if name == "all_harsh":
        return {k: v for part in HARSH for k, v in world_overrides(part).items()}
    if name == "rivals_match":
        rivals = [p.name for p in load_scenario("baseline").providers if p.name != FOCUS]
        return {f"providers.{r}.strategy.match": 1.0 for r in rivals}
    if name == "weak_network":
        return {"choice.network_weight": 0.1, "choice.ecosystem_weight": 0.25}
    if name == "low_switching":
        return {"enterprise.switching_cost": 0.6}
    raise ValueError(f"unknown world {name!r}")


WORLDS = ["baseline", *HARSH, "all_harsh"]


def parse_args(argv: list[str] | None = None):
    """Command-line options."""

    def extra(parser) -> None:
        add_posterior_options(parser, POSTERIOR["posterior"], POSTERIOR["posterior_seeds"])

    args = parse_run_args("margin_pain.py", __doc__, "margin_pain", 100, QUICK, argv, extra)
    fill_posterior_defaults(args, QUICK_POSTERIOR, POSTERIOR)
    return args


def _arms(args) -> tuple[list[tuple[dict, dict]], dict]:
    """The points of the design (labels, overrides), world by world, and the values fixed in every run."""
    fixed = fixed_values(args)
    arms = [
        ({"world": world, "arm": arm, "draw": POINT}, {**world_overrides(world), **arm_overrides})
        for world in WORLDS
        for arm, arm_overrides in ARMS.items()
    ]
    return arms, fixed


def posterior_draws(args) -> pd.DataFrame:
    """The posterior world's parameter sets: ``draw`` and the parameters that carry over to the baseline."""
    from cloudwar.runs.posterior import load_posterior

    shipped = load_posterior()
    table = shipped.draws(args.posterior, seed=args.seed)
    return table[["draw", *(p.name for p in shipped.priors if p.transfers)]]


def _return_quarter(margins: pd.DataFrame) -> pd.Series:
    """First quarter (after the first) whose trailing 4-quarter mean margin is at least 30%; NaN if never."""
    rolling = margins.T.rolling(4, min_periods=4).mean().T
    reached = rolling.loc[:, rolling.columns > 1] >= 0.30
    first = reached.idxmax(axis=1).astype(float)
    return first.where(reached.any(axis=1))


def runs_table(table: pd.DataFrame, discount_rate: float) -> pd.DataFrame:
    """One row per run: value, margins, shares and the margin's return to 30%."""
    npv = series(table, "npv", FOCUS)
    quarters = int(npv.columns.max())
    income = series(table, "operating_income", FOCUS)
    margin = series(table, "operating_margin", FOCUS)
    last_year = income.loc[:, income.columns > quarters - 4].sum(axis=1)
    out = pd.DataFrame(index=npv.index)
    out["npv_bn"] = npv[quarters] / 1e9
    out["terminal_value_bn"] = terminal_value(last_year.to_numpy(), discount_rate, quarters) / 1e9
    out["value_bn"] = out.npv_bn + out.terminal_value_bn
    out["margin_first_3y"] = margin.loc[:, margin.columns <= 12].mean(axis=1)
    out["margin_last_year"] = margin.loc[:, margin.columns > quarters - 4].mean(axis=1)
    out["margin_back_to_30_quarter"] = _return_quarter(margin)
    for (region, product), label in SHARES.items():
        share = series(table, "revenue_share", FOCUS, region, product)
        out[f"share_{label.replace(' ', '_')}_start"] = share[1]
        out[f"share_{label.replace(' ', '_')}_end"] = share[quarters]
    # Beside revenue share, the shares a price cut cannot inflate or a price rise fake: volume, customers.
    for kind in ("volume", "customer"):
        out[f"{kind}_share_China_AI_end"] = series(table, f"{kind}_share", FOCUS, "china", "ai")[quarters]
    return out.reset_index()


def worlds_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per world and aggressive arm: P(higher value than the counterfactual, same seed), mean differences."""
    rows = []
    for world in WORLDS:
        here = runs[runs.world == world].set_index(["arm", "draw", "seed"])
        base = here.loc[COUNTERFACTUAL]
        for arm in AGGRESSIVE:
            mine = here.loc[arm].reindex(base.index)
            rows.append(
                {
                    "world": world,
                    "arm": arm,
                    "p_higher_npv": float((mine.npv_bn > base.npv_bn).mean()),
                    "p_higher_value_with_terminal": float((mine.value_bn > base.value_bn).mean()),
                    "mean_npv_difference_bn": float((mine.npv_bn - base.npv_bn).mean()),
                    "mean_value_difference_bn": float((mine.value_bn - base.value_bn).mean()),
                    "share_China_AI_end": float(mine.share_China_AI_cloud_end.mean()),
                    "share_China_AI_end_counterfactual": float(base.share_China_AI_cloud_end.mean()),
                    "volume_share_China_AI_end": float(mine.volume_share_China_AI_end.mean()),
                    "volume_share_China_AI_end_counterfactual": float(base.volume_share_China_AI_end.mean()),
                    "margin_last_year": float(mine.margin_last_year.mean()),
                    "margin_last_year_counterfactual": float(base.margin_last_year.mean()),
                    "p_margin_back_to_30": float(mine.margin_back_to_30_quarter.notna().mean()),
                }
            )
    return pd.DataFrame(rows)


PAIRED = {  # column of the runs table -> the paired difference reported
    "npv_bn": "npv_difference_bn",
    "value_bn": "value_difference_bn",
    "share_China_AI_cloud_end": "revenue_share_China_AI_difference",
    "volume_share_China_AI_end": "volume_share_China_AI_difference",
    "margin_last_year": "margin_last_year_difference",
}


def posterior_table(runs: pd.DataFrame, draws: pd.DataFrame) -> pd.DataFrame:
    """Per draw and aggressive arm: the draw's parameters and its paired differences against margin
    discipline (same draw, same seed), averaged over the draw's seeds."""
    here = runs[runs.world == "posterior"].set_index(["arm", "draw", "seed"])
    if here.empty:
        return pd.DataFrame()
    base = here.loc[COUNTERFACTUAL]
    rows = []
    for arm in AGGRESSIVE:
        mine = here.loc[arm].reindex(base.index)
        diff = pd.DataFrame({name: mine[col] - base[col] for col, name in PAIRED.items()})
        per_draw = diff.groupby(level="draw").mean()
        per_draw["p_higher_value_across_seeds"] = (diff["value_difference_bn"] > 0).groupby(level="draw").mean()
        per_draw["share_China_AI_start"] = mine["share_China_AI_cloud_start"].groupby(level="draw").mean()
        per_draw.insert(0, "arm", arm)
        rows.append(per_draw.reset_index())
    table = pd.concat(rows, ignore_index=True)
    return draws.merge(table, on="draw", how="right")[["arm", *draws.columns, *table.columns.drop(["arm", "draw"])]]


def plot_posterior(post: pd.DataFrame, path: Path) -> None:
    """Per draw: the paired value difference (with terminal value) against the two weights that matter most."""
    plt = matplotlib_pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for arm in AGGRESSIVE:
        sel = post[post.arm == arm].sort_values("value_difference_bn")
        axes[0].plot(np.linspace(0, 1, len(sel)), sel["value_difference_bn"], marker="o", ms=3, color=COLORS[arm],
                     label=arm.replace("_", " "))  # fmt: skip
    axes[0].axhline(0, color="black", lw=1)
    axes[0].set_xlabel("posterior draws, sorted (fraction)")
    axes[0].set_ylabel("NPV + terminal value, aggressive - discipline\n(USD bn, mean over the draw's seeds)")
    axes[0].set_title("The answer across the posterior", fontsize=10)
    axes[0].legend(fontsize=8)
    harvest = post[post.arm == "share_first_harvest"]
    for ax, parameter in zip(axes[1:], ("ecosystem_weight", "network_weight"), strict=True):
        points = ax.scatter(harvest[parameter], harvest["value_difference_bn"], c=harvest["switching_cost"],
                            cmap="viridis", s=18)  # fmt: skip
        ax.axhline(0, color="black", lw=1)
        ax.set_xlabel(parameter.replace("_", " "))
        ax.set_title(f"harvest vs discipline by {parameter.replace('_', ' ')}", fontsize=10)
    fig.colorbar(points, ax=axes[2], label="switching cost")
    fig.suptitle("Parameter uncertainty: paired differences per posterior draw (shipped posterior)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def bands_table(table: pd.DataFrame) -> pd.DataFrame:
    """10/50/90% bands of Alibaba's margin and shares per world, arm and quarter."""
    rows = []
    metrics = {"operating_margin": ("all", "all")} | {f"revenue_share {v}": k for k, v in SHARES.items()}
    for name, (region, product) in metrics.items():
        wide = series(table, name.split(" ")[0], FOCUS, region, product)
        for (world, arm), group in wide[wide.index.get_level_values("world") != "posterior"].groupby(
            level=["world", "arm"], sort=False
        ):
            low, mid, high = np.nanpercentile(group.to_numpy(), [10, 50, 90], axis=0)
            for q, a, b, c in zip(group.columns, low, mid, high, strict=True):
                rows.append({"world": world, "arm": arm, "metric": name, "quarter": q, "p10": a, "p50": b, "p90": c})
    return pd.DataFrame(rows)


def plot_trajectories(table: pd.DataFrame, path: Path, world: str = "baseline") -> None:
    plt = matplotlib_pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = [("operating_margin", "all", "all", "Alibaba operating margin", "operating income / revenue (%)")]
    panels += [
        ("revenue_share", r, p, f"Alibaba share of {label}", "share of revenue (%)") for (r, p), label in SHARES.items()
    ]
    for ax, (metric, region, product, title, ylabel) in zip(axes.ravel(), panels, strict=True):
        wide = series(table, metric, FOCUS, region, product)
        for arm in ARMS:
            sel = wide.xs((world, arm), level=("world", "arm"))
            band(ax, sel, arm.replace("_", " "), COLORS[arm], scale=100)
        if metric == "operating_margin":
            ax.axhline(30, color="black", ls="--", lw=1, label="30% (the AWS model)")
        if (region, product) == ("china", "ai"):  # volume share beside revenue share: a price rise is no gain
            volume = series(table, "volume_share", FOCUS, region, product)
            for arm in ARMS:
                median = volume.xs((world, arm), level=("world", "arm")).median()
                ax.plot(median.index, 100 * median.to_numpy(), color=COLORS[arm], ls=":", lw=1.5)
            title += " (dotted: volume share)"
            ylabel = "share of revenue / of volume (%)"
        ax.set_title(title)
        calendar_axis(ax, START, int(min(wide.columns)), int(max(wide.columns)))
        ax.set_xlabel("calendar quarter")
        ax.set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Alibaba's playbooks, {world} world: median and 10-90% band across seeds", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_npv(runs: pd.DataFrame, path: Path, world: str = "baseline") -> None:
    plt = matplotlib_pyplot()
    here = runs[runs.world == world]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, column, title in [
        (axes[0], "npv_bn", "NPV of free cash flow over the run"),
        (axes[1], "value_bn", "NPV plus terminal value (no-growth perpetuity)"),
    ]:
        values = here[column]
        bins = np.linspace(values.min(), values.max(), 30)
        for arm in ARMS:
            ax.hist(
                here[here.arm == arm][column], bins=bins, alpha=0.55, color=COLORS[arm], label=arm.replace("_", " ")
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("USD bn (discounted to 2025Q4 at 10% a year)")
        ax.set_ylabel("runs")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Alibaba's value by playbook, {world} world", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_worlds(worlds: pd.DataFrame, path: Path) -> None:
    plt = matplotlib_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    x = np.arange(len(WORLDS))
    for ax, column, title in [
        (axes[0], "p_higher_npv", "NPV over the run"),
        (axes[1], "p_higher_value_with_terminal", "NPV plus terminal value"),
    ]:
        for i, arm in enumerate(AGGRESSIVE):
            sel = worlds[worlds.arm == arm].set_index("world").reindex(WORLDS)
            ax.bar(x + (i - 0.5) * 0.38, sel[column], width=0.38, color=COLORS[arm], label=arm.replace("_", " "))
        ax.axhline(0.5, color="black", lw=1, ls=":")
        ax.set_xticks(x, [w.replace("_", "\n") for w in WORLDS], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("P(aggressive path worth more than\nmargin discipline, same seed)")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "When does the pain pay? Share of seeds in which the aggressive path has the higher value", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def posterior_lines(args, post: pd.DataFrame) -> list[str]:
    """The summary's section on parameter uncertainty."""
    if post.empty:
        return []
    lines = [
        "",
        f"## Across the posterior: parameter uncertainty ({args.posterior} draws x {args.posterior_seeds} seeds, "
        "paired by draw and seed)",
        "",
        "Each draw is a set of behavioural parameters from the shipped posterior (fitted to 2023Q3-2025Q3 by "
        "`cloudwar calibrate`); the interval is across draws (each draw's mean over its seeds).",
        "",
        "| aggressive path | NPV difference (USD bn): median (5-95% of draws) | NPV + terminal value difference "
        "| draws in which it pays (with terminal value) | China AI volume share difference (points) "
        "| margin last year difference (points) |",
        "|---|---|---|---|---|---|",
    ]
    for arm in AGGRESSIVE:
        r = post[post.arm == arm]
        lines.append(
            f"| {arm} | {draw_interval(r.npv_difference_bn)} | {draw_interval(r.value_difference_bn)} "
            f"| {(r.value_difference_bn > 0).mean():.0%} | {draw_interval(r.volume_share_China_AI_difference, 100)} "
            f"| {draw_interval(r.margin_last_year_difference, 100)} |"
        )
    start = post[post.arm == AGGRESSIVE[0]].share_China_AI_start
    lines += [
        "",
        "Each draw's qualities are refitted so that the baseline starts where its calibrated point does "
        "(`Posterior.overrides`, matched expected starting shares): across draws Alibaba's quarter-1 China AI "
        f"revenue share is {100 * start.median():.1f}% (5-95%: {100 * start.quantile(0.05):.1f}% to "
        f"{100 * start.quantile(0.95):.1f}%). The stress worlds above are not refitted: they move the start too.",
    ]
    return lines


def summary(args, runs: pd.DataFrame, worlds: pd.DataFrame, runtime: float, command: str, quarters: int,
            post: pd.DataFrame | None = None) -> str:  # fmt: skip
    base = runs[runs.world == "baseline"]
    lines = [
        "# Is the margin pain justified? Alibaba's share_first against margin_discipline",
        "",
        *(["**QUICK MODE: a smoke test, NOT a result.**", ""] if args.quick else []),
        f"- command: `{command}`",
        f"- {args.seeds} seeds (master seed {args.seed}) x {len(ARMS)} arms x {len(WORLDS)} worlds = "
        f"{(runs.world != 'posterior').sum()} runs, plus {args.posterior} posterior draws x {args.posterior_seeds} "
        f"seeds x {len(ARMS)} arms = {(runs.world == 'posterior').sum()} runs; {args.enterprises:,} enterprises, "
        f"{quarters} quarters; runtime {runtime:.0f} s on {ran_on(args)}",
        "- value: NPV of free cash flow over the run at 10% a year; 'with terminal value' adds the last year's "
        "operating income as a no-growth perpetuity (0 if negative). USD bn, discounted to 2025Q4.",
        "",
        "## Baseline world, Alibaba by playbook (median, 10-90% across seeds)",
        "",
        "| playbook | NPV (USD bn) | NPV + terminal value | margin, first 3 years | margin, last year "
        "| China AI share at the end: revenue / volume / customers | runs with margin back to 30% "
        "| median quarter back to 30% |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        r = base[base.arm == arm]
        back = r.margin_back_to_30_quarter
        when = f"{back.median():.0f}" if back.notna().any() else "never"
        lines.append(
            f"| {arm} | {quantiles(r.npv_bn)} | {quantiles(r.value_bn)} | {100 * r.margin_first_3y.median():.1f}% "
            f"| {100 * r.margin_last_year.median():.1f}% | {100 * r.share_China_AI_cloud_end.median():.1f}% / "
            f"{100 * r.volume_share_China_AI_end.median():.1f}% / {100 * r.customer_share_China_AI_end.median():.1f}% "
            f"| {100 * back.notna().mean():.0f}% | {when} |"
        )
    lines += [
        "",
        "## P(the aggressive path is worth more than margin discipline), same seed, by world",
        "",
        "| world | aggressive path | P(higher NPV) | P(higher NPV + terminal value) | mean NPV difference (USD bn) "
        "| mean difference with terminal value | China AI revenue share at the end (vs discipline) "
        "| China AI volume share (vs discipline) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, w in worlds.iterrows():
        lines.append(
            f"| {w.world} | {w.arm} | {w.p_higher_npv:.2f} | {w.p_higher_value_with_terminal:.2f} "
            f"| {w.mean_npv_difference_bn:+.1f} | {w.mean_value_difference_bn:+.1f} "
            f"| {100 * w.share_China_AI_end:.1f}% ({100 * w.share_China_AI_end_counterfactual:.1f}%) "
            f"| {100 * w.volume_share_China_AI_end:.1f}% ({100 * w.volume_share_China_AI_end_counterfactual:.1f}%) |"
        )
    lines += ["", "Worlds: " + "; ".join(f"{k}: {v}" for k, v in HARSH.items()) + "; all_harsh: all three."]
    lines += posterior_lines(args, post if post is not None else pd.DataFrame())
    return "\n".join([*lines, ""])


def run(args, command: str) -> Path:
    from cloudwar import load_scenario

    discount_rate = load_scenario("baseline").discount_rate
    start = time.perf_counter()
    arms, fixed = _arms(args)
    table = run_arms(args, "margin_pain.py", arms, KEEP, fixed)
    draws = posterior_draws(args) if args.posterior else pd.DataFrame(columns=["draw"])
    if args.posterior:
        arms = [({"world": "posterior", "arm": arm}, overrides) for arm, overrides in ARMS.items()]
        more = run_posterior_arms(args, "margin_pain.py", arms, KEEP, fixed)
        table = pd.concat([table, more], ignore_index=True)
    runtime = time.perf_counter() - start
    runs = runs_table(table, discount_rate)
    worlds = worlds_table(runs)
    post = posterior_table(runs, draws)
    with output_folder(args.out) as tmp:
        runs.to_csv(tmp / "runs.csv", index=False, float_format="%.6g")
        bands_table(table).to_csv(tmp / "trajectories.csv", index=False, float_format="%.6g")
        worlds.to_csv(tmp / "worlds.csv", index=False, float_format="%.6g")
        if not post.empty:
            post.to_csv(tmp / "posterior.csv", index=False, float_format="%.6g")
            plot_posterior(post, tmp / "posterior.png")
        plot_trajectories(table, tmp / "trajectories.png")
        plot_npv(runs, tmp / "npv.png")
        plot_worlds(worlds, tmp / "worlds.png")
        text = summary(args, runs, worlds, runtime, command, int(table.quarter.max()), post)
        (tmp / "summary.md").write_text(text)
    print(text)
    return args.out


if __name__ == "__main__":
    sys.exit(main("margin_pain.py", parse_args, run))

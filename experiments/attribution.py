"""What makes Alibaba's margin pain pay or not? Its playbook taken apart lever by lever (a 2^4 factorial).

share_first and the margin_discipline counterfactual differ in four levers: price cuts, the RMB
380bn capex plan, USD 0.3bn a quarter of open-source spend and (optionally) a harvest that turns
prices to a 30% margin from a quarter on. Every corner of the 2^4 design (each lever on or off)
is an Alibaba strategy table (:func:`cloudwar.runs.attribution.corner_strategy`; all off is
``{kind = "margin_discipline"}``, all on but the harvest is the shipped share_first); every corner
runs the same seeds, so each factorial effect is computed seed by seed and reported with a 90%
Student-t interval over seeds. With the price cuts off, prices follow margin discipline from the
start, so the harvest lever does nothing there: those corners share their runs (12 strategies
for 16 corners). Beside the factorial, the full playbook also harvests in other quarters
(``--also-harvest``, default quarter 3), compared with the factorial's harvest quarter.

Outcomes (Alibaba at the horizon): NPV of free cash flow, enterprise value (NPV + terminal
value, the scenario's ``[valuation]``), China AI revenue and customer shares (and volume share
where the results have it).

Across the posterior (``--posterior K``, default 20; ``--posterior-seeds S``, default 2): the
same design on K parameter sets drawn from the shipped posterior (each with the start matched,
:meth:`cloudwar.runs.posterior.Posterior.overrides`) x S seeds; every effect is computed per draw
(mean over its seeds) and reported as its median and 5-95% across draws: parameter uncertainty.
Those runs go to ``OUT/store_posterior``; ``posterior.csv`` has every draw's effects.

Usage::

    python experiments/attribution.py                # 50 seeds x 13 strategies + 20 draws x 2 seeds x 13, 10,000 enterprises
    python experiments/attribution.py --quick        # seconds; a smoke test, not a result

Writes, atomically, into ``--out`` (default ``out/attribution``): ``attribution.csv`` (effects and
contrasts with intervals, in the results' units: USD, fractions), ``corners.csv`` (each corner's
strategy and means), ``runs.csv`` (one row per corner-seed), ``attribution.png`` and ``summary.md``;
the runs themselves in ``OUT/store`` (resumable).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    POSTERIOR,
    QUICK_POSTERIOR,
    add_posterior_options,
    fill_posterior_defaults,
    fixed_values,
    main,
    matplotlib_pyplot,
    output_folder,
    parse_run_args,
    positive_int,
    ran_on,
    run_arms,
    run_posterior_arms,
)

from cloudwar.errors import UsageError
from cloudwar.runs import attribution as attr

QUICK = {"seeds": 3, "enterprises": 2000, "quarters": 16}  # past the harvest quarter 13, so the harvest acts
SEEDS = 50
KIND_ORDER = ("main", "interaction", "alone", "dropped", "contrast")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""

    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--harvest-quarter",
            type=positive_int,
            default=attr.HARVEST_QUARTER,
            help=f"quarter the harvest lever starts (default {attr.HARVEST_QUARTER}, after the 12-quarter plan)",
        )
        parser.add_argument(
            "--also-harvest",
            type=int,
            action="append",
            default=None,
            metavar="Q",
            help="another harvest quarter of the full playbook, beside the factorial (repeatable; default 3; 0: none)",
        )
        add_posterior_options(parser, POSTERIOR["posterior"], POSTERIOR["posterior_seeds"])

    args = parse_run_args("attribution.py", __doc__, "attribution", SEEDS, QUICK, argv, extra=extra)
    from cloudwar import load_scenario

    quarters = args.quarters or load_scenario("baseline").quarters
    args.also_harvest = [q for q in (args.also_harvest or [3]) if q != 0]
    for option, q in [("--harvest-quarter", args.harvest_quarter)] + [("--also-harvest", q) for q in args.also_harvest]:
        if not 2 <= q <= quarters:
            raise UsageError(
                f"{option} {q} must be a quarter from 2 to the last ({quarters}), or the harvest never acts"
            )
        if option == "--also-harvest" and q == args.harvest_quarter:
            raise UsageError(f"--also-harvest {q} is the factorial's own harvest quarter (--harvest-quarter)")
    args.also_harvest = sorted(set(args.also_harvest))
    fill_posterior_defaults(args, QUICK_POSTERIOR, POSTERIOR)
    return args


def attribute(table: pd.DataFrame, args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, corners, effects) from the tidy metrics of every arm: see the module docstring."""
    chosen = attr.outcomes()
    names = [o.name for o in chosen]
    values = attr.outcome_table(table, chosen)
    grid, _ = attr.corner_arms(args.harvest_quarter, args.also_harvest)
    runs = attr.corner_values(values, grid)
    effects = pd.concat(
        [
            attr.factorial_effects(runs, attr.LEVERS, names),
            attr.contrasts(values, names, args.harvest_quarter, args.also_harvest),
        ],
        ignore_index=True,
    )
    units = {o.name: o.unit for o in chosen}
    effects.insert(1, "unit", effects["outcome"].map(units))
    corners = _corners_table(runs, values, grid, names, args)
    return runs, corners, effects


def _corners_table(runs, values, grid, names, args) -> pd.DataFrame:
    """One row per corner (and extra harvest arm): levels, the arm it reads, its strategy, means and sds."""

    def row(name: str, levels: dict, in_factorial: bool, arm: str, strategy: dict, here: pd.DataFrame) -> dict:
        return {
            "corner": name,
            **levels,
            "in_factorial": in_factorial,
            "arm": arm,
            "strategy": json.dumps(strategy, sort_keys=True),
            "seeds": len(here),
            **{f"{n}_mean": here[n].mean() for n in names},
            **{f"{n}_sd": here[n].std(ddof=1) for n in names},
        }

    rows = [row(e.name, e.corner, True, e.arm, e.strategy, runs[runs["corner"] == e.name]) for e in grid]
    full = dict.fromkeys(attr.LEVERS, 1)
    for q in args.also_harvest:
        arm = attr.extra_arm(q)
        rows.append(row(arm, full, False, arm, attr.corner_strategy(full, q), values[values["arm"] == arm]))
    return pd.DataFrame(rows)


def _cell(row: pd.Series, scale: float) -> str:
    if np.isnan(row["low"]):
        return f"{row['estimate'] * scale:+,.2f}"
    return f"{row['estimate'] * scale:+,.2f} [{row['low'] * scale:+,.2f}, {row['high'] * scale:+,.2f}]"


def effects_markdown(effects: pd.DataFrame) -> list[str]:
    """The effects as a markdown table: one row per effect, one column per outcome (its figure unit)."""
    chosen = [o for o in attr.outcomes() if o.name in set(effects["outcome"])]
    head = "| kind | effect | " + " | ".join(f"{o.label} ({o.shown})" for o in chosen) + " |"
    lines = [head, "|---|---|" + "---|" * len(chosen)]
    table = effects.set_index(["kind", "effect", "outcome"])
    for kind in KIND_ORDER:
        for effect in pd.unique(effects.loc[effects["kind"] == kind, "effect"]):
            cells = [_cell(table.loc[(kind, effect, o.name)], o.scale) for o in chosen]
            lines.append(f"| {kind} | {effect} | " + " | ".join(cells) + " |")
    return lines


def plot_effects(effects: pd.DataFrame, path: Path) -> None:
    """One panel per outcome: every factorial effect (main effects coloured) with its 90% interval."""
    plt = matplotlib_pyplot()
    chosen = [o for o in attr.outcomes() if o.name in set(effects["outcome"])]
    cols = 2 if len(chosen) <= 4 else 3
    rows = -(-len(chosen) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 5.0 * rows), squeeze=False)
    for ax, o in zip(axes.ravel(), chosen, strict=False):
        sel = effects[(effects["outcome"] == o.name) & effects["kind"].isin(["main", "interaction"])][::-1]
        y = np.arange(len(sel))
        est, low, high = (sel[c].to_numpy() * o.scale for c in ("estimate", "low", "high"))
        colours = ["tab:red" if k == "main" else "tab:gray" for k in sel["kind"]]
        ax.barh(y, est, color=colours, alpha=0.8)
        if np.isfinite(low).any():
            ax.errorbar(est, y, xerr=[est - low, high - est], fmt="none", ecolor="black", lw=1, capsize=2)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [e.replace(":", " x ") for e in sel["effect"]], fontsize=7)
        ax.set_title(o.label, fontsize=10)
        ax.set_xlabel(o.shown)
    for ax in axes.ravel()[len(chosen) :]:
        ax.axis("off")
    fig.suptitle(
        "Alibaba's playbook lever by lever: factorial effects against margin discipline "
        "(main effects red; 90% interval over seeds)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def summary(args, effects: pd.DataFrame, corners: pd.DataFrame, runtime: float, command: str, quarters: int) -> str:
    n_arms = corners["arm"].nunique()
    lines = [
        "# Attribution: Alibaba's share_first against margin_discipline, lever by lever (2^4 factorial)",
        "",
        *(["**QUICK MODE: a smoke test, NOT a result.**", ""] if args.quick else []),
        f"- command: `{command}`",
        f"- {args.seeds} seeds (master seed {args.seed}) x {n_arms} strategies ({len(attr.corners())} corners "
        f"and {len(args.also_harvest)} extra harvest arm(s)), {args.enterprises:,} enterprises, {quarters} quarters; "
        f"runtime {runtime:.0f} s on {ran_on(args)}",
        "- levers (on vs off): "
        + "; ".join(f"**{k}**: {v}" for k, v in attr.LEVER_DOC.items())
        + f" (harvest quarter {args.harvest_quarter}).",
        "- all off is margin discipline (to the bit); with the price cuts off the harvest does nothing, so "
        "the harvest's main effect is half its effect under price cuts and its interaction with them the other half.",
        "- main effect: mean over the other levers' corners of (on - off); interaction: the standard 2^k contrast; "
        "alone: the lever on against margin discipline; dropped: the full playbook against it without the lever; "
        "[low, high]: 90% Student-t interval over seeds (paired: the same seeds in every corner).",
        "",
        *effects_markdown(effects),
        "",
    ]
    return "\n".join(lines)


def posterior_effects(args: argparse.Namespace, arms: list) -> pd.DataFrame:
    """Every effect and contrast per posterior draw (mean over the draw's seeds): the design on each draw."""
    keep = attr.metric_triples(attr.outcomes())
    table = run_posterior_arms(args, "attribution.py", arms, keep, fixed_values(args))
    frames = []
    for d, part in table.groupby("draw", sort=True):
        _, _, effects = attribute(part.drop(columns="draw"), args)
        frames.append(effects[["outcome", "unit", "kind", "effect", "estimate"]].assign(draw=d))
    return pd.concat(frames, ignore_index=True)


def posterior_summary(per_draw: pd.DataFrame) -> pd.DataFrame:
    """Per effect: median, 5% and 95% across draws, and the share of draws in which it is positive."""
    rows = []
    for (outcome, unit, kind, effect), group in per_draw.groupby(["outcome", "unit", "kind", "effect"], sort=False):
        low, mid, high = np.percentile(group["estimate"], [5, 50, 95])
        rows.append({"outcome": outcome, "unit": unit, "kind": kind, "effect": effect, "draws": len(group),
                     "median": mid, "p05": low, "p95": high, "share_positive": float((group["estimate"] > 0).mean())})  # fmt: skip
    return pd.DataFrame(rows)


def posterior_markdown(args: argparse.Namespace, post: pd.DataFrame) -> list[str]:
    """The effects alone and the named contrasts across the posterior, as a markdown table."""
    if post.empty:
        return []
    chosen = [o for o in attr.outcomes() if o.name in set(post["outcome"])]
    table = post.set_index(["kind", "effect", "outcome"])
    lines = [
        f"## Across the posterior: parameter uncertainty ({args.posterior} draws x {args.posterior_seeds} seeds)",
        "",
        "Each cell: the median over posterior draws of the draw's effect (mean over its seeds), and its 5-95% "
        "across draws; the share of draws in which it is positive in the last column (for the first outcome).",
        "",
        "| kind | effect | " + " | ".join(f"{o.label} ({o.shown})" for o in chosen) + " | draws > 0 |",
        "|---|---|" + "---|" * len(chosen) + "---|",
    ]
    for kind in ("alone", "contrast"):
        for effect in pd.unique(post.loc[post["kind"] == kind, "effect"]):
            cells = []
            for o in chosen:
                r = table.loc[(kind, effect, o.name)]
                cells.append(f"{r['median'] * o.scale:+,.1f} [{r['p05'] * o.scale:+,.1f}, {r['p95'] * o.scale:+,.1f}]")
            share = table.loc[(kind, effect, chosen[0].name)]["share_positive"]
            lines.append(f"| {kind} | {effect} | " + " | ".join(cells) + f" | {share:.0%} |")
    return ["", *lines, ""]


def run(args: argparse.Namespace, command: str) -> Path:
    start = time.perf_counter()
    _, arms = attr.corner_arms(args.harvest_quarter, args.also_harvest)
    table = run_arms(args, "attribution.py", arms, attr.metric_triples(attr.outcomes()), fixed_values(args))
    per_draw = posterior_effects(args, arms) if args.posterior else pd.DataFrame()
    post = posterior_summary(per_draw) if args.posterior else pd.DataFrame()
    runtime = time.perf_counter() - start
    runs, corners, effects = attribute(table, args)
    with output_folder(args.out) as tmp:
        effects.to_csv(tmp / "attribution.csv", index=False)
        corners.to_csv(tmp / "corners.csv", index=False)
        runs.to_csv(tmp / "runs.csv", index=False)
        if not post.empty:
            per_draw.to_csv(tmp / "posterior.csv", index=False)
        plot_effects(effects, tmp / "attribution.png")
        text = summary(args, effects, corners, runtime, command, int(table["quarter"].max()))
        text += "\n".join(posterior_markdown(args, post))
        (tmp / "summary.md").write_text(text)
    print(text)
    return args.out


if __name__ == "__main__":
    sys.exit(main("attribution.py", parse_args, run))

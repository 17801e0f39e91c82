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

Usage::

    python experiments/attribution.py                # 50 seeds x 13 strategies, 10,000 enterprises, 40 quarters
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
from _common import fixed_values, main, matplotlib_pyplot, output_folder, parse_run_args, positive_int, ran_on, run_arms

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


def run(args: argparse.Namespace, command: str) -> Path:
    start = time.perf_counter()
    _, arms = attr.corner_arms(args.harvest_quarter, args.also_harvest)
    table = run_arms(args, "attribution.py", arms, attr.metric_triples(attr.outcomes()), fixed_values(args))
    runtime = time.perf_counter() - start
    runs, corners, effects = attribute(table, args)
    with output_folder(args.out) as tmp:
        effects.to_csv(tmp / "attribution.csv", index=False)
        corners.to_csv(tmp / "corners.csv", index=False)
        runs.to_csv(tmp / "runs.csv", index=False)
        plot_effects(effects, tmp / "attribution.png")
        text = summary(args, effects, corners, runtime, command, int(table["quarter"].max()))
        (tmp / "summary.md").write_text(text)
    print(text)
    return args.out


if __name__ == "__main__":
    sys.exit(main("attribution.py", parse_args, run))

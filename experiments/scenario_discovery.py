"""Where does Alibaba's margin pain pay? Scenario discovery (Latin hypercube + PRIM) over uncertain assumptions.

The assumptions the answer leans on (network and ecosystem weights, switching cost, price
sensitivity, cloud demand growth, how fast an unfunded ecosystem fades, how far rivals match price
cuts; ranges and reasons in :data:`cloudwar.runs.discovery.UNCERTAINTIES`) are sampled by a Latin
hypercube seeded from ``--seed``. At every point Alibaba plays share_first (the shipped playbook;
``--harvest-quarter Q`` adds its harvest) and margin_discipline on the same seeds. The pain pays
at a point when the mean paired difference in enterprise value (share_first minus discipline,
NPV plus terminal value) is above ``--threshold`` (USD bn, default 0). PRIM (ema-workbench) finds
the boxes of assumptions where the points that pay concentrate, with their coverage (share of the
paying points inside) and density (share of the box's points that pay).

Usage::

    python experiments/scenario_discovery.py               # 200 points x 4 seeds x 2 arms, 10,000 enterprises
    python experiments/scenario_discovery.py --quick       # seconds; a smoke test, not a result

Writes, atomically, into ``--out`` (default ``out/scenario_discovery``): ``points.csv`` (every point:
its assumptions, paired differences, whether it pays, its box), ``boxes.csv`` (one row per box and
assumption: limits, restricted or not, coverage, density, mass), ``trajectories.csv`` (PRIM's
peeling trajectories), ``prim.png`` and ``summary.md``; the runs in ``OUT/store`` (resumable; a
new ``--threshold``, ``--min-density`` or ``--boxes`` reuses them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import fixed_values, main, matplotlib_pyplot, output_folder, parse_run_args, positive_int, ran_on, run_arms

from cloudwar.errors import UsageError
from cloudwar.runs import attribution as attr
from cloudwar.runs import discovery as disc

QUICK = {"seeds": 2, "enterprises": 2000, "quarters": 16}
SEEDS = 4
POINTS, QUICK_POINTS = 200, 8
ARM, REFERENCE = "share_first", "margin_discipline"
OUTCOMES = ("enterprise_value", "npv", "china_ai_customer_share")
PAYS_ON = "enterprise_value"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""

    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--points", type=positive_int, default=None, help=f"Latin-hypercube points (default {POINTS})"
        )
        parser.add_argument(
            "--harvest-quarter",
            type=int,
            default=0,
            help="share_first harvests from this quarter on (default 0: never, the shipped playbook)",
        )
        parser.add_argument(
            "--threshold",
            type=float,
            default=0.0,
            help="USD bn: the pain pays where the mean paired enterprise-value difference is above it (default 0)",
        )
        parser.add_argument(
            "--min-density", type=float, default=0.8, help="density a chosen PRIM box needs (default 0.8)"
        )
        parser.add_argument("--boxes", type=positive_int, default=3, help="PRIM boxes at most (default 3)")

    args = parse_run_args("scenario_discovery.py", __doc__, "scenario_discovery", SEEDS, QUICK, argv, extra=extra)
    from cloudwar import load_scenario

    if args.points is None:
        args.points = QUICK_POINTS if args.quick else POINTS
    if args.points < 4:
        raise UsageError(f"--points must be at least 4 for PRIM to have points to peel, got {args.points}")
    quarters = args.quarters or load_scenario("baseline").quarters
    if args.harvest_quarter != 0 and not 2 <= args.harvest_quarter <= quarters:
        raise UsageError(f"--harvest-quarter {args.harvest_quarter} must be 0 (never) or from 2 to {quarters}")
    if not np.isfinite(args.threshold):
        raise UsageError(f"--threshold must be a finite number of USD bn, got {args.threshold}")
    if not 0.0 < args.min_density <= 1.0:
        raise UsageError(f"--min-density must be above 0 and at most 1, got {args.min_density}")
    return args


def strategies(args: argparse.Namespace) -> dict[str, dict]:
    """Alibaba's two playbooks at every point."""
    aggressive = {"kind": "share_first"}
    if args.harvest_quarter:
        aggressive["harvest_quarter"] = args.harvest_quarter
    return {ARM: aggressive, REFERENCE: {"kind": "margin_discipline"}}


def discover(table: pd.DataFrame, sample: pd.DataFrame, args: argparse.Namespace):
    """(points table, PRIM result) from the runs' tidy metrics and the sampled points."""
    chosen = [o for o in attr.outcomes() if o.name in OUTCOMES]
    values = attr.outcome_table(table, chosen)
    paired = disc.paired_by_point(values, [o.name for o in chosen], ARM, REFERENCE)
    points = pd.concat([pd.DataFrame({"draw": range(len(sample))}), sample], axis=1).merge(paired, on="draw")
    pays = (points[f"{PAYS_ON}_difference"] > args.threshold * 1e9).to_numpy()
    result = disc.prim_boxes(points[sample.columns], pays, max_boxes=args.boxes, min_density=args.min_density)
    points["pays"] = pays
    points["box"] = result.membership
    return points, result


def plot_prim(points: pd.DataFrame, result: disc.PrimResult, names: list[str], path: Path) -> None:
    """Trade-off (coverage against density along each box's trajectory), box limits, and the points."""
    plt = matplotlib_pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    ranges = {u.name: (u.low, u.high) for u in disc.UNCERTAINTIES}
    colours = [f"C{i}" for i in range(10)]
    ax = axes[0]
    for number, trajectory in result.trajectories.groupby("box"):
        colour = colours[(number - 1) % 10]
        ax.plot(trajectory["coverage"], trajectory["density"], "o-", ms=3, color=colour, label=f"box {number}")
        chosen = trajectory[trajectory["chosen"]]
        ax.plot(chosen["coverage"], chosen["density"], "*", ms=14, color=colour)
    ax.set(xlim=(0, 1.05), ylim=(0, 1.05), xlabel="coverage", ylabel="density", title="PRIM trade-off (star: kept)")
    if result.trajectories.empty:
        ax.text(0.5, 0.5, result.note or "no box", ha="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=8)
    ax = axes[1]
    y = np.arange(len(names))
    ax.barh(y, 1.0, color="0.9", height=0.8)
    n_boxes = int(result.boxes["box"].max()) if len(result.boxes) else 0
    for number, box in result.boxes.groupby("box"):
        box = box.set_index("uncertainty").reindex(names)
        low, high = np.array([ranges[n] for n in names]).T
        restricted = box["restricted"].astype(bool).to_numpy()
        # An unrestricted assumption spans its whole range (PRIM's own limits are the sample's extremes).
        start = np.where(restricted, (box["low"].to_numpy() - low) / (high - low), 0.0)
        width = np.where(restricted, (box["high"].to_numpy() - box["low"].to_numpy()) / (high - low), 1.0)
        offset = (number - 0.5 - n_boxes / 2) * 0.8 / max(n_boxes, 1)
        colour = [colours[(number - 1) % 10] if r else "0.75" for r in restricted]
        ax.barh(y + offset, width, left=start, height=0.7 / max(n_boxes, 1), color=colour)
    ax.set_yticks(y, [f"{n}\n[{ranges[n][0]:g}, {ranges[n][1]:g}]" for n in names], fontsize=7)
    ax.set(xlim=(0, 1), xlabel="share of the sampled range", title="box limits per assumption")
    ax = axes[2]
    first = result.boxes[(result.boxes["box"] == 1) & result.boxes["restricted"]]["uncertainty"].tolist()
    pair = (first + [n for n in names if n not in first])[:2]
    pays = points["pays"].to_numpy()
    ax.scatter(points.loc[~pays, pair[0]], points.loc[~pays, pair[1]], s=14, color="0.6", label="does not pay")
    ax.scatter(points.loc[pays, pair[0]], points.loc[pays, pair[1]], s=14, color="tab:red", label="pays")
    if len(result.boxes):
        box = result.boxes[result.boxes["box"] == 1].set_index("uncertainty")
        x0, x1 = box.loc[pair[0], ["low", "high"]]
        y0, y1 = box.loc[pair[1], ["low", "high"]]
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colours[0], lw=2, label="box 1"))
    ax.set(xlabel=pair[0], ylabel=pair[1], title="points (mean paired enterprise value)")
    ax.legend(fontsize=8)
    fig.suptitle("Where the margin pain pays: share_first against margin_discipline, PRIM boxes", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def boxes_markdown(result: disc.PrimResult) -> list[str]:
    """One line per box: coverage, density, mass and the limits it puts on the assumptions."""
    if result.boxes.empty:
        return [f"- {result.note or 'no box found'}"]
    lines = ["| box | coverage | density | mass | points (paying) | limits |", "|---|---|---|---|---|---|"]
    for number, box in result.boxes.groupby("box"):
        head = box.iloc[0]
        limits = "; ".join(f"{r.uncertainty} in [{r.low:.3g}, {r.high:.3g}]" for r in box.itertuples() if r.restricted)
        lines.append(
            f"| {number} | {head.coverage:.2f} | {head.density:.2f} | {head.mass:.2f} "
            f"| {head.points} ({head.pays}) | {limits or 'none (the whole space)'} |"
        )
    return lines


def summary(args, points: pd.DataFrame, result: disc.PrimResult, runtime: float, command: str, quarters: int) -> str:
    arm = "share_first" + (f" harvesting from quarter {args.harvest_quarter}" if args.harvest_quarter else "")
    diff = points[f"{PAYS_ON}_difference"] / 1e9
    lines = [
        "# Scenario discovery: where does Alibaba's margin pain pay?",
        "",
        *(["**QUICK MODE: a smoke test, NOT a result.**", ""] if args.quick else []),
        f"- command: `{command}`",
        f"- {args.points} Latin-hypercube points x {args.seeds} seeds (master seed {args.seed}) x 2 arms "
        f"({arm}; margin_discipline), {args.enterprises:,} enterprises, {quarters} quarters; "
        f"runtime {runtime:.0f} s on {ran_on(args)}",
        f"- the pain pays at a point when the mean over seeds of the paired enterprise-value difference "
        f"(share_first - discipline) is above USD {args.threshold:g}bn: at {int(points['pays'].sum())} of "
        f"{len(points)} points; the difference ranges {diff.min():+,.1f} to {diff.max():+,.1f} "
        f"(median {diff.median():+,.1f}) USD bn",
        f"- PRIM (ema-workbench), boxes found one after the other; on each trajectory the box kept has the most "
        f"coverage with density >= {args.min_density:g}, else the highest density",
        "",
        "## Boxes",
        "",
        *boxes_markdown(result),
        "",
        "## Assumptions sampled (uniform over the range)",
        "",
        "| assumption | scenario key | range | why |",
        "|---|---|---|---|",
        *(f"| {u.name} | `{u.key}` | {u.low:g} to {u.high:g} | {u.why} |" for u in disc.UNCERTAINTIES),
        "",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace, command: str) -> Path:
    start = time.perf_counter()
    sample = disc.sample(disc.UNCERTAINTIES, args.points, args.seed)
    arms = disc.discovery_arms(sample, disc.UNCERTAINTIES, strategies(args))
    chosen = [o for o in attr.outcomes() if o.name in OUTCOMES]
    table = run_arms(args, "scenario_discovery.py", arms, attr.metric_triples(chosen), fixed_values(args))
    runtime = time.perf_counter() - start
    points, result = discover(table, sample, args)
    with output_folder(args.out) as tmp:
        points.to_csv(tmp / "points.csv", index=False)
        result.boxes.to_csv(tmp / "boxes.csv", index=False)
        result.trajectories.to_csv(tmp / "trajectories.csv", index=False)
        plot_prim(points, result, list(sample.columns), tmp / "prim.png")
        text = summary(args, points, result, runtime, command, int(table["quarter"].max()))
        (tmp / "summary.md").write_text(text)
    print(text)
    return args.out


if __name__ == "__main__":
    sys.exit(main("scenario_discovery.py", parse_args, run))

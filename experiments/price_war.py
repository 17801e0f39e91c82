"""The May 2024 price war: one provider cuts its AI prices by 97%; rivals respond by their strategies.

The cutter (default Alibaba: Qwen-Long cut 97% on 21 May 2024, facts.md) plays ``price_cut``: its
prices follow unit cost, and from ``--at-quarter`` on its ``--product`` in ``--region`` is priced
``--cut`` below that. Every other provider keeps its baseline playbook (Tencent's
``platform_embedded`` matches cuts, AWS's ``margin_discipline`` holds its margin, the rest
follow cost). Three arms on the same seeds:

* ``no_cut``: the cutter plays the same playbook with cut = 0 (the counterfactual);
* ``cut``: the cut, rivals as in the baseline;
* ``cut_rivals_match``: the cut, and every rival matches cuts in full (``match = 1``), as
  ByteDance, Baidu and Tencent did within days in May 2024 (facts.md).

Usage::

    python experiments/price_war.py                  # 40 seeds x 3 arms, 16 quarters, 10,000 enterprises
    python experiments/price_war.py --quick          # seconds; a smoke test, not a result

Across the posterior (``--posterior K``, default 20, x ``--posterior-seeds S``, default 2): the
three arms on K parameter sets drawn from the shipped posterior (each start matched), paired by
draw and seed; the cutter's differences against no_cut per draw in ``posterior.csv``, their
median and 5-95% across draws in the summary (runs in ``OUT/store_posterior``).

Writes, atomically, into ``--out`` (default ``out/price_war``): ``runs.csv`` (one row per run and
provider: share, price and margin before and after), ``trajectories.csv`` (median per arm,
provider, metric and quarter), ``posterior.csv``, ``price_war.png`` and ``summary.md``.
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
    Parser,
    add_posterior_options,
    add_run_options,
    check_out,
    draw_interval,
    fill_posterior_defaults,
    fill_run_defaults,
    main,
    matplotlib_pyplot,
    output_folder,
    per_draw_differences,
    positive_int,
    ran_on,
    run_arms,
    run_posterior_arms,
    series,
)

from cloudwar import quarters
from cloudwar.plots import calendar_axis
from cloudwar.scenario import load_scenario

START = load_scenario("baseline").start  # figures' calendar axes: quarter 1 is the baseline's start

QUICK = {"seeds": 3, "enterprises": 2000, "quarters": 8}
#: The cutter's outcomes compared with no_cut across the posterior: column -> (label, scale, unit).
POSTERIOR_COLUMNS = {
    "volume_share_after_1y": ("volume share after 1y", 100, "points"),
    "customer_share_after_1y": ("customer share after 1y", 100, "points"),
    "share_after_1y": ("revenue share after 1y", 100, "points"),
    "margin_after_1y": ("operating margin after 1y", 100, "points"),
}
ARMS = ("no_cut", "cut", "cut_rivals_match")
COLORS = {"no_cut": "tab:gray", "cut": "tab:red", "cut_rivals_match": "tab:purple"}


def parse_args(argv: list[str] | None = None):
    """Command-line options."""
    from cloudwar import load_scenario

    parser = Parser(prog="price_war.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cutter", default="Alibaba", help="provider that cuts (default Alibaba)")
    parser.add_argument("--cut", type=float, default=0.97, help="price cut, fraction (default 0.97)")
    parser.add_argument("--product", default="ai", choices=("ai", "cloud"), help="product cut (default ai)")
    parser.add_argument("--region", default="china", help="region cut, or 'all' (default china)")
    parser.add_argument("--at-quarter", type=positive_int, default=2, help="quarter of the cut (default 2)")
    add_run_options(parser, "price_war", seeds=40, quarters="16")
    add_posterior_options(parser, POSTERIOR["posterior"], POSTERIOR["posterior_seeds"])
    args = parser.parse_args(argv)
    fill_run_defaults(args, QUICK, {"seeds": 40, "enterprises": 10_000, "quarters": 16})
    fill_posterior_defaults(args, QUICK_POSTERIOR, POSTERIOR)
    if not 0.0 <= args.cut <= 1.0:
        parser.error(f"--cut must be between 0 and 1, got {args.cut}")
    scenario = load_scenario("baseline")
    if args.cutter not in scenario.provider_names:
        parser.error(f"--cutter: no provider {args.cutter!r} (providers: {', '.join(scenario.provider_names)})")
    if args.region != "all" and args.region not in scenario.region_names:
        parser.error(f"--region: no region {args.region!r} (regions: {', '.join(scenario.region_names)}, all)")
    if args.at_quarter >= args.quarters:
        parser.error(f"--at-quarter {args.at_quarter} must come before the last quarter ({args.quarters})")
    check_out(args.out)
    return args


def arm_overrides(args, arm: str) -> dict:
    """Scenario overrides of an arm."""
    from cloudwar import load_scenario

    cut = {
        "kind": "price_cut",
        "product": args.product,
        "region": args.region,
        "cut": 0.0 if arm == "no_cut" else args.cut,
        "at_quarter": args.at_quarter,
    }
    out = {f"providers.{args.cutter}.strategy": cut}
    if arm == "cut_rivals_match":
        for provider in load_scenario("baseline").provider_names:
            if provider != args.cutter:
                out[f"providers.{provider}.strategy.match"] = 1.0
    return out


def _market(args) -> tuple[str, str]:
    return ("all" if args.region == "all" else args.region), args.product


def _keep(args) -> tuple[tuple[str, str, str], ...]:
    region, product = _market(args)
    keep = (
        ("price", region, product) if region != "all" else ("price", "china", product),
        ("revenue_share", region, product),
        ("customer_share", region, product),
        ("volume_share", region, product),
        ("revenue", region, product),
        ("operating_margin", "all", "all"),
        ("operating_margin", region, product) if region != "all" else ("operating_margin", "all", product),
    )
    return keep


def runs_table(table: pd.DataFrame, args, providers: list[str]) -> pd.DataFrame:
    """One row per run and provider: before the cut, one year after, and at the end."""
    region, product = _market(args)
    before, after, end = args.at_quarter - 1, min(args.at_quarter + 4, args.quarters), args.quarters
    rows = []
    for provider in providers:
        share = series(table, "revenue_share", provider, region, product)
        customers = series(table, "customer_share", provider, region, product)
        volume = series(table, "volume_share", provider, region, product)
        margin = series(table, "operating_margin", provider)
        price_region = "china" if region == "all" else region
        price = series(table, "price", provider, price_region, product)
        frame = pd.DataFrame(
            {
                "customer_share_before": customers[before],
                "customer_share_after_1y": customers[after],
                "customer_share_end": customers[end],
                "volume_share_before": volume[before],
                "volume_share_after_1y": volume[after],
                "volume_share_end": volume[end],
                "share_before": share[before],
                "share_after_1y": share[after],
                "share_end": share[end],
                "price_before": price[before],
                "price_after_1y": price[after],
                "margin_before": margin[before],
                "margin_after_1y": margin[after],
                "margin_end": margin[end],
            }
        )
        frame.insert(0, "provider", provider)
        rows.append(frame.reset_index())
    return pd.concat(rows, ignore_index=True)


def plot(table: pd.DataFrame, args, rivals: list[str], path: Path) -> None:
    plt = matplotlib_pyplot()
    region, product = _market(args)
    price_region = "china" if region == "all" else region
    where = f"{product.upper()} in {'the world' if region == 'all' else region.capitalize()}"
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    colours = plt.cm.tab10(np.linspace(0, 1, 10))
    who = [args.cutter, *rivals]
    for i, provider in enumerate(who):
        price = series(table, "price", provider, price_region, product).xs("cut", level="arm").median()
        base = series(table, "price", provider, price_region, product).xs("no_cut", level="arm").median()
        axes[0, 0].plot(price.index, price, color=colours[i], label=provider)
        axes[0, 0].plot(base.index, base, color=colours[i], ls=":", lw=1)
        share = series(table, "customer_share", provider, region, product)
        for arm, style in (("cut", "-"), ("no_cut", ":")):
            s = share.xs(arm, level="arm").median()
            axes[0, 1].plot(s.index, 100 * s, color=colours[i], ls=style, lw=1 if style == ":" else 1.5)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_title(f"prices, {where} (solid: cut; dotted: no cut)", fontsize=10)
    axes[0, 0].set_ylabel("USD per million tokens (log)" if product == "ai" else "USD per compute unit (log)")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].set_title(f"customer share, {where} (solid: cut; dotted: no cut)", fontsize=10)
    axes[0, 1].set_ylabel("share of the market's customers (%)")
    for arm in ARMS:
        m = series(table, "operating_margin", args.cutter).xs(arm, level="arm").median()
        axes[1, 0].plot(m.index, 100 * m, color=COLORS[arm], label=arm.replace("_", " "))
        everyone = [p for p in table.provider.unique() if p != "all"]
        rev = (
            pd.concat([series(table, "revenue", p, region, product).xs(arm, level="arm") for p in everyone])
            .groupby(level="seed")
            .sum()
            .median()
        )
        axes[1, 1].plot(rev.index, rev / 1e9, color=COLORS[arm], label=arm.replace("_", " "))
    axes[1, 0].set_title(f"{args.cutter}'s operating margin, all markets", fontsize=10)
    axes[1, 0].set_ylabel("operating income / revenue (%)")
    axes[1, 0].legend(fontsize=8)
    axes[1, 1].set_title(f"revenue of the market, {where}", fontsize=10)
    axes[1, 1].set_ylabel("USD bn per quarter")
    for ax in axes.ravel():
        ax.axvline(args.at_quarter, color="black", lw=0.8, ls="--")
        calendar_axis(ax, START, 1, int(table.quarter.max()))
        ax.set_xlabel(f"calendar quarter; dashed: the cut ({quarters.label(START, args.at_quarter)})")
    fig.suptitle(
        f"{args.cutter} cuts {product.upper()} prices by {100 * args.cut:.0f}% in quarter {args.at_quarter}: "
        f"medians over {args.seeds} seeds",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def summary(args, runs: pd.DataFrame, rivals: list[str], runtime: float, command: str) -> str:
    region, product = _market(args)
    where = f"{product} in {'the world' if region == 'all' else region}"
    med = runs.groupby(["arm", "provider"]).median(numeric_only=True)
    lines = [
        f"# Price war: {args.cutter} cuts {product} prices by {100 * args.cut:.0f}%",
        "",
        *(["**QUICK MODE: a smoke test, NOT a result.**", ""] if args.quick else []),
        f"- command: `{command}`",
        f"- {args.seeds} seeds (master seed {args.seed}) x {len(ARMS)} arms, {args.enterprises:,} enterprises, "
        f"{args.quarters} quarters, cut in quarter {args.at_quarter}; runtime {runtime:.0f} s on {ran_on(args)}",
        "- medians across seeds; 'after 1y' is four quarters after the cut; shares are of the customers, of the "
        f"volume served and of the revenue in the market cut ({where}); margins are over all of a provider's markets",
        "",
        "| arm | provider | customer share before / after 1y / end | volume share before / after 1y / end "
        "| revenue share before / after 1y | price after 1y / before | margin before / after 1y / end |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        for provider in [args.cutter, *rivals]:
            r = med.loc[(arm, provider)]
            lines.append(
                f"| {arm} | {provider} | {100 * r.customer_share_before:.1f}% / {100 * r.customer_share_after_1y:.1f}% "
                f"/ {100 * r.customer_share_end:.1f}% | {100 * r.volume_share_before:.1f}% / "
                f"{100 * r.volume_share_after_1y:.1f}% / {100 * r.volume_share_end:.1f}% "
                f"| {100 * r.share_before:.1f}% / {100 * r.share_after_1y:.1f}% "
                f"| {r.price_after_1y / r.price_before:.2f} | {100 * r.margin_before:.1f}% / "
                f"{100 * r.margin_after_1y:.1f}% / {100 * r.margin_end:.1f}% |"
            )
    return "\n".join(lines) + "\n"


def posterior_lines(args, post: pd.DataFrame) -> list[str]:
    """The cutter's paired differences against no_cut across the posterior, as a markdown section."""
    if post.empty:
        return []
    region, product = _market(args)
    lines = [
        "",
        f"## Across the posterior: parameter uncertainty ({args.posterior} draws x {args.posterior_seeds} seeds)",
        "",
        f"{args.cutter}'s difference against no_cut, paired by draw and seed, in {product} in {region}: the median "
        "over draws of each draw's mean over its seeds, and its 5-95% across draws.",
        "",
        "| arm | "
        + " | ".join(f"{label} ({unit})" for label, _, unit in POSTERIOR_COLUMNS.values())
        + " | draws with a volume gain |",
        "|---|" + "---|" * (len(POSTERIOR_COLUMNS) + 1),
    ]
    for arm, r in post.groupby("arm", sort=False):
        cells = [draw_interval(r[c], scale) for c, (_, scale, _) in POSTERIOR_COLUMNS.items()]
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {(r.volume_share_after_1y > 0).mean():.0%} |")
    return [*lines, ""]


def run(args, command: str) -> Path:
    from cloudwar import load_scenario

    start = time.perf_counter()
    arms = [({"arm": arm}, arm_overrides(args, arm)) for arm in ARMS]
    fixed = {"enterprises": args.enterprises, "quarters": args.quarters}
    table = run_arms(args, "price_war.py", arms, _keep(args), fixed)
    post = pd.DataFrame()
    if args.posterior:
        drawn = runs_table(run_posterior_arms(args, "price_war.py", arms, _keep(args), fixed), args, [args.cutter])
        post = per_draw_differences(drawn, "arm", "no_cut", list(POSTERIOR_COLUMNS))
    runtime = time.perf_counter() - start
    region, product = _market(args)
    last = table[(table.metric == "revenue_share") & (table.quarter == args.at_quarter - 1)]
    names = load_scenario("baseline").provider_names
    ranked = last[last.provider.isin(names)].groupby("provider")["value"].median().sort_values(ascending=False)
    rivals = [p for p in ranked.index if p != args.cutter][:4]
    if "Tencent" in names and args.cutter != "Tencent" and "Tencent" not in rivals:
        rivals.append("Tencent")  # the article's other protagonist
    runs = runs_table(table, args, names)
    medians = (
        table[table.provider != "all"]
        .groupby(["arm", "provider", "metric", "region", "product", "quarter"])["value"]
        .median()
        .reset_index()
    )
    with output_folder(args.out) as tmp:
        runs.to_csv(tmp / "runs.csv", index=False, float_format="%.6g")
        medians.to_csv(tmp / "trajectories.csv", index=False, float_format="%.6g")
        if not post.empty:
            post.to_csv(tmp / "posterior.csv", index=False, float_format="%.6g")
        plot(table, args, rivals, tmp / "price_war.png")
        text = summary(args, runs, rivals, runtime, command) + "\n".join(posterior_lines(args, post))
        (tmp / "summary.md").write_text(text)
    print(text)
    return args.out


if __name__ == "__main__":
    sys.exit(main("price_war.py", parse_args, run))

"""Calibrate the history scenario's starting state (2023Q3) to history.csv.

The history scenario extends the baseline, so every behavioural parameter is the baseline's; this
script fits only what describes the market of 2023Q3, in ``cloudwar/scenario/data/history.toml``:

* ``providers[*].quality`` so that expected starting revenue shares match :data:`TARGETS` (the
  2023Q3 shares; baseline's method, :func:`calibrate.fit`);
* ``regions.*.market_size`` so that quarter 1 (2023Q3) has history.csv's world market (Synergy,
  USD 68.1bn) and China market (Canalys, USD 9.2bn), and China's AI cloud revenue over 2024 is
  Omdia's RMB 20.83bn; global AI keeps its ratio to China AI (an assumption);
* ``products.cloud.demand_growth`` so that the world market grows +23% from 2023Q3 to 2024Q3
  (Synergy, history.csv) (bisection, the same seed at every trial);
* ``providers.{Alibaba,AWS,Google}.fixed_opex`` so that their quarter-1 margins are history.csv's
  2023Q3 margins (5.1%, 30.2%, 3.2%).

Nothing after quarter 5 is fitted: the rest of the path (Alibaba's growth from 2024Q3, margins,
shares) is what the backtest tests (``cloudwar backtest``). Means over ``SEEDS`` seeds at the
scenario's own population; rounds until every target is within its tolerance.

Usage: python experiments/calibrate_history.py [--scenario PATH] [--check]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import Parser, main
from calibrate import _bisect, _number, edit_toml, fit

import cloudwar
from cloudwar.results import metric_table

HISTORY = Path(cloudwar.__file__).parent / "scenario" / "data" / "history.toml"
SEEDS = range(2)
ROUNDS = 4
# 2023Q3 revenue shares by market. World cloud: history.csv synergy_share_* 2023Q3 (AWS 32, Microsoft 23,
# Google 11 of USD 68.1bn) less China (9.2bn), as shares of the rest; China cloud: history.csv
# china_cloud_top3_share_pct 2023Q3 (73%) split as assumption; AI: the baseline's (Omdia 2025H1, facts.md).
TARGETS = {
    ("cloud", "china"): {
        "Alibaba": 0.38, "Huawei": 0.19, "Tencent": 0.16, "Volcano Engine": 0.03, "Baidu": 0.06,
        "AWS": 0.01, "Microsoft": 0.01, "Google": 0.002, "Others": 0.158,
    },
    ("cloud", "global"): {
        "AWS": 0.37, "Microsoft": 0.266, "Google": 0.127, "Alibaba": 0.005, "Tencent": 0.009,
        "Huawei": 0.005, "Volcano Engine": 0.001, "Baidu": 0.001, "Others": 0.216,
    },
    ("ai", "china"): {
        "Alibaba": 0.358, "Volcano Engine": 0.148, "Huawei": 0.131, "Tencent": 0.07, "Baidu": 0.061,
        "AWS": 0.005, "Microsoft": 0.005, "Google": 0.001, "Others": 0.221,
    },
    ("ai", "global"): {
        "Microsoft": 0.30, "Google": 0.22, "AWS": 0.18, "Alibaba": 0.03, "Tencent": 0.005,
        "Huawei": 0.005, "Volcano Engine": 0.005, "Baidu": 0.005, "Others": 0.25,
    },
}  # fmt: skip
WORLD_2023Q3 = 68.1e9  # USD; history.csv synergy_global_cloud_market_usd_bn 2023Q3
CHINA_2023Q3 = 9.2e9  # USD; history.csv china_cloud_infra_market_usd_bn 2023Q3
CHINA_AI_2024_RMB = 20.83e9  # RMB; history.csv omdia_china_ai_cloud_market_rmb_bn 2024FY
WORLD_GROWTH_2024Q3 = 0.23  # history.csv synergy_global_cloud_market_yoy_pct 2024Q3
MARGINS_2023Q3 = {"Alibaba": 0.051, "AWS": 0.302, "Google": 0.032}  # history.csv *_margin_pct 2023Q3
TOLERANCE = {"world": 0.01, "china": 0.01, "china_ai": 0.03, "growth": 0.005, "margin": 0.003}


def simulate(path: Path, overrides: dict[str, Any] | None = None, quarters: int = 6) -> dict[str, float]:
    """Mean over SEEDS of the fitted figures: world and China revenue in quarter 1 (USD), China AI
    revenue in 2024 (quarters 3-6, RMB), world growth quarter 1 -> 5, quarter-1 margins (of the
    mean income and revenue)."""
    out: dict[str, list[float]] = {}
    for seed in SEEDS:
        model = cloudwar.CloudMarket(path, rng=seed, overrides=overrides or {})
        res = model.run(quarters)
        revenue = res[(res.metric == "revenue") & (res.provider != "all")]
        by = revenue.groupby(["quarter", "region", "product"])["value"].sum()
        world = metric_table(res, "revenue").drop(columns="all", errors="ignore").sum(axis=1)
        china = sum(by.get((1, "china", k), 0.0) for k in ("cloud", "ai"))
        china_ai = sum(by.get((q, "china", "ai"), 0.0) for q in range(3, 7)) * model.config.rmb_per_usd
        income = metric_table(res, "operating_income").loc[1]
        revenue_q1 = metric_table(res, "revenue").loc[1]
        values = {
            "world": world[1],
            "china": china,
            "china_ai": china_ai,
            "growth": world.get(5, np.nan) / world[1] - 1.0,
        }
        values.update({f"income {name}": income[name] for name in MARGINS_2023Q3})
        values.update({f"revenue {name}": revenue_q1[name] for name in MARGINS_2023Q3})
        for key, value in values.items():
            out.setdefault(key, []).append(float(value))
    means = {key: float(np.mean(v)) for key, v in out.items()}
    for name in MARGINS_2023Q3:  # margins of the mean income and revenue, as the opex fit sets them
        means[f"margin {name}"] = means.pop(f"income {name}") / means.pop(f"revenue {name}")
    return means


def gaps(sim: dict[str, float]) -> dict[str, float]:
    """Simulated against target: relative for levels, points of a fraction for growth and margins."""
    out = {
        "world": sim["world"] / WORLD_2023Q3 - 1.0,
        "china": sim["china"] / CHINA_2023Q3 - 1.0,
        "china_ai": sim["china_ai"] / CHINA_AI_2024_RMB - 1.0,
        "growth": sim["growth"] - WORLD_GROWTH_2024Q3,
    }
    out.update({f"margin {n}": sim[f"margin {n}"] - t for n, t in MARGINS_2023Q3.items()})
    return out


def met(g: dict[str, float]) -> bool:
    return all(abs(v) <= TOLERANCE[k.split()[0]] for k, v in g.items())


def fit_qualities(path: Path) -> None:
    """Qualities for the 2023Q3 shares, written into ``path`` (twice: the fit redraws the start)."""
    for _ in range(2):
        quality = fit(path, 0, TARGETS)
        model = cloudwar.CloudMarket(path, rng=0)

        def edit(doc: Any, quality: np.ndarray = quality, model: Any = model) -> None:
            for provider in doc["providers"]:
                j = model.provider_names.index(str(provider["name"]))
                products = ", ".join(
                    f"{k} = {{ "
                    + ", ".join(f"{r} = {quality[j, a, b]:.3f}" for b, r in enumerate(model.region_names))
                    + " }"
                    for a, k in enumerate(model.product_names)
                )
                provider["quality"] = _number(f"{{ {products} }}")

        edit_toml(path, edit)


def quarter1_opex(path: Path) -> dict[str, float]:
    """Fixed opex (USD per quarter) giving each provider of MARGINS_2023Q3 its margin in quarter 1, over SEEDS."""
    before: dict[str, list[float]] = {}
    revenue: dict[str, list[float]] = {}
    for seed in SEEDS:
        model = cloudwar.CloudMarket(path, rng=seed)
        model.step()
        for p in model.providers_list:
            if p.name in MARGINS_2023Q3:
                before.setdefault(p.name, []).append(p.operating_income + p.spec.fixed_opex)
                revenue.setdefault(p.name, []).append(p.revenue)
    return {
        name: max(float(np.mean(before[name]) - target * np.mean(revenue[name])), 0.0)
        for name, target in MARGINS_2023Q3.items()
    }


def write_values(path: Path, sizes: dict[str, dict[str, float]], growth: float, opex: dict[str, float]) -> None:
    """Market sizes (USD per quarter), cloud demand growth (per year) and fixed opex into ``path``, comments kept."""

    def edit(doc: Any) -> None:
        for region, values in sizes.items():
            for product, value in values.items():
                doc["regions"][region]["market_size"][product] = _number(f"{value:.4e}")
        doc["products"]["cloud"]["demand_growth"] = _number(f"{growth:.3f}")
        for provider in doc["providers"]:
            if str(provider["name"]) in opex:
                provider["fixed_opex"] = _number(f"{opex[str(provider['name'])]:.3e}")

    edit_toml(path, edit)


def fit_finance(path: Path) -> None:
    """Market sizes, growth and fixed opex, in rounds until :func:`met`."""
    for round_ in range(1, ROUNDS + 1):
        g = gaps(simulate(path))
        print(f"calibration round {round_}: " + ", ".join(f"{k} {v:+.4f}" for k, v in g.items()), file=sys.stderr)
        if met(g):
            return
        scenario = cloudwar.load_scenario(path)
        size = {r: dict(scenario.regions[r].market_size) for r in scenario.region_names}
        china_factor = 1.0 / (1.0 + g["china"])
        ai_factor = 1.0 / (1.0 + g["china_ai"])
        sim = simulate(path, quarters=1)
        rest_factor = (WORLD_2023Q3 - CHINA_2023Q3) / (sim["world"] - sim["china"])
        sizes = {
            "china": {"cloud": size["china"]["cloud"] * china_factor, "ai": size["china"]["ai"] * ai_factor},
            "global": {"cloud": size["global"]["cloud"] * rest_factor, "ai": size["global"]["ai"] * ai_factor},
        }
        write_values(path, sizes, scenario.products["cloud"].demand_growth, {})
        growth = _bisect(
            lambda d: simulate(path, {"products.cloud.demand_growth": d})["growth"],
            0.0, 1.5, WORLD_GROWTH_2024Q3, 2e-3, "products.cloud.demand_growth",
        )  # fmt: skip
        write_values(path, sizes, growth, {})
        write_values(path, sizes, growth, quarter1_opex(path))
    print("calibration: did not settle; see the gaps", file=sys.stderr)


def parse_args(argv: Sequence[str] | None = None) -> Any:
    parser = Parser(prog="calibrate_history.py", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=HISTORY, help="TOML file to calibrate in place")
    parser.add_argument("--check", action="store_true", help="only print the gaps")
    parser.add_argument("--skip-shares", action="store_true", help="keep the qualities, fit the rest")
    return parser.parse_args(argv)


def run(args: Any, command: str) -> None:
    if not args.check:
        if not args.skip_shares:
            fit_qualities(args.scenario)
        fit_finance(args.scenario)
    g = gaps(simulate(args.scenario))
    for key, value in g.items():
        flag = "" if abs(value) <= TOLERANCE[key.split()[0]] else "  OUTSIDE"
        print(f"{key:20s} {value:+.4f}{flag}")


if __name__ == "__main__":
    sys.exit(main("calibrate_history.py", parse_args, run))

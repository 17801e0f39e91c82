"""Calibrate the baseline's free demand parameters to the seed figures.

Fitted parameters (everything else in the baseline is sourced or an assumption):

* ``providers[*].quality`` (a_j per product and region) so that expected starting revenue
  shares match the targets below, with the outside option at ``OUTSIDE_SHARE`` of enterprises
  (presence, the availability of a provider in a region, stays an assumption);
* ``products.cloud.demand_growth`` (growth of each buyer's cloud volume, per year) and
  ``adoption.usage_growth`` (growth of an AI adopter's usage, per year), jointly, so that over the
  first year of the run (quarter 1 to quarter 5, every provider playing its strategy) the world
  cloud market's revenue grows by ``MARKET_GROWTH_TARGET`` (+27.5%, the middle of Synergy's
  +25-30%, facts.md) and Alibaba's revenue (cloud and AI, all regions) by ``GROWTH_TARGET``
  (+34%, facts.md). Volumes must grow faster than revenue because prices follow unit costs down
  with hardware and learning. Alibaba's AI revenue growth is printed as a check (the article:
  AI-related revenue in triple digits);
* ``providers[*].capex_per_unit``, all scaled by one factor (their ratios stay assumptions), so
  that Alibaba building for demand (the utilisation rule, without its committed plan) spends
  ``CAPEX_TARGET_RMB`` in the first year: its AI and cloud capex of the last four quarters,
  RMB 120bn (facts.md). Its RMB 380bn plan over three years is then about what demand asks;
* ``providers[*].fixed_opex`` of Alibaba and AWS so their first-quarter operating margins
  match facts.md (Alibaba about 9%, AWS 34.5%);
* ``regions.*.market_size`` (the spend at the start, quarter 0) so that quarter-1 (2025Q4) market
  revenue, summed over providers per region and product and averaged over ``SHARE_SEEDS``, is
  ``MARKET_TARGETS`` within ``FINANCE_TOLERANCE`` (0.5%; held within 1%). Quarter 1 adds a
  quarter of volume growth to the starting spend (about +10% with the fitted growth), so the
  fitted sizes sit below the quarter-1 figures. Each size moves by target / simulated (revenue is
  proportional to it: volumes and starting capacity scale together).

Shares are fitted as expected starting shares, then the starting targets are corrected until the
quarter-1 shares, averaged over ``SHARE_SEEDS``, land on the facts (:func:`corrected_targets`).
Shares and margins are read in quarter 1 of a run (strategies do not move relative prices in
quarter 1, before any sales are known), growth over quarters 1 to 5. ``TARGETS_TABLE`` lists
each checked figure with its tolerance; ``tests/test_calibration.py`` holds the baseline to it.

Method: damped fixed-point iteration. For each market (product k, region r), a_jkr moves by
step x mu x ln(target / simulated), both shares first mapped from the starting (stationary,
switching-cost amplified) mix back to plain logit shares, where the response is linear. Simulated shares come from the model's
own logit over the whole population (heterogeneous sensitivities included), so the fit is exact
up to the iteration's convergence. Writes the fitted values into the scenario TOML
(comments kept) and prints a target-against-simulated table.

The fit runs at the scenario's own population (20,000 enterprises for the baseline) and seed 0,
in passes of shares then finance (market sizes, capex scale, growth, fixed opex, in rounds until each of
their targets is met within ``FINANCE_TOLERANCE``). A pass begins by checking every target; a
file that already meets them all is left exactly as it is, so calibrating twice gives the
same file (``tests/test_calibration.py`` checks that the shipped baseline is such a file).

Usage: python experiments/calibrate.py [--scenario PATH] [--check] [--seed S]
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tomlkit
from _common import Parser, main

import cloudwar
from cloudwar.errors import ScenarioError

BASELINE = Path(cloudwar.__file__).parent / "scenario" / "data" / "baseline.toml"

# Starting revenue shares by market (facts.md; 'assumption' where facts.md is silent).
TARGETS = {
    ("cloud", "china"): {  # Canalys Q1 2025: Alibaba 33%, Huawei 18%, Tencent 10%; rest assumption
        "Alibaba": 0.33,
        "Huawei": 0.18,
        "Tencent": 0.10,
        "Volcano Engine": 0.07,
        "Baidu": 0.06,
        "AWS": 0.01,
        "Microsoft": 0.01,
        "Google": 0.002,
        "Others": 0.238,
    },
    ("cloud", "global"): {  # Synergy Q3 2025 world shares less the China business (facts.md)
        "AWS": 0.326,
        "Microsoft": 0.225,
        "Google": 0.146,
        "Alibaba": 0.005,
        "Tencent": 0.009,
        "Huawei": 0.005,
        "Volcano Engine": 0.002,
        "Baidu": 0.001,
        "Others": 0.281,
    },
    ("ai", "china"): {  # Omdia H1 2025 China AI cloud (facts.md)
        "Alibaba": 0.358,
        "Volcano Engine": 0.148,
        "Huawei": 0.131,
        "Tencent": 0.07,
        "Baidu": 0.061,
        "AWS": 0.005,
        "Microsoft": 0.005,
        "Google": 0.001,
        "Others": 0.221,
    },
    ("ai", "global"): {  # assumption: US providers lead model APIs outside China
        "Microsoft": 0.30,
        "Google": 0.22,
        "AWS": 0.18,
        "Alibaba": 0.03,
        "Tencent": 0.005,
        "Huawei": 0.005,
        "Volcano Engine": 0.005,
        "Baidu": 0.005,
        "Others": 0.25,
    },
}
OUTSIDE_SHARE = {"cloud": 0.10, "ai": 0.20}  # assumption: on-premises / self-hosting share of enterprises
MARGIN_TARGETS = {"Alibaba": 0.09, "AWS": 0.345}  # facts.md: Alibaba ~9% adjusted EBITA, AWS 34.5%
GROWTH_TARGET = 0.34  # facts.md: Alibaba cloud revenue +34% year on year (Jul-Sep 2025)
MARKET_GROWTH_TARGET = 0.275  # facts.md: world cloud infrastructure market +25% to +30% a year (Synergy)
GROWTH_QUARTERS = 4  # growth is measured from quarter 1 to quarter 1 + GROWTH_QUARTERS
#: Quarter-1 (2025Q4, the run's first quarter) market revenue, USD per quarter, summed over providers.
#: World cloud: Synergy's USD 107bn is Jul-Sep 2025 (facts.md: "Q3 2025"), a quarter before the run
#: starts, and China's figure below is already moved to 2025Q4; so the world is grown one quarter at
#: the market growth the calibration holds (MARKET_GROWTH_TARGET, +27.5% a year: 107 x 1.275^(1/4) =
#: 113.7bn) before China's 2025Q4 cloud market is taken off (113.7 - 13.0 = 100.7bn). Taking 107bn
#: less China as it stood would set a Jul-Sep figure as the Oct-Dec one, 6% low.
MARKET_TARGETS = {
    ("cloud", "china"): 13.0e9,  # facts.md: Canalys USD 11.6bn in Q1 2025 grown 3 quarters at its +16% a year
    ("ai", "china"): 1.8e9,  # facts.md: Omdia RMB 51.8bn for 2025 / 4 quarters / 7.2 RMB per USD
    ("cloud", "global"): 100.7e9,  # facts.md: Synergy USD 107bn (Q3 2025) grown one quarter at +27.5%/yr, less China
    ("ai", "global"): 6.0e9,  # assumption (baseline.toml)
}
MARKET_LABELS = {
    ("cloud", "china"): "China cloud market revenue, quarter 1 (USD bn)",
    ("ai", "china"): "China AI market revenue, quarter 1 (USD bn)",
    ("cloud", "global"): "Rest-of-world cloud market revenue, quarter 1 (USD bn)",
    ("ai", "global"): "Rest-of-world AI market revenue, quarter 1 (USD bn)",
}
MARKET_BAND = 0.01  # the table holds each quarter-1 market level within 1% (relative)
CAPEX_TARGET_RMB = 120e9  # facts.md: Alibaba AI + cloud capex, last four quarters
SHARE_SEEDS = range(4)  # quarter-1 shares are averaged over these seeds for the start correction
SHARE_ROUNDS = 6  # rounds of that correction at most (the best is kept)
FINANCE_ROUNDS = 6  # rounds of the capex-growth-opex fit at most (it stops once every target is met)
OUTER_ROUNDS = 3  # passes of shares-then-finance at most (a pass starts by checking whether both hold)
SHARE_TOLERANCE = 0.004  # the share fit stops when quarter-1 shares are this close to the facts
SHARE_CHECK_TOLERANCE = 0.006  # a pass is not needed when they are this close (finance moves them a little)
#: How close the finance targets must be for the fit to stop: capex within 2% (relative), growth
#: within 0.5 points, margins within 0.2 points, quarter-1 market levels within 0.5% (relative).
FINANCE_TOLERANCE = {
    **{f"market {product} {region}": 0.005 for product, region in MARKET_TARGETS},
    "capex": 0.02,
    "market_growth": 0.005,
    "alibaba_growth": 0.005,
    "margin Alibaba": 0.002,
    "margin AWS": 0.002,
}

#: (label, target, low, high): each checked figure and the band the calibrated baseline must hit.
#: Tolerances: shares within 3 points (China AI) or 1 point (world cloud), growth within 5 points,
#: AWS margin in the article's 30-35% band, Alibaba margin "single digits" (4-10%), quarter-1
#: market levels within MARKET_BAND (1%; means over SHARE_SEEDS, as fitted). Rows with target None
#: are reported, not fitted or held.
TARGETS_TABLE = [
    ("Alibaba share of China AI cloud", 0.358, 0.328, 0.388),
    ("Tencent share of China AI cloud", 0.07, 0.05, 0.09),
    ("Alibaba share of China cloud", 0.33, 0.30, 0.36),
    ("Alibaba share of world cloud", 0.04, 0.03, 0.05),
    ("AWS share of world cloud", 0.29, 0.27, 0.31),
    ("Alibaba revenue growth, first year", GROWTH_TARGET, 0.29, 0.39),
    ("World cloud market revenue growth, first year", MARKET_GROWTH_TARGET, 0.25, 0.30),
    ("Alibaba capex for demand, first year (RMB bn)", CAPEX_TARGET_RMB / 1e9, 110.0, 130.0),
    ("AWS operating margin", 0.345, 0.30, 0.35),
    ("Alibaba operating margin", 0.09, 0.04, 0.10),
    *(
        (MARKET_LABELS[market], size / 1e9, size / 1e9 * (1 - MARKET_BAND), size / 1e9 * (1 + MARKET_BAND))
        for market, size in MARKET_TARGETS.items()
    ),
    ("Alibaba AI revenue growth, first year (check)", 1.0, None, None),
]


def expected_choice_shares(model: cloudwar.CloudMarket, k: int, r: int) -> np.ndarray:
    """Expected starting volume shares (P + 1, outside last) in market (k, r): wallets split, volume-weighted."""
    pop = model.population
    idx = np.flatnonzero(pop.region == r)
    if model.product_names[k] == "ai":
        idx = idx[pop.adopted[idx]]
    shares = model.enterprises.volumes(k, idx) @ model.enterprises.starting_shares(k, idx)
    return shares / shares.sum()


def plain_logit_shares(pi: np.ndarray, bonus: float) -> np.ndarray:
    """Invert the starting (stationary) mix: plain logit shares p with pi_j ~ p_j (1 + bonus p_j), pi_0 ~ p_0.

    ``pi`` has the outside option last. Solves for the scale c with sum(p) = 1 by bisection.
    """
    inside, outside = pi[:-1], pi[-1]

    def p_of(c: float) -> np.ndarray:
        if bonus <= 0:
            return np.append(c * inside, c * outside)
        return np.append((np.sqrt(1.0 + 4.0 * bonus * c * inside) - 1.0) / (2.0 * bonus), c * outside)

    lo, hi = 0.0, 1.0
    while p_of(hi).sum() < 1.0:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if p_of(mid).sum() < 1.0 else (lo, mid)
    return p_of(0.5 * (lo + hi))


def fit(path: Path, seed: int, targets: dict | None = None, iterations: int = 300, step: float = 0.3) -> np.ndarray:
    """Fitted quality (P, K, R): each market's expected starting revenue shares match ``targets``.

    The update works on plain-logit shares (the stationary mix inverted at the typical
    switching cost), where a utility change moves log shares one for one times 1 / mu.
    """
    targets = TARGETS if targets is None else targets
    model = cloudwar.CloudMarket(path, rng=seed)
    names, products, regions = model.provider_names, model.product_names, model.region_names
    worst = np.inf
    for _ in range(iterations):
        worst = 0.0
        for k, product in enumerate(products):
            mu = model.products[k].logit_scale
            bonus = float(np.median(np.exp(model.population.switching_cost / mu))) - 1.0
            for r, region in enumerate(regions):
                shares = targets[(product, region)]
                prices = model.prices[:, k, r]
                # Revenue shares -> choice shares: a customer's volume does not depend on its provider.
                choice = np.array([shares[n] / prices[j] for j, n in enumerate(names)])
                target = np.append(choice / choice.sum() * (1.0 - OUTSIDE_SHARE[product]), OUTSIDE_SHARE[product])
                simulated = expected_choice_shares(model, k, r)
                worst = max(worst, float(np.abs(np.log(target / simulated)).max()))
                gap = np.log(plain_logit_shares(target, bonus) / plain_logit_shares(simulated, bonus))
                model.quality[:, k, r] += step * mu * (gap[:-1] - gap[-1])
        if worst < 1e-4:
            break
    print(f"calibration: largest log share gap {worst:.2e}", file=sys.stderr)
    return model.quality


def first_quarter_shares(path: Path, seeds: range) -> dict[tuple[str, str], dict[str, float]]:
    """Revenue shares per market in quarter 1, averaged over ``seeds``."""
    total: dict[tuple[str, str], dict[str, float]] = {}
    for seed in seeds:
        model = cloudwar.CloudMarket(path, rng=seed)
        model.step()
        revenue = np.array([p.history[-1].revenue for p in model.providers_list])  # (P, K, R)
        shares = revenue / revenue.sum(axis=0, keepdims=True)
        for k, product in enumerate(model.product_names):
            for r, region in enumerate(model.region_names):
                entry = total.setdefault((product, region), dict.fromkeys(model.provider_names, 0.0))
                for j, name in enumerate(model.provider_names):
                    entry[name] += shares[j, k, r] / len(seeds)
    return total


def first_quarter_markets(path: Path, seeds: range) -> dict[tuple[str, str], float]:
    """Market revenue (USD, summed over providers) per (product, region) in quarter 1, averaged over ``seeds``."""
    total: dict[tuple[str, str], float] = {}
    for seed in seeds:
        model = cloudwar.CloudMarket(path, rng=seed)
        model.step()
        revenue = sum(p.history[-1].revenue for p in model.providers_list)  # (K, R)
        for k, product in enumerate(model.product_names):
            for r, region in enumerate(model.region_names):
                total[(product, region)] = total.get((product, region), 0.0) + float(revenue[k, r]) / len(seeds)
    return total


def market_gaps(path: Path) -> dict[str, float]:
    """Quarter-1 market revenue against MARKET_TARGETS (simulated / target - 1), means over SHARE_SEEDS."""
    simulated = first_quarter_markets(path, SHARE_SEEDS)
    return {f"market {k} {r}": simulated[(k, r)] / target - 1.0 for (k, r), target in MARKET_TARGETS.items()}


def fit_market_sizes(path: Path, rounds: int = 3) -> None:
    """Scale each ``regions.<r>.market_size.<k>`` by target / simulated quarter-1 revenue (writes ``path``).

    Volumes and starting capacity scale with the size, so quarter-1 revenue is proportional to it
    and one step nearly lands; a few rounds absorb the rest.
    """
    for _ in range(rounds):
        gaps = market_gaps(path)
        if all(abs(gap) < FINANCE_TOLERANCE[key] / 4 for key, gap in gaps.items()):
            return

        def scale(doc: Any, gaps: dict[str, float] = gaps) -> None:
            for product, region in MARKET_TARGETS:
                sizes = doc["regions"][region]["market_size"]
                size = float(sizes[product]) / (1.0 + gaps[f"market {product} {region}"])
                sizes[product] = _number(f"{size:.4e}")

        edit_toml(path, scale)
        print(f"calibration: market sizes moved ({_format_gaps(gaps)})", file=sys.stderr)


def corrected_targets(targets: dict, simulated: dict) -> tuple[dict, float]:
    """Starting targets moved by target / simulated quarter-1 share (each factor within 0.8-1.25).

    Quarter 1 brings new AI adopters, who choose by the plain logit without the incumbents'
    switching-cost advantage, and real neighbours instead of the mean field, so the fitted start
    is set where quarter 1 lands on the facts. Returns the new targets and the largest gap.
    """
    out, worst = {}, 0.0
    for market, shares in TARGETS.items():
        moved = {}
        for name, share in shares.items():
            sim = simulated[market][name]
            worst = max(worst, abs(share - sim))
            moved[name] = targets[market][name] * (float(np.clip(share / sim, 0.8, 1.25)) if sim > 0 else 1.0)
        norm = sum(moved.values())
        out[market] = {name: value / norm for name, value in moved.items()}
    return out, worst


def revenue_growth(path: Path, seed: int, demand_growth: float, usage_growth: float) -> np.ndarray:
    """First-year revenue growth (quarter 1 to 1 + GROWTH_QUARTERS): [world cloud market, Alibaba]."""
    overrides = {"products.cloud.demand_growth": demand_growth, "adoption.usage_growth": usage_growth}
    model = cloudwar.CloudMarket(path, rng=seed, overrides=overrides)
    alibaba = next(p for p in model.providers_list if p.name == "Alibaba")
    cloud = model.product_names.index("cloud")
    market, own = [], []
    for _ in range(1 + GROWTH_QUARTERS):
        model.step()
        market.append(sum(float(p.history[-1].revenue[cloud].sum()) for p in model.providers_list))
        own.append(alibaba.revenue)
    return np.array([market[-1] / market[0], own[-1] / own[0]]) - 1.0


def _bisect(f, low: float, high: float, target: float, tol: float, what: str, clamp: bool = False) -> float:
    """x in [low, high] with f(x) = target, f increasing, by bisection.

    Out of reach: ScenarioError, or with ``clamp`` the nearer end (with a note on stderr).
    """
    f_low, f_high = f(low), f(high)
    if clamp and not f_low <= target <= f_high:
        end, reached = (low, f_low) if target < f_low else (high, f_high)
        print(f"calibration: {what} held at {end:g} (growth {reached:+.3f}, target {target:+.3f})", file=sys.stderr)
        return end
    if not f_low <= target <= f_high:
        raise ScenarioError(
            f"{what}: growth runs from {f_low:+.3f} to {f_high:+.3f} over [{low:g}, {high:g}]; "
            f"cannot reach {target:+.3f}"
        )
    while high - low > tol:
        mid = 0.5 * (low + high)
        low, high = (mid, high) if f(mid) < target else (low, mid)
    return 0.5 * (low + high)


def fit_growth(path: Path, seed: int, tol: float = 2e-3) -> tuple[float, float]:
    """(demand_growth, usage_growth) giving MARKET_GROWTH_TARGET and GROWTH_TARGET.

    Nested bisection: for each trial usage growth, the demand growth that gives the market its
    growth; then the usage growth at which Alibaba grows by its target (Alibaba sells more AI
    than the market, so its growth rises with usage growth). If Alibaba outgrows its target even
    without usage growth, usage growth is held at 0 and the table shows the gap. The same seed at
    every trial (common random numbers), so growth moves only with the parameters.
    """

    def market_fit(usage: float) -> float:
        return _bisect(
            lambda d: revenue_growth(path, seed, d, usage)[0],
            0.0,
            4.0,
            MARKET_GROWTH_TARGET,
            tol,
            "products.cloud.demand_growth",
        )

    fitted: dict[float, float] = {}

    def alibaba_growth(usage: float) -> float:
        fitted[usage] = market_fit(usage)
        return float(revenue_growth(path, seed, fitted[usage], usage)[1])

    usage = _bisect(alibaba_growth, 0.0, 4.0, GROWTH_TARGET, tol, "adoption.usage_growth", clamp=True)
    return round(market_fit(usage), 3), round(usage, 3)


def demand_capex_rmb(path: Path, seed: int) -> float:
    """Alibaba's capex over the first year (RMB) when it builds for demand (plan switched off)."""
    model = cloudwar.CloudMarket(path, rng=seed, overrides={"providers.Alibaba.strategy.plan_quarters": 0})
    alibaba = next(p for p in model.providers_list if p.name == "Alibaba")
    total = 0.0
    for _ in range(4):
        model.step()
        total += alibaba.capex
    return total * model.config.rmb_per_usd


def fit_capex_scale(path: Path, seed: int, rounds: int = 3) -> float:
    """Scale every provider's capex_per_unit so Alibaba's first-year demand-driven capex hits its target.

    Capacity bought for demand is the same in compute units whatever it costs, so capex is
    proportional to capex_per_unit and one rescaling nearly lands; a few rounds absorb the rest.
    Returns the overall factor applied.
    """
    total = 1.0
    for _ in range(rounds):
        factor = CAPEX_TARGET_RMB / demand_capex_rmb(path, seed)
        if abs(factor - 1.0) < 2e-3:
            break

        def scale(doc: Any, factor: float = factor) -> None:
            for provider in doc["providers"]:
                if "capex_per_unit" in provider:
                    provider["capex_per_unit"] = _number(f"{float(provider['capex_per_unit']) * factor:.3f}")

        edit_toml(path, scale)
        total *= factor
    return total


def fitted_opex(path: Path, seed: int) -> dict[str, float]:
    """Fixed opex (USD per quarter) of each provider in MARGIN_TARGETS that gives it its quarter-1 margin."""
    model = cloudwar.CloudMarket(path, rng=seed)
    model.step()
    opex = {}
    for provider in model.providers_list:
        if provider.name in MARGIN_TARGETS:
            income_before_opex = provider.operating_income + provider.spec.fixed_opex
            opex[provider.name] = max(income_before_opex - MARGIN_TARGETS[provider.name] * provider.revenue, 0.0)
    return opex


def finance_gaps(path: Path, seed: int) -> dict[str, float]:
    """How far the finance targets are from being met at the file's current values (simulated - target).

    ``capex`` and the quarter-1 market levels (``market <product> <region>``, means over SHARE_SEEDS)
    are relative (simulated / target - 1); growth and margins are in points of a fraction.
    Alibaba's growth counts as met when it is above target with usage growth already at 0 (the
    fit's lower end: nothing left to lower).
    """
    scenario = cloudwar.load_scenario(path)
    demand, usage = scenario.products["cloud"].demand_growth, scenario.adoption.usage_growth
    market, alibaba = revenue_growth(path, seed, demand, usage)
    model = cloudwar.CloudMarket(path, rng=seed)
    model.step()
    margins = {p.name: p.operating_margin for p in model.providers_list if p.name in MARGIN_TARGETS}
    alibaba_gap = alibaba - GROWTH_TARGET
    if usage == 0.0 and alibaba_gap > 0:
        alibaba_gap = min(alibaba_gap, FINANCE_TOLERANCE["alibaba_growth"])
    return {
        **market_gaps(path),
        "capex": demand_capex_rmb(path, seed) / CAPEX_TARGET_RMB - 1.0,
        "market_growth": market - MARKET_GROWTH_TARGET,
        "alibaba_growth": alibaba_gap,
        **{f"margin {name}": margins[name] - target for name, target in MARGIN_TARGETS.items()},
    }


def _format_gaps(gaps: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:+.4f}" for key, value in gaps.items())


def _format(x: float) -> str:
    return f"{x:.3f}"


def _number(text: str) -> Any:
    """A TOML number item written exactly as ``text`` (so the file keeps its number formats)."""
    return tomlkit.parse(f"v = {text}")["v"]


def edit_toml(path: Path, edit: Callable[[Any], None]) -> None:
    """Apply ``edit`` to the scenario file as a :mod:`tomlkit` document: comments and layout are kept."""
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")


def write_back(
    path: Path,
    quality: np.ndarray,
    opex: dict[str, float],
    products: list[str],
    regions: list[str],
    names: list[str],
    growth: tuple[float, float] | None = None,
) -> None:
    """Write the fitted values into the TOML file, keeping comments and layout."""

    def edit(doc: Any) -> None:
        if growth is not None:
            doc["products"]["cloud"]["demand_growth"] = _number(f"{growth[0]:.3f}")
            doc["adoption"]["usage_growth"] = _number(f"{growth[1]:.3f}")
        for provider in doc["providers"]:
            j = names.index(str(provider["name"]))
            for k, product in enumerate(products):
                for i, region in enumerate(regions):
                    provider["quality"][product][region] = _number(_format(quality[j, k, i]))
            if provider["name"] in opex:
                provider["fixed_opex"] = _number(f"{opex[str(provider['name'])]:.3e}")

    edit_toml(path, edit)


def report(path: Path, seed: int) -> list[tuple[str, float, float | None, float | None, float]]:
    """Target against simulated, as rows (label, target, low, high, simulated) of ``TARGETS_TABLE``.

    Shares and margins in quarter 1, growth from quarter 1 to 1 + GROWTH_QUARTERS (at ``seed``);
    quarter-1 market levels as fitted, means over SHARE_SEEDS.
    """
    model = cloudwar.CloudMarket(path, rng=seed)
    model.run(1 + GROWTH_QUARTERS)
    res = model.results()
    q1 = res[res.quarter == 1]

    def value(provider: str, region: str, product: str, metric: str) -> float:
        sel = q1[(q1.provider == provider) & (q1.region == region) & (q1["product"] == product) & (q1.metric == metric)]
        return float(sel.value.iloc[0])

    def growth(provider: str, product: str) -> float:
        """Revenue growth of one provider, or of all providers together (``provider="all"``)."""
        sel = res[(res.metric == "revenue") & (res.region == "all") & (res["product"] == product)]
        sel = sel[sel.provider != "all"] if provider == "all" else sel[sel.provider == provider]
        revenue = sel.groupby("quarter")["value"].sum()
        return float(revenue[1 + GROWTH_QUARTERS] / revenue[1] - 1.0)

    levels = first_quarter_markets(path, SHARE_SEEDS)
    simulated = {
        "Alibaba share of China AI cloud": value("Alibaba", "china", "ai", "revenue_share"),
        "Tencent share of China AI cloud": value("Tencent", "china", "ai", "revenue_share"),
        "Alibaba share of China cloud": value("Alibaba", "china", "cloud", "revenue_share"),
        "Alibaba share of world cloud": value("Alibaba", "all", "cloud", "revenue_share"),
        "AWS share of world cloud": value("AWS", "all", "cloud", "revenue_share"),
        "Alibaba revenue growth, first year": growth("Alibaba", "all"),
        "World cloud market revenue growth, first year": growth("all", "cloud"),
        "Alibaba AI revenue growth, first year (check)": growth("Alibaba", "ai"),
        "Alibaba capex for demand, first year (RMB bn)": demand_capex_rmb(path, seed) / 1e9,
        "AWS operating margin": value("AWS", "all", "all", "operating_margin"),
        "Alibaba operating margin": value("Alibaba", "all", "all", "operating_margin"),
        **{label: levels[market] / 1e9 for market, label in MARKET_LABELS.items()},
    }
    return [(label, target, low, high, simulated[label]) for label, target, low, high in TARGETS_TABLE]


def fit_shares(path: Path, seed: int, rounds: int) -> None:
    """Qualities so that quarter-1 shares land on the facts (writes them into ``path``).

    The quarter-1 shares answer the corrected targets with noise of a few tenths of a point (the
    starting draw moves with the qualities, and a few large enterprises weigh in every share), so
    the rounds do not converge monotonically: the file keeps the qualities of the best round (or
    those it came with, if no round does better).
    """
    targets = TARGETS
    best = (share_gap(path), path.read_text(encoding="utf-8"))
    for _ in range(SHARE_ROUNDS):
        # The starting draw (who buys AI from whom, which pulls cloud) depends on the qualities,
        # so fit, write, redraw, until the fit no longer moves.
        for _ in range(rounds):
            quality = fit(path, seed, targets)
            model = cloudwar.CloudMarket(path, rng=seed)
            moved = float(np.abs(quality - model.quality).max())
            write_back(path, quality, {}, model.product_names, model.region_names, model.provider_names)
            print(f"calibration round: qualities moved by at most {moved:.4f}", file=sys.stderr)
            if moved < 2e-3:
                break
        targets, worst = corrected_targets(targets, first_quarter_shares(path, SHARE_SEEDS))
        print(f"calibration: quarter-1 shares off by at most {worst:.4f}", file=sys.stderr)
        if worst < best[0]:
            best = (worst, path.read_text(encoding="utf-8"))
        if worst < SHARE_TOLERANCE:
            break
    if path.read_text(encoding="utf-8") != best[1]:
        path.write_text(best[1], encoding="utf-8")
        print(f"calibration: kept the qualities of the best round (shares off by {best[0]:.4f})", file=sys.stderr)


def fit_finance(path: Path, seed: int) -> None:
    """Market sizes, capex scale, growth, then fixed opex so the first-quarter margins hit their targets.

    Each moves the others (the sizes move capex and margins, capex and opex move prices and
    margins, growth moves capex and the quarter-1 levels), so the four are fitted in rounds until
    every one of their targets is met within FINANCE_TOLERANCE.
    """
    for round_ in range(1, FINANCE_ROUNDS + 1):
        gaps = finance_gaps(path, seed)
        print(f"calibration, finance round {round_}: gaps {_format_gaps(gaps)}", file=sys.stderr)
        if finance_met(gaps):
            return
        model = cloudwar.CloudMarket(path, rng=seed)
        names = (model.product_names, model.region_names, model.provider_names)
        fit_market_sizes(path)
        scale = fit_capex_scale(path, seed)
        growth = fit_growth(path, seed)
        write_back(path, model.quality, {}, *names, growth)
        fit_market_sizes(path)  # growth moves the quarter-1 levels (a quarter of it is in them)
        write_back(path, model.quality, fitted_opex(path, seed), *names)
        print(
            f"calibration, finance round {round_}: market sizes refitted, capex_per_unit x{scale:.3f}, "
            f"demand_growth, usage_growth = {growth} per year, fixed opex for the margins refitted",
            file=sys.stderr,
        )
    print("calibration: the finance fit did not settle; see the table", file=sys.stderr)


def finance_met(gaps: dict[str, float]) -> bool:
    return all(abs(gaps[key]) <= FINANCE_TOLERANCE[key] for key in FINANCE_TOLERANCE)


def share_gap(path: Path) -> float:
    """Largest gap between quarter-1 revenue shares (averaged over SHARE_SEEDS) and the facts."""
    simulated = first_quarter_shares(path, SHARE_SEEDS)
    return max(
        abs(share - simulated[market][name]) for market, shares in TARGETS.items() for name, share in shares.items()
    )


def calibrate(path: Path, seed: int, rounds: int) -> bool:
    """Fit shares, then finance, until both hold at the start of a pass; True if anything was refitted.

    A file that is already calibrated passes the first check and is left exactly as it is, so
    calibrating twice gives the same file.
    """
    for outer in range(1, OUTER_ROUNDS + 1):
        gap, gaps = share_gap(path), finance_gaps(path, seed)
        print(f"calibration pass {outer}: shares off by {gap:.4f}; finance {_format_gaps(gaps)}", file=sys.stderr)
        if gap < SHARE_CHECK_TOLERANCE and finance_met(gaps):
            return outer > 1
        fit_shares(path, seed, rounds)
        fit_finance(path, seed)
    print("calibration: shares and finance did not settle together; see the table", file=sys.stderr)
    return True


def parse_args(argv: Sequence[str] | None = None) -> Any:
    """Command-line options."""
    parser = Parser(prog="calibrate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=BASELINE, help="TOML file to calibrate in place")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="only print the target-against-simulated table")
    parser.add_argument("--rounds", type=int, default=8, help="fit-and-redraw rounds at most")
    return parser.parse_args(argv)


def run(args: Any, command: str) -> None:
    """Calibrate (unless ``--check``), then print the target-against-simulated table."""
    if not args.check and not calibrate(args.scenario, args.seed, args.rounds):
        print(f"calibration: {args.scenario} already meets every target; left unchanged", file=sys.stderr)
    rows = report(args.scenario, args.seed)
    print(f"{'target':55s} {'facts.md':>9s} {'band':>13s} {'simulated':>9s}")
    for label, target, low, high, simulated in rows:
        band = f"{low:.3f}-{high:.3f}" if low is not None else "(check)"
        flag = "" if low is None or low <= simulated <= high else "  OUTSIDE"
        print(f"{label:55s} {target:9.3f} {band:>13s} {simulated:9.3f}{flag}")


if __name__ == "__main__":
    sys.exit(main("calibrate.py", parse_args, run))

"""The scenario schema: typed, validated once, every field with its unit and meaning.

A scenario is a TOML file. :func:`load_scenario` reads it with :mod:`tomllib`, applies any
``key=value`` overrides, and validates the whole thing in one place (:func:`parse_scenario`).
Every problem is reported as a :class:`ScenarioError` whose message is one line naming the
offending key, so the command line can print it and exit.

Each field below carries ``unit`` and ``doc`` metadata; ``cloudwar describe`` prints them.
Sources of the shipped values are cited next to each value in the TOML files.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from cloudwar.errors import ScenarioError
from cloudwar.scenario.events import EventRow, EventSpec, TimedEvent, event_rows, parse_events, resolve_events
from cloudwar.scenario.layering import merge_layers, read_layers, read_merged, resized_by_a_layer

PRODUCTS = ("cloud", "ai")

# Bounds that keep the arithmetic exact. The choice step computes utilities in float32 (about 7
# significant digits, largest value 3.4e38) and divides them by the logit scale. Each utility term
# at most UTILITY_LIMIT in size, mean sensitivities at most SENSITIVITY_LIMIT (spread at most
# SPREAD_LIMIT, so a million lognormal draws stay below about 3,000 times the mean) and the logit
# scale at least LOGIT_SCALE_MIN keep utility / logit_scale below about 1e10 even in the worst
# corner: far inside float32's range, so no term becomes inf and no inf - inf becomes NaN (which
# silently handed every choice to the first provider). Money and volumes are float64 (largest
# 1.8e308): USD amounts up to MONEY_LIMIT, prices up to PRICE_LIMIT and growth up to GROWTH_LIMIT
# keep every product of them (revenue, capex, NPV over thousands of quarters) finite.
UTILITY_LIMIT = 100.0  # utility units
SENSITIVITY_LIMIT = 100.0  # multiplier
SPREAD_LIMIT = 2.0  # lognormal sigma
LOGIT_SCALE_MIN = 0.01  # utility units
PRICE_LIMIT = 1e6  # USD per unit
MONEY_LIMIT = 1e13  # USD per quarter (about half the world's GDP in a quarter)
GROWTH_LIMIT = 1e12  # largest growth of a buyer's volume over a run (multiple of the start)
MAX_QUARTERS = 4_000  # quarters of adoption are stored as int16; 1,000 years is plenty
MAX_ENTERPRISES = 2**31 - 1  # enterprise indices are at most int32 in the network arrays
_EXACT = "bounded so the float32 choice step stays exact (see UTILITY_LIMIT in cloudwar.scenario.schema)"
_FINITE = "bounded so money arithmetic stays finite (see MONEY_LIMIT in cloudwar.scenario.schema)"

#: Labels the results tables use for totals (``provider = "all"``, ``region = "all"``); a provider
#: or region of that name would be confused with them.
RESERVED_NAMES = ("all",)


def _f(
    default: Any = dataclasses.MISSING,
    *,
    unit: str,
    doc: str,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    choices: tuple[str, ...] | None = None,
    factory: Any = None,
    every: bool = False,
) -> Any:
    # every: a number stands for the table {"*": number} (every region, or every product)
    meta = {"unit": unit, "doc": doc, "lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "every": every}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ProductSpec:
    """A product line: ``cloud`` (infrastructure) or ``ai`` (model API)."""

    unit: str = _f("unit", unit="text", doc="what one unit of demand is (for reports)")
    reference_price: float = _f(
        1.0,
        unit="USD per unit",
        lo=1e-6,
        hi=PRICE_LIMIT,
        doc="price that costs an enterprise of price sensitivity 1 one utility unit; 1e-6 to 1e6, " + _EXACT,
    )
    logit_scale: float = _f(
        0.25,
        unit="utility units",
        lo=LOGIT_SCALE_MIN,
        hi=UTILITY_LIMIT,
        doc="mu, the logit noise scale; smaller means choices follow utility more sharply; 0.01 to 100, "
        "since utility / mu is computed in float32 and must stay far inside its range",
    )
    outside_quality: float = _f(
        0.0,
        unit="utility units",
        lo=-UTILITY_LIMIT,
        hi=UTILITY_LIMIT,
        doc="a0, utility of the outside option (on-premises or no purchase); -100 to 100, " + _EXACT,
    )
    contract_quarters: int = _f(
        4,
        unit="quarters",
        lo=1,
        hi=60,
        doc="contract length: an enterprise re-evaluates once per contract and pays the price agreed at signing "
        "until it renews",
    )
    compute_per_unit: float = _f(
        1.0, unit="compute units per unit", lo=0.0, hi=PRICE_LIMIT, doc="capacity one unit of demand uses; at most 1e6"
    )
    demand_growth: float = _f(
        0.0,
        unit="per year",
        lo=-0.9,
        hi=10.0,
        doc="growth of each buyer's volume (market growth not explained by adoption), at the start",
    )
    demand_growth_halflife: float = _f(
        0.0,
        unit="years",
        lo=0.0,
        doc="years in which the demand growth rate halves (it slows as the market matures); 0 = constant",
    )


@dataclass(frozen=True)
class RegionSpec:
    """A geographic market."""

    enterprise_share: float = _f(
        unit="fraction", lo=0.0, hi=1.0, lo_open=True, doc="share of the simulated enterprises located here"
    )
    market_size: dict[str, float] = _f(
        unit="USD per quarter",
        factory=dict,
        lo=0.0,
        lo_open=True,
        hi=MONEY_LIMIT,
        doc="spend per product at the start, > 0 and at most 1e13; volumes are scaled to match it. Required for "
        "every product, except with enterprise.identical (theory mode), where a product without it sells one "
        "unit per enterprise per quarter",
    )


@dataclass(frozen=True)
class StrategySpec:
    """Which strategy a provider plays, with its parameters (validated by the strategy class)."""

    kind: str = _f("fixed_price", unit="name", doc="registered strategy name or 'package.module:ClassName'")
    params: dict[str, Any] = _f(unit="mixed", factory=dict, doc="parameters passed to the strategy class")


@dataclass(frozen=True)
class ProviderSpec:
    """A cloud provider and its starting position."""

    name: str = _f(unit="text", doc="provider name")
    quality: dict[str, dict[str, float]] = _f(
        unit="utility units",
        factory=dict,
        lo=-UTILITY_LIMIT,
        hi=UTILITY_LIMIT,
        doc="a_j per product (a number, or a table per region): quality and brand utility before price; "
        "-100 to 100, " + _EXACT,
    )
    price: dict[str, dict[str, float]] = _f(
        unit="USD per unit",
        factory=dict,
        lo=0.0,
        hi=PRICE_LIMIT,
        doc="starting price per product (a number, or a table per region); 0 to 1e6, " + _FINITE,
    )
    marginal_cost: dict[str, dict[str, float]] = _f(
        unit="USD per unit",
        factory=dict,
        lo=0.0,
        hi=PRICE_LIMIT,
        doc="c_j: variable cost per unit served at the start, per product (number or per region); 0 to 1e6",
    )
    presence: dict[str, float] = _f(
        unit="fraction",
        factory=dict,
        doc="availability per region, 0..1; enters utility as log(presence); 0 = not offered",
    )
    ecosystem: float = _f(
        0.0,
        unit="index 0..1",
        lo=0.0,
        hi=1.0,
        doc="ecosystem strength (developer familiarity, e.g. from open-source models)",
    )
    ecosystem_funded: float = _f(
        0.0,
        unit="index points",
        lo=0.0,
        hi=1.0,
        doc="part of the starting ecosystem strength that fades (at ecosystem.decay) unless funded by spending",
    )
    captive_share: dict[str, float] = _f(
        unit="fraction",
        factory=dict,
        doc="share of each region's enterprises tied to the provider's consumer platform (drawn at the start)",
    )
    captive_bonus: float = _f(
        0.0,
        unit="utility units",
        lo=0.0,
        hi=UTILITY_LIMIT,
        doc="extra utility of this provider for its captive enterprises; at most 100, " + _EXACT,
    )
    fixed_opex: float = _f(
        0.0,
        unit="USD per quarter",
        lo=0.0,
        hi=MONEY_LIMIT,
        doc="fixed operating cost of the cloud business; at most 1e13, " + _FINITE,
    )
    capex_per_unit: float = _f(
        0.0,
        unit="USD per compute unit",
        lo=0.0,
        hi=PRICE_LIMIT,
        doc="capex that adds one compute unit per quarter of capacity, at the start; at most 1e6, " + _FINITE,
    )
    initial_utilisation: float = _f(
        0.8,
        unit="fraction",
        lo=0.0,
        hi=1.0,
        lo_open=True,
        doc="starting demand / capacity, which sets the starting capacity",
    )
    strategy: StrategySpec = _f(unit="table", factory=StrategySpec, doc="pricing and capex strategy")
    gpu_supply: dict[str, float] = _f(
        unit="fraction per quarter",
        factory=dict,
        lo=0.0,
        hi=10.0,
        every=True,
        doc="GPU supply: the largest net growth of capacity in service a quarter (0 = none, 0.05 = 5%); a number "
        "caps all regions together, a table per region ({ china = 0.03 }) each region named ('*' = all together); "
        "unset = unlimited",
    )
    cost_shock: dict[str, dict[str, float]] = _f(
        unit="multiple of unit cost",
        factory=dict,
        lo=0.0,
        lo_open=True,
        hi=1000.0,
        every=True,
        doc="multiplier of unit cost: a number (every product and region), or per product (a number or a table "
        "per region; '*' = the rest); unset = 1; events change it (cost_shock.cloud.china = 1.2)",
    )


@dataclass(frozen=True)
class EnterpriseSpec:
    """The enterprise population."""

    size_tail: float = _f(
        1.5,
        unit="Pareto alpha",
        lo=1.0,
        lo_open=True,
        doc="tail index of enterprise size (spend); smaller means heavier tail",
    )
    price_sensitivity: float = _f(
        1.0, unit="multiplier", lo=0.0, hi=SENSITIVITY_LIMIT, doc="mean price sensitivity; at most 100, " + _EXACT
    )
    price_sensitivity_spread: float = _f(
        0.0,
        unit="lognormal sigma",
        lo=0.0,
        hi=SPREAD_LIMIT,
        doc="dispersion of price sensitivity across enterprises; at most 2, " + _EXACT,
    )
    quality_sensitivity: float = _f(
        1.0, unit="multiplier", lo=0.0, hi=SENSITIVITY_LIMIT, doc="mean quality sensitivity; at most 100, " + _EXACT
    )
    quality_sensitivity_spread: float = _f(
        0.0, unit="lognormal sigma", lo=0.0, hi=SPREAD_LIMIT, doc="dispersion of quality sensitivity; at most 2"
    )
    switching_cost: float = _f(
        0.0,
        unit="utility units",
        lo=0.0,
        hi=UTILITY_LIMIT,
        doc="mean cost of leaving the current provider; at most 100, " + _EXACT,
    )
    switching_cost_spread: float = _f(
        0.0, unit="lognormal sigma", lo=0.0, hi=SPREAD_LIMIT, doc="dispersion of switching cost; at most 2"
    )
    industries: int = _f(20, unit="count", lo=1, hi=32_767, doc="number of industries (network clusters)")
    identical: bool = _f(False, unit="flag", doc="theory mode: every enterprise has size 1 and mean sensitivities")


@dataclass(frozen=True)
class NetworkSpec:
    """The enterprise network."""

    kind: str = _f(
        "clustered",
        unit="name",
        choices=("clustered", "clustered_arrays", "clustered_networkx", "complete", "none"),
        doc="clustered: industry clusters, built as networkx graphs below 10,000 enterprises and in "
        "numpy arrays from 10,000 on; clustered_arrays / clustered_networkx force one builder; "
        "complete: everyone linked; none: no links",
    )
    mean_degree: float = _f(20.0, unit="links per enterprise", lo=0.0, doc="average number of neighbours")
    within_industry: float = _f(0.8, unit="fraction", lo=0.0, hi=1.0, doc="share of links inside the industry")
    within_region: float = _f(
        0.9, unit="fraction", lo=0.0, hi=1.0, doc="share of cross-industry links that stay in the region"
    )


@dataclass(frozen=True)
class ChoiceSpec:
    """Weights of the non-price terms of an enterprise's utility (utility units)."""

    ecosystem_weight: float = _f(
        0.0, unit="utility per index point", lo=0.0, hi=UTILITY_LIMIT, doc="value of ecosystem strength; at most 100"
    )
    service_weight: float = _f(
        0.0,
        unit="utility per log service level",
        lo=0.0,
        hi=UTILITY_LIMIT / 10,
        doc="penalty for a provider that rationed last quarter, times log(service level) (at least log 1e-6); "
        "at most 10, " + _EXACT,
    )
    network_weight: float = _f(
        0.0,
        unit="utility per neighbour share",
        lo=0.0,
        hi=UTILITY_LIMIT,
        doc="network effect: value of the share of neighbours using the provider; at most 100",
    )
    ai_pull: float = _f(
        0.0,
        unit="utility units",
        lo=0.0,
        hi=UTILITY_LIMIT,
        doc="extra utility, for cloud, of the provider the enterprise buys AI from; at most 100",
    )
    rationed_reevaluation: float = _f(
        1.0,
        unit="fraction",
        lo=0.0,
        hi=1.0,
        doc="chance that a customer left unserved re-evaluates early, times its unserved share",
    )
    multi_homing_share: float = _f(
        0.0,
        unit="fraction",
        lo=0.0,
        hi=1.0,
        doc="share of enterprises, the largest by size, that split each product's spend between two providers "
        "(a wallet); 0 = every enterprise buys from one provider (single-homing, the theory setting)",
    )
    split_scale: float = _f(
        1.0,
        unit="multiple of the logit scale",
        lo=0.1,
        hi=100.0,
        doc="how sharply a wallet's split between its two providers follows their utilities: the split is a "
        "logit at this multiple of the product's logit scale (1 = as sharply as a fresh choice; larger = "
        "workloads move between the two less readily)",
    )


@dataclass(frozen=True)
class EcosystemSpec:
    """Ecosystem dynamics: spending raises a provider's ecosystem strength, which fades unless funded.

    Each quarter, for provider i with strength E_i, funded floor F_i (starting strength minus
    ``ecosystem_funded``) and spend S_i: gain_i = (1 - E_i) S_i / (S_i + half_gap_spend);
    E_i <- E_i - decay (E_i - F_i) + gain_i + leak x (sum of the other providers' gains), capped at 1.
    """

    decay: float = _f(
        0.0, unit="per quarter", lo=0.0, hi=1.0, doc="share of the strength above the funded floor lost each quarter"
    )
    half_gap_spend: float = _f(
        4.0e9,
        unit="USD per quarter",
        lo=0.0,
        lo_open=True,
        doc="spend that closes half the gap to full strength (1) in one quarter (only a ratio: any size is exact)",
    )
    leak: float = _f(
        0.0,
        unit="fraction",
        lo=0.0,
        hi=1.0,
        doc="share of a spender's gain that every rival also gets (they host the open models)",
    )


@dataclass(frozen=True)
class AdoptionSpec:
    """Bass diffusion of AI adoption through the network."""

    innovation: float = _f(0.03, unit="per quarter", lo=0.0, hi=1.0, doc="Bass p: adoption from outside influence")
    imitation: float = _f(
        0.38, unit="per quarter", lo=0.0, hi=5.0, doc="Bass q: adoption per unit of adopted neighbour share"
    )
    initial_share: float = _f(0.0, unit="fraction", lo=0.0, hi=1.0, doc="adopters at the start")
    substeps: int = _f(
        4, unit="per quarter", lo=1, hi=64, doc="adoption sub-steps per quarter (discretisation of the Bass hazard)"
    )
    usage_growth: float = _f(0.0, unit="per year", lo=0.0, hi=100.0, doc="growth of an adopter's AI usage")
    usage_cap: float = _f(
        1.0,
        unit="multiple of first-quarter usage",
        lo=1.0,
        hi=GROWTH_LIMIT,
        doc="where an adopter's usage stops growing; at most 1e12, " + _FINITE,
    )


@dataclass(frozen=True)
class CapacitySpec:
    """Capacity build-out, depreciation and cost dynamics."""

    limited: bool = _f(True, unit="flag", doc="false: unlimited capacity, no depreciation (theory mode)")
    build_lag: int = _f(2, unit="quarters", lo=0, hi=20, doc="capex becomes capacity after this many quarters")
    useful_life: int = _f(22, unit="quarters", lo=1, hi=80, doc="capacity is depreciated and retired after this")
    hardware_decline: float = _f(
        0.0,
        unit="per year",
        lo=0.0,
        hi=0.9,
        doc="fall in capex per compute unit and in unit cost from hardware price-performance",
    )
    learning_exponent: float = _f(
        0.0,
        unit="elasticity",
        lo=0.0,
        hi=1.0,
        doc="unit cost falls as (cumulative volume / starting cumulative volume)^-b",
    )
    initial_experience: float = _f(
        8.0,
        unit="quarters of starting volume",
        lo=0.1,
        hi=1e6,
        doc="cumulative volume at the start, for the learning curve; at most 1e6",
    )


@dataclass(frozen=True)
class ValuationSpec:
    """How a provider's business is valued at the horizon (:mod:`cloudwar.valuation`).

    The defaults reproduce the experiments' terminal value: the last year's operating income,
    pre-tax, as a no-growth perpetuity at ``discount_rate``.
    """

    method: str = _f(
        "perpetuity",
        unit="name",
        choices=("perpetuity", "exit_multiple"),
        doc="terminal value: perpetuity = Gordon growth perpetuity of the last year's (after-tax) operating "
        "income, CF x (1 + g) / (r - g); exit_multiple = exit_multiple x the last year's exit_basis",
    )
    terminal_growth: float = _f(
        0.0, unit="per year", lo=-0.5, hi=0.5, doc="growth g of the perpetuity's cash flow; must be below discount_rate"
    )
    exit_multiple: float = _f(
        10.0, unit="multiple", lo=0.0, hi=1000.0, doc="value at the horizon per USD of the last year's exit_basis"
    )
    exit_basis: str = _f(
        "operating_income",
        unit="name",
        choices=("operating_income", "revenue"),
        doc="what the exit multiple multiplies: the last year's operating income (EV/EBIT) or revenue (EV/sales)",
    )
    tax_rate: float = _f(
        0.0,
        unit="fraction",
        lo=0.0,
        hi=1.0,
        doc="tax on positive operating income, taken from each quarter's free cash flow and from the "
        "perpetuity's cash flow (no loss carry-forward); 0 = pre-tax",
    )


@dataclass(frozen=True)
class Scenario:
    """A whole simulated world."""

    name: str = _f("unnamed", unit="text", doc="scenario name")
    description: str = _f("", unit="text", doc="what the scenario is for")
    quarters: int = _f(
        40,
        unit="quarters",
        lo=1,
        hi=MAX_QUARTERS,
        doc="how many quarters a run lasts; at most 4,000 (quarters are stored as int16)",
    )
    start: str = _f("2025Q4", unit="YYYYQn", doc="calendar quarter of the first step")
    enterprises: int = _f(
        10_000, unit="count", lo=1, hi=MAX_ENTERPRISES, doc="number of simulated enterprises; at most 2^31 - 1"
    )
    discount_rate: float = _f(0.10, unit="per year", lo=0.0, hi=1.0, doc="rate for NPV of free cash flow")
    rmb_per_usd: float = _f(
        7.2, unit="RMB per USD", lo=0.0, lo_open=True, hi=1e6, doc="exchange rate for RMB figures; at most 1e6"
    )
    oracle_sample: int = _f(
        2000,
        unit="count",
        lo=1,
        doc="enterprises sampled to evaluate expected demand for strategies; at most enterprises (when an "
        "override, or a file that extends another, lowers enterprises below the inherited oracle_sample, every "
        "enterprise is sampled)",
    )
    products: dict[str, ProductSpec] = _f(unit="table", factory=dict, doc="product lines offered")
    regions: dict[str, RegionSpec] = _f(unit="table", factory=dict, doc="regions")
    enterprise: EnterpriseSpec = _f(unit="table", factory=EnterpriseSpec, doc="enterprise population")
    network: NetworkSpec = _f(unit="table", factory=NetworkSpec, doc="enterprise network")
    choice: ChoiceSpec = _f(unit="table", factory=ChoiceSpec, doc="utility weights")
    ecosystem: EcosystemSpec = _f(unit="table", factory=EcosystemSpec, doc="ecosystem dynamics")
    adoption: AdoptionSpec = _f(unit="table", factory=AdoptionSpec, doc="AI adoption")
    capacity: CapacitySpec = _f(unit="table", factory=CapacitySpec, doc="capacity and costs")
    valuation: ValuationSpec = _f(unit="table", factory=ValuationSpec, doc="terminal and enterprise value")
    providers: list[ProviderSpec] = _f(unit="list", factory=list, doc="cloud providers")
    events: list[EventSpec] = _f(
        unit="list", factory=list, doc="timeline of changes, [[events]] with at, name, source, set (see README)"
    )

    # --- convenient views -------------------------------------------------------------
    @property
    def product_names(self) -> list[str]:
        return list(self.products)

    @property
    def region_names(self) -> list[str]:
        return list(self.regions)

    @property
    def provider_names(self) -> list[str]:
        return [p.name for p in self.providers]


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _type_name(t: Any) -> str:
    return {float: "a number", int: "a whole number", str: "text", bool: "true or false"}.get(t, str(t))


def _check_scalar(value: Any, t: type, path: str, meta: dict[str, Any]) -> Any:
    if t is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{path}: expected true or false, got {value!r}")
        return value
    if t is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{path}: expected a whole number, got {value!r}")
    elif t is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{path}: expected a number, got {value!r}")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ScenarioError(f"{path}: expected a finite number, got {value!r}")
    elif t is str:
        if not isinstance(value, str):
            raise ScenarioError(f"{path}: expected text, got {value!r}")
        if meta.get("choices") and value not in meta["choices"]:
            raise ScenarioError(f"{path}: must be one of {', '.join(meta['choices'])}, got {value!r}")
        return value
    lo, hi = meta.get("lo"), meta.get("hi")
    unit = meta.get("unit", "")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        raise ScenarioError(f"{path}: must be {op} {_bound(lo, t)} ({unit}), got {value!r}")
    if hi is not None and value > hi:
        raise ScenarioError(f"{path}: must be <= {_bound(hi, t)} ({unit}), got {value!r}")
    return value


def _bound(x: float, t: type) -> str:
    """A bound as a message shows it: whole numbers in full (2,147,483,647), others short (1e-06)."""
    return f"{int(x):,}" if t is int else f"{x:g}"


# A class's hints never change; resolving them (string annotations) was a third of load_scenario.
_type_hints = functools.cache(get_type_hints)


def _build(cls: type, raw: Any, path: str) -> Any:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path or 'scenario'}: expected a table, got {raw!r}")
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ScenarioError(f"unknown key '{where}{unknown[0]}' (allowed: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ScenarioError(f"{sub}: missing (required, {f.metadata['doc']})")
            continue
        kwargs[name] = _convert(hints[name], raw[name], sub, dict(f.metadata))
    return cls(**kwargs)


def _convert(t: Any, value: Any, path: str, meta: dict[str, Any]) -> Any:
    origin = get_origin(t)
    if meta.get("every"):  # a number for the whole table (only at the top: its entries are plain)
        meta = {**meta, "every": False}
        value = {"*": value} if _is_number(value) else value
    if t is StrategySpec:  # flat form: {kind = "cost_plus", markup = 0.3}, or just the kind
        if isinstance(value, str):
            return StrategySpec(kind=value)
        if not isinstance(value, dict):
            raise ScenarioError(f"{path}: expected a strategy name or table, got {value!r}")
        params = {k: v for k, v in value.items() if k != "kind"}
        if params and "kind" not in value:
            raise ScenarioError(
                f"{path}: no 'kind' in {{{', '.join(params)}}} (e.g. {path}={{kind=\"share_first\", ...}}; "
                f"to change one parameter, set {path}.{next(iter(params))})"
            )
        return StrategySpec(
            kind=_check_scalar(value.get("kind", "fixed_price"), str, f"{path}.kind", {}), params=params
        )
    if dataclasses.is_dataclass(t):
        return _build(t, value, path)
    if origin is list:
        (item_t,) = get_args(t)
        if not isinstance(value, list):
            raise ScenarioError(f"{path}: expected a list, got {value!r}")
        return [_convert(item_t, v, _item_path(path, i, v), meta) for i, v in enumerate(value)]
    if origin is dict:
        key_t, val_t = get_args(t)
        if not isinstance(value, dict):
            raise ScenarioError(f"{path}: expected a table, got {value!r}")
        if val_t is Any:
            return dict(value)
        if get_origin(val_t) is dict:  # per product, a number or a table per region
            out = {}
            for k, v in value.items():
                if isinstance(v, dict):
                    out[k] = {r: _check_scalar(x, float, f"{path}.{k}.{r}", meta) for r, x in v.items()}
                else:
                    out[k] = {"*": _check_scalar(v, float, f"{path}.{k}", meta)}
            return out
        return {k: _convert(val_t, v, f"{path}.{k}", meta) for k, v in value.items()}
    return _check_scalar(value, t, path, meta)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _item_path(path: str, i: int, item: Any) -> str:
    """How a list item is named in messages: ``providers.Alibaba`` (as ``--set`` addresses it), else ``list[i]``."""
    name = item.get("name") if isinstance(item, dict) else None
    return f"{path}.{name}" if isinstance(name, str) and name else f"{path}[{i}]"


def _lookup(table: dict[str, dict[str, float]], product: str, region: str) -> float | None:
    entry = table.get(product)
    if entry is None:
        return None
    return entry.get(region, entry.get("*"))


def per_region(table: dict[str, dict[str, float]], product: str, region: str, default: float | None = None) -> float:
    """Value of a 'number or table per region' field for one product and region."""
    value = _lookup(table, product, region)
    if value is None:
        if default is None:
            raise ScenarioError(f"no value for product '{product}' in region '{region}'")
        return default
    return value


#: Characters a provider or region name may not contain: ``--set`` splits keys at ``.`` and the
#: value at ``=``, ``*`` is the every-region key of per-region tables, and brackets, quotes and
#: control characters would make messages and CSV files ambiguous.
_NAME_FORBIDDEN = re.compile(r"[.=*\[\]\"'\x00-\x1f\x7f]")


def _quoted_key(path: str, name: str) -> str:
    """``path.name`` as a message names it (TOML-quoted when the name is not a bare key)."""
    return f"{path}.{name}" if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'{path}."{name}"'


def check_name(name: str, key: str, kind: str) -> None:
    """Raise ScenarioError unless ``name`` can label a ``kind`` (provider, region) in tables and ``--set``."""
    if not name.strip():
        raise ScenarioError(f"{key}: a {kind} name cannot be empty")
    if name != name.strip():
        raise ScenarioError(f"{key}: {kind} name {name!r} has spaces at its ends (--set could not address it)")
    bad = _NAME_FORBIDDEN.search(name)
    if bad:
        raise ScenarioError(
            f"{key}: {kind} name {name!r} contains {bad.group()!r}, which --set keys and tables cannot hold "
            "(use letters, digits, spaces, _ or -)"
        )
    if name.casefold() in RESERVED_NAMES:
        raise ScenarioError(f'{key}: {kind} name {name!r} is reserved: the results label totals with {kind} = "all"')


def _check_names(s: Scenario) -> None:
    """Region and provider names: usable as labels and ``--set`` keys, providers' unique."""
    for region in s.regions:
        check_name(region, _quoted_key("regions", region), "region")
    seen: set[str] = set()
    for i, p in enumerate(s.providers):
        check_name(p.name, f"providers[{i}].name", "provider")
        if p.name in seen:
            raise ScenarioError(
                f"providers[{i}].name: two providers are named {p.name!r} (names must be unique: "
                "tables and --set providers.NAME.KEY address a provider by name)"
            )
        seen.add(p.name)


def _check_market_sizes(s: Scenario) -> None:
    """Every product has a market size in every region (theory mode may leave it out: unit demand)."""
    for rname, r in s.regions.items():
        where = _quoted_key("regions", rname)
        for prod in r.market_size:
            if prod not in s.products:
                raise ScenarioError(f"{where}.market_size.{prod}: '{prod}' is not a product of this scenario")
        if s.enterprise.identical:
            continue
        for prod in s.products:
            if prod not in r.market_size:
                raise ScenarioError(
                    f"{where}.market_size.{prod}: missing (USD per quarter at the start; only "
                    "enterprise.identical = true, theory mode, may leave it out for one unit per enterprise)"
                )


def _check_growth(s: Scenario) -> None:
    """A buyer's volume must not grow more than GROWTH_LIMIT-fold in a run (volumes x prices would overflow)."""
    for name, product in s.products.items():
        years = s.quarters / 4.0
        log_growth = years * math.log1p(product.demand_growth)
        if product.demand_growth_halflife > 0:  # the rate halves every half-life: log growth <= g H / ln 2
            log_growth = min(log_growth, product.demand_growth * product.demand_growth_halflife / math.log(2))
        if name == "ai":
            log_growth += min(years * math.log1p(s.adoption.usage_growth), math.log(s.adoption.usage_cap))
        if log_growth > math.log(GROWTH_LIMIT):
            raise ScenarioError(
                f"products.{name}.demand_growth: a buyer's volume would grow about 1e{log_growth / math.log(10):.0f}"
                f"-fold in {s.quarters:,} quarters (at most {GROWTH_LIMIT:g}-fold, so volumes and revenue stay "
                "finite); lower the growth or the quarters"
            )


def _check_supply_and_shocks(s: Scenario) -> None:
    """GPU supply and cost shocks name only the scenario's regions and products (or ``*``, the rest)."""
    for p in s.providers:
        where = f"providers.{p.name}"
        for region in p.gpu_supply:
            if region != "*" and region not in s.regions:
                raise ScenarioError(f"{where}.gpu_supply.{region}: '{region}' is not a region of this scenario")
        for prod, entry in p.cost_shock.items():
            if prod != "*" and prod not in s.products:
                raise ScenarioError(f"{where}.cost_shock.{prod}: '{prod}' is not a product of this scenario")
            for region in entry:
                if region != "*" and region not in s.regions:
                    raise ScenarioError(
                        f"{where}.cost_shock.{prod}.{region}: '{region}' is not a region of this scenario"
                    )


def cost_multiplier(table: dict[str, dict[str, float]], product: str, region: str) -> float:
    """A ``cost_shock`` table's multiplier for one market: the most specific entry (product before region), else 1."""
    for prod in (product, "*"):
        entry = table.get(prod, {})
        for key in (region, "*"):
            if key in entry:
                return entry[key]
    return 1.0


def check_oracle_sample(s: Scenario) -> None:
    """``oracle_sample`` may not exceed ``enterprises`` (the sample is drawn from them)."""
    if s.oracle_sample > s.enterprises:
        raise ScenarioError(f"oracle_sample: must be at most enterprises ({s.enterprises:,}), got {s.oracle_sample:,}")


def _cross_check(s: Scenario) -> None:
    """Checks that involve more than one field."""
    if not s.products:
        raise ScenarioError("products: at least one product line is required")
    for p in s.products:
        if p not in PRODUCTS:
            raise ScenarioError(f"unknown key 'products.{p}' (allowed: {', '.join(PRODUCTS)})")
    if not s.regions:
        raise ScenarioError("regions: at least one region is required")
    if not s.providers:
        raise ScenarioError("providers: at least one provider is required")
    _check_names(s)
    _check_market_sizes(s)
    _check_growth(s)
    if s.valuation.method == "perpetuity" and s.valuation.terminal_growth >= s.discount_rate:
        raise ScenarioError(
            f"valuation.terminal_growth: must be below discount_rate ({s.discount_rate:g}) for a growth "
            f"perpetuity, got {s.valuation.terminal_growth:g}"
        )
    total = sum(r.enterprise_share for r in s.regions.values())
    if abs(total - 1.0) > 1e-6:
        raise ScenarioError(f"regions.*.enterprise_share: must add up to 1, got {total:g}")
    for p in s.providers:
        where = f"providers.{p.name}"
        for key in ("quality", "price", "marginal_cost"):
            table = getattr(p, key)
            for prod in table:
                if prod not in s.products:
                    raise ScenarioError(f"{where}.{key}.{prod}: '{prod}' is not a product of this scenario")
            for prod in s.products:
                if prod not in table:
                    raise ScenarioError(f"{where}.{key}.{prod}: missing")
            for prod, entry in table.items():
                for region in entry:
                    if region != "*" and region not in s.regions:
                        raise ScenarioError(
                            f"{where}.{key}.{prod}.{region}: '{region}' is not a region of this scenario"
                        )
                for region in s.regions:
                    if region not in entry and "*" not in entry:
                        raise ScenarioError(f"{where}.{key}.{prod}.{region}: missing")
        for region, value in p.captive_share.items():
            if region not in s.regions:
                raise ScenarioError(f"{where}.captive_share.{region}: '{region}' is not a region of this scenario")
            if not 0.0 <= value <= 1.0:
                raise ScenarioError(
                    f"{where}.captive_share.{region}: must be between 0 and 1 (fraction), got {value!r}"
                )
        if p.ecosystem_funded > p.ecosystem:
            raise ScenarioError(
                f"{where}.ecosystem_funded: must be <= ecosystem ({p.ecosystem:g}), got {p.ecosystem_funded!r}"
            )
        for region, value in p.presence.items():
            if region not in s.regions:
                raise ScenarioError(f"{where}.presence.{region}: '{region}' is not a region of this scenario")
            if not 0.0 <= value <= 1.0:
                raise ScenarioError(f"{where}.presence.{region}: must be between 0 and 1 (fraction), got {value!r}")
    _check_supply_and_shocks(s)
    for region in s.regions:
        tied = sum(p.captive_share.get(region, 0.0) for p in s.providers)
        if tied > 1.0 + 1e-9:
            raise ScenarioError(f"providers[*].captive_share.{region}: must add up to at most 1, got {tied:g}")
    for region in s.regions:
        if not any(p.presence.get(region, 1.0) > 0 for p in s.providers):
            raise ScenarioError(
                f"providers[*].presence.{region}: every provider is absent from region '{region}' (presence 0); "
                "at least one must be present"
            )
    if not re.fullmatch(r"\d{4}Q[1-4]", s.start):
        raise ScenarioError(f"start: expected a calendar quarter like 2025Q4 (YYYYQn), got {s.start!r}")
    if s.network.kind in ("clustered", "clustered_arrays", "clustered_networkx") and s.network.mean_degree > max(
        s.enterprises - 1, 0
    ):
        raise ScenarioError(
            f"network.mean_degree: must be below the number of enterprises ({s.enterprises:,}), "
            f"got {s.network.mean_degree:g}"
        )
    if s.capacity.limited and any(p.capex_per_unit <= 0 for p in s.providers):
        bad = next(p.name for p in s.providers if p.capex_per_unit <= 0)
        raise ScenarioError(f"providers.{bad}.capex_per_unit: must be > 0 when capacity.limited is true")


def parse_scenario(raw: dict[str, Any]) -> Scenario:
    """Validate a raw TOML table and return the typed :class:`Scenario` (or raise ScenarioError)."""
    base = {k: v for k, v in raw.items() if k != "events"} if isinstance(raw, dict) else raw
    scenario = _build(Scenario, base, "")
    _cross_check(scenario)
    from cloudwar.strategies import make_strategy  # validates strategy kinds and parameters once

    for p in scenario.providers:
        try:
            make_strategy(p.strategy).check_scenario(scenario)
        except ScenarioError as err:
            raise ScenarioError(f"providers.{p.name}.strategy: {err}") from None
    if "events" in raw:
        scenario = dataclasses.replace(scenario, events=parse_events(raw["events"], scenario.start))
        event_timeline(scenario, base)  # every event validated once, here
    return scenario


def event_timeline(s: Scenario, base: dict[str, Any] | None = None) -> list[TimedEvent]:
    """The scenario's events in the order they happen, resolved (:func:`cloudwar.scenario.events.resolve_events`).

    ``base``: the raw table of ``s`` without events (default: :func:`scenario_to_dict` of it).
    """
    if not s.events:
        return []
    if base is None:
        base = {k: v for k, v in scenario_to_dict(s).items() if k != "events"}
    return resolve_events(s, base, apply_overrides, parse_scenario)


def describe_events(s: Scenario) -> list[EventRow]:
    """The scenario's events as rows (calendar quarter, step, name, keys set, source), in the order they happen."""
    return event_rows(event_timeline(s))


# --------------------------------------------------------------------------------------------
# Loading and overrides
# --------------------------------------------------------------------------------------------
def read_scenario_toml(name_or_path: str | Path) -> dict[str, Any]:
    """The raw TOML table of a shipped scenario name or a file path, its ``extends`` chain merged in.

    A bare name (no ``/``, no ``.toml``) is a shipped scenario, even when a file or folder of
    that name sits in the working folder (``--out baseline`` makes one); a file of that name is
    read only if no scenario of that name is shipped. Anything else is a path. Layering rules:
    :mod:`cloudwar.scenario.layering`.
    """
    return read_merged(name_or_path)


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is read as a TOML value.

    A value that is not valid TOML is taken as text when it is a bare word (``complete``,
    ``2025Q4``, ``best_response``); one that opens a TOML string, array or table (``"``, ``'``,
    ``[``, ``{``) and does not parse is an error.
    """
    if "=" not in text:
        raise ScenarioError(f"--set {text!r}: expected key=value")
    key, value_text = (part.strip() for part in text.split("=", 1))
    if not key:
        raise ScenarioError(f"--set {text!r}: empty key")
    try:
        value = tomllib.loads(f"v = {value_text}")["v"]
    except tomllib.TOMLDecodeError as err:
        if value_text[:1] in ("[", "{", '"', "'"):
            raise ScenarioError(f"--set {key}: {value_text!r} is not a valid TOML value ({err})") from None
        value = value_text
    return key, value


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a raw scenario table (a copy is returned).

    ``providers.Alibaba.price.ai=1.2`` addresses a provider by name; any other path is a
    nested table key. Unknown keys are caught by validation afterwards.
    """
    import copy

    out = copy.deepcopy(raw)
    for key, value in overrides.items():
        parts = key.split(".")
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                node = _provider_named(node, part, key)
                continue
            if not isinstance(node, dict):
                raise ScenarioError(f"{key}: '{'.'.join(parts[:i])}' is not a table")
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif _is_number(nxt) and _number_for_every(parts[: i + 1]):
                nxt = node[part] = {"*": nxt}  # price.ai = 1.6, then price.ai.china: 1.6 stays for the rest
            node = nxt
        if isinstance(node, list):
            _provider_named(node, parts[-1], key)  # names the provider if it does not exist
            raise ScenarioError(
                f"{key}: a provider is a table and cannot be set to one value; set one of its keys "
                f"({key}.KEY=VALUE, e.g. {key}.price.cloud=0.9; cloudwar describe lists them)"
            )
        if not isinstance(node, dict):
            where = ".".join(parts[:-1])
            raise ScenarioError(f"{key}: '{where}' is a value ({node!r}), not a table with keys")
        node[parts[-1]] = value
    return out


#: Provider fields that hold a number or a table (key: the depths, from ``providers``, of such numbers).
_EVERY = {"price": (4,), "quality": (4,), "marginal_cost": (4,), "gpu_supply": (3,), "cost_shock": (3, 4)}


def _number_for_every(path: list[str]) -> bool:
    """Whether the raw value at ``path`` may be a number standing for every region (or product)."""
    return len(path) >= 3 and path[0] == "providers" and len(path) in _EVERY.get(path[2], ())


def _provider_named(providers: list[Any], name: str, key: str) -> dict[str, Any]:
    """The one provider table called ``name`` in a raw providers list (ScenarioError naming ``key`` otherwise)."""
    match = [p for p in providers if isinstance(p, dict) and p.get("name") == name]
    if not match:
        names = ", ".join(str(p.get("name")) for p in providers if isinstance(p, dict))
        raise ScenarioError(f"{key}: no provider named '{name}' (providers: {names})")
    if len(match) > 1:
        raise ScenarioError(f"{key}: {len(match)} providers are named '{name}' in the scenario (names must be unique)")
    return match[0]


def load_scenario(name_or_path: str | Path = "baseline", overrides: dict[str, Any] | None = None) -> Scenario:
    """Load a shipped scenario by name, or a TOML file by path, with optional dotted-key overrides."""
    if isinstance(name_or_path, Scenario):
        return name_or_path if not overrides else _reparse(name_or_path, overrides)
    layers = read_layers(name_or_path)
    return scenario_from_raw(merge_layers(layers)[0], overrides, resized=resized_by_a_layer(layers))


def scenario_from_raw(
    raw: dict[str, Any], overrides: dict[str, Any] | None = None, *, resized: bool = False
) -> Scenario:
    """Apply dotted-key overrides to a raw scenario table and validate it, with :func:`load_scenario`'s checks.

    ``resized``: a file that extends another set ``enterprises`` and not ``oracle_sample`` (see
    :func:`cloudwar.scenario.layering.resized_by_a_layer`), which, like an override, may lower
    ``enterprises`` below the sample size it inherits.
    """
    if overrides:
        raw = apply_overrides(raw, overrides)
    return _checked_sample(parse_scenario(raw), overrides or {}, resized)


def _checked_sample(s: Scenario, overrides: dict[str, Any], resized: bool = False) -> Scenario:
    """Refuse an ``oracle_sample`` above ``enterprises``, unless only an override or a layer lowered ``enterprises``.

    Lowering ``enterprises`` for a quick run (``--set enterprises=500``, or a file that extends
    another and sets ``enterprises = 500``) keeps the inherited sample size, which then covers
    every enterprise; asking for a larger sample than that, or a file that does, is an error.
    """
    if "oracle_sample" in overrides or ("enterprises" not in overrides and not resized):
        check_oracle_sample(s)
    return s


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """The raw-table form of a scenario (round-trips through :func:`parse_scenario`)."""

    def plain(v: Any) -> Any:
        if isinstance(v, StrategySpec):
            return {"kind": v.kind, **v.params}
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, dict):
            return {k: (x["*"] if isinstance(x, dict) and set(x) == {"*"} else plain(x)) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    return plain(s)


def _reparse(s: Scenario, overrides: dict[str, Any]) -> Scenario:
    out = parse_scenario(apply_overrides(scenario_to_dict(s), overrides))
    if "oracle_sample" in overrides:  # s itself passed the check when it was loaded
        check_oracle_sample(out)
    return out


def describe_fields(cls: type = Scenario, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, unit, default, meaning) for every field, nested tables expanded."""
    rows = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        t = hints[f.name]
        inner = get_args(t)[-1] if get_origin(t) in (dict, list) else t
        if t is StrategySpec:
            rows.append(
                (
                    key,
                    "table",
                    "'fixed_price'",
                    "{kind = NAME, PARAMETER = value, ...}: NAME is a strategy below or 'package.module:ClassName'; "
                    f"one parameter: {key}.PARAMETER",
                )
            )
        elif dataclasses.is_dataclass(t):
            rows.extend(describe_fields(t, key + "."))
        elif dataclasses.is_dataclass(inner):
            rows.extend(describe_fields(inner, key + ".<name>."))
        else:
            default = "" if f.default is dataclasses.MISSING else repr(f.default)
            rows.append((key, f.metadata["unit"], default, f.metadata["doc"]))
    return rows

"""The strategy interface, the basic pricing strategies and the playbooks of the AI cloud market.

A strategy decides, once a quarter, a provider's price for every (product, region) and its
capex for every region. Like a scikit-learn estimator, a strategy is a small class whose
parameters are dataclass fields, validated once in :meth:`Strategy.validate`::

    @dataclass
    class HalfOfRivals(Strategy):
        kind = "half_of_rivals"          # name used in scenario files (optional)
        fraction: float = 0.5

        def validate(self):
            super().validate()
            self.require("fraction", 0.0, 1.0)

        def set_prices(self, provider, market):
            rivals = market.rival_prices(provider)        # (products, regions)
            return self.fraction * rivals

A scenario names it by ``kind`` or as ``"package.module:HalfOfRivals"``.

What a strategy may read (the *strategy API*): ``provider.prices``, ``provider.unit_cost``,
``provider.index``, ``provider.presence``, ``provider.capacity_in_service(quarter)``,
``provider.history`` (its own ``Books``, and the rivals' ``served_volume``, which market
research publishes) and the ``market`` methods ``quarter``, ``prices``, ``rival_prices``,
``demand_curve``, ``product_names``, ``region_names``, ``hardware_factor``, ``rng`` (the
model's generator: the only source of randomness) and ``config``. All prices are in USD per
unit of the product, capex and ecosystem spend in USD per quarter.

A strategy decides three things each quarter, all from the same snapshot of last quarter:
:meth:`Strategy.set_prices`, :meth:`Strategy.set_capex` (then cut to the GPU supply by
:meth:`Strategy.supply_limit` if ``max_capacity_addition`` is set) and
:meth:`Strategy.set_ecosystem_spend`. State a playbook keeps between quarters (a reference
price, a Q-table) lives on the strategy object, one per provider, set at its first decision.

The playbooks of the AI cloud market (see each class):

* :class:`ShareFirst` (``share_first``, Alibaba's): price at a fraction of the rivals' price
  (or a multiple of cost), capex on a committed plan, spending on an open-source ecosystem;
* :class:`MarginDiscipline` (``margin_discipline``, AWS's): hold a target operating margin,
  capex following utilisation and demand growth;
* :class:`PlatformEmbedded` (``platform_embedded``, Tencent's): cost-following prices that match
  rivals' cuts and price scarcity, lighter capex limited by GPU supply; its captive segment is a
  provider field (``captive_share``, ``captive_bonus``);
* :class:`QLearning` (``q_learning``): tabular Q-learning over a price grid (Calvano et al. 2020);
* :class:`PriceCut` (``price_cut``): a one-off cut of one product's price (the May 2024 price war).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy import optimize

from cloudwar.errors import ScenarioError, one_line
from cloudwar.scenario import StrategySpec

if TYPE_CHECKING:
    from cloudwar.model.market import CloudMarket
    from cloudwar.model.providers import Provider
    from cloudwar.scenario import Scenario

REGISTRY: dict[str, type[Strategy]] = {}


@dataclass
class Strategy:
    """Base class: keeps prices where they are; capex by the capex rule.

    capex_rule: ``utilisation`` (build so capacity, ``build_lag`` quarters ahead, serves the
    trend of demand at ``target_utilisation``), ``fixed`` (``capex`` USD every quarter, split
    across regions by served demand), or ``none``.
    """

    kind: ClassVar[str] = ""
    capex_rule: str = "utilisation"
    target_utilisation: float = 0.8
    capex: float = 0.0
    ecosystem_spend: float = 0.0
    max_capacity_addition: float = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            REGISTRY[cls.kind] = cls

    def __post_init__(self) -> None:
        self.validate()

    # --- validation ----------------------------------------------------------------------
    def validate(self) -> None:
        """Check parameter values; raise ScenarioError naming the parameter."""
        self.require("target_utilisation", 0.05, 1.0)
        self.require("capex", 0.0, None)
        self.require("ecosystem_spend", 0.0, None)
        self.require("max_capacity_addition", 0.0, 10.0)
        if self.capex_rule not in ("utilisation", "fixed", "none"):
            raise ScenarioError(f"capex_rule must be one of utilisation, fixed, none, got {self.capex_rule!r}")

    def check_scenario(self, scenario: Scenario) -> None:
        """Checks that need the scenario (its products, regions, providers); raise ScenarioError.

        Called once, when the scenario is validated, after :meth:`validate`. The default checks
        nothing; a strategy whose parameters name products or regions checks them here.
        """

    def require(self, name: str, lo: float | None, hi: float | None) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise ScenarioError(f"parameter '{name}' must be a finite number, got {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = (
                f"between {lo:g} and {hi:g}"
                if hi is not None and lo is not None
                else (f">= {lo:g}" if lo is not None else f"<= {hi:g}")
            )
            raise ScenarioError(f"parameter '{name}' must be {span}, got {value!r}")

    def require_int(self, name: str, lo: int, hi: int) -> None:
        """Like :meth:`require`, for a whole number."""
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"parameter '{name}' must be a whole number, got {value!r}")
        self.require(name, lo, hi)

    def require_choice(self, name: str, choices: tuple[str, ...]) -> None:
        """The parameter must be one of ``choices``."""
        value = getattr(self, name)
        if value not in choices:
            raise ScenarioError(f"parameter '{name}' must be one of {', '.join(choices)}, got {value!r}")

    # --- decisions -----------------------------------------------------------------------
    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        """Prices for next quarter, shape (products, regions), USD per unit."""
        return provider.prices.copy()

    def set_capex(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        """Capex this quarter per region, USD."""
        n_regions = len(market.region_names)
        if self.capex_rule == "none" or not market.capacity_limited:
            return np.zeros(n_regions)
        if self.capex_rule == "fixed":
            demand = provider.compute_demand.copy()
            weights = (
                demand / demand.sum() if demand.sum() > 0 else provider.presence / max(provider.presence.sum(), 1e-12)
            )
            return self.capex * weights
        return capex_for_utilisation(provider, market, self.target_utilisation, self.growth_multiplier)

    def supply_limit(self, provider: Provider, market: CloudMarket, capex: np.ndarray) -> np.ndarray:
        """Capex cut to what the GPU supply allows (every region alike); applied after :meth:`set_capex`.

        With ``max_capacity_addition`` = g > 0, capacity may grow by at most g a quarter, net of
        what retires: an order, which comes into service ``build_lag`` = L quarters later, may
        bring the capacity in service then up to (1 + g)^max(L, 1) times today's, counting what
        is already built or on order (capacity only falls after an arrival, as vintages retire,
        until the next one). Replacing retired capacity is allowed up to that bound. 0 = no limit.
        """
        limit = self.max_capacity_addition
        if limit <= 0 or not market.capacity_limited or capex.sum() <= 0:
            return capex
        lag = market.capacity.build_lag
        now = provider.capacity_in_service(market.quarter).sum()
        planned = provider.capacity_in_service(market.quarter + lag).sum()
        allowed_units = max(now * (1.0 + limit) ** max(lag, 1) - planned, 0.0)
        allowed = allowed_units * provider.capex_per_unit_now(market)
        return capex * (allowed / capex.sum()) if capex.sum() > allowed else capex

    def set_ecosystem_spend(self, provider: Provider, market: CloudMarket) -> float:
        """Ecosystem spend this quarter (USD), booked as operating cost; raises ecosystem strength."""
        return self.ecosystem_spend

    def planned_growth(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        """Quarterly capacity growth this strategy builds for, per region (fraction per quarter).

        The demand trend as the utilisation rule reads it (:func:`capex_for_utilisation`, times
        :attr:`growth_multiplier`), at most the GPU supply's ``max_capacity_addition``. Sizes
        the orders under construction at the start (:meth:`Provider.install_starting_capacity`).
        """
        growth = demand_trend(provider, self.growth_multiplier)
        if self.max_capacity_addition > 0:
            growth = np.minimum(growth, self.max_capacity_addition)
        return growth

    @property
    def growth_multiplier(self) -> float:
        """Share of the demand trend the utilisation rule builds for (1: all of it)."""
        return 1.0


#: Fastest demand growth a provider builds capacity for, per quarter (+20% a quarter is +107% a year).
MAX_PLANNED_GROWTH = 0.20


def demand_trend(provider: Provider, growth_multiplier: float = 1.0) -> np.ndarray:
    """Quarterly demand growth a provider builds for, per region: its own trailing trend, kept within
    0 and :data:`MAX_PLANNED_GROWTH`, times ``growth_multiplier``."""
    return np.clip(provider.demand_growth_per_quarter, 0.0, MAX_PLANNED_GROWTH) * growth_multiplier


def capex_for_utilisation(
    provider: Provider, market: CloudMarket, target_utilisation: float, growth_multiplier: float = 1.0
) -> np.ndarray:
    """Capex per region (USD) so that capacity ``build_lag`` quarters ahead serves the demand trend.

    Demand ahead = this quarter's compute demand x (1 + trailing quarterly growth)^lag, the
    growth being the provider's own over the last four quarters (kept within 0 and
    ``MAX_PLANNED_GROWTH``: a region with a handful of customers can see its demand jump many
    times over, which is no trend to build for), scaled by ``growth_multiplier``. Capex buys the
    gap between that / target and the capacity already built or under construction that will
    still be in service then.
    """
    lag = market.capacity.build_lag
    ahead = market.quarter + lag + 1
    demand = provider.compute_demand
    needed = demand * (1.0 + demand_trend(provider, growth_multiplier)) ** (lag + 1) / target_utilisation
    planned = provider.capacity_in_service(ahead)
    gap = np.maximum(needed - planned, 0.0)
    return gap * provider.capex_per_unit_now(market)


@dataclass
class FixedPrice(Strategy):
    """Keep the starting prices (or ``multiplier`` times them) for ever."""

    kind: ClassVar[str] = "fixed_price"
    multiplier: float = 1.0

    def validate(self) -> None:
        super().validate()
        self.require("multiplier", 0.0, None)

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        return provider.initial_prices * self.multiplier


@dataclass
class CostPlus(Strategy):
    """Price = current unit cost x (1 + markup); without ``markup``, the starting markup of each market.

    Prices then follow unit cost down as learning and hardware make serving cheaper.
    """

    kind: ClassVar[str] = "cost_plus"
    markup: float | None = None
    match: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.markup is not None:
            self.require("markup", 0.0, 100.0)
        self.require("match", 0.0, 1.0)

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        prices = cost_following_prices(provider) if self.markup is None else provider.unit_cost * (1.0 + self.markup)
        return match_rivals(self, provider, market, prices, self.match)


def cost_following_prices(provider: Provider) -> np.ndarray:
    """Current unit cost times each market's starting price / cost ratio (starting price where cost is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(provider.base_cost > 0, provider.initial_prices / provider.base_cost, 1.0)
    return np.where(provider.base_cost > 0, provider.unit_cost * ratio, provider.initial_prices)


def rival_price_index(provider: Provider, market: CloudMarket) -> np.ndarray | None:
    """The rivals' average selling price in each (product, region) last quarter, USD per unit.

    Rivals' revenue / rivals' served volume there (their published sales); where rivals sold
    nothing, the plain mean price of the rivals present (:meth:`CloudMarket.rival_prices`).
    None in the first quarter, before anyone has sold.
    """
    if not provider.history:
        return None
    prices = market.prices
    volume = np.array([p.history[-1].served_volume for p in market.providers_list])  # (P, K, R)
    volume[provider.index] = 0.0
    total = volume.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        index = (volume * prices).sum(axis=0) / total
    return np.where(total > 0, index, market.rival_prices(provider))


#: Rivals whose cuts a matching strategy follows: at least this share of the market's volume last quarter.
MAIN_RIVAL_SHARE = 0.10


def match_rivals(strategy: Strategy, provider: Provider, market: CloudMarket, prices: np.ndarray, match: float):
    """``prices`` lowered to follow the deepest cut of a main rival in each market (``match`` = 1: in full).

    A main rival has at least ``MAIN_RIVAL_SHARE`` of the market's volume last quarter. Its cut is
    how far its price fell since the reference quarter (the first quarter with sales) beyond this
    provider's own unit cost over the same quarters: (p_j now / p_j then) / (own cost now / own
    cost then), taken one quarter back, when the rival's price was charged. The deepest cut c < 1
    lowers ``prices`` by c^match (0 = ignore rivals); a rival that raises its price again lifts
    the cut back toward 1. Never below unit cost. The reference prices and costs are remembered
    on the strategy object.
    """
    last_cost = getattr(strategy, "_match_last_cost", None)
    strategy._match_last_cost = provider.unit_cost.copy()  # the cost in effect this quarter
    if match == 0 or not provider.history or last_cost is None:
        return prices
    rival_prices = market.prices  # charged last quarter, at last quarter's cost (last_cost)
    if getattr(strategy, "_match_reference", None) is None:
        strategy._match_reference = (rival_prices.copy(), last_cost)
        return prices
    reference_prices, reference_cost = strategy._match_reference
    volume = np.array([p.history[-1].served_volume for p in market.providers_list])  # (P, K, R)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = volume / volume.sum(axis=0, keepdims=True)
        own_cost = np.where(reference_cost > 0, last_cost / reference_cost, 1.0)
        cut = np.where(reference_prices > 0, rival_prices / reference_prices, 1.0) / own_cost[None]
    main = share >= MAIN_RIVAL_SHARE
    main[provider.index] = False
    deepest = np.where(main, cut, np.inf).min(axis=0)
    factor = np.minimum(np.where(np.isfinite(deepest), deepest, 1.0), 1.0) ** match
    return np.maximum(prices * factor, provider.unit_cost)


def per_market(value: Any, name: str, market: CloudMarket) -> np.ndarray:
    """A (products, regions) array from a number, or a table per product of numbers or tables per region."""
    products, regions = market.product_names, market.region_names
    out = np.empty((len(products), len(regions)))
    for k, product in enumerate(products):
        entry = value.get(product) if isinstance(value, dict) else value
        if entry is None:
            raise ScenarioError(f"parameter '{name}': no value for product '{product}'")
        for r, region in enumerate(regions):
            x = entry.get(region) if isinstance(entry, dict) else entry
            if x is None:
                raise ScenarioError(f"parameter '{name}': no value for product '{product}' in region '{region}'")
            out[k, r] = x
    return out


def check_market_table(value: Any, name: str, scenario: Scenario) -> None:
    """A number-or-table parameter names only the scenario's products and regions, and covers them all."""
    if not isinstance(value, dict):
        return
    products, regions = scenario.product_names, scenario.region_names
    for product, entry in value.items():
        if product not in products:
            raise ScenarioError(f"parameter '{name}.{product}': '{product}' is not a product of this scenario")
        if isinstance(entry, dict):
            for region in entry:
                if region not in regions:
                    raise ScenarioError(
                        f"parameter '{name}.{product}.{region}': '{region}' is not a region of this scenario"
                    )
            missing = [r for r in regions if r not in entry]
            if missing:
                raise ScenarioError(f"parameter '{name}.{product}': no value for region '{missing[0]}'")
    missing = [p for p in products if p not in value]
    if missing:
        raise ScenarioError(f"parameter '{name}': no value for product '{missing[0]}'")


def _check_per_market(value: Any, name: str, lo: float, hi: float | None) -> None:
    """Validate a number-or-table parameter: every number in [lo, hi]."""

    def numbers(v: Any, path: str) -> list[tuple[str, Any]]:
        if isinstance(v, dict):
            return [item for key, x in v.items() for item in numbers(x, f"{path}.{key}")]
        return [(path, v)]

    for path, x in numbers(value, name):
        if isinstance(x, bool) or not isinstance(x, int | float) or not np.isfinite(x):
            raise ScenarioError(f"parameter '{path}' must be a finite number, got {x!r}")
        if x < lo or (hi is not None and x > hi):
            span = f"between {lo:g} and {hi:g}" if hi is not None else f">= {lo:g}"
            raise ScenarioError(f"parameter '{path}' must be {span}, got {x!r}")


@dataclass
class ShareFirst(Strategy):
    """Alibaba's playbook: buy share with price, capacity and an open-source ecosystem.

    Prices: ``price_ratio`` x the rivals' average selling price in each market
    (``price_basis = "rivals"``, see :func:`rival_price_index`), or ``price_ratio`` x unit cost
    (``price_basis = "cost"``); never below ``price_floor`` x unit cost. ``price_ratio`` is a
    number, or a table per product (a number or a table per region); without it, each market's
    starting ratio (the starting price against rivals, or the starting markup) times
    (1 - ``price_cut``). In the first quarter, before rivals' sales are known, prices stay.

    Capex: the committed plan, ``capex_plan`` RMB spread evenly over the first ``plan_quarters``
    quarters (converted at the scenario's ``rmb_per_usd``, split across regions by compute
    demand), whatever demand does: a plan too small rations customers, one too big leaves
    capacity idle. After the plan (or with ``plan_quarters = 0``), the utilisation rule
    (``target_utilisation``). Default: RMB 380bn over 12 quarters (facts.md: Alibaba's
    three-year plan announced Feb 2025).

    Ecosystem: ``ecosystem_spend`` USD a quarter on open-source models and developer tools,
    booked as operating cost; it raises the provider's ecosystem strength and part of the gain
    leaks to rivals (``ecosystem`` table of the scenario).

    Harvest (optional): from quarter ``harvest_quarter`` on (0 = never), prices steer the
    operating margin toward ``harvest_margin`` as :class:`MarginDiscipline` does (band 6 points,
    speed 0.5, at most 10% a quarter), starting from the share-first prices: buy share first,
    then monetise it like AWS. Capex and ecosystem spend carry on as before.
    """

    kind: ClassVar[str] = "share_first"
    price_basis: str = "rivals"
    price_ratio: Any = None
    price_cut: float = 0.10
    price_floor: float = 1.0
    capex_plan: float = 380e9
    plan_quarters: int = 12
    ecosystem_spend: float = 0.3e9
    harvest_quarter: int = 0
    harvest_margin: float = 0.30

    def validate(self) -> None:
        super().validate()
        self.require_choice("price_basis", ("rivals", "cost"))
        self.require_int("harvest_quarter", 0, 10_000)
        self.require("harvest_margin", -1.0, 0.95)
        if self.price_ratio is not None:
            _check_per_market(self.price_ratio, "price_ratio", 0.0, 100.0)
        self.require("price_cut", 0.0, 1.0)
        self.require("price_floor", 0.0, 100.0)
        self.require("capex_plan", 0.0, None)
        self.require_int("plan_quarters", 0, 400)

    def check_scenario(self, scenario: Scenario) -> None:
        if self.price_ratio is not None:
            check_market_table(self.price_ratio, "price_ratio", scenario)

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        if self.harvest_quarter and market.quarter >= self.harvest_quarter:
            if getattr(self, "_harvest", None) is None:
                self._harvest = MarginController(provider, self.harvest_margin, 0.06)
            return self._harvest.prices(provider, 0.5, 0.10)
        if self.price_basis == "rivals":
            basis = rival_price_index(provider, market)
            if basis is None:
                return provider.prices.copy()
        else:
            basis = provider.unit_cost
        if self.price_ratio is None:
            if getattr(self, "_start_ratio", None) is None:
                start = provider.base_cost if self.price_basis == "cost" else basis
                with np.errstate(divide="ignore", invalid="ignore"):
                    self._start_ratio = np.where(start > 0, provider.initial_prices / start, 1.0)
            ratio = self._start_ratio * (1.0 - self.price_cut)
        else:
            ratio = per_market(self.price_ratio, "price_ratio", market)
        prices = np.maximum(ratio * basis, self.price_floor * provider.unit_cost)
        return np.where(provider.presence[None, :] > 0, prices, provider.prices)

    def plan_capex_per_quarter(self, market: CloudMarket) -> float:
        """USD of the committed plan per quarter while it runs."""
        if self.plan_quarters == 0:
            return 0.0
        return self.capex_plan / market.config.rmb_per_usd / self.plan_quarters

    def set_capex(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        if self.capex_rule == "none" or not market.capacity_limited:
            return np.zeros(len(market.region_names))
        needed = capex_for_utilisation(provider, market, self.target_utilisation)
        if market.quarter > self.plan_quarters:
            return needed
        demand = provider.compute_demand
        weights = demand / demand.sum() if demand.sum() > 0 else provider.presence / max(provider.presence.sum(), 1e-12)
        return self.plan_capex_per_quarter(market) * weights


class MarginController:
    """Prices that follow unit cost and steer last quarter's operating margin into a band.

    Each call: prices x (unit cost now / unit cost at the last call) x step, with
    step = ((1 - m) / (1 - m_band))^speed within 1 -/+ ``max_step``, m last quarter's operating
    margin and m_band the nearest edge of [target, target + band] (1 inside the band). Never
    below unit cost. Starts from the provider's current prices.
    """

    def __init__(self, provider: Provider, target: float, band: float):
        self.target, self.band = target, band
        self.base, self.cost = provider.prices.copy(), provider.unit_cost.copy()

    def prices(self, provider: Provider, speed: float, max_step: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            cost_change = np.where(self.cost > 0, provider.unit_cost / self.cost, 1.0)
        step = 1.0
        revenue = float(provider.history[-1].revenue.sum()) if provider.history else 0.0
        if revenue > 0:
            margin = float(provider.history[-1].operating_income.sum()) / revenue
            edge = min(max(margin, self.target), min(self.target + self.band, 0.99))
            step = min(max(((1.0 - margin) / (1.0 - edge)) ** speed, 1.0 - max_step), 1.0 + max_step)
        self.base = np.maximum(self.base * cost_change * step, provider.unit_cost)
        self.cost = provider.unit_cost.copy()
        return self.base


@dataclass
class MarginDiscipline(Strategy):
    """AWS's playbook: hold the operating margin in [target_margin, target_margin + margin_band].

    Prices follow unit cost (each market keeps its markup) and, when last quarter's operating
    margin m left the band, all move by ((1 - m) / (1 - m_band))^adjust_speed, m_band being the
    nearest edge of the band, at most ``max_step`` a quarter either way (so a margin below target
    raises prices, a margin above the band cuts them). ``match`` follows rivals' price cuts
    (:func:`match_rivals`; 0 = ignore them). Never below unit cost.

    Capex: the utilisation rule at ``target_utilisation``, building for the trend of demand
    growth times ``growth_response``.
    """

    kind: ClassVar[str] = "margin_discipline"
    target_margin: float = 0.30
    margin_band: float = 0.06
    adjust_speed: float = 0.5
    max_step: float = 0.10
    match: float = 0.0
    growth_response: float = 1.0

    @property
    def growth_multiplier(self) -> float:
        return self.growth_response

    def validate(self) -> None:
        super().validate()
        self.require("target_margin", -1.0, 0.95)
        self.require("margin_band", 0.0, 1.0)
        self.require("adjust_speed", 0.0, 5.0)
        self.require("max_step", 0.0, 0.9)
        self.require("match", 0.0, 1.0)
        self.require("growth_response", 0.0, 10.0)

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        if getattr(self, "_controller", None) is None:
            self._controller = MarginController(provider, self.target_margin, self.margin_band)
        base = self._controller.prices(provider, self.adjust_speed, self.max_step)
        return match_rivals(self, provider, market, base, self.match)


@dataclass
class PlatformEmbedded(Strategy):
    """Tencent's playbook: AI sold through a consumer platform, lighter capex, GPU-limited capacity.

    Prices follow unit cost (each market keeps its starting markup) and match rivals' cuts by
    ``match`` (:func:`match_rivals`), never below unit cost. Short of capacity, it prices the
    scarcity: in a region where it served only a share s < 1 of demand last quarter, a premium
    on all its prices there grows by s^-scarcity_response a quarter (at most ``max_premium``);
    once it serves everyone, the premium falls back by ``premium_decay`` a quarter. Capex: the
    utilisation rule run hot (``target_utilisation`` 0.9) and building for only
    ``growth_response`` of the demand trend, and at most ``max_capacity_addition`` (5%) of its
    capacity in service ordered a quarter (GPU supply; :meth:`Strategy.supply_limit`). The
    playbook's edge is the provider's: its captive segment (``captive_share``, ``captive_bonus``:
    enterprises tied to its consumer platform).
    """

    kind: ClassVar[str] = "platform_embedded"
    target_utilisation: float = 0.9
    max_capacity_addition: float = 0.05
    match: float = 1.0
    growth_response: float = 0.5
    scarcity_response: float = 0.5
    premium_decay: float = 0.05
    max_premium: float = 2.0

    @property
    def growth_multiplier(self) -> float:
        return self.growth_response

    def validate(self) -> None:
        super().validate()
        self.require("match", 0.0, 1.0)
        self.require("growth_response", 0.0, 10.0)
        self.require("scarcity_response", 0.0, 5.0)
        self.require("premium_decay", 0.0, 1.0)
        self.require("max_premium", 1.0, 100.0)

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        premium = getattr(self, "_premium", None)
        premium = np.ones(len(market.region_names)) if premium is None else premium
        if provider.history:
            served = np.clip(provider.history[-1].service_level, 1e-3, 1.0)
            short = served < 0.999
            premium = np.where(short, premium * served**-self.scarcity_response, premium * (1 - self.premium_decay))
            premium = np.clip(premium, 1.0, self.max_premium)
        self._premium = premium
        prices = match_rivals(self, provider, market, cost_following_prices(provider), self.match)
        return prices * premium[None, :]


@dataclass
class PriceCut(Strategy):
    """Cut one product's price by ``cut`` in quarter ``at_quarter`` and hold it, as in the May 2024 price war.

    Before and after the cut, prices follow unit cost (each market keeps its starting markup);
    from ``at_quarter`` on, ``product`` in ``region`` (a region name or ``"all"``) is priced at
    (1 - cut) x that. ``cut = 0`` is the same playbook without the cut (the counterfactual).
    Capex by the utilisation rule.
    """

    kind: ClassVar[str] = "price_cut"
    product: str = "ai"
    region: str = "china"
    cut: float = 0.97
    at_quarter: int = 2

    def validate(self) -> None:
        super().validate()
        self.require("cut", 0.0, 1.0)
        self.require_int("at_quarter", 1, 10_000)
        if not isinstance(self.product, str) or not isinstance(self.region, str):
            raise ScenarioError("parameters 'product' and 'region' must be names")

    def check_scenario(self, scenario: Scenario) -> None:
        if self.product not in scenario.product_names:
            raise ScenarioError(f"parameter 'product': '{self.product}' is not a product of this scenario")
        if self.region != "all" and self.region not in scenario.region_names:
            raise ScenarioError(f"parameter 'region': '{self.region}' is not a region of this scenario (or 'all')")

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        prices = cost_following_prices(provider)
        if market.quarter >= self.at_quarter:
            k = market.product_names.index(self.product)
            regions = slice(None) if self.region == "all" else market.region_names.index(self.region)
            prices[k, regions] *= 1.0 - self.cut
        return prices


@dataclass
class QLearning(Strategy):
    """Tabular Q-learning over a price grid, as in Calvano, Calzolari, Denicolo and Pastorello (AER 2020).

    One learner (:class:`cloudwar.strategies.learning.TabularQLearner`) per (product, region) where the
    provider is present. Actions: ``n_prices`` equally spaced prices from ``price_low`` to
    ``price_high``; without them, from p_N - xi (p_M - p_N) to p_M + xi (p_M - p_N), with p_N and
    p_M the Nash and joint-profit prices of the market's logit game (:mod:`cloudwar.theory`, from
    the providers' qualities, availability and current unit costs: exact in theory mode, with
    identical enterprises). State: last quarter's prices of all providers in the market, each
    as the nearest grid index (memory of one quarter), ``n_prices ^ providers`` states. Reward:
    the provider's profit in that market last quarter, (price - unit cost) x served volume, USD.
    Q starts at the discounted profit against rivals playing uniformly at random, from the
    market's expected demand (:meth:`CloudMarket.demand_curve`). Exploration epsilon =
    exp(-beta t) with t the quarters learned; learning rate ``alpha``; discount factor
    ``discount`` per quarter. Random draws come from the model's generator, so a seed
    reproduces a run.
    """

    kind: ClassVar[str] = "q_learning"
    capex_rule: str = "none"
    n_prices: int = 15
    xi: float = 0.1
    alpha: float = 0.15
    discount: float = 0.95
    beta: float = 4e-6
    price_low: float | None = None
    price_high: float | None = None
    max_states: ClassVar[int] = 100_000

    def validate(self) -> None:
        super().validate()
        self.require_int("n_prices", 2, 100)
        self.require("xi", 0.0, 10.0)
        self.require("alpha", 0.0, 1.0)
        if self.alpha == 0.0:
            raise ScenarioError("parameter 'alpha' must be > 0, got 0")
        self.require("discount", 0.0, 0.9999)
        self.require("beta", 0.0, None)
        if (self.price_low is None) != (self.price_high is None):
            raise ScenarioError("parameters 'price_low' and 'price_high' go together: give both or neither")
        if self.price_low is not None:
            self.require("price_low", 0.0, None)
            self.require("price_high", 0.0, None)
            if self.price_high <= self.price_low:
                raise ScenarioError(f"parameter 'price_high' must be > price_low, got {self.price_high!r}")

    # --- construction, at the first decision -----------------------------------------------
    def price_grid(self, provider: Provider, market: CloudMarket, k: int, r: int) -> np.ndarray:
        """The action prices of market (k, r), USD per unit."""
        if self.price_low is not None:
            return np.linspace(self.price_low, self.price_high, self.n_prices)
        from cloudwar import theory
        from cloudwar.strategies.learning import price_grid

        product = market.products[k]
        ref = product.reference_price
        with np.errstate(divide="ignore"):
            quality = market.quality[:, k, r] + np.log(np.array([p.presence[r] for p in market.providers_list]))
        cost = np.array([p.unit_cost[k, r] for p in market.providers_list]) / ref
        present = np.isfinite(quality)
        args = (quality[present], cost[present], product.outside_quality, product.logit_scale)
        i = int(np.flatnonzero(present).tolist().index(provider.index))
        nash = theory.nash_prices(*args)[i] * ref
        monopoly = theory.joint_profit_prices(*args)[i] * ref
        return price_grid(nash, monopoly, self.n_prices, self.xi)

    def _learner(self, provider: Provider, market: CloudMarket, k: int, r: int) -> dict[str, Any]:
        from cloudwar.strategies.learning import TabularQLearner, initial_q_values, state_actions

        n_providers, m = len(market.providers_list), self.n_prices
        if m**n_providers > self.max_states:
            raise ScenarioError(
                f"q_learning: {m}^{n_providers} states is too many (at most {self.max_states:,}); "
                "use fewer providers or fewer prices"
            )
        grid = self.price_grid(provider, market, k, r)
        curve = market.demand_curve(k, r)
        cost = float(provider.unit_cost[k, r])
        # Profit of every joint action (all providers on this grid), state-index order.
        joint = state_actions(np.arange(m**n_providers), m, n_providers)
        profit = np.array([(grid[a[provider.index]] - cost) * curve.quantities(grid[a])[provider.index] for a in joint])
        profit_table = np.zeros((profit.size, n_providers))
        profit_table[:, provider.index] = profit
        initial_q = initial_q_values(profit_table, m, self.discount)[provider.index]
        learner = TabularQLearner(
            m**n_providers, m, alpha=self.alpha, delta=self.discount, beta=self.beta, initial_q=initial_q
        )
        return {"grid": grid, "learner": learner, "last": None}

    def state(self, grid: np.ndarray, prices: np.ndarray) -> int:
        """State index of a price vector: each price as its nearest grid index, first provider most significant."""
        from cloudwar.strategies.learning import state_index

        actions = np.abs(prices[:, None] - grid[None, :]).argmin(axis=1)
        return int(state_index(actions, self.n_prices))

    # --- decisions --------------------------------------------------------------------------
    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        if getattr(self, "_markets", None) is None:
            self._markets = {
                (k, r): self._learner(provider, market, k, r)
                for k in range(len(market.product_names))
                for r in range(len(market.region_names))
                if provider.presence[r] > 0
            }
        new = provider.prices.copy()
        for (k, r), m in self._markets.items():
            state = self.state(m["grid"], market.prices[:, k, r])
            if m["last"] is not None:
                last_state, action = m["last"]
                books = provider.history[-1]
                reward = float(books.revenue[k, r] - books.variable_cost[k, r])
                m["learner"].learn(last_state, action, reward, state)
            action = m["learner"].act(state, market.rng)
            m["last"] = (state, action)
            new[k, r] = m["grid"][action]
        return new

    def learners(self) -> dict[tuple[int, int], Any]:
        """The Q-learners by (product index, region index) (after the first decision)."""
        return {key: m["learner"] for key, m in (getattr(self, "_markets", None) or {}).items()}

    def grids(self) -> dict[tuple[int, int], np.ndarray]:
        """The price grids by (product index, region index) (after the first decision)."""
        return {key: m["grid"] for key, m in (getattr(self, "_markets", None) or {}).items()}


def _argmax_price(profit, low: float, high: float) -> float:
    """Maximise a one-dimensional profit function on [low, high]: grid scan, then Brent."""
    grid = np.linspace(low, high, 65)
    values = np.array([profit(p) for p in grid])
    best = int(np.argmax(values))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    result = optimize.minimize_scalar(
        lambda p: -profit(p), bounds=(a, b), method="bounded", options={"xatol": 1e-11, "maxiter": 500}
    )
    return float(result.x) if -result.fun >= values[best] else float(grid[best])


def _price_ceiling(cost: float, market: CloudMarket, k: int) -> float:
    """A price above which no enterprise of average sensitivity buys (search bound)."""
    product = market.products[k]
    sensitivity = max(market.mean_price_sensitivity, 1e-6)
    return cost + 40.0 * product.logit_scale * product.reference_price / sensitivity + product.reference_price


@dataclass
class BestResponse(Strategy):
    """Myopic best response: the profit-maximising price given rivals' current prices.

    For each (product, region) it maximises (price - unit cost) x expected quantity, the
    quantity from the market's demand model (:meth:`CloudMarket.demand_curve`). ``damping``
    moves only part of the way (0 = all the way) to smooth oscillations.
    """

    kind: ClassVar[str] = "best_response"
    damping: float = 0.0

    def validate(self) -> None:
        super().validate()
        self.require("damping", 0.0, 0.99)

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        j = provider.index
        new = provider.prices.copy()
        for k in range(len(market.product_names)):
            for r in range(len(market.region_names)):
                if provider.presence[r] <= 0:
                    continue
                curve = market.demand_curve(k, r)
                prices = market.prices[:, k, r].copy()
                cost = float(provider.unit_cost[k, r])

                def profit(p: float, prices: np.ndarray = prices, curve: Any = curve, cost: float = cost) -> float:
                    prices[j] = p
                    return (p - cost) * curve.quantities(prices)[j]

                best = _argmax_price(profit, cost, _price_ceiling(cost, market, k))
                new[k, r] = self.damping * provider.prices[k, r] + (1.0 - self.damping) * best
        return new


@dataclass
class JointProfit(Strategy):
    """Set the prices that maximise the joint profit of all providers playing ``joint_profit``.

    Every member solves the same problem (given non-members' current prices) and takes its
    own price from the joint optimum: the collusive benchmark.
    """

    kind: ClassVar[str] = "joint_profit"

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        members = [p.index for p in market.providers_list if isinstance(p.strategy, JointProfit)]
        new = provider.prices.copy()
        for k in range(len(market.product_names)):
            for r in range(len(market.region_names)):
                present = [m for m in members if market.providers_list[m].presence[r] > 0]
                if provider.index not in present:
                    continue
                curve = market.demand_curve(k, r)
                base = market.prices[:, k, r].copy()
                costs = np.array([market.providers_list[m].unit_cost[k, r] for m in present])

                def joint(
                    x: np.ndarray,
                    base: np.ndarray = base,
                    curve: Any = curve,
                    costs: np.ndarray = costs,
                    present: list[int] = present,
                ) -> float:
                    prices = base.copy()
                    prices[present] = x
                    q = curve.quantities(prices)[present]
                    return -float(((x - costs) * q).sum())

                high = np.array([_price_ceiling(c, market, k) for c in costs])
                start = np.clip(base[present], costs, high)
                result = optimize.minimize(
                    joint,
                    start,
                    method="L-BFGS-B",
                    bounds=list(zip(costs, high, strict=True)),
                    options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 2000},
                )
                result = optimize.minimize(
                    joint,
                    result.x,
                    method="Nelder-Mead",
                    bounds=list(zip(costs, high, strict=True)),  # alone in a market, profit rises without end
                    options={"xatol": 1e-10, "fatol": 1e-15, "maxiter": 4000},
                )
                new[k, r] = float(result.x[present.index(provider.index)])
        return new


def strategy_class(kind: str) -> type[Strategy]:
    """Look up a registered strategy name, or import ``package.module:ClassName``."""
    if ":" in kind:
        module_name, _, class_name = kind.partition(":")
        if not module_name or module_name.startswith(".") or not class_name:
            raise ScenarioError(f"strategy '{kind}': expected 'package.module:ClassName' (an absolute module name)")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            raise ScenarioError(
                f"cannot import strategy module '{module_name}': {err} (is its folder on PYTHONPATH?)"
            ) from None
        except Exception as err:  # the user's module itself fails: report it, not a traceback
            raise ScenarioError(
                f"cannot import strategy module '{module_name}': {type(err).__name__}: {one_line(err)}"
            ) from err
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise ScenarioError(f"'{kind}' is not a cloudwar.strategies.Strategy subclass")
        return cls
    if kind not in REGISTRY:
        raise ScenarioError(f"unknown strategy '{kind}' (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[kind]


def make_strategy(spec: StrategySpec) -> Strategy:
    """A fresh, validated strategy object for a provider.

    A user's class that raises anything but ScenarioError while it is built or validated is
    reported as a ScenarioError naming the class (the original exception is its cause).
    """
    cls = strategy_class(spec.kind)
    allowed = {f.name for f in dataclasses.fields(cls) if f.init} if dataclasses.is_dataclass(cls) else set()
    unknown = sorted(set(spec.params) - allowed)
    if unknown:
        raise ScenarioError(
            f"unknown parameter '{unknown[0]}' for strategy '{spec.kind}' (allowed: {', '.join(sorted(allowed))})"
        )
    try:
        return cls(**spec.params)
    except ScenarioError:
        raise
    except Exception as err:
        raise ScenarioError(
            f"strategy '{spec.kind}' could not be built: {type(err).__name__}: {one_line(err)}"
        ) from err

"""The strategy interface: parameters declared once, the registry, and the rules playbooks share.

A strategy decides, once a quarter, a provider's price for every (product, region) and its
capex for every region. Like a scikit-learn estimator, a strategy is a small class whose
parameters are dataclass fields, each declared with :func:`param` (default, unit, meaning and
the values it accepts, as scikit-learn's ``_parameter_constraints``), and checked once, when
the strategy is built, by :meth:`Strategy.check_parameters`::

    @dataclass
    class HalfOfRivals(Strategy):
        kind = "half_of_rivals"          # name used in scenario files (optional)
        fraction: float = param(0.5, unit="multiple of rivals' price", lo=0.0, hi=1.0,
                                doc="price as a share of the rivals' mean price")

        def set_prices(self, provider, market):
            rivals = market.rival_prices(provider)        # (products, regions)
            return self.fraction * rivals

A scenario names it by ``kind`` or as ``"package.module:HalfOfRivals"``. Checks that involve
several parameters go in :meth:`Strategy.validate`, checks against the scenario's products and
regions in :meth:`Strategy.check_scenario`.

What a strategy may read (the *strategy API*): ``provider.prices``, ``provider.unit_cost``,
``provider.index``, ``provider.presence``, ``provider.gpu_supply``, ``provider.capacity_in_service(quarter)``,
``provider.history`` (its own ``Books``, and the rivals' ``served_volume``, which market
research publishes) and the ``market`` methods ``quarter``, ``prices``, ``rival_prices``,
``demand_curve``, ``product_names``, ``region_names``, ``products`` (each product's settings,
such as ``contract_quarters``), ``capacity``, ``hardware_factor``, ``rng`` (the model's
generator: the only source of randomness) and ``config``. All prices are in USD per
unit of the product, capex and ecosystem spend in USD per quarter.

A strategy decides three things each quarter, all from the same snapshot of last quarter:
:meth:`Strategy.set_prices` (then the shared scarcity rule, :meth:`Strategy.price_scarcity`: a
provider that rationed its customers in a region last quarter adds a premium there and does not
cut), :meth:`Strategy.set_capex` (then cut to the provider's GPU supply, ``provider.gpu_supply``,
by :meth:`Strategy.supply_limit`) and :meth:`Strategy.set_ecosystem_spend`. State a strategy
keeps between quarters (a reference price, a Q-table, the scarcity premium) is *learned state*:
it is created in :meth:`Strategy.start`, which the model calls once before the strategy's first
decision, and its names end in an underscore (scikit-learn's convention for fitted attributes),
so a strategy fresh from its parameters has none.

The shipped strategies: :mod:`cloudwar.strategies.playbooks` (``fixed_price``, ``cost_plus``
and the playbooks of the AI cloud market), :mod:`cloudwar.strategies.optimising`
(``best_response``, ``joint_profit``) and :mod:`cloudwar.strategies.learning` (``q_learning``).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np

from cloudwar import quarters
from cloudwar.errors import ScenarioError, one_line
from cloudwar.scenario import StrategySpec

if TYPE_CHECKING:
    from cloudwar.model.market import CloudMarket
    from cloudwar.model.providers import Provider
    from cloudwar.scenario import Scenario

REGISTRY: dict[str, type[Strategy]] = {}

#: Key of a strategy field's metadata that holds its :class:`Param` declaration.
PARAM = "cloudwar_param"


# --------------------------------------------------------------------------------------------
# Parameter declarations
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """What a strategy parameter means and which values it accepts (see :func:`param`)."""

    unit: str
    doc: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] | None = None
    integer: bool = False
    text: bool = False
    per_market: bool = False
    optional: bool = False
    quarter: bool = False

    def check(self, name: str, value: Any) -> None:
        """Raise a one-line ScenarioError naming parameter ``name`` unless ``value`` is accepted."""
        if value is None and self.optional:
            return
        if self.quarter and isinstance(value, str):
            if not quarters.is_label(value):
                raise ScenarioError(
                    f"parameter '{name}' must be a step (whole number) or a calendar quarter like 2027Q1, got {value!r}"
                )
        elif self.choices is not None:
            if not isinstance(value, str) or value not in self.choices:
                raise ScenarioError(f"parameter '{name}' must be one of {', '.join(self.choices)}, got {value!r}")
        elif self.text:
            if not isinstance(value, str):
                raise ScenarioError(f"parameter '{name}' must be text ({self.unit}), got {value!r}")
        elif self.per_market and isinstance(value, dict):
            for path, number in _table_leaves(value, name):
                self._check_number(path, number)
        else:
            self._check_number(name, value)

    def _check_number(self, name: str, value: Any) -> None:
        what = "a whole number" if self.integer else "a finite number"
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ScenarioError(f"parameter '{name}' must be {what}, got {value!r}")
        if self.integer and not isinstance(value, int):
            raise ScenarioError(f"parameter '{name}' must be {what}, got {value!r}")
        lo, hi = self.lo, self.hi
        below = lo is not None and (value < lo or (self.lo_open and value == lo))
        if below or (hi is not None and value > hi):
            unit = f" ({self.unit})" if self.unit else ""
            raise ScenarioError(f"parameter '{name}' must be {self.span}{unit}, got {value!r}")

    @property
    def span(self) -> str:
        """The accepted numbers in words: ``between 0 and 1``, ``> 0 and <= 1``, ``>= 0``, ``<= 5``."""
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            return f"> {lo:g} and <= {hi:g}" if self.lo_open else f"between {lo:g} and {hi:g}"
        if lo is not None:
            return f"> {lo:g}" if self.lo_open else f">= {lo:g}"
        return f"<= {hi:g}" if hi is not None else "any number"

    @property
    def accepts(self) -> str:
        """The accepted values, short, for ``cloudwar describe``: ``[0, 1]``, ``(0, 1]``, ``rivals|cost``..."""
        if self.choices is not None:
            return "|".join(self.choices)
        if self.text:
            return "text"
        lo = "" if self.lo is None else f"{self.lo:g}"
        hi = "" if self.hi is None else f"{self.hi:g}"
        if self.lo is not None and self.hi is not None:
            text = f"{'(' if self.lo_open else '['}{lo}, {hi}]"
        else:
            text = f"{'>' if self.lo_open else '>='} {lo}" if self.lo is not None else (f"<= {hi}" if hi else "any")
        kind = "whole number " if self.integer else ""
        return f"{kind}{text}" + (" per market" if self.per_market else "") + (" or YYYYQn" if self.quarter else "")


def param(
    default: Any,
    *,
    unit: str,
    doc: str,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    choices: tuple[str, ...] | None = None,
    integer: bool = False,
    per_market: bool = False,
    quarter: bool = False,
) -> Any:
    """A strategy parameter: a dataclass field with its default, unit, meaning and accepted values.

    Numbers must be finite and within ``lo`` and ``hi`` (inclusive; ``lo_open``: above ``lo``);
    ``integer`` asks for a whole number; ``choices`` for one of those names; a text default (and
    no choices) makes it a name; ``per_market`` also accepts a table per product of numbers or
    of tables per region (every number in bounds, the names checked against the scenario by
    :meth:`Strategy.check_scenario`); a default of None means "unset" (TOML has no null: the
    parameter is left out) and is accepted. ``quarter`` makes it a quarter of the run: a step
    (a whole number, within the bounds) or a calendar label such as ``"2027Q1"``, which
    :meth:`Strategy.check_scenario` (and :meth:`Strategy.start`) turn into the step it names
    counted from the scenario's ``start`` (a label before the start is refused), so the strategy
    always reads a whole number. ``unit`` and ``doc`` are what ``cloudwar describe``
    prints. A subclass that only changes the default writes a plain default
    (``target_utilisation: float = 0.9``) and keeps its base class's declaration.
    """
    spec = Param(
        unit=unit,
        doc=doc,
        lo=lo,
        hi=hi,
        lo_open=lo_open,
        choices=tuple(choices) if choices is not None else None,
        integer=integer,
        text=isinstance(default, str) and choices is None,
        per_market=per_market,
        optional=default is None,
        quarter=quarter,
    )
    return field(default=default, metadata={PARAM: spec})


def declared_parameters(cls: type) -> dict[str, Param]:
    """The declared parameters of a strategy class by name, in field order.

    A field a subclass redeclares with a plain default keeps the declaration of the nearest
    base class that declares it. Undeclared fields (a user's plain ``x: float = 1``) are left out.
    """
    if not dataclasses.is_dataclass(cls):
        return {}
    declared = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        for klass in cls.__mro__:
            own = vars(klass).get("__dataclass_fields__", {}).get(f.name)
            if own is not None and PARAM in own.metadata:
                declared[f.name] = own.metadata[PARAM]
                break
    return declared


def _table_leaves(value: Any, path: str) -> list[tuple[str, Any]]:
    """The numbers of a nested table with their dotted paths (``price_ratio.ai.china``)."""
    if isinstance(value, dict):
        return [leaf for key, entry in value.items() for leaf in _table_leaves(entry, f"{path}.{key}")]
    return [(path, value)]


# --------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------
@dataclass
class Strategy:
    """Base class: keeps prices where they are (then the scarcity rule); capex by the capex rule."""

    kind: ClassVar[str] = ""
    capex_rule: str = param(
        "utilisation",
        unit="name",
        choices=("utilisation", "fixed", "none"),
        doc="utilisation: build for the demand trend at target_utilisation; fixed: capex USD a quarter; none",
    )
    target_utilisation: float = param(
        0.8, unit="fraction of capacity", lo=0.05, hi=1.0, doc="utilisation the utilisation rule builds for"
    )
    capex: float = param(0.0, unit="USD per quarter", lo=0.0, doc="capex of the fixed rule")
    ecosystem_spend: float = param(
        0.0, unit="USD per quarter", lo=0.0, doc="spend on the ecosystem (open models, tools), an operating cost"
    )
    scarcity_response: float = param(
        0.5,
        unit="exponent",
        lo=0.0,
        hi=5.0,
        doc="where rationed, the scarcity premium grows by served share ^ -scarcity_response a quarter "
        "and prices do not fall (0 = no scarcity rule)",
    )
    premium_decay: float = param(
        0.05, unit="fraction per quarter", lo=0.0, hi=1.0, doc="how fast the premium falls once nobody is rationed"
    )
    max_premium: float = param(2.0, unit="multiple of price", lo=1.0, hi=100.0, doc="largest scarcity premium")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            REGISTRY[cls.kind] = cls

    def __post_init__(self) -> None:
        self.check_parameters()
        self.validate()

    # --- validation ----------------------------------------------------------------------
    def check_parameters(self) -> None:
        """Check every declared parameter (type, finiteness, bounds, choices); ScenarioError naming it.

        Called once, when the strategy is built, before :meth:`validate`.
        """
        for name, spec in declared_parameters(type(self)).items():
            spec.check(name, getattr(self, name))

    def validate(self) -> None:
        """Extension hook for checks :func:`param` cannot declare (between parameters); raise ScenarioError.

        Called once, when the strategy is built, after the declared parameters are checked. The
        default checks nothing.
        """

    def check_scenario(self, scenario: Scenario) -> None:
        """Checks that need the scenario (its products, regions, providers); raise ScenarioError.

        Called once, when the scenario is validated, after :meth:`validate`. The default checks
        that the tables of ``per_market`` parameters name the scenario's products and regions
        (:func:`check_market_table`); a strategy whose parameters name products or regions
        otherwise checks them here (and calls ``super().check_scenario(scenario)``).
        """
        self.resolve_quarters(scenario.start)
        for name, spec in declared_parameters(type(self)).items():
            if spec.per_market:
                check_market_table(getattr(self, name), name, scenario)

    def resolve_quarters(self, start: str) -> None:
        """Turn every ``quarter`` parameter given as a calendar label into its step from ``start``.

        A label before ``start``, or one whose step is outside the parameter's bounds, raises a
        one-line ScenarioError naming the parameter. Steps are left as they are.
        """
        for name, spec in declared_parameters(type(self)).items():
            value = getattr(self, name)
            if spec.quarter and isinstance(value, str):
                step = quarters.step(start, value, f"parameter '{name}'")
                try:
                    spec.check(name, step)
                except ScenarioError as err:
                    raise ScenarioError(f"{err} (the step of {value} from the start {start})") from None
                setattr(self, name, step)

    def require(self, name: str, lo: float | None, hi: float | None) -> None:
        """The old way (before :func:`param`): parameter ``name`` must be a finite number in [lo, hi].

        Kept for user strategies that call it from :meth:`validate`; declare with :func:`param` instead.
        """
        Param(unit="", doc="", lo=lo, hi=hi).check(name, getattr(self, name))

    def require_int(self, name: str, lo: int, hi: int) -> None:
        """The old way: like :meth:`require`, for a whole number (declare ``param(..., integer=True)``)."""
        Param(unit="", doc="", lo=lo, hi=hi, integer=True).check(name, getattr(self, name))

    def require_choice(self, name: str, choices: tuple[str, ...]) -> None:
        """The old way: the parameter must be one of ``choices`` (declare ``param(..., choices=...)``)."""
        Param(unit="", doc="", choices=tuple(choices)).check(name, getattr(self, name))

    # --- learned state -------------------------------------------------------------------
    def start(self, provider: Provider, market: CloudMarket) -> None:
        """Create the learned state (attributes ending in ``_``), once, before the first decision.

        The model calls it just before the strategy's first :meth:`set_prices`: in quarter 1,
        when the market holds the starting prices, costs and capacity, or, for a strategy a
        scenario event installs later, in the quarter of the event. The default turns calendar
        labels of ``quarter`` parameters into steps (:meth:`resolve_quarters`) and creates the
        state of the scarcity rule, ``scarcity_premium_`` (per region, 1 = none;
        :meth:`price_scarcity`); a subclass that overrides it calls ``super().start(provider, market)``.
        """
        self.resolve_quarters(market.config.start)
        self.scarcity_premium_ = np.ones(len(market.region_names))

    # --- decisions -----------------------------------------------------------------------
    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        """Prices for next quarter, shape (products, regions), USD per unit."""
        return provider.prices.copy()

    def price_scarcity(self, provider: Provider, market: CloudMarket, prices: np.ndarray) -> np.ndarray:
        """``prices`` (products, regions; USD per unit) after the scarcity rule; applied after :meth:`set_prices`.

        One rule for every strategy: a provider that could not serve its demand in a region last
        quarter (service level s below :data:`RATIONED`) does not keep undercutting there. A
        premium per region (``scarcity_premium_``, a multiple of the strategy's price, 1 = none)
        grows by s^-``scarcity_response`` a quarter while the provider rations, at most
        ``max_premium``, and falls back by ``premium_decay`` a quarter (toward 1) once it serves
        everyone there. Every price in the region is the strategy's price x the premium, and while
        rationed not below the price charged last quarter. ``scarcity_response = 0`` turns the
        rule off (prices as the strategy set them). Theory scenarios, with unlimited capacity,
        serve everyone: prices are left exactly as they are. The model calls it once a quarter
        (:meth:`Provider.decide`), so the premium is learned state.
        """
        if self.scarcity_response == 0 or not provider.history:
            return prices
        premium = getattr(self, "scarcity_premium_", None)  # a user's start() may skip super().start()
        if premium is None:
            premium = np.ones(len(market.region_names))
        # minimum(maximum()): np.clip's arithmetic (the bounds are not zeros) without its dispatch overhead
        served = np.minimum(np.maximum(provider.history[-1].service_level, SERVED_FLOOR), 1.0)
        short = served < RATIONED
        grown = premium * served**-self.scarcity_response
        premium = np.minimum(
            np.maximum(np.where(short, grown, premium * (1.0 - self.premium_decay)), 1.0), self.max_premium
        )
        self.scarcity_premium_ = premium
        if not short.any() and (premium == 1.0).all():
            return prices  # nothing scarce: the strategy's own prices, bit for bit
        scarce = prices * premium[None, :]
        return np.where(short[None, :], np.maximum(scarce, provider.prices), scarce)

    def set_capex(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        """Capex this quarter per region, USD."""
        n_regions = len(market.region_names)
        if self.capex_rule == "none" or not market.capacity_limited:
            return np.zeros(n_regions)
        if self.capex_rule == "fixed":
            return self.capex * demand_weights(provider)
        return capex_for_utilisation(provider, market, self.target_utilisation, self.growth_multiplier)

    def supply_limit(self, provider: Provider, market: CloudMarket, capex: np.ndarray) -> np.ndarray:
        """Capex cut to what the provider's GPU supply allows; applied after :meth:`set_capex`.

        The supply (``provider.gpu_supply``, the provider's ``gpu_supply`` as scenario events
        leave it) caps the net growth of capacity a quarter at g: an order, which comes into
        service ``build_lag`` = L quarters later, may bring the capacity in service then up to
        (1 + g)^max(L, 1) times today's, counting what is already built or on order (capacity only
        falls after an arrival, as vintages retire, until the next one), so replacing retired
        capacity is allowed up to that bound. A region's own supply (``gpu_supply.china``) caps
        its capex; the supply for all regions together (``*``, or a plain number) then cuts every
        region's capex alike. No supply given: no limit.
        """
        supply = provider.gpu_supply
        if not supply or not market.capacity_limited or capex.sum() <= 0:
            return capex
        lag = market.capacity.build_lag
        now = provider.capacity_in_service(market.quarter)
        planned = provider.capacity_in_service(market.quarter + lag)
        unit_cost = provider.capex_per_unit_now(market)
        capex = capex.copy()
        for r, region in enumerate(market.region_names):
            if region in supply:
                allowed_units = max(now[r] * (1.0 + supply[region]) ** max(lag, 1) - planned[r], 0.0)
                capex[r] = min(capex[r], allowed_units * unit_cost)
        limit = supply.get("*")
        if limit is None or capex.sum() <= 0:
            return capex
        allowed_units = max(now.sum() * (1.0 + limit) ** max(lag, 1) - planned.sum(), 0.0)
        allowed = allowed_units * unit_cost
        return capex * (allowed / capex.sum()) if capex.sum() > allowed else capex

    def set_ecosystem_spend(self, provider: Provider, market: CloudMarket) -> float:
        """Ecosystem spend this quarter (USD), booked as operating cost; raises ecosystem strength."""
        return self.ecosystem_spend

    def planned_growth(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        """Quarterly capacity growth this strategy builds for, per region (fraction per quarter).

        The demand trend as the utilisation rule reads it (:func:`capex_for_utilisation`, times
        :attr:`growth_multiplier`), at most the provider's GPU supply (its region's, and the one
        for all regions together). Sizes the orders under construction at the start
        (:meth:`Provider.install_starting_capacity`).
        """
        growth = demand_trend(provider, self.growth_multiplier)
        supply = provider.gpu_supply
        if "*" in supply:
            growth = np.minimum(growth, supply["*"])
        for r, region in enumerate(market.region_names):
            if region in supply:
                growth[r] = min(growth[r], supply[region])
        return growth

    @property
    def growth_multiplier(self) -> float:
        """Share of the demand trend the utilisation rule builds for (1: all of it)."""
        return 1.0


#: Service level below which a provider counts as rationing in a region (the scarcity rule):
#: a hair under 1, so that rounding in the rationing arithmetic is no scarcity.
RATIONED = 0.999
#: Lowest service level the scarcity rule reads (a region served at 0 would make the premium infinite).
SERVED_FLOOR = 1e-3


# --------------------------------------------------------------------------------------------
# Shared capex rules
# --------------------------------------------------------------------------------------------
#: Fastest demand growth a provider builds capacity for, per quarter (+20% a quarter is +107% a year).
MAX_PLANNED_GROWTH = 0.20


def demand_trend(provider: Provider, growth_multiplier: float = 1.0) -> np.ndarray:
    """Quarterly demand growth a provider builds for, per region: its own trailing trend, kept within
    0 and :data:`MAX_PLANNED_GROWTH`, times ``growth_multiplier``."""
    # minimum(maximum()) is np.clip's arithmetic without its dispatch overhead (strategies call it every quarter)
    return np.minimum(np.maximum(provider.demand_growth_per_quarter, 0.0), MAX_PLANNED_GROWTH) * growth_multiplier


def demand_weights(provider: Provider) -> np.ndarray:
    """Shares of the provider's compute demand by region (by presence while it has none); sum 1."""
    demand = provider.compute_demand
    return demand / demand.sum() if demand.sum() > 0 else provider.presence / max(provider.presence.sum(), 1e-12)


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


# --------------------------------------------------------------------------------------------
# Shared price-following rules
# --------------------------------------------------------------------------------------------
def cost_following_prices(provider: Provider) -> np.ndarray:
    """Current unit cost times each market's starting price / cost ratio (starting price where cost is 0)."""
    costed = provider.base_cost > 0
    ratio = np.divide(provider.initial_prices, provider.base_cost, out=np.ones_like(provider.base_cost), where=costed)
    return np.where(costed, provider.unit_cost * ratio, provider.initial_prices)


def rival_price_index(provider: Provider, market: CloudMarket) -> np.ndarray | None:
    """The rivals' list price in each (product, region), weighted by their volume last quarter, USD per unit.

    What a customer signing now would pay the rivals, on average over their sales: their list
    prices weighted by their served volume there (with one-quarter contracts, their revenue /
    their volume; with longer ones their revenue lags their list prices, and a playbook pricing
    new contracts against it would undercut yesterday's prices). Where rivals sold nothing, the
    plain mean price of the rivals present (:meth:`CloudMarket.rival_prices`). None in the first
    quarter, before anyone has sold.
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


class RivalMatch:
    """What :func:`match_rivals` remembers between quarters for one provider.

    last_cost: the provider's unit cost at the previous call, (products, regions) USD per unit
    (at the start: the starting cost); reference: the rivals' prices, (providers, products,
    regions) USD per unit, and this provider's unit cost in the reference quarter (the first
    quarter with sales), None until then.
    """

    def __init__(self, provider: Provider) -> None:
        self.last_cost: np.ndarray = provider.unit_cost.copy()
        self.reference: tuple[np.ndarray, np.ndarray] | None = None


def match_rivals(
    state: RivalMatch, provider: Provider, market: CloudMarket, prices: np.ndarray, match: float
) -> np.ndarray:
    """``prices`` lowered to follow the deepest cut of a main rival in each market (``match`` = 1: in full).

    A main rival has at least ``MAIN_RIVAL_SHARE`` of the market's volume last quarter. Its cut is
    how far its price fell since the reference quarter (the first quarter with sales) beyond this
    provider's own unit cost over the same quarters: (p_j now / p_j then) / (own cost now / own
    cost then), taken one quarter back, when the rival's price was charged. The deepest cut c < 1
    lowers ``prices`` by c^match (0 = ignore rivals); a rival that raises its price again lifts
    the cut back toward 1. Never below unit cost. Call it every quarter: ``state`` (made by the
    strategy's :meth:`Strategy.start`) keeps the reference prices and costs.
    """
    last_cost = state.last_cost
    state.last_cost = provider.unit_cost.copy()  # the cost in effect this quarter
    if match == 0 or not provider.history:
        return prices
    rival_prices = market.prices  # charged last quarter, at last quarter's cost (last_cost)
    if state.reference is None:
        state.reference = (rival_prices.copy(), last_cost)
        return prices
    reference_prices, reference_cost = state.reference
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


@dataclass
class RivalMatching(Strategy):
    """Base of strategies whose prices follow main rivals' cuts by ``match`` (:func:`match_rivals`)."""

    match: float = param(
        0.0,
        unit="exponent on a rival's cut",
        lo=0.0,
        hi=1.0,
        doc="how far prices follow a main rival's price cut (0 = ignore it, 1 = in full)",
    )

    def start(self, provider: Provider, market: CloudMarket) -> None:
        super().start(provider, market)
        self.rival_match_ = RivalMatch(provider)

    def follow_rivals(self, provider: Provider, market: CloudMarket, prices: np.ndarray) -> np.ndarray:
        """``prices`` after :func:`match_rivals` with this strategy's ``match`` (call once a quarter)."""
        return match_rivals(self.rival_match_, provider, market, prices, self.match)


# --------------------------------------------------------------------------------------------
# Per-market parameters
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Registry, construction, description
# --------------------------------------------------------------------------------------------
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


def _init_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init} if dataclasses.is_dataclass(cls) else set()


def make_strategy(spec: StrategySpec) -> Strategy:
    """A fresh, validated strategy object for a provider.

    A user's class that raises anything but ScenarioError while it is built or validated is
    reported as a ScenarioError naming the class (the original exception is its cause).
    """
    cls = strategy_class(spec.kind)
    if "max_capacity_addition" in spec.params and "max_capacity_addition" not in _init_fields(cls):
        raise ScenarioError(
            "parameter 'max_capacity_addition' is no longer a strategy's: GPU supply is the provider's "
            "gpu_supply (providers.NAME.gpu_supply = 0.05, or a table per region such as { china = 0.05 })"
        )
    allowed = _init_fields(cls)
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


class ParamRow(NamedTuple):
    """One strategy parameter as ``cloudwar describe`` prints it (all text)."""

    name: str
    default: str  #: as a scenario file writes it; ``unset`` for None
    unit: str
    accepts: str  #: accepted values, e.g. ``[0, 1]``, ``rivals|cost``
    doc: str


class StrategyRow(NamedTuple):
    """One strategy for ``cloudwar describe``: its kind, the first line of its docstring, its parameters."""

    kind: str
    summary: str
    params: list[ParamRow]


def describe_strategies() -> list[StrategyRow]:
    """Every registered strategy with its parameters: default, unit, accepted values and meaning.

    The first row, kind ``*``, holds the parameters every strategy has (those of
    :class:`Strategy`); each registered strategy then lists, by kind, the parameters it adds
    and those whose default it changes. A user's undeclared field shows unit ``?``.
    """
    common = {f.name: f.default for f in dataclasses.fields(Strategy)}
    rows = [
        StrategyRow(
            "*",
            "every strategy has these (each below lists its own and the defaults it changes)",
            _param_rows(Strategy, set()),
        )
    ]
    for kind, cls in sorted(REGISTRY.items()):
        same = {f.name for f in dataclasses.fields(cls) if f.name in common and _same(f.default, common[f.name])}
        rows.append(StrategyRow(kind, _summary(cls), _param_rows(cls, same)))
    return rows


def _param_rows(cls: type[Strategy], skip: set[str]) -> list[ParamRow]:
    declared = declared_parameters(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip:
            continue
        spec = declared.get(f.name)
        default = "" if f.default is dataclasses.MISSING else _show(f.default)
        if spec is None:
            rows.append(ParamRow(f.name, default, "?", "", "(not declared with param())"))
        else:
            rows.append(ParamRow(f.name, default, spec.unit, spec.accepts, spec.doc))
    return rows


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _summary(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0].replace("``", "") if doc else ""


def _show(value: Any) -> str:
    """A default as a scenario file writes it (shortest form that reads back the same)."""
    if value is None:
        return "unset"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return repr(value)

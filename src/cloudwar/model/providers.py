"""Provider agents: prices, capacity, unit costs and the quarter's books.

Capacity is held as vintages: capex bought in quarter t adds ``capex / capex_per_unit(t)``
compute units that come into service at ``t + build_lag`` and retire ``useful_life`` quarters
later; each vintage is depreciated straight-line over its useful life while in service.
The starting capacity is ``starting compute demand / initial_utilisation``, as vintages bought
evenly over the past useful life (one retires every quarter), priced at the hardware cost of
their quarter, plus the orders of the last ``build_lag`` quarters still under construction
(:meth:`Provider.install_starting_capacity`).

Unit cost (USD per unit served) = starting marginal cost x cost shock x learning x hardware, where
the cost shock is the provider's ``cost_shock`` multiplier (1 unless the scenario or an event sets it),
learning = (cumulative volume / starting cumulative volume) ^ -learning_exponent and
hardware = (1 - hardware_decline) ^ (quarter / 4). Capex per compute unit falls with hardware too.

Ecosystem: the strategy's ecosystem spend (USD per quarter, e.g. on open-source models) is an
operating cost booked with fixed opex; strength moves in
:meth:`cloudwar.model.market.CloudMarket.update_ecosystems`. The funded floor is the starting
strength minus ``ecosystem_funded``.

Books per quarter (USD): revenue = realised price x served volume (the realised price is what
customers pay under their contracts: the list price of the quarter each signed); variable cost = unit cost x served;
depreciation; fixed opex and ecosystem spend (allocated to markets by revenue);
operating income = revenue - variable cost - depreciation - fixed opex - ecosystem spend;
free cash flow = operating income + depreciation - capex (pre-tax, no working capital);
NPV = sum of FCF_t / (1 + discount_rate) ^ (t / 4).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mesa
import numpy as np

from cloudwar.scenario import ProviderSpec, ScenarioError, cost_multiplier, one_line, per_region
from cloudwar.strategies import Strategy, StrategyError, make_strategy

if TYPE_CHECKING:
    from cloudwar.model.market import CloudMarket
    from cloudwar.scenario.events import ProviderChange


@dataclass(frozen=True, slots=True)
class Books:
    """One provider's books for one quarter (what :meth:`Provider.book` returns and keeps in ``history``).

    Arrays are per (product, region), ``(K, R)``, or per region, ``(R,)``; scalars are the
    provider's totals. Money is USD: flows per quarter, stocks (cumulative, NPV) to date.
    """

    quarter: int  #: the quarter booked
    revenue: np.ndarray  #: (K, R) USD per quarter: realised (contract) price x served volume
    realised_price: np.ndarray  #: (K, R) USD per unit: the prices its customers' contracts agreed, volume-weighted
    variable_cost: np.ndarray  #: (K, R) USD per quarter: unit cost x served volume
    operating_income: np.ndarray  #: (K, R) USD per quarter: revenue - variable cost - allocated depreciation and opex
    served_volume: np.ndarray  #: (K, R) units per quarter served after rationing
    capacity: np.ndarray  #: (R,) compute units in service (inf when capacity is unlimited)
    compute_demand: np.ndarray  #: (R,) compute units its customers demanded
    capex: np.ndarray  #: (R,) USD spent this quarter
    depreciation: np.ndarray  #: (R,) USD per quarter, straight line
    service_level: np.ndarray  #: (R,) fraction of demand served (capacity / compute demand, at most 1)
    free_cash_flow: float  #: USD per quarter: operating income + depreciation - capex
    cumulative_free_cash_flow: float  #: USD, running sum of free cash flow
    npv: float  #: USD, free cash flow discounted to quarter 0 so far
    fixed_opex: float  #: USD per quarter
    ecosystem_spend: float  #: USD per quarter, booked as operating cost
    ecosystem: float  #: ecosystem strength (0-1) after this quarter's update


class Provider(mesa.Agent):
    """A cloud provider: decides prices and capex through its strategy, keeps its books (:class:`Books`)."""

    def __init__(self, model: CloudMarket, spec: ProviderSpec, index: int):
        super().__init__(model)
        s = model.config
        self.name = spec.name
        self.index = index
        self.spec = spec
        self.strategy: Strategy = make_strategy(spec.strategy)
        self.strategy.resolve_quarters(s.start)
        self.strategy_started = False  # start() is called before the strategy's first decision
        self.gpu_supply: dict[str, float] = dict(spec.gpu_supply)  # strategy API; events change it
        products, regions = s.product_names, s.region_names
        self.quality = np.array([[per_region(spec.quality, k, r) for r in regions] for k in products])
        self.initial_prices = np.array([[per_region(spec.price, k, r) for r in regions] for k in products])
        self.prices = self.initial_prices.copy()
        self.base_cost = np.array([[per_region(spec.marginal_cost, k, r) for r in regions] for k in products])
        self.cost_shock = _shock_array(spec.cost_shock, products, regions)
        # unit cost = base cost x cost shock x learning x hardware; the last two as update_costs left them
        self._learning: np.ndarray | float = 1.0
        self._hardware: np.ndarray | float = 1.0
        self.unit_cost = self.base_cost * self.cost_shock
        self.presence = np.array([spec.presence.get(r, 1.0) for r in regions], dtype=float)
        self.ecosystem = spec.ecosystem
        self.ecosystem_floor = spec.ecosystem - spec.ecosystem_funded
        self.ecosystem_spend = 0.0
        self.service_level = np.ones(len(regions))
        self.compute_demand = np.zeros(len(regions))
        # Trend of its own compute demand (per quarter, smoothed); it starts at the market forecast,
        # the fastest demand growth among the products, so capex anticipates growth from quarter 1.
        forecast = max((p.demand_growth for p in s.products.values()), default=0.0)
        self.demand_growth_per_quarter = np.full(len(regions), (1.0 + forecast) ** 0.25 - 1.0)
        self.cumulative_volume = np.zeros(len(products))
        self.starting_experience = np.zeros(len(products))
        self._inexperienced = True  # some product has no starting experience yet (update_costs)
        # Vintages: region, first quarter in service, first quarter retired, compute units, cost (USD);
        # views of the first _v_count columns of two buffers that grow by doubling (a provider adds
        # vintages most quarters: appending to buffers costs a third of five concatenations).
        self._v_count = 0
        self._v_ints = np.zeros((3, 64), dtype=np.int64)  # region, online, retire
        self._v_floats = np.zeros((2, 64))  # units, cost
        self._v_region, self._v_online, self._v_retire = self._v_ints[:, :0]
        self._v_units, self._v_cost = self._v_floats[:, :0]
        self._hardware_factors: dict[int, float] = {}  # market.hardware_factor per quarter, asked 3 times a quarter
        # Vintages in service and capacity per quarter asked, kept until vintages are added: the
        # market, the books and the strategies ask for the same quarters several times a quarter.
        self._live_cache: dict[int, np.ndarray] = {}
        self._capacity_cache: dict[int, np.ndarray] = {}
        self._totals_of: Books | None = None  # the books whose totals _totals_cache holds
        self._totals_cache = (0.0, 0.0)
        self.next_prices = self.prices
        self.planned_capex = np.zeros(len(regions))
        self.cumulative_fcf = 0.0
        self.npv = 0.0
        self.history: list[Books] = []  # one per quarter booked

    # --- capacity ------------------------------------------------------------------------
    def capex_per_unit_now(self, market: CloudMarket) -> float:
        """USD that buys one compute unit of capacity this quarter."""
        return self.spec.capex_per_unit * self._hardware_factor(market.quarter)

    def _hardware_factor(self, quarter: int) -> float:
        factor = self._hardware_factors.get(quarter)
        if factor is None:
            factor = self._hardware_factors[quarter] = self.model.hardware_factor(quarter)
        return factor

    def _add_vintages(self, region: np.ndarray, online: np.ndarray, units: np.ndarray, cost: np.ndarray) -> None:
        life = self.model.capacity.useful_life
        start, end = self._v_count, self._v_count + len(region)
        if end > self._v_ints.shape[1]:
            size = 2 * end
            ints, floats = np.zeros((3, size), dtype=np.int64), np.zeros((2, size))
            ints[:, :start], floats[:, :start] = self._v_ints[:, :start], self._v_floats[:, :start]
            self._v_ints, self._v_floats = ints, floats
        self._v_ints[0, start:end] = region
        self._v_ints[1, start:end] = online
        self._v_ints[2, start:end] = online + life
        self._v_floats[0, start:end] = units
        self._v_floats[1, start:end] = cost
        self._v_count = end
        self._v_region, self._v_online, self._v_retire = self._v_ints[:, :end]
        self._v_units, self._v_cost = self._v_floats[:, :end]
        self._live_cache.clear()
        self._capacity_cache.clear()

    def _live(self, quarter: int) -> np.ndarray:
        """Mask of the vintages in service in ``quarter``."""
        live = self._live_cache.get(quarter)
        if live is None:
            live = self._live_cache[quarter] = (self._v_online <= quarter) & (self._v_retire > quarter)
        return live

    def install_starting_capacity(self, compute_demand: np.ndarray, utilisation: float) -> None:
        """Starting capacity: vintages spread evenly over the past useful life, plus the orders under way.

        In service at the start: ``compute_demand / utilisation`` compute units per region, in
        ``useful_life`` equal vintages bought over the past useful life (one retires every
        quarter from quarter 1). Under construction: what the provider ordered in the last
        ``build_lag`` quarters, arriving in quarters 1 to ``build_lag``, sized as a provider
        building for its demand trend orders (each arrival replaces the vintage retiring then
        and grows capacity with the planned demand growth, at most the GPU supply's growth),
        so utilisation stays at ``utilisation`` until the provider's own capex arrives instead
        of jumping to 100% in quarter 2. Its capex was spent before the start: it is not booked.
        """
        market = self.model
        life, lag = market.capacity.useful_life, market.capacity.build_lag
        capacity = compute_demand / utilisation
        ages = np.arange(life)  # vintage online at quarter 1 - age, so one retires each quarter from quarter 1
        regions = np.repeat(np.arange(len(capacity)), life)
        online = np.tile(1 - life + ages, len(capacity))
        units = np.repeat(capacity / life, life)
        if lag > 0:
            growth = self.strategy.planned_growth(self, market)  # per region, per quarter
            arrival = np.arange(1, lag + 1)
            built = capacity[:, None] * (1.0 + growth[:, None]) ** arrival[None, :]
            previous = capacity[:, None] * (1.0 + growth[:, None]) ** (arrival[None, :] - 1)
            regions = np.concatenate([regions, np.repeat(np.arange(len(capacity)), lag)])
            online = np.concatenate([online, np.tile(arrival, len(capacity))])
            units = np.concatenate([units, (built - previous + capacity[:, None] / life).ravel()])
        cost = units * self.spec.capex_per_unit * market.hardware_factor(online - lag)
        keep = units > 0
        self._add_vintages(regions[keep], online[keep], units[keep], cost[keep])

    def capacity_in_service(self, quarter: int) -> np.ndarray:
        """Compute units in service per region in ``quarter`` (inf when capacity is unlimited)."""
        n_regions = len(self.presence)
        if not self.model.capacity_limited:
            return np.full(n_regions, np.inf)
        capacity = self._capacity_cache.get(quarter)
        if capacity is None:
            live = self._live(quarter)
            capacity = np.bincount(self._v_region[live], weights=self._v_units[live], minlength=n_regions)
            self._capacity_cache[quarter] = capacity
        return capacity.copy()  # callers may keep or change it

    def depreciation(self, quarter: int) -> np.ndarray:
        """Straight-line depreciation per region in ``quarter``, USD."""
        n_regions = len(self.presence)
        live = self._live(quarter)
        per_quarter = self._v_cost[live] / self.model.capacity.useful_life
        return np.bincount(self._v_region[live], weights=per_quarter, minlength=n_regions)

    def invest(self, capex: np.ndarray) -> None:
        """Spend ``capex`` (USD per region) now; the capacity arrives after the build lag."""
        market = self.model
        self.planned_capex = capex
        if not market.capacity_limited:
            return
        regions = np.flatnonzero(capex > 0)
        if len(regions) == 0:
            return
        spent = capex[regions]
        online = np.empty(len(regions), dtype=np.int64)
        online.fill(market.quarter + market.capacity.build_lag)
        self._add_vintages(regions, online, spent / self.capex_per_unit_now(market), spent)

    # --- decisions -----------------------------------------------------------------------
    def decide(self) -> None:
        """Ask the strategy for next quarter's prices and this quarter's capex (not yet applied).

        Prices pass through the shared scarcity rule (:meth:`Strategy.price_scarcity`), capex
        through the GPU supply (:meth:`Strategy.supply_limit`).

        A strategy that raises, or returns prices, capex or ecosystem spend of the wrong shape,
        negative or not finite, stops the run with a :class:`StrategyError` naming the provider,
        the strategy and the quarter (the original exception is its cause).
        """
        market = self.model
        strategy = self.strategy
        where = f"strategy of {self.name} ({self.spec.strategy.kind}), quarter {market.quarter}"
        try:
            if not self.strategy_started:  # learned state is made once, before the strategy's first decision
                strategy.start(self, market)
                self.strategy_started = True
            prices = np.asarray(strategy.set_prices(self, market), dtype=float)
            if prices.shape == self.prices.shape and np.isfinite(prices).all():  # bad prices are reported below
                prices = np.asarray(strategy.price_scarcity(self, market, prices), dtype=float)
            capex = np.asarray(strategy.set_capex(self, market), dtype=float)
            if capex.shape == self.presence.shape and np.isfinite(capex).all():
                capex = strategy.supply_limit(self, market, capex)
            spend = float(strategy.set_ecosystem_spend(self, market))
        except ScenarioError as err:
            raise StrategyError(f"{where}: {err}") from err
        except (Exception, SystemExit) as err:  # sys.exit() in a strategy is its failure, not the program's
            raise StrategyError(f"{where}: {type(err).__name__}: {one_line(err)}") from err
        if not np.isfinite(spend) or spend < 0:
            raise StrategyError(f"{where}: invalid ecosystem spend {spend!r} (USD per quarter, finite, >= 0)")
        if prices.shape != self.prices.shape or not _finite_non_negative(prices):
            raise StrategyError(
                f"{where}: invalid prices {_compact(prices)} (expected {self.prices.shape}, finite, >= 0)"
            )
        if capex.shape != self.presence.shape or not _finite_non_negative(capex):
            raise StrategyError(
                f"{where}: invalid capex {_compact(capex)} (expected {self.presence.shape}, finite, >= 0)"
            )
        self.next_prices = prices
        self.planned_capex = capex
        self.ecosystem_spend = spend

    def apply_decision(self) -> None:
        self.prices = self.next_prices
        self.invest(self.planned_capex)

    # --- scenario events ------------------------------------------------------------------
    def apply_change(self, change: ProviderChange) -> None:
        """Apply what a scenario event changes for this provider, at the start of its quarter.

        A new strategy replaces the one in play (it is started before its first decision); new
        parameters are set on the strategy in play, which keeps its learned state; GPU supply
        and cost shock replace the provider's (the cost shock moves this quarter's unit cost).
        List prices are set after the decisions (:meth:`set_list_prices`).
        """
        market = self.model
        if change.strategy is not None:
            fresh = make_strategy(change.strategy)
            fresh.resolve_quarters(market.config.start)
            if change.new_strategy:
                self.strategy, self.strategy_started = fresh, False
            else:
                for name in change.params:
                    setattr(self.strategy, name, getattr(fresh, name))
            self.spec = dataclasses.replace(self.spec, strategy=change.strategy)
        if change.gpu_supply is not None:
            self.gpu_supply = dict(change.gpu_supply)
        if change.cost_shock is not None:
            self.cost_shock = _shock_array(change.cost_shock, market.product_names, market.region_names)
            self.unit_cost = self.base_cost * self.cost_shock * self._learning * self._hardware

    def set_list_prices(self, change: ProviderChange) -> None:
        """Charge an event's list prices this quarter (over what the strategy decided)."""
        market = self.model
        self.prices = self.prices.copy()  # the decided array may be a strategy's own state
        for product, region, price in change.prices:
            self.prices[market.product_names.index(product), market.region_names.index(region)] = price

    # --- books ---------------------------------------------------------------------------
    def update_costs(self, served: np.ndarray) -> None:
        """Learning and hardware: unit cost for next quarter from volume served (products x regions)."""
        learn_costs([self], served[None])

    def book(
        self,
        quarter: int,
        served: np.ndarray,
        compute_demand: np.ndarray,
        served_share: np.ndarray,
        realised_price: np.ndarray | None = None,
    ) -> Books:
        """Book the quarter and keep the books in ``history`` (:func:`book_quarter` for this provider alone).

        ``served``: (K, R) units served; ``compute_demand``: (R,) compute units demanded;
        ``served_share``: (R,) fraction of demand served (next quarter's service level);
        ``realised_price``: (K, R) USD per unit its customers pay under their contracts (default:
        the list prices).
        """
        realised = None if realised_price is None else realised_price[None]
        return book_quarter([self], quarter, served[None], compute_demand[None], served_share[None], realised)[0]

    # --- reporters -----------------------------------------------------------------------
    def _last_totals(self) -> tuple[float, float]:
        """Revenue and operating income of the last quarter booked, summed once per quarter
        (the collector asks for them about 15 times a quarter)."""
        last = self.history[-1] if self.history else None
        if last is not self._totals_of:
            self._totals_of = last
            self._totals_cache = (
                (float(last.revenue.sum()), float(last.operating_income.sum())) if last is not None else (0.0, 0.0)
            )
        return self._totals_cache

    @property
    def revenue(self) -> float:
        return self._last_totals()[0]

    @property
    def operating_income(self) -> float:
        return self._last_totals()[1]

    @property
    def operating_margin(self) -> float:
        revenue = self.revenue
        return self.operating_income / revenue if revenue > 0 else float("nan")

    @property
    def capex(self) -> float:
        return float(self.planned_capex.sum())

    @property
    def free_cash_flow(self) -> float:
        return float(self.history[-1].free_cash_flow) if self.history else 0.0

    @property
    def revenue_share(self) -> float:
        """Share of all providers' revenue, all products and regions."""
        total = self.model.total_revenue
        return self.revenue / total if total > 0 else float("nan")


def _shock_array(table: dict[str, dict[str, float]], products: list[str], regions: list[str]) -> np.ndarray:
    """A ``cost_shock`` table as multipliers per (product, region), 1 where it says nothing."""
    return np.array([[cost_multiplier(table, k, r) for r in regions] for k in products], dtype=float)


def book_quarter(
    providers: list[Provider],
    quarter: int,
    served: np.ndarray,
    compute_demand: np.ndarray,
    served_share: np.ndarray,
    realised_price: np.ndarray | None = None,
) -> list[Books]:
    """Every provider in ``providers`` books the quarter (each keeps its :class:`Books` in ``history``).

    ``served``: (P, K, R) units served; ``compute_demand``: (P, R) compute units demanded;
    ``served_share``: (P, R) fraction of demand served (next quarter's service level); P =
    ``len(providers)``, in that order; ``realised_price``: (P, K, R) USD per unit the customers pay
    under their contracts (default: the list prices), which revenue is booked at. The arithmetic runs on the providers stacked, once a quarter
    instead of once per provider (a quarter's small-array operations cost more than their data);
    every number is the one each provider's own arithmetic gives: the operations are elementwise,
    and each sum runs over one provider's own entries in the same order.
    """
    market = providers[0].model
    n_products = served.shape[1]
    prices = np.array([p.prices for p in providers]) if realised_price is None else realised_price
    unit_cost = np.array([p.unit_cost for p in providers])
    revenue = prices * served
    variable_cost = unit_cost * served
    if market.capacity_limited:
        depreciation = np.array([p.depreciation(quarter) for p in providers])
    else:
        depreciation = np.zeros(compute_demand.shape)
    compute = served * market.compute_per_unit[None, :, None]
    compute_total = compute.sum(axis=1, keepdims=True)
    compute_split = np.divide(
        compute, compute_total, out=_filled(compute.shape, 1.0 / n_products), where=compute_total > 0
    )
    total_revenue = revenue.reshape(len(providers), -1).sum(axis=1)[:, None, None]
    revenue_split = np.divide(
        revenue, total_revenue, out=_filled(revenue.shape, 1.0 / revenue[0].size), where=total_revenue > 0
    )
    allocated_depreciation = compute_split * depreciation[:, None, :]
    opex = np.array([p.spec.fixed_opex + p.ecosystem_spend for p in providers])
    allocated_opex = revenue_split * opex[:, None, None]
    operating_income = revenue - variable_cost - allocated_depreciation - allocated_opex
    capex = np.array([p.planned_capex for p in providers])
    fcf = operating_income.reshape(len(providers), -1).sum(axis=1) + depreciation.sum(axis=1) - capex.sum(axis=1)
    previous = np.array([p.compute_demand for p in providers])
    grew = previous > 0
    growth = np.divide(compute_demand, previous, out=np.zeros(previous.shape), where=grew)
    np.subtract(growth, 1.0, out=growth, where=grew)
    discount = (1.0 + market.config.discount_rate) ** (quarter / 4.0)
    books = []
    for j, p in enumerate(providers):
        flow = float(fcf[j])
        p.cumulative_fcf += flow
        p.npv += flow / discount
        if quarter > 1:
            p.demand_growth_per_quarter = 0.75 * p.demand_growth_per_quarter + 0.25 * growth[j]
        p.compute_demand = compute_demand[j]
        p.service_level = served_share[j]
        entry = Books(
            quarter=quarter,
            revenue=revenue[j],
            realised_price=np.array(prices[j], dtype=float),
            variable_cost=variable_cost[j],
            operating_income=operating_income[j],
            served_volume=served[j],
            capacity=p.capacity_in_service(quarter),
            compute_demand=compute_demand[j],
            capex=capex[j],
            depreciation=depreciation[j],
            service_level=served_share[j],
            free_cash_flow=flow,
            cumulative_free_cash_flow=p.cumulative_fcf,
            npv=p.npv,
            fixed_opex=p.spec.fixed_opex,
            ecosystem_spend=p.ecosystem_spend,
            ecosystem=p.ecosystem,
        )
        p.history.append(entry)
        books.append(entry)
    learn_costs(providers, served)
    return books


def learn_costs(providers: list[Provider], served: np.ndarray) -> None:
    """Learning and hardware: every provider's unit cost for next quarter from its volume served,
    ``served`` (P, K, R) units in the order of ``providers`` (stacked, as in :func:`book_quarter`)."""
    market = providers[0].model
    volume = served.sum(axis=2)
    for j, p in enumerate(providers):
        if p._inexperienced:  # until every product has sold once
            unset = (p.starting_experience == 0) & (volume[j] > 0)
            p.starting_experience[unset] = volume[j][unset] * market.capacity.initial_experience
            p.cumulative_volume[unset] = p.starting_experience[unset]
            p._inexperienced = 0.0 in p.starting_experience
        p.cumulative_volume += volume[j]
    cumulative = np.array([p.cumulative_volume for p in providers])
    starting = np.array([p.starting_experience for p in providers])
    # A division with ``where=`` (the other entries keep ``out``'s value) gives the same numbers as
    # np.where over a full division, without an errstate block.
    ratio = np.divide(cumulative, starting, out=_filled(cumulative.shape, 1.0), where=starting > 0)
    learning = ratio**-market.capacity.learning_exponent
    hardware = providers[0]._hardware_factor(market.quarter + 1)
    base = np.array([p.base_cost for p in providers]) * np.array([p.cost_shock for p in providers])
    unit_cost = base * learning[:, :, None] * hardware
    for j, p in enumerate(providers):
        p._learning, p._hardware = learning[j][:, None], hardware
        p.unit_cost = unit_cost[j]


def _filled(shape: tuple[int, ...], value: float) -> np.ndarray:
    """``np.full(shape, value)`` (float64) without np.full's Python-level overhead, for small arrays made every quarter."""
    out = np.empty(shape)
    out.fill(value)
    return out


def _finite_non_negative(values: np.ndarray) -> bool:
    """Every entry finite and >= 0 (NaN fails: it propagates through min and max), in two reductions."""
    return values.size == 0 or bool(values.min() >= 0.0 and values.max() < np.inf)


def _compact(values: np.ndarray) -> str:
    """An array on one line, for error messages."""
    return np.array2string(np.asarray(values), separator=", ", max_line_width=10**6, threshold=20)

"""The strategy interface and the basic pricing strategies.

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
``provider.history`` and the ``market`` methods ``quarter``, ``prices``, ``rival_prices``,
``demand_curve``, ``product_names``, ``region_names``, ``hardware_factor``. All prices are in
USD per unit of the product, capex in USD per quarter.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy import optimize

from cloudwar.scenario import ScenarioError, StrategySpec

if TYPE_CHECKING:
    from cloudwar.model import CloudMarket
    from cloudwar.providers import Provider

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
        if self.capex_rule not in ("utilisation", "fixed", "none"):
            raise ScenarioError(f"capex_rule must be one of utilisation, fixed, none, got {self.capex_rule!r}")

    def require(self, name: str, lo: float | None, hi: float | None) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ScenarioError(f"parameter '{name}' must be a number, got {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = (
                f"between {lo:g} and {hi:g}"
                if hi is not None and lo is not None
                else (f">= {lo:g}" if lo is not None else f"<= {hi:g}")
            )
            raise ScenarioError(f"parameter '{name}' must be {span}, got {value!r}")

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
        return capex_for_utilisation(provider, market, self.target_utilisation)


def capex_for_utilisation(
    provider: Provider, market: CloudMarket, target_utilisation: float, growth_multiplier: float = 1.0
) -> np.ndarray:
    """Capex per region (USD) so that capacity ``build_lag`` quarters ahead serves the demand trend.

    Demand ahead = this quarter's compute demand x (1 + trailing quarterly growth)^lag, the
    growth being the provider's own over the last four quarters (floored at 0), scaled by
    ``growth_multiplier``. Capex buys the gap between that / target and the capacity already
    built or under construction that will still be in service then.
    """
    lag = market.capacity.build_lag
    ahead = market.quarter + lag + 1
    demand = provider.compute_demand
    growth = np.maximum(provider.demand_growth_per_quarter, 0.0) * growth_multiplier
    needed = demand * (1.0 + growth) ** (lag + 1) / target_utilisation
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

    def validate(self) -> None:
        super().validate()
        if self.markup is not None:
            self.require("markup", 0.0, 100.0)

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        if self.markup is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(provider.base_cost > 0, provider.initial_prices / provider.base_cost, 1.0)
            return np.where(provider.base_cost > 0, provider.unit_cost * ratio, provider.initial_prices)
        return provider.unit_cost * (1.0 + self.markup)


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
                    joint, result.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-15, "maxiter": 4000}
                )
                new[k, r] = float(result.x[present.index(provider.index)])
        return new


def strategy_class(kind: str) -> type[Strategy]:
    """Look up a registered strategy name, or import ``package.module:ClassName``."""
    if ":" in kind:
        module_name, _, class_name = kind.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ScenarioError(f"cannot import strategy module '{module_name}': {err}") from None
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise ScenarioError(f"'{kind}' is not a cloudwar.strategies.Strategy subclass")
        return cls
    if kind not in REGISTRY:
        raise ScenarioError(f"unknown strategy '{kind}' (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[kind]


def make_strategy(spec: StrategySpec) -> Strategy:
    """A fresh, validated strategy object for a provider."""
    cls = strategy_class(spec.kind)
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(spec.params) - allowed)
    if unknown:
        raise ScenarioError(
            f"unknown parameter '{unknown[0]}' for strategy '{spec.kind}' (allowed: {', '.join(sorted(allowed))})"
        )
    return cls(**spec.params)

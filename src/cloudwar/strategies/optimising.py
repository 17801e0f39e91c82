"""Optimising strategies: the myopic best response and the joint-profit (collusive) benchmark.

Both maximise profit against the market's demand model (:meth:`CloudMarket.demand_curve`, the
expected quantity each provider sells at given prices), market by market (product, region).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy import optimize

from cloudwar.strategies.base import Strategy, param

if TYPE_CHECKING:
    from cloudwar.model.market import CloudMarket
    from cloudwar.model.providers import Provider


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
    damping: float = param(
        0.0, unit="fraction", lo=0.0, hi=0.99, doc="weight of the old price: new = damping x old + (1 - damping) x best"
    )

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

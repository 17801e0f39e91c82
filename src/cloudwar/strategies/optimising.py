"""Optimising strategies: the best response and the joint-profit (collusive) benchmark.

Both maximise profit against the market's demand model (:meth:`CloudMarket.demand_curve`, the
expected quantity each provider sells at given prices: the volume that signs this quarter),
market by market (product, region). A price set now is paid by that volume for the product's
whole contract (``contract_quarters``) while unit cost falls with hardware, so both value the
margin over the contract term (:class:`TermPricing`); with one-quarter contracts (the theory
scenarios) that is the one-quarter margin, exactly.
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
class TermPricing(Strategy):
    """Base of the optimising strategies: the unit cost a price set now is weighed against.

    A price set now is paid, by the volume that signs this quarter, for the product's contract
    term, T = ``market.products[k].contract_quarters`` quarters, while the unit cost falls with
    hardware: c_t = unit cost x hardware factor(now + t) / hardware factor(now), t = 0..T-1
    (:meth:`CloudMarket.hardware_factor`, ``capacity.hardware_decline`` a year). Maximising
    sum_t delta^t (p - c_t) q(p) is maximising (p - c_bar) q(p) with the term-average cost
    c_bar = sum_t delta^t c_t / sum_t delta^t (USD per unit), delta = (1 + rate)^(-1/4) per
    quarter, rate = ``term_discount_rate`` a year (unset: the scenario's ``discount_rate``;
    0: no discounting). ``term = "quarter"`` weighs the price against this quarter's cost only
    (the myopic rule). With T = 1, c_bar is the unit cost itself, bit for bit.
    """

    term: str = param(
        "contract",
        unit="name",
        choices=("contract", "quarter"),
        doc="contract: value the margin over the contract term (cost falling with hardware); quarter: this quarter's",
    )
    term_discount_rate: float | None = param(
        None,
        unit="per year",
        lo=0.0,
        hi=1.0,
        doc="discount rate of the later quarters of the term (unset: the scenario's discount_rate; 0 = none)",
    )

    def term_cost_factor(self, market: CloudMarket, k: int) -> float | None:
        """c_bar / unit cost for product ``k`` this quarter (at most 1); None when the term is one quarter."""
        quarters = market.products[k].contract_quarters
        if self.term == "quarter" or quarters <= 1:
            return None  # c_bar = c: the caller keeps the unit cost untouched (bit for bit as the myopic rule)
        rate = market.config.discount_rate if self.term_discount_rate is None else self.term_discount_rate
        t = np.arange(quarters)
        weights = (1.0 + rate) ** (-t / 4.0)
        hardware = market.hardware_factor(market.quarter + t) / market.hardware_factor(market.quarter)
        if np.all(hardware == 1.0):
            return None  # costs do not fall over the term: c_bar = c exactly, whatever the discounting
        return float((weights * hardware).sum() / weights.sum())

    def term_costs(self, market: CloudMarket, k: int, costs: np.ndarray) -> np.ndarray:
        """``costs`` (USD per unit now, of product ``k``) as term-average costs c_bar (:class:`TermPricing`)."""
        factor = self.term_cost_factor(market, k)
        return costs if factor is None else costs * factor


@dataclass
class BestResponse(TermPricing):
    """Best response: the price that maximises the margin over the contract term, given rivals' prices.

    For each (product, region) it maximises (price - c_bar) x expected quantity (USD per
    quarter of the term, up to the discount sum), the quantity from the market's demand model
    (:meth:`CloudMarket.demand_curve`: the volume that signs this quarter, which pays the price
    for the contract term) and c_bar the term-average unit cost (:class:`TermPricing`: unit
    cost falling with hardware over ``contract_quarters``, discounted at ``term_discount_rate``;
    ``term = "quarter"``: this quarter's unit cost, the myopic best response). With one-quarter
    contracts it is the myopic best response. ``damping`` moves only part of the way
    (0 = all the way) to smooth oscillations.

    List prices rise gradually: the search stops at (1 + ``max_rise``) x max(last price, c_bar)
    (+50% a quarter by default; cuts are not limited). Without it, a small provider whose few
    locked-in customers (single-homers with a high switching cost and a low price
    sensitivity) are worth more than everyone else it could win jumps to many times the market
    price for a quarter (Baidu at USD 8 per million tokens in quarter 1 of the baseline, seed 1,
    5,000 enterprises); the record has list price cuts of up to 97% in a day, and no rise like
    that (history.md).
    """

    kind: ClassVar[str] = "best_response"
    damping: float = param(
        0.0, unit="fraction", lo=0.0, hi=0.99, doc="weight of the old price: new = damping x old + (1 - damping) x best"
    )
    max_rise: float | None = param(
        0.5,
        unit="fraction per quarter",
        lo=0.0,
        hi=100.0,
        doc="largest rise of a list price in one quarter, over max(last price, unit cost); cuts are not limited; "
        "unset: no limit",
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
                cost = float(self.term_costs(market, k, provider.unit_cost[k, r]))

                def profit(p: float, prices: np.ndarray = prices, curve: Any = curve, cost: float = cost) -> float:
                    prices[j] = p
                    return (p - cost) * curve.quantities(prices)[j]

                high = _price_ceiling(cost, market, k)
                if self.max_rise is not None:
                    high = min(high, max(provider.prices[k, r], cost) * (1.0 + self.max_rise))
                best = _argmax_price(profit, cost, high)
                new[k, r] = self.damping * provider.prices[k, r] + (1.0 - self.damping) * best
        return new


@dataclass
class JointProfit(TermPricing):
    """Set the prices that maximise the joint profit of all providers playing ``joint_profit``.

    Every member solves the same problem (given non-members' current prices) and takes its
    own price from the joint optimum: the collusive benchmark. The joint profit is valued over
    the contract term as :class:`BestResponse` values its own: sum over members of
    (price - c_bar) x expected quantity (USD per quarter of the term), each member's c_bar its
    unit cost times the same term factor (:class:`TermPricing`; members should share ``term``
    and ``term_discount_rate``, or they solve different problems). With one-quarter contracts,
    the one-quarter joint profit.
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
                costs = self.term_costs(
                    market, k, np.array([market.providers_list[m].unit_cost[k, r] for m in present])
                )

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

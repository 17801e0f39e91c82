"""The basic pricing strategies and the playbooks of the AI cloud market.

* :class:`FixedPrice` (``fixed_price``) and :class:`CostPlus` (``cost_plus``): the simple rules;
* :class:`ShareFirst` (``share_first``, Alibaba's): price at a fraction of the rivals' price
  (or a multiple of cost), capex on a committed plan, spending on an open-source ecosystem;
* :class:`MarginDiscipline` (``margin_discipline``, AWS's): hold a target operating margin,
  capex following utilisation and demand growth;
* :class:`PlatformEmbedded` (``platform_embedded``, Tencent's): cost-following prices that match
  rivals' cuts, lighter capex limited by GPU supply; its captive segment is a provider field
  (``captive_share``, ``captive_bonus``);
* :class:`PriceCut` (``price_cut``): a one-off cut of one product's price (the May 2024 price war).

Every one of them prices its own scarcity by the rule all strategies share
(:meth:`cloudwar.strategies.base.Strategy.price_scarcity`), not by code of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cloudwar.errors import ScenarioError
from cloudwar.strategies.base import (
    RivalMatching,
    Strategy,
    capex_for_utilisation,
    cost_following_prices,
    demand_weights,
    param,
    per_market,
    rival_price_index,
)

if TYPE_CHECKING:
    from cloudwar.model.market import CloudMarket
    from cloudwar.model.providers import Provider
    from cloudwar.scenario import Scenario


def _growth_response(default: float) -> Any:
    """The ``growth_response`` parameter of the playbooks that build for part of the demand trend."""
    return param(
        default,
        unit="multiple of the demand trend",
        lo=0.0,
        hi=10.0,
        doc="share of the trend of demand growth the utilisation rule builds for",
    )


def _quarter(default: int, lo: int, doc: str) -> Any:
    """A quarter of the run: a step from ``lo`` on, or a calendar quarter such as ``"2027Q1"``."""
    return param(default, unit="quarter", lo=lo, hi=10_000, integer=True, quarter=True, doc=doc)


def _target_margin(default: float, doc: str) -> Any:
    """An operating-margin target (``target_margin``, ``harvest_margin``)."""
    return param(default, unit="fraction of revenue", lo=-1.0, hi=0.95, doc=doc)


@dataclass
class FixedPrice(Strategy):
    """Keep the starting prices (or ``multiplier`` times them) for ever."""

    kind: ClassVar[str] = "fixed_price"
    multiplier: float = param(1.0, unit="multiple of starting price", lo=0.0, doc="price / starting price")

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        return provider.initial_prices * self.multiplier


@dataclass
class CostPlus(RivalMatching):
    """Price = current unit cost x (1 + markup); without ``markup``, the starting markup of each market.

    Prices then follow unit cost down as learning and hardware make serving cheaper, and follow
    rivals' cuts by ``match``.
    """

    kind: ClassVar[str] = "cost_plus"
    markup: float | None = param(
        None,
        unit="fraction of unit cost",
        lo=0.0,
        hi=100.0,
        doc="price = unit cost x (1 + markup); unset: each market's starting price / cost ratio",
    )

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        prices = cost_following_prices(provider) if self.markup is None else provider.unit_cost * (1.0 + self.markup)
        return self.follow_rivals(provider, market, prices)


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

    Learned state: ``start_ratio_`` (each market's starting ratio, set when rivals' sales are
    first known) and ``harvest_`` (the margin controller, set in the harvest quarter).
    """

    kind: ClassVar[str] = "share_first"
    price_basis: str = param(
        "rivals",
        unit="name",
        choices=("rivals", "cost"),
        doc="what price_ratio multiplies: the rivals' average selling price, or unit cost",
    )
    price_ratio: Any = param(
        None,
        unit="multiple of the price basis",
        lo=0.0,
        hi=100.0,
        per_market=True,
        doc="price / basis; a number, or a table per product (of numbers or tables per region); "
        "unset: each market's starting ratio x (1 - price_cut)",
    )
    price_cut: float = param(
        0.10, unit="fraction", lo=0.0, hi=1.0, doc="cut below the starting ratio when price_ratio is unset"
    )
    price_floor: float = param(1.0, unit="multiple of unit cost", lo=0.0, hi=100.0, doc="lowest price")
    capex_plan: float = param(380e9, unit="RMB", lo=0.0, doc="committed capex plan, spread over plan_quarters")
    plan_quarters: int = param(
        12, unit="quarters", lo=0, hi=400, integer=True, doc="length of the plan (0 = no plan: utilisation rule)"
    )
    ecosystem_spend: float = 0.3e9
    harvest_quarter: int | str = _quarter(
        0,
        0,
        "from this quarter on (a step, or a calendar quarter like 2027Q1), prices steer the margin to "
        "harvest_margin (0 = never)",
    )
    harvest_margin: float = _target_margin(0.30, "operating margin the harvest steers to")

    def start(self, provider: Provider, market: CloudMarket) -> None:
        super().start(provider, market)
        self.start_ratio_: np.ndarray | None = None  # needs rivals' sales: set at the first quarter with them
        self.harvest_: MarginController | None = None  # starts from the prices of the harvest quarter

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        if self.harvest_quarter and market.quarter >= self.harvest_quarter:
            if self.harvest_ is None:
                self.harvest_ = MarginController(provider, self.harvest_margin, 0.06)
            return self.harvest_.prices(provider, 0.5, 0.10)
        if self.price_basis == "rivals":
            basis = rival_price_index(provider, market)
            if basis is None:
                return provider.prices.copy()
        else:
            basis = provider.unit_cost
        if self.price_ratio is None:
            if self.start_ratio_ is None:
                start = provider.base_cost if self.price_basis == "cost" else basis
                with np.errstate(divide="ignore", invalid="ignore"):
                    self.start_ratio_ = np.where(start > 0, provider.initial_prices / start, 1.0)
            ratio = self.start_ratio_ * (1.0 - self.price_cut)
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
        return self.plan_capex_per_quarter(market) * demand_weights(provider)


class MarginController:
    """Prices that follow unit cost and steer the operating margin of its list prices into a band.

    Each call: prices x (unit cost now / unit cost at the last call) x step, with
    step = ((1 - m) / (1 - m_band))^speed within 1 -/+ ``max_step``, m the operating margin last
    quarter's volume would have earned at the list prices (1 - last quarter's costs / list price x
    served volume: the margin of the business it signs; with one-quarter contracts the operating
    margin itself) and m_band the nearest edge of [target, target + band] (1 inside the band). Never
    below unit cost. Starts from the provider's current prices.
    """

    def __init__(self, provider: Provider, target: float, band: float):
        self.target, self.band = target, band
        self.base, self.cost = provider.prices.copy(), provider.unit_cost.copy()

    def prices(self, provider: Provider, speed: float, max_step: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            cost_change = np.where(self.cost > 0, provider.unit_cost / self.cost, 1.0)
        step = 1.0
        books = provider.history[-1] if provider.history else None
        # The margin its list prices earn (last quarter's costs against its volume at list prices):
        # a list price reaches customers only as they renew, so steering the realised margin
        # would keep cutting for a year after the cut that was enough.
        at_list = float((provider.prices * books.served_volume).sum()) if books is not None else 0.0
        if at_list > 0:
            costs = float(books.revenue.sum() - books.operating_income.sum())
            margin = 1.0 - costs / at_list
            edge = min(max(margin, self.target), min(self.target + self.band, 0.99))
            step = min(max(((1.0 - margin) / (1.0 - edge)) ** speed, 1.0 - max_step), 1.0 + max_step)
        self.base = np.maximum(self.base * cost_change * step, provider.unit_cost)
        self.cost = provider.unit_cost.copy()
        return self.base


@dataclass
class MarginDiscipline(RivalMatching):
    """AWS's playbook: hold the operating margin in [target_margin, target_margin + margin_band].

    Prices follow unit cost (each market keeps its markup) and, when last quarter's operating
    margin m left the band, all move by ((1 - m) / (1 - m_band))^adjust_speed, m_band being the
    nearest edge of the band, at most ``max_step`` a quarter either way (so a margin below target
    raises prices, a margin above the band cuts them). ``match`` follows rivals' price cuts
    (:func:`match_rivals`; 0 = ignore them). Never below unit cost.

    Capex: the utilisation rule at ``target_utilisation``, building for the trend of demand
    growth times ``growth_response``. Learned state: ``controller_`` (the margin controller,
    from the starting prices).
    """

    kind: ClassVar[str] = "margin_discipline"
    target_margin: float = _target_margin(0.30, "lower edge of the operating-margin band")
    margin_band: float = param(0.06, unit="fraction of revenue", lo=0.0, hi=1.0, doc="width of the margin band")
    adjust_speed: float = param(
        0.5, unit="exponent", lo=0.0, hi=5.0, doc="how hard prices react to a margin outside the band"
    )
    max_step: float = param(0.10, unit="fraction per quarter", lo=0.0, hi=0.9, doc="largest price move a quarter")
    growth_response: float = _growth_response(1.0)

    @property
    def growth_multiplier(self) -> float:
        return self.growth_response

    def start(self, provider: Provider, market: CloudMarket) -> None:
        super().start(provider, market)
        self.controller_ = MarginController(provider, self.target_margin, self.margin_band)

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        base = self.controller_.prices(provider, self.adjust_speed, self.max_step)
        return self.follow_rivals(provider, market, base)


@dataclass
class PlatformEmbedded(RivalMatching):
    """Tencent's playbook: AI sold through a consumer platform, lighter capex, GPU-limited capacity.

    Prices follow unit cost (each market keeps its starting markup) and match rivals' cuts by
    ``match`` (:func:`match_rivals`), never below unit cost. Short of capacity, it prices the
    scarcity by the rule every strategy shares (:meth:`Strategy.price_scarcity`: a premium that
    grows while it rations, prices that do not fall there). Capex: the utilisation rule run hot
    (``target_utilisation`` 0.9) and building for only ``growth_response`` of the demand trend,
    within the provider's GPU supply (its ``gpu_supply``; Tencent's is 5% a quarter in the
    baseline; :meth:`Strategy.supply_limit`). The playbook's edge is the provider's: its captive
    segment (``captive_share``, ``captive_bonus``: enterprises tied to its consumer platform).
    """

    kind: ClassVar[str] = "platform_embedded"
    target_utilisation: float = 0.9
    match: float = 1.0
    growth_response: float = _growth_response(0.5)

    @property
    def growth_multiplier(self) -> float:
        return self.growth_response

    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        return self.follow_rivals(provider, market, cost_following_prices(provider))


@dataclass
class PriceCut(Strategy):
    """Cut one product's price by ``cut`` in quarter ``at_quarter`` and hold it, as in the May 2024 price war.

    Before and after the cut, prices follow unit cost (each market keeps its starting markup);
    from ``at_quarter`` on, ``product`` in ``region`` (a region name or ``"all"``) is priced at
    (1 - cut) x that. ``cut = 0`` is the same playbook without the cut (the counterfactual).
    Capex by the utilisation rule.
    """

    kind: ClassVar[str] = "price_cut"
    product: str = param("ai", unit="product name", doc="the product whose price is cut")
    region: str = param("china", unit="region name or 'all'", doc="where the price is cut")
    cut: float = param(0.97, unit="fraction of price", lo=0.0, hi=1.0, doc="the cut: price x (1 - cut)")
    at_quarter: int | str = _quarter(2, 1, "first quarter of the cut price (a step, or a calendar quarter like 2026Q2)")

    def check_scenario(self, scenario: Scenario) -> None:
        super().check_scenario(scenario)
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

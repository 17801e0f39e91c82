"""The enterprise rules written the plain Mesa way: one agent per enterprise.

:class:`cloudwar.model.market.CloudMarket` holds the enterprises in numpy arrays and moves them all at
once. This module is the same model written the way a Mesa user would write it first: every
enterprise is an :class:`EnterpriseAgent` with its own attributes and current providers, placed
in a cell of a :class:`mesa.discrete_space.Network`, looking at its neighbours through that
network, and scoring providers with the same :func:`cloudwar.model.demand.utility` and
:func:`cloudwar.model.demand.logit_probabilities`, one enterprise at a time. It is small on purpose:
it is the specification a reader can follow line by line, the yardstick the fast engine is
tested against (``tests/test_reference.py``) and measured against (``benchmarks/``).

What is shared with the fast engine, and what is not:

* **Shared: the starting state.** :meth:`ReferenceMarket.from_market` copies a freshly built
  CloudMarket's enterprises (the :class:`~cloudwar.model.enterprises.Enterprises` arrays:
  attributes, platform ties, starting providers, AI adopters), its network, its volume
  calibration and the state of both its random number generators. Building
  the starting state is not what the reference checks; the quarter's rules are.
* **Shared: the provider side.** Provider agents, strategies and the finance are
  :mod:`cloudwar.model.providers` and :mod:`cloudwar.strategies` unchanged; the market-wide steps and
  read-outs of the provider side (``update_ecosystems``, ``prices``, ``rival_prices``,
  ``hardware_factor``) are CloudMarket's own, and the market-wide demand growth is
  :func:`cloudwar.model.demand.demand_growth_factor` (the same for every buyer of a product).
* **Not shared: every enterprise rule.** Adoption, who re-evaluates, utilities, choice,
  switching, churn, volumes and the demand tally are written here, per agent, without the
  engine's arrays.

Randomness: every draw is ``self.rng.random()``, one uniform per enterprise that needs one, taken
in enterprise order, in the order of events of :meth:`CloudMarket.step`. The engine draws the
same uniforms as blocks (``rng.random(n)`` gives the same numbers as ``n`` calls of
``rng.random()``), so a ReferenceMarket built from a CloudMarket consumes the same stream and
makes the same choices, which the tests check. (The engine computes choice utilities in float32;
a choice could differ only if a uniform fell within about 1e-7 of a cumulative probability,
which has not happened in 20 seeds x 2,000 enterprises x 24 quarters.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mesa
import numpy as np
from mesa.discrete_space import FixedAgent
from mesa.discrete_space import Network as CellNetwork

from cloudwar.model.demand import demand_growth_factor, logit_probabilities, sample_choices, utility
from cloudwar.model.market import CloudMarket, DemandCurve
from cloudwar.model.providers import Provider
from cloudwar.scenario import Scenario


class EnterpriseAgent(FixedAgent):
    """One enterprise: its own attributes, its current provider per product, a cell in the network.

    ``providers[k]`` is the provider index bought for product k (``P`` = the outside option).
    """

    def __init__(
        self,
        model: ReferenceMarket,
        cell: Any,
        *,
        region: int,
        size: float,
        price_sensitivity: float,
        quality_sensitivity: float,
        switching_cost: float,
        contract_phase: int,
        providers: list[int],
        adopted: bool,
        adopted_quarter: int,
        platform: int,
    ):
        super().__init__(model)
        self.cell = cell
        self.region = region  # index into model.region_names
        self.size = size  # relative spend, mean about 1
        self.price_sensitivity = price_sensitivity  # multiplier on price / reference price
        self.quality_sensitivity = quality_sensitivity  # multiplier on quality
        self.switching_cost = switching_cost  # utility units lost by leaving the current provider
        self.contract_phase = contract_phase  # quarter offset of contract renewals
        self.providers = providers
        self.adopted = adopted  # uses AI
        self.adopted_quarter = adopted_quarter  # -1 if not adopted
        self.platform = platform  # provider whose consumer platform I am tied to (captive segment), P = none
        # Decisions of this quarter, taken by everyone before anyone acts on them.
        self.will_adopt = False
        self.due = False
        self.choice = -1

    # --- what an enterprise sees -------------------------------------------------------------
    @property
    def neighbours(self) -> list[EnterpriseAgent]:
        return list(self.cell.neighborhood.agents)

    def adopted_neighbour_share(self) -> float:
        """Share of my neighbours that use AI (0 without neighbours)."""
        neighbours = self.neighbours
        return sum(other.adopted for other in neighbours) / len(neighbours) if neighbours else 0.0

    def neighbour_provider_shares(self, k: int) -> np.ndarray:
        """Share of my neighbours buying product k from each provider, (P,) (0 without neighbours)."""
        counts = np.zeros(self.model.n_providers)
        neighbours = self.neighbours
        for other in neighbours:
            if other.providers[k] < self.model.n_providers:
                counts[other.providers[k]] += 1
        return counts / len(neighbours) if neighbours else counts

    def utilities(self, k: int, prices: np.ndarray | None = None) -> np.ndarray:
        """My utility of each provider for product k, (P,) utility units, at ``prices`` (default: current)."""
        market = self.model
        w = market.config.choice
        r = self.region
        n_p = market.n_providers
        # Non-price terms, added in the engine's order (a floating-point sum depends on it).
        extra = market.log_presence[:, r].copy()
        if w.ecosystem_weight:
            extra += w.ecosystem_weight * market.ecosystem
        if w.service_weight:
            extra += w.service_weight * np.log(np.maximum(market.service_level[:, r], 1e-6))
        if w.network_weight:
            extra += w.network_weight * self.neighbour_provider_shares(k)
        if self.platform < n_p:
            extra[self.platform] += market.captive_bonus[self.platform]
        if w.ai_pull and k == market.cloud and market.ai is not None and self.providers[market.ai] < n_p:
            extra[self.providers[market.ai]] += w.ai_pull
        if self.providers[k] < n_p:
            extra[self.providers[k]] += self.switching_cost
        return utility(
            market.quality[:, k, r],
            market.current_prices[:, k, r] if prices is None else prices,
            quality_sensitivity=self.quality_sensitivity,
            price_sensitivity=self.price_sensitivity,
            reference_price=market.products[k].reference_price,
            extra=extra,
        )

    def volume(self, k: int) -> float:
        """Units of product k I buy this quarter if served in full."""
        market = self.model
        growth = demand_growth_factor(market.products[k], market.quarter)
        volume = self.size * market.volume_scale[k, self.region] * growth
        if k == market.ai:
            if not self.adopted:
                return 0.0
            spec = market.config.adoption
            age = max(market.quarter - self.adopted_quarter, 0)
            volume *= min((1.0 + spec.usage_growth) ** (age / 4.0), spec.usage_cap)
        return volume

    # --- AI adoption (Bass on the network) --------------------------------------------------
    def consider_adopting(self) -> None:
        """Decide to adopt with hazard (p + q x adopted share of my neighbours) / substeps."""
        spec = self.model.config.adoption
        hazard = (spec.innovation + spec.imitation * self.adopted_neighbour_share()) / spec.substeps
        self.will_adopt = self.rng.random() < hazard

    def adopt(self) -> None:
        self.adopted = True
        self.adopted_quarter = self.model.quarter

    # --- choosing a provider ----------------------------------------------------------------
    def check_contract(self, k: int) -> None:
        """Am I due to re-evaluate product k: my contract is up, or (AI) I adopted this quarter."""
        market = self.model
        self.due = (market.quarter + self.contract_phase) % market.products[k].contract_quarters == 0
        if k == market.ai:
            self.due = (self.due or self.adopted_quarter == market.quarter) and self.adopted

    def reconsider_if_rationed(self, k: int) -> None:
        """A customer not due, whose provider served only part of its demand last quarter,
        re-evaluates early with probability rationed_reevaluation x the unserved share."""
        market = self.model
        j = self.providers[k]
        if self.due or j == market.n_providers:
            return
        unserved = 1.0 - market.service_level[j, self.region]
        if unserved > 0 and self.rng.random() < market.config.choice.rationed_reevaluation * unserved:
            self.due = True

    def choose_provider(self, k: int) -> None:
        """Pick a provider for product k by logit (inverse CDF of one uniform); acted on in :meth:`switch`."""
        product = self.model.products[k]
        probabilities, _ = logit_probabilities(self.utilities(k), product.outside_quality, product.logit_scale)
        self.choice = int(sample_choices(probabilities[None, :], np.array([self.rng.random()]))[0])

    def switch(self, k: int) -> None:
        """Act on my choice; leaving a provider counts as its churn."""
        market = self.model
        old = self.providers[k]
        if self.choice != old:
            if old < market.n_providers:
                market.churn[old, k, self.region] += 1
            self.providers[k] = self.choice


class ReferenceMarket(mesa.Model):
    """The market with one Mesa agent per enterprise; same scenario, same rules as CloudMarket.

    ``ReferenceMarket(scenario, rng=seed, ...)`` takes CloudMarket's arguments and starts from
    the state ``CloudMarket(scenario, rng=seed, ...)`` starts from, so the two runs are the same
    run (up to floating-point rounding); see :meth:`from_market`.
    """

    def __init__(
        self,
        scenario: str | Path | Scenario = "baseline",
        *,
        rng: Any = None,
        overrides: dict[str, Any] | None = None,
        market: CloudMarket | None = None,
        **settings: Any,
    ):
        super().__init__()
        start = market if market is not None else CloudMarket(scenario, rng=rng, overrides=overrides, **settings)
        if start.quarter != 0:
            raise ValueError("a ReferenceMarket starts from a CloudMarket that has not stepped yet")
        # Continue the starting market's random streams from where its construction left them.
        self.rng.bit_generator.state = start.rng.bit_generator.state
        self.random.setstate(start.random.getstate())

        self.config: Scenario = start.config
        s = self.config
        self.product_names, self.region_names, self.provider_names = s.product_names, s.region_names, s.provider_names
        self.products = [s.products[k] for k in self.product_names]
        self.capacity = s.capacity
        self.capacity_limited = s.capacity.limited
        self.compute_per_unit = np.array([p.compute_per_unit for p in self.products])
        self.ai = self.product_names.index("ai") if "ai" in self.product_names else None
        self.cloud = self.product_names.index("cloud") if "cloud" in self.product_names else None
        self.choice_order = sorted(range(len(self.products)), key=lambda k: k != self.ai)  # AI first
        self.quarter = 0

        # Providers: the engine's own agents, built afresh from the scenario.
        self.providers_list = [Provider(self, spec, j) for j, spec in enumerate(s.providers)]
        self.providers = self.agents_by_type[Provider]
        self.n_providers = len(self.providers_list)
        self.quality = np.array([p.quality for p in self.providers_list])  # (P, K, R), utility units
        with np.errstate(divide="ignore"):
            self.log_presence = np.log(np.array([p.presence for p in self.providers_list]))  # (P, R)
        self.ecosystem = np.array([p.ecosystem for p in self.providers_list])  # (P,), strength index
        self.captive_bonus = np.array([spec.captive_bonus for spec in s.providers])  # (P,), utility units
        self.current_prices = self.prices  # (P, K, R), USD per unit
        self.service_level = np.array([p.service_level for p in self.providers_list])  # (P, R)

        # Starting state of the enterprises, copied from the starting market.
        self.volume_scale = start.enterprises.volume_scale.copy()  # calibrated to regions' market sizes at the start
        self.mean_price_sensitivity = start.mean_price_sensitivity
        self.grid = CellNetwork(start.network.to_networkx(), capacity=1, random=self.random, layout=None)
        pop = start.enterprises
        for i in range(pop.n):
            EnterpriseAgent(
                self,
                self.grid[i],
                region=int(pop.region[i]),
                size=float(pop.size[i]),
                price_sensitivity=float(pop.price_sensitivity[i]),
                quality_sensitivity=float(pop.quality_sensitivity[i]),
                switching_cost=float(pop.switching_cost[i]),
                contract_phase=int(pop.contract_phase[i]),
                providers=[int(j) for j in pop.provider[:, i]],
                adopted=bool(pop.adopted[i]),
                adopted_quarter=int(pop.adopted_quarter[i]),
                platform=self.n_providers if pop.platform is None else int(pop.platform[i]),
            )
        self.enterprises = self.agents_by_type[EnterpriseAgent]  # in enterprise order
        self.enterprise_list: list[EnterpriseAgent] = list(self.enterprises)
        self.oracle_agents = [self.enterprise_list[i] for i in start.oracle_sample]

        self.churn = np.zeros((self.n_providers, len(self.products), len(self.region_names)))
        self._curves: dict[tuple[int, int], DemandCurve] = {}
        if self.capacity_limited:
            demand, _, _ = self.tally()
            compute = (demand * self.compute_per_unit[None, :, None]).sum(axis=1)
            for j, provider in enumerate(self.providers_list):
                provider.install_starting_capacity(compute[j], provider.spec.initial_utilisation)
                provider.compute_demand = compute[j]
        self.records: list[dict[str, Any]] = []
        self.datacollector = mesa.DataCollector(
            model_reporters={"quarter": "quarter", "ai_adoption": "ai_adoption", "total_revenue": "total_revenue"}
        )
        self.running = True

    @classmethod
    def from_market(cls, market: CloudMarket) -> ReferenceMarket:
        """The reference twin of a freshly built CloudMarket: same enterprises, network and random state."""
        return cls(market.config, market=market)

    # =========================================================================================
    # The quarter, in CloudMarket.step's order of events
    # =========================================================================================
    def step(self) -> None:
        """One quarter: strategies decide, capacity and ecosystems, AI adoption, choices (AI first), rationing, books."""
        self.quarter += 1
        self._curves.clear()
        self.providers.shuffle_do("decide")
        self.providers.do("apply_decision")
        self.update_ecosystems()
        self.current_prices = self.prices
        self.ecosystem = np.array([p.ecosystem for p in self.providers_list])
        self.diffuse_ai()
        for k in self.choice_order:
            self.choose_providers(k)
        served, served_share, compute = self.ration_capacity()
        self.book(served, served_share, compute)
        self.datacollector.collect(self)
        if self.quarter >= self.config.quarters:
            self.running = False

    def run(self, quarters: int | None = None) -> None:
        for _ in range(self.config.quarters if quarters is None else quarters):
            self.step()

    def diffuse_ai(self) -> None:
        """Bass adoption in sub-steps; within a sub-step everyone decides before anyone adopts."""
        if self.ai is None:
            return
        for _ in range(self.config.adoption.substeps):
            candidates = self.enterprises.select(lambda a: not a.adopted)
            if len(candidates) == 0:
                return
            candidates.do("consider_adopting")
            candidates.select(lambda a: a.will_adopt).do("adopt")

    def choose_providers(self, k: int) -> None:
        """Enterprises due re-evaluate product k; everyone chooses before anyone switches."""
        self.churn[:, k, :] = 0.0
        self.enterprises.do("check_contract", k)
        self.enterprises.do("reconsider_if_rationed", k)
        due = self.enterprises.select(lambda a: a.due)
        due.do("choose_provider", k)
        due.do("switch", k)

    def tally(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every enterprise's purchases: volume demanded (P, K, R), customers (P, K, R), AI adopters (R,)."""
        n_p, n_k, n_r = self.n_providers, len(self.products), len(self.region_names)
        demand = np.zeros((n_p + 1, n_k, n_r))  # the last row is the outside option
        customers = np.zeros((n_p + 1, n_k, n_r), dtype=np.int64)
        adopters = np.zeros(n_r)
        for enterprise in self.enterprise_list:
            r = enterprise.region
            for k in range(n_k):
                demand[enterprise.providers[k], k, r] += enterprise.volume(k)
                customers[enterprise.providers[k], k, r] += 1
            adopters[r] += enterprise.adopted
        return demand[:n_p], customers[:n_p], adopters

    def ration_capacity(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Proportional rationing. Returns served volume (P, K, R), served share (P, R), compute demand (P, R)."""
        demand, self._customers, self._adopters = self.tally()
        self._demand = demand
        compute = (demand * self.compute_per_unit[None, :, None]).sum(axis=1)
        capacity = np.array([p.capacity_in_service(self.quarter) for p in self.providers_list])
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(compute > capacity, capacity / compute, 1.0)
        return demand * share[:, None, :], share, compute

    def book(self, served: np.ndarray, served_share: np.ndarray, compute: np.ndarray) -> None:
        """Every provider books the quarter; a record in CloudMarket's format is kept."""
        books = [
            p.book(self.quarter, served[j], compute[j], served_share[j]) for j, p in enumerate(self.providers_list)
        ]
        self.service_level = np.array([p.service_level for p in self.providers_list])
        n_r = len(self.region_names)
        enterprises = np.bincount([e.region for e in self.enterprise_list], minlength=n_r)
        self.records.append(
            {
                "quarter": self.quarter,
                "price": self.prices.copy(),
                "customers": self._customers,
                "demand_volume": self._demand,
                "churned": self.churn.copy(),
                "ai_adoption": self._adopters / np.maximum(enterprises, 1) if self.ai is not None else np.zeros(n_r),
                "books": books,
            }
        )

    # =========================================================================================
    # What strategies may read (provider side: CloudMarket's own)
    # =========================================================================================
    prices = CloudMarket.prices
    update_ecosystems = CloudMarket.update_ecosystems
    rival_prices = CloudMarket.rival_prices
    hardware_factor = CloudMarket.hardware_factor
    total_revenue = CloudMarket.total_revenue

    def demand_curve(self, k: int, r: int) -> DemandCurve:
        """Expected demand in market (product k, region r), estimated on the oracle sample, agent by agent."""
        if (k, r) in self._curves:
            return self._curves[(k, r)]
        product = self.products[k]
        everyone = [a for a in self.enterprise_list if a.region == r]
        sample = [a for a in self.oracle_agents if a.region == r] or everyone[: self.config.oracle_sample]
        reevaluation = 1.0 / product.contract_quarters
        if k != self.ai or any(a.adopted for a in sample):
            if k == self.ai:  # only adopters buy AI
                sample, everyone = [a for a in sample if a.adopted], [a for a in everyone if a.adopted]
            weights = np.array([a.volume(k) for a in sample])
            population_volume = np.array([a.volume(k) for a in everyone]).sum()
        else:  # nobody buys yet: the curve of potential first-time buyers, by size
            reevaluation = 1.0
            weights = np.array([a.size for a in sample])
            population_volume = np.array([a.size for a in everyone]).sum()
        no_prices = np.zeros(self.n_providers)
        curve = DemandCurve(
            base=np.array([a.utilities(k, no_prices) for a in sample]),
            price_coef=np.array([a.price_sensitivity for a in sample]) / product.reference_price,
            weights=weights,
            current=np.array([a.providers[k] if reevaluation < 1.0 else self.n_providers for a in sample]),
            reevaluation=reevaluation,
            scale=population_volume / weights.sum() if weights.sum() > 0 else 0.0,
            outside_utility=product.outside_quality,
            logit_scale=product.logit_scale,
        )
        self._curves[(k, r)] = curve
        return curve

    # =========================================================================================
    # Observation
    # =========================================================================================
    @property
    def ai_adoption(self) -> float:
        """Share of enterprises that have adopted AI."""
        if self.ai is None:
            return 0.0
        return sum(a.adopted for a in self.enterprise_list) / len(self.enterprise_list)

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
  wallets (which providers an enterprise uses and how it splits its spend), contracts (the
  quarter it signed, whose list prices it pays), switching, churn both ways, volumes and the
  demand tally are written here, per agent, without the engine's arrays.

The rules an enterprise follows for each product (AI first), as :class:`EnterpriseAgent` writes
them: it signs anew when its contract is up, when it first adopts AI, or early (with chance
``rationed_reevaluation`` x the unserved share of its wallet) when its providers rationed it.
Signing is one logit draw over the providers and the outside option, its switching cost on
every provider it already uses. A drawn member keeps the wallet as it is; the outside option
ends it; a newcomer replaces the weaker member (or fills an empty second slot; without a wallet,
replaces the only provider); a first-time buyer that holds a wallet (the largest
``multi_homing_share`` of enterprises) draws its second provider from the logit without its
first and the outside option. The members then split the spend by their logit weights, the
larger share being the primary, which is what its neighbours see. It pays, until it signs again,
the list prices of the quarter it signed (``price_log``).

Randomness: every draw is ``self.rng.random()``, one uniform per enterprise that needs one, taken
in enterprise order, in the order of events of :meth:`CloudMarket.step`: for each product, the
rationed customers' early re-evaluations, then one uniform per enterprise signing, then one
more per first-time wallet buyer. The engine draws the same uniforms as blocks (``rng.random(n)``
gives the same numbers as ``n`` calls of ``rng.random()``), so a ReferenceMarket built from a
CloudMarket consumes the same stream and makes the same choices, which the tests check. (The
engine computes choice utilities in float32; a choice could differ only if a uniform fell within
about 1e-7 of a cumulative probability, which has not happened in the tests' runs. The wallet
splits follow the utilities to about 1e-7; both keep them in float32.)
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
    """One enterprise: its own attributes, its wallet and contract per product, a cell in the network.

    Per product k: ``providers[k]`` is its primary provider (``P`` = it buys nothing of k),
    ``seconds[k]`` its second provider (``P`` = none), ``shares[k]`` the primary's share of its
    spend (the second gets the rest; 1 without a second) and ``signed[k]`` the quarter it signed
    its current contract (0 = before the start), whose list prices it pays until it renews.
    Only the largest enterprises hold a two-provider wallet (``wallet``); the others buy each
    product from one provider.
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
        seconds: list[int],
        shares: list[float],
        signed: list[int],
        wallet: bool,
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
        self.switching_cost = switching_cost  # utility units, on each provider I already use
        self.contract_phase = contract_phase  # quarter offset of contract renewals
        self.providers = providers  # primary provider per product, P = none
        self.seconds = seconds  # second provider per product, P = none
        self.shares = shares  # the primary's share of my spend per product
        self.signed = signed  # quarter my current contract per product was signed
        self.wallet = wallet  # I split each product between two providers
        self.adopted = adopted  # uses AI
        self.adopted_quarter = adopted_quarter  # -1 if not adopted
        self.platform = platform  # provider whose consumer platform I am tied to (captive segment), P = none
        # Decisions of this quarter, taken by everyone before anyone acts on them.
        self.will_adopt = False
        self.due = False
        self.choice = -1  # the provider my logit draw picked (P = the outside option)
        self.second_choice = -1  # a first-time wallet buyer's second provider (P = none)
        self.choice_utilities = np.empty(0)  # my utilities at the draw, switching costs included
        self.plain_utilities = np.empty(0)  # the same without switching costs

    # --- what an enterprise sees -------------------------------------------------------------
    @property
    def neighbours(self) -> list[EnterpriseAgent]:
        return list(self.cell.neighborhood.agents)

    def adopted_neighbour_share(self) -> float:
        """Share of my neighbours that use AI (0 without neighbours)."""
        neighbours = self.neighbours
        return sum(other.adopted for other in neighbours) / len(neighbours) if neighbours else 0.0

    def neighbour_provider_shares(self, k: int) -> np.ndarray:
        """Share of my neighbours whose primary provider of product k is each provider, (P,)."""
        counts = np.zeros(self.model.n_providers)
        neighbours = self.neighbours
        for other in neighbours:
            if other.providers[k] < self.model.n_providers:
                counts[other.providers[k]] += 1
        return counts / len(neighbours) if neighbours else counts

    def members(self, k: int) -> list[int]:
        """The providers I buy product k from (none, one or two)."""
        n_p = self.model.n_providers
        return [j for j in (self.providers[k], self.seconds[k]) if j < n_p]

    def slots(self, k: int) -> list[tuple[int, float]]:
        """My product-k purchases: (provider, share of my volume) per provider I use."""
        return [
            (j, share)
            for j, share in ((self.providers[k], self.shares[k]), (self.seconds[k], 1.0 - self.shares[k]))
            if j < self.model.n_providers
        ]

    def utilities(self, k: int, prices: np.ndarray | None = None) -> np.ndarray:
        """My utility of each provider for product k, (P,) utility units, at ``prices`` (default: current).

        Every provider I already use gets my switching cost (leaving either costs me a migration).
        """
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
        for j in self.members(k):
            extra[j] += self.switching_cost
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

    # --- choosing providers -----------------------------------------------------------------
    def check_contract(self, k: int) -> None:
        """Am I due to re-evaluate product k: my contract is up, or (AI) I adopted this quarter."""
        market = self.model
        self.due = (market.quarter + self.contract_phase) % market.products[k].contract_quarters == 0
        if k == market.ai:
            self.due = (self.due or self.adopted_quarter == market.quarter) and self.adopted

    def unserved_share(self, k: int) -> float:
        """Share of my product-k volume my providers could not serve last quarter."""
        market = self.model
        n_p = market.n_providers

        def short(j: int) -> float:  # the outside option never rations
            return 1.0 - market.service_level[j, self.region] if j < n_p else 0.0

        f = self.shares[k]
        return f * short(self.providers[k]) + (1.0 - f) * short(self.seconds[k])

    def reconsider_if_rationed(self, k: int) -> None:
        """A customer not due, whose providers served only part of its demand last quarter,
        re-evaluates early with probability rationed_reevaluation x the unserved share of its wallet."""
        market = self.model
        if self.due or self.providers[k] == market.n_providers:
            return
        unserved = self.unserved_share(k)
        if unserved > 0 and self.rng.random() < market.config.choice.rationed_reevaluation * unserved:
            self.due = True

    def choose_provider(self, k: int) -> None:
        """Sign a new product-k contract: one logit draw over providers and the outside option
        (inverse CDF of one uniform), switching costs on my members; acted on in :meth:`switch`."""
        product = self.model.products[k]
        self.signed[k] = self.model.quarter
        self.choice_utilities = self.utilities(k)
        self.plain_utilities = self.choice_utilities.copy()
        for j in self.members(k):
            self.plain_utilities[j] -= self.switching_cost
        probabilities, _ = logit_probabilities(self.choice_utilities, product.outside_quality, product.logit_scale)
        self.choice = int(sample_choices(probabilities[None, :], np.array([self.rng.random()]))[0])

    def choose_second(self, k: int) -> None:
        """A first-time buyer with a wallet draws its second provider: the logit over providers
        without its choice and the outside option (one more uniform; drawn after everyone's first)."""
        market = self.model
        if not (self.wallet and self.providers[k] == market.n_providers and self.choice < market.n_providers):
            return
        u = self.plain_utilities  # no members yet: no switching costs in it
        weights = np.exp((u - u.max()) / market.products[k].logit_scale)
        weights[self.choice] = 0.0
        total = weights.sum()
        uniform = self.rng.random()  # drawn even when no other provider is available
        self.second_choice = (
            int(sample_choices((weights / total)[None, :], np.array([uniform]))[0]) if total > 0 else market.n_providers
        )

    def switch(self, k: int) -> None:
        """Act on my choice: the new members of my wallet, their split, and the churn both ways.

        The choice c is a member: I keep both. The outside option: I stop buying. A newcomer:
        it replaces my weaker member (lower utility), fills my empty second slot, or, with no
        wallet, replaces my only provider; if I bought nothing, c becomes my provider (and, with a
        wallet, so does my second choice). The members split my spend by their logit weights
        without switching costs, share of x = 1 / (1 + exp((V_y - V_x) / (s mu))), s the scenario's
        ``choice.split_scale``; the larger share
        is the primary, kept in float32 as the engine keeps it (it decides who counts as rationed).
        """
        market = self.model
        n_p = market.n_providers
        mu = market.products[k].logit_scale
        a, b, before_a = self.providers[k], self.seconds[k], self.shares[k]
        c, u = self.choice, self.choice_utilities
        if c == n_p:
            x, y = n_p, n_p
        elif c in (a, b):
            x, y = a, b
        elif a == n_p:
            x, y = c, (self.second_choice if self.wallet else n_p)
        elif not self.wallet:
            x, y = c, n_p
        elif b < n_p and u[a] < u[b]:
            x, y = c, b  # the newcomer replaces my weaker member, the primary
        else:
            x, y = a, c  # ... my second, or fills my empty slot
        f = 1.0
        if x < n_p and y < n_p:
            gap = (self.plain_utilities[y] - self.plain_utilities[x]) / (mu * market.config.choice.split_scale)
            f = 1.0 / (1.0 + np.exp(min(gap, 700.0)))
            if f < 0.5:
                x, y, f = y, x, 1.0 - f
        if x == n_p:
            y = n_p
        self.providers[k], self.seconds[k], self.shares[k] = x, y, float(np.float32(f))
        # Churn both ways: customers leaving a provider entirely, and the volume moved away from it.
        volume = self.volume(k)
        after = dict(self.slots(k))
        for member, before in ((a, before_a), (b, 1.0 - before_a)):
            if member == n_p:
                continue
            if member not in after:
                market.churn[member, k, self.region] += 1
            market.volume_moved[member, k, self.region] += volume * max(before - after.get(member, 0.0), 0.0)


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
        n_k = len(self.products)
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
                seconds=[self.n_providers] * n_k if pop.second is None else [int(j) for j in pop.second[:, i]],
                shares=[1.0] * n_k if pop.share is None else [float(f) for f in pop.share[:, i]],
                signed=[int(q) for q in pop.signed[:, i]],
                wallet=pop.two_slots is not None and bool(pop.two_slots[i]),
                adopted=bool(pop.adopted[i]),
                adopted_quarter=int(pop.adopted_quarter[i]),
                platform=self.n_providers if pop.platform is None else int(pop.platform[i]),
            )
        self.enterprises = self.agents_by_type[EnterpriseAgent]  # in enterprise order
        self.enterprise_list: list[EnterpriseAgent] = list(self.enterprises)
        self.oracle_agents = [self.enterprise_list[i] for i in start.oracle_sample]

        self.wallets = pop.wallets  # some enterprises split a product between two providers
        # List prices by quarter (index 0: the starting prices, which contracts signed before the start pay).
        self.price_log: list[np.ndarray] = [self.prices]
        self.churn = np.zeros((self.n_providers, len(self.products), len(self.region_names)))
        self.volume_moved = np.zeros_like(self.churn)
        self._curves: dict[tuple[int, int], DemandCurve] = {}
        if self.capacity_limited:
            demand = self.tally()[0]
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
        self.price_log.append(self.prices)  # the list prices this quarter's signers agree to
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
        """Enterprises due sign product k anew; everyone draws (first draws, then the first-time
        wallet buyers' second draws) before anyone switches."""
        self.churn[:, k, :] = 0.0
        self.volume_moved[:, k, :] = 0.0
        self.enterprises.do("check_contract", k)
        self.enterprises.do("reconsider_if_rationed", k)
        due = self.enterprises.select(lambda a: a.due)
        due.do("choose_provider", k)
        due.do("choose_second", k)
        due.do("switch", k)

    def tally(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every enterprise's purchases, (P, K, R) each: volume demanded (units per quarter),
        customers (a wallet counts for both its providers), realised price (USD per unit: what the
        customers' contracts agreed, volume-weighted; the list price where nobody buys); and AI
        adopters (R,)."""
        n_p, n_k, n_r = self.n_providers, len(self.products), len(self.region_names)
        demand = np.zeros((n_p, n_k, n_r))
        paid = np.zeros((n_p, n_k, n_r))  # USD per quarter at the contract prices
        customers = np.zeros((n_p, n_k, n_r), dtype=np.int64)
        adopters = np.zeros(n_r)
        for enterprise in self.enterprise_list:
            r = enterprise.region
            for k in range(n_k):
                volume = enterprise.volume(k)
                contract = self.price_log[enterprise.signed[k]]
                for j, share in enterprise.slots(k):
                    demand[j, k, r] += volume * share
                    paid[j, k, r] += volume * share * contract[j, k, r]
                    customers[j, k, r] += 1
            adopters[r] += enterprise.adopted
        with np.errstate(divide="ignore", invalid="ignore"):
            realised = np.where(demand > 0, paid / demand, self.prices)
        return demand, customers, realised, adopters

    def multi_homing(self) -> tuple[np.ndarray, np.ndarray]:
        """Buyers of each product in each region, and those of them buying it from two providers: (K, R) each."""
        n_k, n_r = len(self.products), len(self.region_names)
        buyers, both = np.zeros((n_k, n_r)), np.zeros((n_k, n_r))
        for enterprise in self.enterprise_list:
            for k in range(n_k):
                members = len(enterprise.members(k))
                buyers[k, enterprise.region] += members > 0
                both[k, enterprise.region] += members == 2
        return buyers, both

    def ration_capacity(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Proportional rationing. Returns served volume (P, K, R), served share (P, R), compute demand (P, R)."""
        demand, self._customers, self._realised, self._adopters = self.tally()
        self._demand = demand
        compute = (demand * self.compute_per_unit[None, :, None]).sum(axis=1)
        capacity = np.array([p.capacity_in_service(self.quarter) for p in self.providers_list])
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(compute > capacity, capacity / compute, 1.0)
        return demand * share[:, None, :], share, compute

    def book(self, served: np.ndarray, served_share: np.ndarray, compute: np.ndarray) -> None:
        """Every provider books the quarter; a record in CloudMarket's format is kept."""
        books = [
            p.book(self.quarter, served[j], compute[j], served_share[j], self._realised[j])
            for j, p in enumerate(self.providers_list)
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
                "volume_moved": self.volume_moved.copy(),
                "multi_homing": self.multi_homing(),
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
        """Expected demand in market (product k, region r), estimated on the oracle sample, agent by agent.

        The volume that signs: the renewing share of the buyers' volume and, for AI, the
        non-adopters weighted by their chance of adopting this quarter (first-time buyers).
        """
        if (k, r) in self._curves:
            return self._curves[(k, r)]
        product = self.products[k]
        everyone = [a for a in self.enterprise_list if a.region == r]
        sample = [a for a in self.oracle_agents if a.region == r] or everyone[: self.config.oracle_sample]
        reevaluation = 1.0 / product.contract_quarters
        newcomers = None
        if k == self.ai:
            newcomers = self._newcomer_curve(
                k, r, [a for a in sample if not a.adopted], [a for a in everyone if not a.adopted]
            )
        if k != self.ai or any(a.adopted for a in sample):
            if k == self.ai:  # only adopters buy AI
                sample, everyone = [a for a in sample if a.adopted], [a for a in everyone if a.adopted]
            weights = np.array([a.volume(k) for a in sample])
            population_volume = np.array([a.volume(k) for a in everyone]).sum()
        elif newcomers is not None:  # nobody buys yet: the first-time buyers are the whole curve
            self._curves[(k, r)] = newcomers
            return newcomers
        else:  # nobody buys yet nor is about to: the curve of potential first-time buyers, by size
            reevaluation = 1.0
            weights = np.array([a.size for a in sample])
            population_volume = np.array([a.size for a in everyone]).sum()
        curve = self._sample_curve(
            k, sample, weights, reevaluation, population_volume / weights.sum() if weights.sum() > 0 else 0.0
        )
        curve.newcomers = newcomers
        self._curves[(k, r)] = curve
        return curve

    def _sample_curve(
        self, k: int, sample: list[EnterpriseAgent], weights: np.ndarray, reevaluation: float, scale: float
    ) -> DemandCurve:
        """The demand curve of the agents ``sample`` (their wallets as they stand) with these weights."""
        product = self.products[k]
        no_prices = np.zeros(self.n_providers)
        wallets = {}
        if self.wallets:
            wallets = {
                "members": np.array([[a.providers[k], a.seconds[k]] for a in sample], dtype=np.intp).reshape(-1, 2),
                "wallet": np.array([a.wallet for a in sample], dtype=bool),
                "switching_cost": np.array([a.switching_cost for a in sample]),
                "split_scale": self.config.choice.split_scale,
            }
        return DemandCurve(
            base=np.array([a.utilities(k, no_prices) for a in sample]).reshape(len(sample), self.n_providers),
            price_coef=np.array([a.price_sensitivity for a in sample]) / product.reference_price,
            weights=weights,
            reevaluation=reevaluation,
            scale=scale,
            outside_utility=product.outside_quality,
            logit_scale=product.logit_scale,
            **wallets,
        )

    def _newcomer_curve(
        self, k: int, r: int, sample: list[EnterpriseAgent], everyone: list[EnterpriseAgent]
    ) -> DemandCurve | None:
        """The first-time AI buyers expected this quarter: each non-adopter of the sample weighted by
        its chance of adopting this quarter (Bass, over the substeps) times the volume it would start with."""
        if not sample or not everyone:
            return None
        spec = self.config.adoption
        growth = demand_growth_factor(self.products[k], self.quarter)
        weights = np.array(
            [
                (
                    1.0
                    - (1.0 - (spec.innovation + spec.imitation * a.adopted_neighbour_share()) / spec.substeps)
                    ** spec.substeps
                )
                * a.size
                * self.volume_scale[k, r]
                * growth
                for a in sample
            ]
        )
        if weights.sum() <= 0:
            return None
        scale = sum(a.size for a in everyone) / sum(a.size for a in sample)
        return self._sample_curve(k, sample, weights, 1.0, scale)

    # =========================================================================================
    # Observation
    # =========================================================================================
    @property
    def ai_adoption(self) -> float:
        """Share of enterprises that have adopted AI."""
        if self.ai is None:
            return 0.0
        return sum(a.adopted for a in self.enterprise_list) / len(self.enterprise_list)

"""CloudMarket: the quarter's order of events, readable top to bottom.

One step is one quarter:

1. **Strategies decide.** Every provider's strategy sets next prices (per product and region)
   and this quarter's capex, all from the same snapshot of last quarter (simultaneous moves).
2. **Capacity and ecosystems.** Capex is committed (cut to the GPU supply limit, if the strategy
   has one); it comes into service after the build lag. Ecosystem spend
   raises each spender's ecosystem strength, part of the gain leaks to rivals, and strength
   above a provider's funded floor decays (``ecosystem`` table; :meth:`CloudMarket.update_ecosystems`).
3. **AI adoption spreads** Bass-style through the network: each non-adopter adopts with
   probability (p + q x adopted share of its neighbours), in ``adoption.substeps`` sub-steps.
4. **Enterprises choose.** Those whose contract is up, new AI adopters, and customers left
   unserved last quarter (with a chance) re-evaluate by multinomial logit.
5. **Capacity rations.** Where a provider's compute demand exceeds its capacity in a region,
   every customer there is served the same fraction, capacity / demand (proportional
   rationing); that fraction is the provider's service level, which enters next quarter's
   utility and makes unserved customers re-evaluate early.
6. **Finance books** revenue, costs (ecosystem spend as operating cost), depreciation, capex,
   free cash flow and NPV.
7. **The collector records.**

Enterprises tied to a provider's consumer platform (the captive segment, drawn at the start
when some provider has a ``captive_share``) get that provider's ``captive_bonus`` in utility,
for every product.

All randomness comes from ``self.rng`` (Mesa 3.5: ``CloudMarket(scenario, rng=seed)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mesa
import numpy as np
import pandas as pd

from cloudwar.model.demand import logit_probabilities, sample_choices, sample_logit, utility
from cloudwar.model.enterprises import Enterprise, Population, draw_platform_ties, generate_population
from cloudwar.model.network import (
    CompleteNetwork,
    NeighbourCounts,
    Network,
    clustered_network,
    empty_network,
    networkx_clustered_network,
)
from cloudwar.model.providers import Provider
from cloudwar.scenario import Scenario, ScenarioError, load_scenario

#: Below this many enterprises a "clustered" network is built as networkx graphs (about 1 s per 5,000
#: enterprises); from it on, in numpy arrays (about 1 s per million links).
NETWORKX_LIMIT = 10_000


#: Enterprises processed at a time when drawing the starting state (bounds temporary memory).
STARTING_CHUNK = 1 << 17


class DemandCurve:
    """Expected volume per provider next quarter as a function of one market's prices.

    Built on the model's oracle sample of enterprises for one (product, region): the non-price
    utility is fixed, only the price term moves. Expected volume of provider j =
    scale x sum_i volume_i x [(1 - rho) x 1(current_i = j) + rho x P_ij(prices)], with rho the
    share of customers that re-evaluate in a quarter (1 / contract length) and scale the
    population's volume over the sample's.
    """

    def __init__(
        self,
        base: np.ndarray,
        price_coef: np.ndarray,
        weights: np.ndarray,
        current: np.ndarray,
        reevaluation: float,
        scale: float,
        outside_utility: float,
        logit_scale: float,
    ):
        n_providers = base.shape[1]
        self.base = base
        self.price_coef = price_coef
        self.weights = weights
        self.rho = reevaluation
        self.scale = scale
        self.outside = outside_utility
        self.mu = logit_scale
        stay = np.zeros(n_providers)
        inside = current < n_providers
        np.add.at(stay, current[inside], weights[inside])
        self.staying_volume = stay

    def quantities(self, prices: np.ndarray) -> np.ndarray:
        """Expected volume per provider (units per quarter) at ``prices`` (USD per unit, one per provider)."""
        v = self.base - self.price_coef[:, None] * prices[None, :]
        probs, _ = logit_probabilities(v, self.outside, self.mu)
        return self.scale * ((1.0 - self.rho) * self.staying_volume + self.rho * (self.weights @ probs))


class CloudMarket(mesa.Model):
    """Agent-based model of the AI cloud market.

    Args:
        scenario: a shipped scenario name, a TOML path, or a :class:`Scenario`.
        rng: seed or numpy Generator; all randomness flows from it.
        overrides: dotted-key overrides (``{"enterprises": 5000}``), applied before validation.
        **settings: more overrides as keyword arguments (so ``mesa.batch_run`` can vary them);
            dots are allowed through ``**{"choice.network_weight": 0.5}``.
    """

    def __init__(
        self,
        scenario: str | Path | Scenario = "baseline",
        *,
        rng: Any = None,
        overrides: dict[str, Any] | None = None,
        **settings: Any,
    ):
        super().__init__(rng=rng)
        self.config: Scenario = load_scenario(scenario, {**(overrides or {}), **settings})
        s = self.config
        self.product_names = s.product_names
        self.region_names = s.region_names
        self.provider_names = s.provider_names
        self.products = [s.products[k] for k in self.product_names]
        self.capacity = s.capacity
        self.capacity_limited = s.capacity.limited
        self.quarter = 0
        self.compute_per_unit = np.array([p.compute_per_unit for p in self.products])
        self._ai = self.product_names.index("ai") if "ai" in self.product_names else None
        self._cloud = self.product_names.index("cloud") if "cloud" in self.product_names else None

        self.providers_list = [Provider(self, spec, j) for j, spec in enumerate(s.providers)]
        self.providers = self.agents_by_type[Provider]
        n_p = len(self.providers_list)
        self.quality = np.array([p.quality for p in self.providers_list])  # (P, K, R)
        with np.errstate(divide="ignore"):
            self.log_presence = np.log(np.array([p.presence for p in self.providers_list]))  # (P, R)

        self.population: Population = generate_population(s, self.rng)
        self.population.platform = draw_platform_ties(s, self.population, self.rng)
        self.captive_bonus = (
            None if self.population.platform is None else np.array([p.captive_bonus for p in s.providers])
        )
        self.mean_price_sensitivity = float(self.population.price_sensitivity.mean())
        self.enterprises_by_region = np.bincount(self.population.region, minlength=len(self.region_names))
        self.network = self._build_network()
        pop = self.population
        if self._ai is not None:
            pop.adopted[:] = self.rng.random(pop.n) < s.adoption.initial_share
            pop.adopted_quarter[pop.adopted] = 0
        self.adoption_counts = self.network.counter(pop.adopted.astype(np.int8), 2)
        self.volume_scale = np.ones((len(self.products), len(self.region_names)))
        self._views: dict[int, Enterprise] = {}
        self._curves: dict[tuple[int, int], DemandCurve] = {}
        self.oracle_sample = np.sort(self.rng.choice(pop.n, size=min(pop.n, s.oracle_sample), replace=False))

        # AI first: the AI provider an enterprise buys from pulls its cloud workloads.
        self.choice_order = sorted(range(len(self.products)), key=lambda k: k != self._ai)
        counts: dict[int, NeighbourCounts] = {}
        for k in self.choice_order:
            self._choose_initial_providers(k)
            counts[k] = self.network.counter(pop.provider[k], n_p + 1)
        self.neighbour_counts: list[NeighbourCounts] = [counts[k] for k in range(len(self.products))]
        self._scale_volumes_to_market_size()
        self.churn = np.zeros((n_p, len(self.products), len(self.region_names)))
        if self.capacity_limited:
            demand = self._compute_demand_by_provider()
            for j, provider in enumerate(self.providers_list):
                provider.install_starting_capacity(demand[j], provider.spec.initial_utilisation)
                provider.compute_demand = demand[j]
        self.records: list[dict[str, Any]] = []
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "quarter": "quarter",
                "ai_adoption": "ai_adoption",
                "total_revenue": "total_revenue",
                "hhi": "hhi",
            },
            agenttype_reporters={
                Provider: {
                    "name": "name",
                    "revenue": "revenue",
                    "revenue_share": "revenue_share",
                    "operating_margin": "operating_margin",
                    "capex": "capex",
                    "free_cash_flow": "free_cash_flow",
                    "npv": "npv",
                }
            },
        )
        self.running = True

    # ======================================================================================
    # The quarter
    # ======================================================================================
    def step(self) -> None:
        """Advance one quarter."""
        self.quarter += 1
        self._curves.clear()
        self.providers.shuffle_do("decide")
        self.providers.do("apply_decision")
        self.update_ecosystems()
        self.diffuse_ai()
        for k in self.choice_order:
            self.choose_providers(k)
        demand, customers = self.tally()
        served, served_share, compute = self.ration_capacity(demand)
        self.book(demand, customers, served, served_share, compute)
        self.datacollector.collect(self)
        if self.quarter >= self.config.quarters:
            self.running = False

    def run(self, quarters: int | None = None, progress: Any = None) -> pd.DataFrame:
        """Run ``quarters`` steps (default: the scenario's) and return :meth:`results`."""
        for _ in range(self.config.quarters if quarters is None else quarters):
            self.step()
            if progress is not None:
                progress.update(1)
        return self.results()

    # --- 2. ecosystems ---------------------------------------------------------------------
    def update_ecosystems(self) -> None:
        """Spend raises strength, a share leaks to rivals, strength above the funded floor decays.

        gain_i = (1 - E_i) S_i / (S_i + half_gap_spend); E_i <- E_i - decay (E_i - floor_i) + gain_i
        + leak x sum_{j != i} gain_j, kept in [floor_i, 1] (see :class:`cloudwar.scenario.EcosystemSpec`).
        """
        spec = self.config.ecosystem
        spend = np.array([p.ecosystem_spend for p in self.providers_list])
        if spec.decay == 0.0 and not np.any(spend > 0):
            return
        strength = np.array([p.ecosystem for p in self.providers_list])
        floor = np.array([p.ecosystem_floor for p in self.providers_list])
        gain = (1.0 - strength) * spend / (spend + spec.half_gap_spend)
        leaked = spec.leak * (gain.sum() - gain)
        new = strength - spec.decay * np.maximum(strength - floor, 0.0) + gain + leaked
        for p, value in zip(self.providers_list, np.clip(new, floor, 1.0), strict=True):
            p.ecosystem = float(value)

    # --- 3. adoption -----------------------------------------------------------------------
    def diffuse_ai(self) -> None:
        """Bass diffusion on the network, in sub-steps of the quarter."""
        if self._ai is None:
            return
        spec = self.config.adoption
        pop = self.population
        substeps = spec.substeps
        for _ in range(substeps):
            candidates = np.flatnonzero(~pop.adopted)
            if len(candidates) == 0:
                return
            share = self.adoption_counts.state_share(candidates, 1)
            hazard = (spec.innovation + spec.imitation * share) / substeps
            new = candidates[self.rng.random(len(candidates)) < hazard]
            pop.adopted[new] = True
            pop.adopted_quarter[new] = self.quarter
            self.adoption_counts.move(new, np.zeros(len(new), dtype=np.int64), np.ones(len(new), dtype=np.int64))

    # --- 4. choice -------------------------------------------------------------------------
    def _utility(
        self,
        k: int,
        idx: np.ndarray,
        prices: np.ndarray,
        *,
        switching: bool = True,
        neighbour_shares: np.ndarray | None = None,
        dtype: type = np.float64,
    ) -> np.ndarray:
        """Utility (P, len(idx)) of each provider (rows) for product k, for enterprises ``idx`` (columns).

        ``prices`` (P, R): product k's price of each provider in each region, USD per unit.
        ``switching=False`` leaves out the switching cost; ``neighbour_shares`` (len(idx), P)
        replaces the network's neighbour shares (used for the starting state, before links count).
        ``dtype=np.float32`` halves memory traffic where the result is only sampled from.
        Providers go first because the choice sweeps whole rows of enterprises (see
        :func:`cloudwar.model.demand.sample_logit`); callers wanting (len(idx), P) take ``.T``.
        """
        pop = self.population
        w = self.config.choice
        product = self.products[k]
        region = pop.region[idx]
        n_p, m = len(self.providers_list), len(idx)
        # Terms that depend only on (provider, region): availability, ecosystem, service level.
        per_region = self.log_presence.copy()
        if w.ecosystem_weight:
            per_region += w.ecosystem_weight * np.array([p.ecosystem for p in self.providers_list])[:, None]
        if w.service_weight:
            service = np.array([p.service_level for p in self.providers_list])
            per_region += w.service_weight * np.log(np.maximum(service, 1e-6))
        # One row more than providers: bonuses aimed at the outside option land there and are dropped,
        # so every enterprise's bonus goes in with one flat index, no masks.
        terms = np.empty((n_p + 1, m), dtype=dtype)
        extra = terms[:n_p]
        terms[n_p] = 0.0
        np.take(per_region.astype(dtype), region, axis=1, out=extra, mode="clip")
        if w.network_weight and neighbour_shares is not None:
            extra += w.network_weight * neighbour_shares.T
        elif w.network_weight:
            self.neighbour_counts[k].add_shares(extra, idx, w.network_weight)
        flat = terms.reshape(-1)
        columns = np.arange(m)
        if self.captive_bonus is not None:
            tie = pop.platform[idx].astype(np.intp)
            bonus = np.append(self.captive_bonus, 0.0).astype(dtype)  # index P: tied to no platform
            flat[tie * m + columns] += bonus[tie]
        if w.ai_pull and k == self._cloud and self._ai is not None:
            flat[pop.provider[self._ai, idx].astype(np.intp) * m + columns] += dtype(w.ai_pull)
        if switching:
            flat[pop.provider[k, idx].astype(np.intp) * m + columns] += pop.switching_cost[idx].astype(
                dtype, copy=False
            )
        return utility(
            np.take(self.quality[:, k, :].astype(dtype), region, axis=1, mode="clip"),
            np.take(prices.astype(dtype), region, axis=1, mode="clip"),
            quality_sensitivity=pop.quality_sensitivity[idx].astype(dtype, copy=False),
            price_sensitivity=pop.price_sensitivity[idx].astype(dtype, copy=False),
            reference_price=product.reference_price,
            extra=extra,
            out=extra,
        )

    def choice_utilities(self, k: int, idx: np.ndarray) -> np.ndarray:
        """This quarter's utilities (len(idx), P) for product k at current prices."""
        return self._utility(k, idx, self.prices[:, k, :]).T

    def _eligible(self, k: int) -> np.ndarray | None:
        """Mask of enterprises that buy product k (AI: adopters only); None = everyone."""
        return self.population.adopted if k == self._ai else None

    def choose_providers(self, k: int) -> None:
        """Enterprises due to re-evaluate product k choose by logit; neighbour counts follow."""
        pop = self.population
        product = self.products[k]
        n_p = len(self.providers_list)
        current = pop.provider[k]
        # Reduce the quarter first: quarter + phase in int8 would overflow from quarter 65 (phase < 64).
        due = (self.quarter % product.contract_quarters + pop.contract_phase) % product.contract_quarters == 0
        if k == self._ai:
            due = (due | (pop.adopted_quarter == self.quarter)) & pop.adopted
        served = np.array([p.service_level for p in self.providers_list])  # (P, R)
        if np.any(served < 1.0):
            rationed = np.flatnonzero((served < 1.0).any(axis=1)).astype(current.dtype)  # usually one or two
            customers = np.flatnonzero(~due & np.isin(current, rationed))
            short = 1.0 - served[current[customers], pop.region[customers]]
            customers, short = customers[short > 0], short[short > 0]
            move = self.rng.random(len(customers)) < self.config.choice.rationed_reevaluation * short
            due[customers[move]] = True
        idx = np.flatnonzero(due)
        self.churn[:, k, :] = 0.0
        if len(idx) == 0:
            return
        utilities = self._utility(k, idx, self.prices[:, k, :], dtype=np.float32)
        choice = sample_logit(utilities, product.outside_quality, product.logit_scale, self.rng.random(len(idx)))
        choice = choice.astype(np.int8)
        old = current[idx]
        changed = choice != old
        who, was, now = idx[changed], old[changed].astype(np.int64), choice[changed].astype(np.int64)
        self.neighbour_counts[k].move(who, was, now)
        current[who] = choice[changed]
        left = was < n_p
        n_r = len(self.region_names)
        lost = np.bincount(was[left] * n_r + pop.region[who[left]], minlength=n_p * n_r).reshape(n_p, n_r)
        self.churn[:, k, :] = lost

    def starting_probabilities(self, k: int, idx: np.ndarray) -> np.ndarray:
        """Probabilities (len(idx), P + 1) of the starting state: the market already in its long-run mix.

        With a switching cost, the re-evaluation chain (logit with a bonus B = exp(sc / mu) for the
        current provider) is reversible with stationary distribution pi_j ~ p_j (1 + (B - 1) p_j)
        for providers and pi_0 ~ p_0 for the outside option, p being the plain logit. Neighbour
        shares are taken mean-field: each region's expected shares, iterated to a fixed point.
        """
        mix = self._starting_mix(k, idx)
        return np.concatenate([mix(idx[i : i + STARTING_CHUNK]) for i in range(0, len(idx), STARTING_CHUNK)])

    def _starting_mix(self, k: int, idx: np.ndarray, iterations: int = 5) -> Any:
        """The function rows -> starting probabilities, its mean-field neighbour shares fixed on ``idx``."""
        product = self.products[k]
        n_p = len(self.providers_list)
        n_r = len(self.region_names)
        pop = self.population

        def mix(rows: np.ndarray, regional: np.ndarray) -> np.ndarray:
            region = pop.region[rows]
            v = self._utility(k, rows, self.prices[:, k, :], switching=False, neighbour_shares=regional[region]).T
            p, p0 = logit_probabilities(v, product.outside_quality, product.logit_scale)
            bonus = np.exp(pop.switching_cost[rows] / product.logit_scale)[:, None] - 1.0
            pi = np.column_stack([p * (1.0 + bonus * p), p0])
            return pi / pi.sum(axis=1, keepdims=True)

        regional = np.zeros((n_r, n_p))
        if self.config.choice.network_weight:
            # The mean-field fixed point is found on an even subsample (at most 20,000 enterprises).
            sub = idx[:: max(1, len(idx) // 20_000)]
            sub_region = pop.region[sub]
            for _ in range(iterations):
                pi = mix(sub, regional)
                for r in range(n_r):
                    if np.any(sub_region == r):
                        regional[r] = pi[sub_region == r, :n_p].mean(axis=0)
        return lambda rows: mix(rows, regional)

    def _choose_initial_providers(self, k: int) -> None:
        """Starting customers: one draw from :meth:`starting_probabilities`, in chunks to bound memory."""
        pop = self.population
        eligible = self._eligible(k)
        idx = np.arange(pop.n) if eligible is None else np.flatnonzero(eligible)
        if len(idx) == 0:
            return
        mix = self._starting_mix(k, idx)
        uniforms = self.rng.random(len(idx))
        for i in range(0, len(idx), STARTING_CHUNK):
            rows = idx[i : i + STARTING_CHUNK]
            pop.provider[k, rows] = sample_choices(mix(rows)[:, :-1], uniforms[i : i + STARTING_CHUNK])

    # --- volumes ---------------------------------------------------------------------------
    def volumes(self, k: int, idx: np.ndarray | None = None) -> np.ndarray:
        """Volume (units per quarter) each enterprise would buy of product k this quarter."""
        pop = self.population
        idx = np.arange(pop.n) if idx is None else idx
        growth = self.demand_growth_factor(k)
        v = pop.size[idx] * self.volume_scale[k, pop.region[idx]] * growth
        if k == self._ai:
            spec = self.config.adoption
            ages = np.arange(self.quarter + 1)
            ramp = np.minimum((1.0 + spec.usage_growth) ** (ages / 4.0), spec.usage_cap)  # by quarters since adoption
            age = np.clip(self.quarter - pop.adopted_quarter[idx], 0, self.quarter)
            v *= np.where(pop.adopted[idx], ramp[age], 0.0)
        return v

    def demand_growth_factor(self, k: int, quarter: int | None = None) -> float:
        """Each buyer's volume of product k in ``quarter`` (default: now) as a multiple of the start.

        (1 + g)^(quarter / 4) for a constant yearly growth g = ``demand_growth``; with a half-life
        H (``demand_growth_halflife``, years) the yearly rate in quarter i is g 0.5^(i / 4H),
        compounded quarter by quarter.
        """
        product = self.products[k]
        quarter = self.quarter if quarter is None else quarter
        if product.demand_growth_halflife == 0.0:
            return (1.0 + product.demand_growth) ** (quarter / 4.0)
        rates = product.demand_growth * 0.5 ** (np.arange(quarter) / (4.0 * product.demand_growth_halflife))
        return float(np.prod((1.0 + rates) ** 0.25))

    def _scale_volumes_to_market_size(self) -> None:
        """Scale volumes so each region's starting spend matches ``regions.<r>.market_size``."""
        pop = self.population
        for k, product_name in enumerate(self.product_names):
            prices = np.vstack([self.prices[:, k, :], np.zeros((1, len(self.region_names)))])
            spend = np.bincount(
                pop.region,
                weights=self.volumes(k) * prices[pop.provider[k], pop.region],
                minlength=len(self.region_names),
            )
            for r, region_name in enumerate(self.region_names):
                target = self.config.regions[region_name].market_size.get(product_name)
                if target is None:
                    continue
                if spend[r] <= 0:
                    raise ScenarioError(
                        f"regions.{region_name}.market_size.{product_name}: no enterprise buys it at the start "
                        f"(raise enterprises{' or adoption.initial_share' if k == self._ai else ''})"
                    )
                self.volume_scale[k, r] *= target / spend[r]

    # --- 5. capacity -----------------------------------------------------------------------
    def _tally(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(P, R) volume of product k demanded from each provider (its customers' volumes), and its customers."""
        pop = self.population
        n_p, n_r = len(self.providers_list), len(self.region_names)
        flat = pop.provider[k].astype(np.intp)
        flat *= n_r
        flat += pop.region
        volume = np.bincount(flat, weights=self.volumes(k), minlength=(n_p + 1) * n_r).reshape(n_p + 1, n_r)[:n_p]
        customers = np.bincount(flat, minlength=(n_p + 1) * n_r).reshape(n_p + 1, n_r)[:n_p]
        return volume, customers

    def tally(self) -> tuple[np.ndarray, np.ndarray]:
        """Volume demanded from (P, K, R) and customers (P, K, R) of every provider, product and region."""
        volume, customers = zip(*(self._tally(k) for k in range(len(self.products))), strict=True)
        return np.stack(volume, axis=1), np.stack(customers, axis=1)

    def _demand_by_provider(self, k: int) -> np.ndarray:
        """(P, R) volume of product k demanded from each provider (its customers' volumes)."""
        return self._tally(k)[0]

    def _compute_demand_by_provider(self) -> np.ndarray:
        return sum(self._demand_by_provider(k) * self.compute_per_unit[k] for k in range(len(self.products)))

    def ration_capacity(self, demand: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Proportional rationing of ``demand`` (P, K, R volumes).

        Returns served volume (P, K, R), served share (P, R) and compute demand (P, R).
        """
        compute = (demand * self.compute_per_unit[None, :, None]).sum(axis=1)
        capacity = np.array([p.capacity_in_service(self.quarter) for p in self.providers_list])
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(compute > capacity, capacity / compute, 1.0)
        return demand * share[:, None, :], share, compute

    # --- 6. finance ------------------------------------------------------------------------
    def book(
        self,
        demand: np.ndarray,
        customers: np.ndarray,
        served: np.ndarray,
        served_share: np.ndarray,
        compute: np.ndarray,
    ) -> None:
        """Every provider books the quarter; the model keeps a record for :meth:`results`.

        demand, served: (P, K, R) volumes; customers: (P, K, R) enterprises; served_share and
        compute: (P, R), as returned by :meth:`ration_capacity`.
        """
        pop = self.population
        n_r = len(self.region_names)
        books = [
            p.book(self.quarter, served[j], compute[j], served_share[j]) for j, p in enumerate(self.providers_list)
        ]
        adoption = (
            np.bincount(pop.region, weights=pop.adopted, minlength=n_r) / np.maximum(self.enterprises_by_region, 1)
            if self._ai is not None
            else np.zeros(n_r)
        )
        self.records.append(
            {
                "quarter": self.quarter,
                "price": self.prices.copy(),
                "customers": customers,
                "demand_volume": demand,
                "churned": self.churn.copy(),
                "ai_adoption": adoption,
                "books": books,
            }
        )

    # ======================================================================================
    # Strategy API (what strategies may read)
    # ======================================================================================
    @property
    def prices(self) -> np.ndarray:
        """Current prices (P, K, R), USD per unit."""
        return np.array([p.prices for p in self.providers_list])

    def rival_prices(self, provider: Provider) -> np.ndarray:
        """Mean price of the other providers present, per (product, region), USD per unit."""
        prices = self.prices
        presence = np.array([p.presence for p in self.providers_list]) > 0
        mask = presence.copy()
        mask[provider.index] = False
        weights = mask[:, None, :].astype(float)
        total = weights.sum(axis=0)
        mean = (prices * weights).sum(axis=0) / np.maximum(total, 1)
        return np.where(total > 0, mean, provider.prices)

    def hardware_factor(self, quarter: Any) -> Any:
        """Hardware cost relative to the start, (1 - hardware_decline) ^ (quarter / 4)."""
        return (1.0 - self.capacity.hardware_decline) ** (np.asarray(quarter) / 4.0)

    def demand_curve(self, k: int, r: int) -> DemandCurve:
        """The expected-demand function of market (product k, region r) this quarter."""
        key = (k, r)
        if key in self._curves:
            return self._curves[key]
        pop = self.population
        product = self.products[k]
        everyone = np.flatnonzero(pop.region == r)
        sample = self.oracle_sample[pop.region[self.oracle_sample] == r]
        if len(sample) == 0:
            sample = everyone[: self.config.oracle_sample]
        eligible = self._eligible(k)
        rho = 1.0 / product.contract_quarters
        if eligible is None or eligible[sample].any():
            if eligible is not None:
                sample, everyone = sample[eligible[sample]], everyone[eligible[everyone]]
            weights = self.volumes(k, sample)
            population_volume = self.volumes(k, everyone).sum()
        else:  # nobody buys yet: the curve of potential first-time buyers, by size
            rho = 1.0
            weights = pop.size[sample].astype(float)
            population_volume = float(pop.size[everyone].sum())
        n_p = len(self.providers_list)
        base = np.ascontiguousarray(self._utility(k, sample, np.zeros((n_p, len(self.region_names)))).T)
        coef = pop.price_sensitivity[sample].astype(float) / product.reference_price
        current = pop.provider[k, sample].astype(np.int64) if rho < 1.0 else np.full(len(sample), n_p)
        scale = population_volume / weights.sum() if weights.sum() > 0 else 0.0
        curve = DemandCurve(base, coef, weights, current, rho, scale, product.outside_quality, product.logit_scale)
        self._curves[key] = curve
        return curve

    # ======================================================================================
    # Observation
    # ======================================================================================
    def enterprise(self, i: int) -> Enterprise:
        """A Mesa agent view of enterprise ``i`` (created on first use)."""
        if not 0 <= i < self.population.n:
            raise IndexError(f"enterprise {i} out of range 0..{self.population.n - 1}")
        if i not in self._views:
            self._views[i] = Enterprise(self, i)
        return self._views[i]

    @property
    def total_revenue(self) -> float:
        return float(sum(p.revenue for p in self.providers_list))

    @property
    def ai_adoption(self) -> float:
        """Share of enterprises that have adopted AI."""
        return float(self.population.adopted.mean()) if self._ai is not None else 0.0

    @property
    def hhi(self) -> float:
        """Herfindahl-Hirschman index of revenue, all products and regions (0-10,000)."""
        revenue = np.array([p.revenue for p in self.providers_list])
        total = revenue.sum()
        return float(((revenue / total) ** 2).sum() * 10_000) if total > 0 else float("nan")

    def results(self) -> pd.DataFrame:
        """One tidy table: quarter, provider, region, product, metric, value (see cloudwar.results)."""
        from cloudwar.results import tidy_results

        return tidy_results(self)

    # --- construction helpers --------------------------------------------------------------
    def _build_network(self) -> Network | CompleteNetwork:
        spec = self.config.network
        pop = self.population
        if spec.kind == "complete":
            return CompleteNetwork(pop.n)
        if spec.kind == "none" or spec.mean_degree == 0:
            return empty_network(pop.n)
        use_networkx = spec.kind == "clustered_networkx" or (spec.kind == "clustered" and pop.n < NETWORKX_LIMIT)
        builder = networkx_clustered_network if use_networkx else clustered_network
        return builder(
            self.rng,
            pop.region,
            pop.industry,
            self.config.enterprise.industries,
            spec.mean_degree,
            spec.within_industry,
            spec.within_region,
        )

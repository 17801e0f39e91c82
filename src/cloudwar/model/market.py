"""CloudMarket: the quarter's order of events, readable top to bottom.

The market orchestrates; the enterprise rules are verbs of its agent set
(:class:`cloudwar.model.enterprises.Enterprises`), the provider rules methods of the provider
agents (:class:`cloudwar.model.providers.Provider`). What stays here are the market-level rules:
ecosystem spill-overs, capacity rationing, booking, the demand curves strategies read, reporters.

One step is one quarter:

0. **Scenario events** of the quarter happen (``[[events]]``, :mod:`cloudwar.scenario.events`):
   a provider's strategy or one of its parameters changes, its GPU supply or cost shock changes
   (:meth:`CloudMarket.apply_events`); list prices an event sets are charged this quarter, over
   what the strategy decides in step 1.
1. **Strategies decide.** Every provider's strategy sets next prices (per product and region)
   and this quarter's capex, all from the same snapshot of last quarter (simultaneous moves).
2. **Capacity and ecosystems.** Capex is committed (cut to the provider's GPU supply, if it has
   one); it comes into service after the build lag. Ecosystem spend
   raises each spender's ecosystem strength, part of the gain leaks to rivals, and strength
   above a provider's funded floor decays (``ecosystem`` table; :meth:`CloudMarket.update_ecosystems`).
3. **AI adoption spreads** Bass-style through the network: each non-adopter adopts with
   probability (p + q x adopted share of its neighbours), in ``adoption.substeps`` sub-steps
   (:meth:`Enterprises.diffuse_ai <cloudwar.model.enterprises.Enterprises.diffuse_ai>`).
4. **Enterprises choose.** Those whose contract is up, new AI adopters, and customers left
   unserved last quarter (with a chance) re-evaluate by multinomial logit, AI first
   (:meth:`Enterprises.choose_providers <cloudwar.model.enterprises.Enterprises.choose_providers>`).
5. **Capacity rations.** Where a provider's compute demand exceeds its capacity in a region,
   every customer there is served the same fraction, capacity / demand (proportional
   rationing); that fraction is the provider's service level, which enters next quarter's
   utility and makes unserved customers re-evaluate early.
6. **Finance books** revenue, costs (ecosystem spend as operating cost), depreciation, capex,
   free cash flow and NPV (:class:`cloudwar.model.providers.Books`).
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

from cloudwar.model.demand import demand_growth_factor, logit_probabilities, split_weights
from cloudwar.model.enterprises import Enterprise, Enterprises, check_memory
from cloudwar.model.network import CompleteNetwork, Network, build_network
from cloudwar.model.providers import Provider, book_quarter
from cloudwar.scenario import Scenario, TimedEvent, event_timeline, load_scenario


class DemandCurve:
    """Expected volume each provider signs next quarter, as a function of one market's prices.

    Built on the model's oracle sample of enterprises for one (product, region): the non-price
    utility is fixed (switching costs included), only the price term moves. Only the volume that
    signs moves with a list price: customers under contract pay the price they agreed until they
    renew. So the curve is the renewing volume, a share rho (1 / contract length) of the sample's
    volume, allocated by the same choice rule as the enterprises' (logit with switching costs;
    with wallets, :meth:`cloudwar.model.enterprises.Enterprises._choose_wallets`), in
    expectation::

        quantity_j(prices) = scale x rho x sum_i volume_i x E[share of i's volume j wins | prices]

    scale being the population's volume over the sample's. Without wallets the expected share is
    the logit probability P_ij. With a wallet of members s (the stronger at these prices) and w,
    a newcomer j wins with P_ij and takes x_ij = g_j / (g_s + g_j) of the spend (g = exp(V / (s mu))
    without switching costs, s = ``split_scale``); the members keep (P_is + P_iw) of the draws and
    split by g. A first-time buyer with a wallet takes c and a second provider d from the logit
    without c: E[share_j] = sum_d e_j e_d m_jd (u_j + u_d), with m_jd = g_j / (g_j + g_d),
    u_c = 1 / (E - e_c), e = exp(V / mu) and E the providers' sum of e (in the logit's normalisation).
    """

    def __init__(
        self,
        base: np.ndarray,
        price_coef: np.ndarray,
        weights: np.ndarray,
        reevaluation: float,
        scale: float,
        outside_utility: float,
        logit_scale: float,
        members: np.ndarray | None = None,
        wallet: np.ndarray | None = None,
        switching_cost: np.ndarray | None = None,
        split_scale: float = 1.0,
    ):
        self.base = base
        self.price_coef = price_coef
        self.weights = weights
        self.rho = reevaluation
        self.scale = scale
        self.outside = outside_utility
        self.mu = logit_scale
        self.members = members  # (m, 2) provider indices of each sample enterprise's wallet, P = none
        self.wallet = wallet  # (m,) holds a two-provider wallet
        self.switching_cost = switching_cost
        self.split_scale = split_scale  # a wallet splits by e ^ (1 / split_scale) (split_weights)
        self.newcomers: DemandCurve | None = None  # first-time buyers expected this quarter (AI adopters)

    def quantities(self, prices: np.ndarray) -> np.ndarray:
        """Expected volume each provider signs (units per quarter) at ``prices`` (USD per unit, one per provider)."""
        v = self.base - self.price_coef[:, None] * prices[None, :]
        if self.members is None:
            probs, _ = logit_probabilities(v, self.outside, self.mu)
            signing = self.scale * self.rho * (self.weights @ probs)
        else:
            signing = self.scale * self.rho * (self.weights @ self.wallet_shares(v))
        if self.newcomers is not None:
            signing = signing + self.newcomers.quantities(prices)
        return signing

    def wallet_shares(self, v: np.ndarray) -> np.ndarray:
        """(m, P) expected share of each sample enterprise's volume each provider wins, utilities ``v`` (m, P)."""
        m, n_p = v.shape
        at = np.arange(m)
        probs, _ = logit_probabilities(v, self.outside, self.mu)
        a, b = self.members[:, 0], self.members[:, 1]
        # e = exp(V / mu) without switching costs, relative to the logit's denominator (P / e is the same for all j).
        plain = probs.copy()
        relief = np.exp(-self.switching_cost / self.mu)
        for member in (a, b):
            has = member < n_p
            plain[at[has], member[has]] *= relief[has]
        shares = probs.copy()  # single provider per enterprise: the logit
        plain = split_weights(plain, self.split_scale)  # the split's weights (the draw's are probs)
        held = self.wallet & (a < n_p)
        if held.any():
            rows = at[held]
            pa, pb = a[held], b[held]
            ea = plain[rows, pa]
            eb = np.where(pb < n_p, plain[rows, np.minimum(pb, n_p - 1)], 0.0)
            strong_is_a = ea >= eb
            s = np.where(strong_is_a, pa, pb)
            es, ew = np.maximum(ea, eb), np.minimum(ea, eb)
            p_members = probs[rows, pa] + np.where(pb < n_p, probs[rows, np.minimum(pb, n_p - 1)], 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.where(plain[rows] > 0, plain[rows] / (es[:, None] + plain[rows]), 0.0)
            outsider = np.ones((len(rows), n_p), dtype=bool)
            outsider[np.arange(len(rows)), pa] = False
            has_b = pb < n_p
            outsider[np.arange(len(rows))[has_b], pb[has_b]] = False
            block = np.where(outsider, probs[rows] * x, 0.0)
            kept = (np.where(outsider, probs[rows] * (1.0 - x), 0.0)).sum(axis=1)
            block[np.arange(len(rows)), s] = p_members * es / (es + ew) + kept
            weak = np.where(strong_is_a, pb, pa)
            has_w = weak < n_p
            block[np.arange(len(rows))[has_w], weak[has_w]] = (p_members * ew / (es + ew))[has_w]
            shares[rows] = block
        fresh = self.wallet & (a >= n_p)
        if fresh.any():
            e = probs[fresh]  # no members: the logit weights themselves
            g = plain[fresh]  # and the split's
            total = e.sum(axis=1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                split = np.nan_to_num(g[:, :, None] / (g[:, :, None] + g[:, None, :]), nan=0.0)
                pair = e[:, :, None] * e[:, None, :] * split  # j and d drawn, j's share
                idx = np.arange(n_p)
                pair[:, idx, idx] = 0.0
                u = np.where(total - e > 1e-300, 1.0 / (total - e), 0.0)
                block = (pair * (u[:, :, None] + u[:, None, :])).sum(axis=2)
            alone = (e > 0).sum(axis=1) <= 1  # one provider available: it gets the whole spend
            block[alone] = e[alone]
            shares[fresh] = block
        return shares


class CloudMarket(mesa.Model):
    """Agent-based model of the AI cloud market.

    Args:
        scenario: a shipped scenario name, a TOML path, or a :class:`Scenario`.
        rng: seed or numpy Generator; all randomness flows from it.
        overrides: dotted-key overrides (``{"enterprises": 5000}``), applied before validation.
        **settings: more overrides as keyword arguments (so ``mesa.batch_run`` can vary them);
            dots are allowed through ``**{"choice.network_weight": 0.5}``.

    Attributes:
        config: the validated cloudwar :class:`~cloudwar.scenario.Scenario` this market runs
            (every parameter, with units). Not to be confused with ``scenario``, which Mesa 3.5's
            ``Model`` defines for its own experiment record (a ``mesa.experimental.scenarios``
            ``Scenario``; here it holds only the seed); cloudwar never reads it.
        enterprises: the :class:`~cloudwar.model.enterprises.Enterprises` agent set (arrays and
            enterprise rules); ``population`` is the same object under its older name.
        providers_list: the :class:`~cloudwar.model.providers.Provider` agents in scenario order
            (``providers`` is Mesa's agent set of them).
        network: the enterprises' network (CSR links, or everyone-knows-everyone).
        events: the scenario's events resolved, in the order they happen
            (:class:`~cloudwar.scenario.TimedEvent`: step, calendar label, name, what changes).
        records: one dict per quarter booked (prices, customers, demand, churn, adoption and the
            providers' :class:`~cloudwar.model.providers.Books`), read by :meth:`results`.
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
        check_memory(s.enterprises, s.network.mean_degree, complete=s.network.kind == "complete")
        self.product_names = s.product_names
        self.region_names = s.region_names
        self.provider_names = s.provider_names
        self.products = [s.products[k] for k in self.product_names]
        self.capacity = s.capacity
        self.capacity_limited = s.capacity.limited
        self.quarter = 0
        self.compute_per_unit = np.array([p.compute_per_unit for p in self.products])

        self.providers_list = [Provider(self, spec, j) for j, spec in enumerate(s.providers)]
        self.events: list[TimedEvent] = event_timeline(s)  # scenario events, in the order they happen
        self.providers = self.agents_by_type[Provider]
        n_p = len(self.providers_list)
        self.quality = np.array([p.quality for p in self.providers_list])  # (P, K, R)
        with np.errstate(divide="ignore"):
            self.log_presence = np.log(np.array([p.presence for p in self.providers_list]))  # (P, R)

        # The starting state, drawn in this order from self.rng: enterprises, network, first AI
        # adopters, the strategies' oracle sample, starting providers.
        self.enterprises = Enterprises(self)
        pop = self.enterprises
        self.captive_bonus = None if pop.platform is None else np.array([p.captive_bonus for p in s.providers])
        self.mean_price_sensitivity = float(pop.price_sensitivity.mean())  # strategy API
        self.network: Network | CompleteNetwork = build_network(
            s.network, self.rng, pop.region, pop.industry, s.enterprise.industries
        )
        pop.seed_adoption()
        self._views: dict[int, Enterprise] = {}
        self._curves: dict[tuple[int, int], DemandCurve] = {}
        self.oracle_sample = np.sort(self.rng.choice(pop.n, size=min(pop.n, s.oracle_sample), replace=False))
        # List prices by quarter (index 0: the starting prices, which contracts signed before the start pay).
        self.price_log: list[np.ndarray] = [self.prices]
        self._contract_prices: np.ndarray | None = None  # price_log stacked, (P, K, R, room): contract_prices
        self._contract_quarters = 0  # entries of price_log in it
        pop.choose_starting_providers()
        pop.scale_volumes_to_market_size()
        self.churn = np.zeros((n_p, len(self.products), len(self.region_names)))
        self.volume_churn = np.zeros_like(self.churn)
        if self.capacity_limited:
            compute = self.compute_demand(pop.tally()[0])
            for j, provider in enumerate(self.providers_list):
                provider.install_starting_capacity(compute[j], provider.spec.initial_utilisation)
                provider.compute_demand = compute[j]
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
        """Advance one quarter, in the order of events of the module docstring."""
        self.quarter += 1
        self._curves.clear()
        happening = [e for e in self.events if e.step == self.quarter]
        self.apply_events(happening)  # 0. scenario events
        self.providers.shuffle_do("decide")  # 1. strategies decide
        self.providers.do("apply_decision")
        self.apply_events(happening, prices=True)
        self.price_log.append(self.prices)  # the list prices this quarter's signers agree to
        self.update_ecosystems()  # 2. capacity (in apply_decision) and ecosystems
        self.enterprises.diffuse_ai()  # 3. adoption
        self.churn, self.volume_churn = self.enterprises.choose_providers()  # 4. choice
        demand, customers, realised = self.enterprises.tally()
        served, served_share, compute = self.ration_capacity(demand)  # 5. rationing
        self.book(demand, customers, served, served_share, compute, realised)  # 6. finance
        self.datacollector.collect(self)  # 7. records
        if self.quarter >= self.config.quarters:
            self.running = False

    def run(self, quarters: int | None = None, progress: Any = None) -> pd.DataFrame:
        """Run ``quarters`` steps (default: the scenario's) and return :meth:`results`."""
        for _ in range(self.config.quarters if quarters is None else quarters):
            self.step()
            if progress is not None:
                progress.update(1)
        return self.results()

    # --- 0. scenario events ----------------------------------------------------------------
    def apply_events(self, events: list[TimedEvent], prices: bool = False) -> None:
        """Apply this quarter's scenario events: strategies, GPU supply and cost shocks before the
        decisions; with ``prices``, after them, the list prices the events set (charged this quarter)."""
        by_name = {p.name: p for p in self.providers_list}
        for event in events:
            for change in event.changes:
                provider = by_name[change.provider]
                if prices:
                    provider.set_list_prices(change)
                else:
                    provider.apply_change(change)

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

    # --- 5. capacity -----------------------------------------------------------------------
    def compute_demand(self, demand: np.ndarray) -> np.ndarray:
        """Compute units (P, R) needed to serve ``demand`` (P, K, R volumes)."""
        return (demand * self.compute_per_unit[None, :, None]).sum(axis=1)

    def ration_capacity(self, demand: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Proportional rationing of ``demand`` (P, K, R volumes).

        Returns served volume (P, K, R), served share (P, R) and compute demand (P, R).
        """
        compute = self.compute_demand(demand)
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
        realised: np.ndarray | None = None,
    ) -> None:
        """Every provider books the quarter; the model keeps a record for :meth:`results`.

        demand, served: (P, K, R) volumes; customers: (P, K, R) enterprises; served_share and
        compute: (P, R), as returned by :meth:`ration_capacity`; realised: (P, K, R) the price its
        customers pay under their contracts (USD per unit; default the list prices).
        """
        books = book_quarter(self.providers_list, self.quarter, served, compute, served_share, realised)
        self.records.append(
            {
                "quarter": self.quarter,
                "price": self.prices.copy(),
                "customers": customers,
                "demand_volume": demand,
                "churned": self.churn.copy(),
                "volume_moved": self.volume_churn.copy(),
                "multi_homing": self.enterprises.multi_homing(),
                "ai_adoption": self.enterprises.adoption_by_region(),
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

    def contract_prices(self, k: int) -> np.ndarray:
        """Product k's list prices by quarter of signing, (P, R, quarters so far + 1), USD per unit: ``price_log`` stacked.

        Kept in one buffer that grows with the log, which only grows (each quarter's prices are
        copied in once, not stacked again every quarter); a view of it is returned: read it, do not keep it.
        """
        log, done = self.price_log, self._contract_quarters
        if done != len(log):
            buffer = self._contract_prices
            if buffer is None or buffer.shape[3] < len(log):
                grown = np.empty((*log[0].shape, max(2 * len(log), 64)))
                if buffer is not None:
                    grown[..., :done] = buffer[..., :done]
                self._contract_prices = buffer = grown
            for q in range(done, len(log)):
                buffer[..., q] = log[q]
            self._contract_quarters = len(log)
        return self._contract_prices[:, k, :, : len(log)]

    def hardware_factor(self, quarter: Any) -> Any:
        """Hardware cost relative to the start, (1 - hardware_decline) ^ (quarter / 4)."""
        return (1.0 - self.capacity.hardware_decline) ** (np.asarray(quarter) / 4.0)

    def demand_curve(self, k: int, r: int) -> DemandCurve:
        """The expected-demand function of market (product k, region r) this quarter.

        The volume that signs this quarter: the renewing share of current buyers' volume, plus,
        for AI, the enterprises expected to adopt this quarter (each non-adopter of the sample
        weighted by its Bass adoption chance this quarter, at the volume it would start with), who
        choose as first-time buyers, without switching costs.
        """
        key = (k, r)
        if key in self._curves:
            return self._curves[key]
        pop = self.enterprises
        product = self.products[k]
        everyone = np.flatnonzero(pop.region == r)
        sample = self.oracle_sample[pop.region[self.oracle_sample] == r]
        if len(sample) == 0:
            sample = everyone[: self.config.oracle_sample]
        buyers = pop.buyers(k)
        rho = 1.0 / product.contract_quarters
        newcomers = None
        if buyers is not None:
            newcomers = self._newcomer_curve(k, r, sample[~buyers[sample]], everyone[~buyers[everyone]])
        if buyers is None or buyers[sample].any():
            if buyers is not None:
                sample, everyone = sample[buyers[sample]], everyone[buyers[everyone]]
            weights = pop.volumes(k, sample)
            population_volume = pop.volumes(k, everyone).sum()
        elif newcomers is not None:  # nobody buys yet: the first-time buyers are the whole curve
            self._curves[key] = newcomers
            return newcomers
        else:  # nobody buys yet nor is about to: the curve of potential first-time buyers, by size
            rho = 1.0
            weights = pop.size[sample].astype(float)
            population_volume = float(pop.size[everyone].sum())
        curve = self._curve(k, sample, weights, rho, population_volume / weights.sum() if weights.sum() > 0 else 0.0)
        curve.newcomers = newcomers
        self._curves[key] = curve
        return curve

    def _curve(self, k: int, sample: np.ndarray, weights: np.ndarray, rho: float, scale: float) -> DemandCurve:
        """A demand curve of the enterprises ``sample`` (their wallets as they stand) with these weights."""
        pop = self.enterprises
        product = self.products[k]
        n_p = len(self.providers_list)
        base = np.ascontiguousarray(pop.utilities(k, sample, np.zeros((n_p, len(self.region_names)))).T)
        coef = pop.price_sensitivity[sample].astype(float) / product.reference_price
        wallets = {}
        if pop.wallets:
            wallets = {
                "members": np.column_stack([pop.provider[k, sample], pop.second[k, sample]]).astype(np.intp),
                "wallet": pop.two_slots[sample],
                "switching_cost": pop.switching_cost[sample].astype(float),
                "split_scale": self.config.choice.split_scale,
            }
        return DemandCurve(base, coef, weights, rho, scale, product.outside_quality, product.logit_scale, **wallets)

    def _newcomer_curve(self, k: int, r: int, sample: np.ndarray, everyone: np.ndarray) -> DemandCurve | None:
        """The first-time AI buyers expected this quarter in region r (None if none are expected)."""
        pop = self.enterprises
        spec = self.config.adoption
        if len(sample) == 0 or len(everyone) == 0:
            return None
        share = pop.adoption_counts.state_share(sample, 1)
        hazard = 1.0 - (1.0 - (spec.innovation + spec.imitation * share) / spec.substeps) ** spec.substeps
        start_volume = pop.size[sample] * pop.volume_scale[k, r] * demand_growth_factor(self.products[k], self.quarter)
        weights = hazard * start_volume
        if weights.sum() <= 0:
            return None
        # Sample to population: the non-adopters' total size over the sample's.
        scale = float(pop.size[everyone].sum()) / float(pop.size[sample].sum())
        return self._curve(k, sample, weights, 1.0, scale)

    # ======================================================================================
    # Observation
    # ======================================================================================
    @property
    def population(self) -> Enterprises:
        """The enterprises' arrays: the same object as :attr:`enterprises` (its name before the agent set)."""
        return self.enterprises

    def enterprise(self, i: int) -> Enterprise:
        """A Mesa agent view of enterprise ``i`` (created on first use)."""
        if not 0 <= i < self.enterprises.n:
            raise IndexError(f"enterprise {i} out of range 0..{self.enterprises.n - 1}")
        if i not in self._views:
            self._views[i] = Enterprise(self, i)
        return self._views[i]

    @property
    def total_revenue(self) -> float:
        return float(sum(p.revenue for p in self.providers_list))

    @property
    def ai_adoption(self) -> float:
        """Share of enterprises that have adopted AI."""
        return float(self.enterprises.adopted.mean()) if self.enterprises.ai is not None else 0.0

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

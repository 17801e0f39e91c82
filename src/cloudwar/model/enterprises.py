"""The enterprises as one agent set: their state in numpy arrays, their rules as verbs.

:class:`Enterprises` is to a :class:`~cloudwar.model.market.CloudMarket` what an ``AgentSet``
of wolves is to Mesa's wolf-sheep model, held the way mesa-frames holds agents: one array per
attribute (one entry per enterprise) instead of one Python object per enterprise, and every
rule written once for all of them. The verbs, in the quarter's order:

* :meth:`Enterprises.__init__` draws the population (region, industry, size, sensitivities,
  contract phase, platform ties); :meth:`~Enterprises.seed_adoption` draws the first AI
  adopters; :meth:`~Enterprises.choose_starting_providers` draws the starting providers from the
  market's long-run mix; :meth:`~Enterprises.scale_volumes_to_market_size` calibrates volumes;
* :meth:`~Enterprises.diffuse_ai` spreads AI adoption over the network (Bass);
* :meth:`~Enterprises.choose_providers` lets those due re-evaluate and choose by logit, with
  :meth:`~Enterprises.utilities` (built on the one utility function,
  :func:`cloudwar.model.demand.utility`);
* :meth:`~Enterprises.volumes` (with the product's demand growth) and
  :meth:`~Enterprises.tally` give the demand each provider faces.

The set also keeps the neighbour counts over the market's network that its rules read (AI
adopters; customers of each provider, per product). Market-level inputs (prices, qualities,
presence, ecosystems, service levels, captive bonuses, the quarter, ``rng``) are read from the
market it belongs to, ``self.model``, when a rule runs.

An individual enterprise can be inspected as a Mesa agent view on demand
(:meth:`cloudwar.model.market.CloudMarket.enterprise` -> :class:`Enterprise`), which reads these arrays.

Provider columns: for a scenario with ``P`` providers, a provider index is ``0..P-1`` and the
outside option (on-premises / no purchase) is ``P``.

Captive segment: when some provider has a ``captive_share``, that share of each region's
enterprises is tied to the provider's consumer platform (:attr:`Enterprises.platform`, the
provider index, or ``P`` for none); the market adds the provider's ``captive_bonus`` to their
utility of it. Without captive shares the array is not created and nothing is drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mesa
import numpy as np

from cloudwar.model.demand import (
    demand_growth_factor,
    logit_probabilities,
    sample_choices,
    sample_logit,
    split_weights,
    utility,
)
from cloudwar.scenario import EnterpriseSpec, Scenario, ScenarioError

if TYPE_CHECKING:
    from cloudwar.model.market import CloudMarket
    from cloudwar.model.network import NeighbourCounts

#: Enterprises processed at a time when drawing the starting state (bounds temporary memory).
STARTING_CHUNK = 1 << 17


# Peak bytes per enterprise while the network is built and the model steps: about 240 at 20 links
# (benchmarks/reference_benchmark.py at 1M), of which about 8 per link end; rounded up.
BYTES_PER_ENTERPRISE = 100
BYTES_PER_LINK_END = 8


def check_memory(n: int, mean_degree: float, complete: bool = False) -> None:
    """Refuse, before anything is allocated, a population this machine cannot hold (one line naming ``enterprises``)."""
    import os

    need = n * (BYTES_PER_ENTERPRISE + (0 if complete else BYTES_PER_LINK_END * mean_degree))
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: let the allocation decide
        return
    if need > available:
        raise ScenarioError(
            f"enterprises: {n:,} enterprises need about {need / 1e9:,.1f} GB of memory, more than the "
            f"{available / 1e9:,.1f} GB available; use fewer enterprises"
        )


class Enterprises:
    """All enterprises of a market: one array per attribute, one entry per enterprise, and their rules.

    ``Enterprises(model)`` draws the population of ``model.config`` from ``model.rng``. Arrays:

    ``region`` int8 (index into the scenario's regions), ``industry`` int16, ``size`` float32
    (relative spend, heavy-tailed, mean about 1), ``price_sensitivity`` and
    ``quality_sensitivity`` float32 (multipliers on price / reference price and on quality),
    ``switching_cost`` float32 (utility units lost by leaving the current provider),
    ``contract_phase`` int8 (quarter offset of contract renewals), ``provider`` int8
    (n_products, n): current provider per product, ``P`` = outside option, ``adopted`` bool
    (uses AI), ``adopted_quarter`` int16 (quarter of adoption, -1 if not adopted), ``platform``
    int8 or None (captive segment, see the module docstring).

    Also: ``volume_scale`` (K, R), units per unit of size, calibrated to the regions' market
    sizes; ``count_by_region`` (R,) enterprises; ``adoption_counts`` and ``neighbour_counts[k]``,
    the neighbour counts of AI adopters and of each provider's customers of product k.
    """

    def __init__(self, model: CloudMarket):
        self.model = model
        s: Scenario = model.config
        self.n_providers = len(s.providers)
        self.ai = s.product_names.index("ai") if "ai" in s.product_names else None
        self.cloud = s.product_names.index("cloud") if "cloud" in s.product_names else None
        # AI first: the AI provider an enterprise buys from pulls its cloud workloads.
        self.choice_order = sorted(range(len(s.products)), key=lambda k: k != self.ai)
        self._draw_attributes(s, model.rng)
        self.platform: np.ndarray | None = self._draw_platform_ties(s, model.rng)
        # Contracts: the quarter each enterprise last signed for each product (0 = before the start);
        # it pays the list price of that quarter until it renews (CloudMarket.price_log).
        self.signed = np.zeros((len(s.products), self.n), dtype=np.int16)
        # Wallets: the largest multi_homing_share of enterprises split each product between two providers.
        self.wallets = s.choice.multi_homing_share > 0.0
        self.two_slots: np.ndarray | None = None
        self.second: np.ndarray | None = None  # (K, n) second provider, P = none
        self.share: np.ndarray | None = None  # (K, n) the primary's share of the wallet
        if self.wallets:
            self.two_slots = _largest(self.size, s.choice.multi_homing_share)
            self.second = np.full((len(s.products), self.n), self.n_providers, dtype=np.int8)
            self.share = np.ones((len(s.products), self.n), dtype=np.float32)
        self.count_by_region = np.bincount(self.region, minlength=len(s.regions))
        self._phases: dict[int, np.ndarray] = {}  # contract_phase % contract length, by length (due)
        # Enterprises are numbered region by region (_draw_attributes): region r is one slice.
        self._region_starts = np.concatenate([[0], np.cumsum(self.count_by_region)])  # and the end
        self._region_slices = [
            slice(int(a), int(b)) for a, b in zip(self._region_starts[:-1], self._region_starts[1:], strict=True)
        ]
        self.volume_scale = np.ones((len(s.products), len(s.regions)))
        self.adoption_counts: NeighbourCounts | None = None  # from seed_adoption
        self.neighbour_counts: list[NeighbourCounts] = []  # from choose_starting_providers

    @property
    def n(self) -> int:
        """Number of enterprises."""
        return len(self.region)

    # ======================================================================================
    # Drawing the population and its starting state
    # ======================================================================================
    def _draw_attributes(self, scenario: Scenario, rng: np.random.Generator) -> None:
        """Region, industry, size and sensitivities of the scenario's enterprises."""
        n = scenario.enterprises
        spec: EnterpriseSpec = scenario.enterprise
        shares = np.array([r.enterprise_share for r in scenario.regions.values()])
        # Regions get exact counts (largest remainder), so small populations keep every region.
        exact = shares * n
        counts = np.floor(exact).astype(np.int64)
        counts[np.argsort(counts - exact)[: n - counts.sum()]] += 1
        region = np.repeat(np.arange(len(shares), dtype=np.int8), counts)
        industry = rng.integers(0, spec.industries, size=n).astype(np.int16)
        # Enterprises are numbered cluster by cluster (region, then industry): neighbours inside a
        # cluster then sit close together in every array, which keeps network updates cache-friendly.
        self.region = region
        self.industry = industry[np.lexsort((industry, region))]
        if spec.identical:
            self.size = np.ones(n, dtype=np.float32)
        else:
            # Pareto (Lomax + 1) sizes normalised to mean 1; the heavy tail is the point.
            raw = rng.pareto(spec.size_tail, size=n) + 1.0
            self.size = (raw / raw.mean()).astype(np.float32)
        identical = spec.identical
        self.price_sensitivity = _lognormal_around(
            rng, spec.price_sensitivity, 0.0 if identical else spec.price_sensitivity_spread, n
        )
        self.quality_sensitivity = _lognormal_around(
            rng, spec.quality_sensitivity, 0.0 if identical else spec.quality_sensitivity_spread, n
        )
        self.switching_cost = _lognormal_around(
            rng, spec.switching_cost, 0.0 if identical else spec.switching_cost_spread, n
        )
        self.contract_phase = rng.integers(0, 64, size=n).astype(np.int8)
        self.provider = np.full((len(scenario.products), n), len(scenario.providers), dtype=np.int8)
        self.adopted = np.zeros(n, dtype=bool)
        self.adopted_quarter = np.full(n, -1, dtype=np.int16)

    def _draw_platform_ties(self, scenario: Scenario, rng: np.random.Generator) -> np.ndarray | None:
        """Tie ``captive_share`` of each region's enterprises to each platform provider (None if nobody has one).

        One uniform per enterprise: in its region, the unit interval is cut into consecutive pieces of
        length ``captive_share`` per provider (in scenario order); the piece it falls in is its platform.
        """
        n_providers = len(scenario.providers)
        if not any(share > 0 for p in scenario.providers for share in p.captive_share.values()):
            return None
        cut = np.zeros((len(scenario.regions), n_providers))
        for j, p in enumerate(scenario.providers):
            for r, region in enumerate(scenario.regions):
                cut[r, j] = p.captive_share.get(region, 0.0)
        draws = rng.random(self.n)
        ties = np.full(self.n, n_providers, dtype=np.int8)
        for r in range(len(scenario.regions)):
            rows = self.region == r
            ties[rows] = np.searchsorted(np.cumsum(cut[r]), draws[rows], side="right")
        return ties

    def seed_adoption(self) -> None:
        """The first AI adopters (``adoption.initial_share`` of everyone, adopted in quarter 0), counted on the network."""
        model = self.model
        if self.ai is not None:
            self.adopted[:] = model.rng.random(self.n) < model.config.adoption.initial_share
            self.adopted_quarter[self.adopted] = 0
        self.adoption_counts = model.network.counter(self.adopted.astype(np.int8), 2)

    def choose_starting_providers(self) -> None:
        """Starting customers of every product (AI first): one draw each from the starting mix (:meth:`_starting_mix`).

        Drawn in chunks to bound memory; the neighbour counts of each product follow its draw.
        """
        counts: dict[int, NeighbourCounts] = {}
        for k in self.choice_order:
            buyers = self.buyers(k)
            idx = np.arange(self.n) if buyers is None else np.flatnonzero(buyers)
            if len(idx):
                mix = self._starting_mix(k, idx)
                uniforms = self.model.rng.random(len(idx))
                tables = None
                for i in range(0, len(idx), STARTING_CHUNK):
                    rows = idx[i : i + STARTING_CHUNK]
                    if len(idx) <= STARTING_CHUNK:  # one chunk: the second draws read its tables too
                        tables = mix(rows, plain=True)
                        pi = tables[0]
                    else:
                        pi = mix(rows)
                    self.provider[k, rows] = sample_choices(pi[:, :-1], uniforms[i : i + STARTING_CHUNK])
                    del pi
                if self.wallets:
                    self._choose_starting_seconds(k, idx, mix, tables)
                del tables
            counts[k] = self.model.network.counter(self.provider[k], self.n_providers + 1)
        self.neighbour_counts = [counts[k] for k in range(len(self.provider))]

    def _choose_starting_seconds(
        self, k: int, idx: np.ndarray, mix: Callable[..., Any], tables: tuple[np.ndarray, np.ndarray] | None = None
    ) -> None:
        """Starting second providers of the two-provider wallets, and the split.

        Every buyer of product k among ``idx`` that holds a wallet draws a second provider from the
        same starting mix without its first provider and the outside option (one uniform each, after
        the first draws); the two split the spend by their logit weights at ``choice.split_scale``
        x mu (the plain logit's p ^ (1 / split_scale)); the larger share is the primary. ``tables``:
        ``mix(idx, plain=True)`` if the caller has it (else it is computed again, chunk by chunk).
        """
        n_p = self.n_providers
        holds = np.flatnonzero(self.two_slots[idx] & (self.provider[k, idx] < n_p))  # positions in idx
        rows = idx[holds]
        uniforms = self.model.rng.random(len(rows))
        step = STARTING_CHUNK // 4  # smaller chunks: this pass holds more (P + 1)-wide tables at once
        for i in range(0, len(rows), step):
            chunk = rows[i : i + step]
            if tables is None:
                pi, plain = mix(chunk, plain=True)
            else:
                pi, plain = tables[0][holds[i : i + step]], tables[1][holds[i : i + step]]
            first = self.provider[k, chunk].astype(np.intp)
            at = np.arange(len(chunk))
            others = pi[:, :n_p]
            others[at, first] = 0.0
            total = others.sum(axis=1)
            others /= np.where(total > 0, total, 1.0)[:, None]
            second = sample_choices(others, uniforms[i : i + step])
            second = np.where(total > 0, second, n_p)
            split_scale = self.model.config.choice.split_scale
            weight_a = split_weights(plain[at, first], split_scale)
            weight_b = split_weights(plain[at, np.minimum(second, n_p - 1)], split_scale)
            self._set_wallets(k, chunk, first, second, weight_a, weight_b)

    def starting_shares(self, k: int, idx: np.ndarray) -> np.ndarray:
        """Expected starting share of each enterprise's product-k volume per provider, (len(idx), P + 1), outside last.

        Without wallets, the starting probabilities. With a wallet, the first provider c is drawn from
        the starting mix pi and the second d from pi without c and the outside option, and they split
        by the plain logit p: E[share_j] = sum_d pi_j q_jd m_jd + pi_d q_dj m_jd, with
        q_cd = pi_d / (sum of providers' pi - pi_c) and m_jd = g_j / (g_j + g_d), g = p ^ (1 / split_scale).
        """
        mix = self._starting_mix(k, idx)
        n_p = self.n_providers
        out = []
        for i in range(0, len(idx), STARTING_CHUNK):
            rows = idx[i : i + STARTING_CHUNK]
            pi, p = mix(rows, plain=True)
            if self.wallets:
                inside = pi[:, :n_p]
                total = inside.sum(axis=1, keepdims=True)
                with np.errstate(divide="ignore", invalid="ignore"):
                    q = np.nan_to_num(inside[:, None, :] / (total[:, :, None] - inside[:, :, None]), posinf=0.0)
                    g = split_weights(p, self.model.config.choice.split_scale)
                    split = np.nan_to_num(g[:, :, None] / (g[:, :, None] + g[:, None, :]))
                at = np.arange(n_p)
                q[:, at, at] = 0.0
                lead = inside[:, :, None] * q * split  # j first, d second: j's share
                follow = inside[:, None, :] * np.transpose(q, (0, 2, 1)) * split  # d first, j second
                wallet = (lead + follow).sum(axis=2)
                alone = q.sum(axis=2) == 0  # no second provider available: the first keeps everything
                wallet = np.where(alone, inside, wallet)
                two = self.two_slots[rows][:, None]
                pi = np.column_stack([np.where(two, wallet, inside), pi[:, n_p]])
            out.append(pi)
        return np.concatenate(out)

    def _starting_mix(self, k: int, idx: np.ndarray, iterations: int = 5) -> Callable[[np.ndarray], np.ndarray]:
        """The function rows -> starting probabilities (len(rows), P + 1), its mean-field neighbour shares fixed on ``idx``.

        With a switching cost, the re-evaluation chain (logit with a bonus B = exp(sc / mu) for the
        current provider) is reversible with stationary distribution pi_j ~ p_j (1 + (B - 1) p_j)
        for providers and pi_0 ~ p_0 for the outside option, p being the plain logit. Neighbour
        shares are taken mean-field: each region's expected shares, iterated to a fixed point.
        """
        model = self.model
        product = model.products[k]
        n_p = self.n_providers
        n_r = len(self.count_by_region)

        def mix(rows: np.ndarray, regional: np.ndarray, plain: bool = False) -> Any:
            region = self.region[rows]
            v = self.utilities(k, rows, model.prices[:, k, :], switching=False, neighbour_shares=regional[region]).T
            p, p0 = logit_probabilities(v, product.outside_quality, product.logit_scale)
            bonus = np.exp(self.switching_cost[rows] / product.logit_scale)[:, None] - 1.0
            pi = np.column_stack([p * (1.0 + bonus * p), p0])
            pi /= pi.sum(axis=1, keepdims=True)
            return (pi, p) if plain else pi

        regional = np.zeros((n_r, n_p))
        if model.config.choice.network_weight:
            # The mean-field fixed point is found on an even subsample (at most 20,000 enterprises).
            sub = idx[:: max(1, len(idx) // 20_000)]
            # Enterprises are numbered region by region: each region's rows of the subsample are one slice.
            bounds = np.searchsorted(self.region[sub], np.arange(n_r + 1))
            for _ in range(iterations):
                pi = mix(sub, regional)
                for r in range(n_r):
                    if bounds[r + 1] > bounds[r]:  # the same contiguous table as a mask would take
                        regional[r] = np.ascontiguousarray(pi[bounds[r] : bounds[r + 1], :n_p]).mean(axis=0)
        return lambda rows, plain=False: mix(rows, regional, plain)

    def scale_volumes_to_market_size(self) -> None:
        """Scale volumes so each region's starting spend matches ``regions.<r>.market_size`` (USD per quarter)."""
        model = self.model
        n_r = len(self.count_by_region)
        for k, product_name in enumerate(model.product_names):
            prices = np.vstack([model.prices[:, k, :], np.zeros((1, n_r))])
            spend = np.zeros(n_r)
            for providers, share in self.slots(k):
                weights = self.volumes(k) * prices[providers, self.region]
                spend += np.bincount(self.region, weights=weights if share is None else weights * share, minlength=n_r)
            for r, region_name in enumerate(model.region_names):
                target = model.config.regions[region_name].market_size.get(product_name)
                if target is None:
                    continue
                if spend[r] <= 0:
                    raise ScenarioError(
                        f"regions.{region_name}.market_size.{product_name}: no enterprise buys it at the start "
                        f"(raise enterprises{' or adoption.initial_share' if k == self.ai else ''})"
                    )
                self.volume_scale[k, r] *= target / spend[r]

    # ======================================================================================
    # The quarter's rules
    # ======================================================================================
    def diffuse_ai(self) -> None:
        """Bass diffusion on the network: each non-adopter adopts with probability (p + q x adopted
        share of its neighbours) / substeps, in ``adoption.substeps`` sub-steps of the quarter."""
        if self.ai is None:
            return
        model = self.model
        spec = model.config.adoption
        substeps = spec.substeps
        for _ in range(substeps):
            candidates = np.flatnonzero(~self.adopted)
            if len(candidates) == 0:
                return
            share = self.adoption_counts.state_share(candidates, 1)
            hazard = (spec.innovation + spec.imitation * share) / substeps
            new = candidates[model.rng.random(len(candidates)) < hazard]
            self.adopted[new] = True
            self.adopted_quarter[new] = model.quarter
            self.adoption_counts.move(new, np.zeros(len(new), dtype=np.int64), np.ones(len(new), dtype=np.int64))

    def buyers(self, k: int) -> np.ndarray | None:
        """Mask of enterprises that buy product k (AI: adopters only); None = everyone."""
        return self.adopted if k == self.ai else None

    def choose_providers(self) -> tuple[np.ndarray, np.ndarray]:
        """Everyone due re-evaluates each product (AI first) by logit and signs at this quarter's prices.

        Returns the quarter's churn both ways, (P, K, R) each: customers that left a provider
        entirely, and the volume (units per quarter, at this quarter's usage) that moved away from it
        (to another provider or to the outside option).
        """
        shape = (self.n_providers, len(self.provider), len(self.count_by_region))
        left, moved = np.zeros(shape), np.zeros(shape)
        for k in self.choice_order:
            idx = self.due(k)
            self.signed[k, idx] = self.model.quarter
            if len(idx):
                choose = self._choose_wallets if self.wallets else self._choose_single
                left[:, k, :], moved[:, k, :] = choose(k, idx)
        return left, moved

    def due(self, k: int) -> np.ndarray:
        """Enterprises that choose product k's providers this quarter (sorted indices).

        Those whose contract is up (every ``contract_quarters``, at their own phase), new AI
        adopters, and customers of a provider that could not serve them last quarter, with chance
        ``rationed_reevaluation`` x their unserved share.
        """
        model = self.model
        length = model.products[k].contract_quarters
        # Up when (quarter + phase) % length == 0, i.e. phase % length == -quarter % length (the
        # phases modulo each contract length are taken once: the phases never change).
        phase = self._phases.get(length)
        if phase is None:
            phase = self._phases[length] = self.contract_phase % length
        due = phase == -model.quarter % length
        if k == self.ai:
            due = (due | (self.adopted_quarter == model.quarter)) & self.adopted
        served = np.array([p.service_level for p in model.providers_list])  # (P, R)
        if np.any(served < 1.0):
            member = np.zeros(self.n, dtype=bool)  # customers of a rationed provider
            for j in np.flatnonzero((served < 1.0).any(axis=1)).tolist():  # a few providers: compare, no gather
                member |= self.provider[k] == j
                if self.wallets:
                    member |= self.second[k] == j
            customers = np.flatnonzero(~due & member)
            short = self._unserved_share(k, customers, served)
            customers, short = customers[short > 0], short[short > 0]
            move = model.rng.random(len(customers)) < model.config.choice.rationed_reevaluation * short
            due[customers[move]] = True
        return np.flatnonzero(due)

    def _unserved_share(self, k: int, idx: np.ndarray, served: np.ndarray) -> np.ndarray:
        """Share of each enterprise's product-k volume its providers could not serve last quarter."""
        region = self.region[idx]
        n_r = served.shape[1]
        level = np.concatenate([served.ravel(), np.ones(n_r)])  # (P + 1) x R, the outside option never rations
        short = 1.0 - level.take(self.provider[k, idx].astype(np.intp) * n_r + region)
        if self.wallets:
            f = self.share[k, idx].astype(np.float64)
            short = f * short + (1.0 - f) * (1.0 - level.take(self.second[k, idx].astype(np.intp) * n_r + region))
        return short

    def _choose_single(self, k: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Single-homing: each of ``idx`` draws one provider by logit; neighbour counts follow.

        Returns customers lost and volume moved away, (P, R) each.
        """
        model = self.model
        product = model.products[k]
        n_p, n_r = self.n_providers, len(self.count_by_region)
        current = self.provider[k]
        utilities = self.utilities(k, idx, model.prices[:, k, :], dtype=np.float32)
        choice = sample_logit(utilities, product.outside_quality, product.logit_scale, model.rng.random(len(idx)))
        choice = choice.astype(np.int8)
        old = current[idx]
        changed = choice != old
        who, was, now = idx[changed], old[changed].astype(np.int64), choice[changed].astype(np.int64)
        self.neighbour_counts[k].move(who, was, now)
        current[who] = choice[changed]
        left = was < n_p
        where = was[left] * n_r + self.region[who[left]]
        lost = np.bincount(where, minlength=n_p * n_r).reshape(n_p, n_r)
        moved = np.bincount(where, weights=self.volumes(k, who[left]), minlength=n_p * n_r).reshape(n_p, n_r)
        return lost, moved

    def _choose_wallets(self, k: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Wallets: each of ``idx`` re-tenders its product-k spend; neighbour counts follow the primaries.

        One logit draw c per enterprise over all providers and the outside option, the switching
        cost counting for both providers it already uses (its members):

        * c is a member: it keeps both;
        * c is the outside option: it stops buying (both members lose it);
        * c is new to it: c replaces its weaker member (the one of lower utility), or, holding a single
          provider, c replaces that one; an enterprise that bought nothing takes c and, if it holds a
          wallet, draws a second provider from the logit without c and the outside option (one more
          uniform each, drawn after the first draws, in enterprise order).

        Then the members split the spend by their logit weights at ``choice.split_scale`` x mu,
        share of m = exp(V_m / (s mu)) / sum over members (the switching cost, equal for both,
        cancels), and the larger share is the primary. Every renewing enterprise thus moves volume between its providers at every renewal,
        while leaving a provider entirely needs a newcomer to beat a member's switching cost.

        Returns customers lost and volume moved away, (P, R) each.
        """
        model = self.model
        product = model.products[k]
        mu = product.logit_scale
        n_p, n_r = self.n_providers, len(self.count_by_region)
        m = len(idx)
        at = np.arange(m)
        a = self.provider[k, idx].astype(np.intp)
        b = self.second[k, idx].astype(np.intp)
        f0 = self.share[k, idx].astype(np.float64)
        two = self.two_slots[idx]
        utilities = self.utilities(k, idx, model.prices[:, k, :], dtype=np.float32)
        # (P + 1, m): sample_logit overwrites its argument; row P (none) is -inf, so that the
        # utility of provider rows[i] to enterprise i is one take at rows * m + i.
        kept = np.empty((n_p + 1, m), dtype=np.float32)
        kept[:n_p] = utilities
        kept[n_p] = -np.inf
        kept = kept.reshape(-1)
        choice = sample_logit(utilities, product.outside_quality, product.logit_scale, model.rng.random(m))
        del utilities
        c = choice.astype(np.intp)
        bonus = self.switching_cost[idx].astype(np.float64)

        def value(rows: np.ndarray) -> np.ndarray:  # utility of provider rows[i] to enterprise i; none: -inf
            return kept.take(rows * m + at).astype(np.float64)

        value_a, value_b = value(a), value(b)
        out = c == n_p
        new = ~out & (c != a) & (c != b)
        fresh = new & (a == n_p)
        # A newcomer replaces the weaker member (or the only one, without a wallet); an enterprise
        # that stops buying drops both.
        enter = new & ~fresh
        weaker_is_a = ~two | (value_a < value_b)
        new_a = np.where(out | fresh | (enter & weaker_is_a), c, a)
        new_b = np.where(out, n_p, np.where(enter & ~weaker_is_a, c, b))
        # A first-time buyer with a wallet draws its second provider (it has no members: plain = value).
        pick = np.flatnonzero(fresh & two)
        if len(pick):
            block = kept.reshape(n_p + 1, m)[:n_p, pick].astype(np.float64)
            weights = np.exp((block - np.max(block, axis=0)) / mu).T  # (len, P)
            weights[np.arange(len(pick)), c[pick]] = 0.0
            total = weights.sum(axis=1)
            second = sample_choices(weights / np.where(total > 0, total, 1.0)[:, None], model.rng.random(len(pick)))
            new_b[pick] = np.where(total > 0, second, n_p)

        def plain(rows: np.ndarray) -> np.ndarray:  # utilities without the switching cost members had added
            return value(rows) - np.where((rows == a) | (rows == b), bonus, 0.0)

        weight_a = _logit_weight(plain(new_a), plain(new_b), mu * model.config.choice.split_scale)
        # Before: shares of the old members; after: of the new ones (the outside option gets none).
        final_a, final_b, f1 = self._set_wallets(k, idx, new_a, new_b, weight_a, 1.0 - weight_a)
        changed = final_a != a
        self.neighbour_counts[k].move(idx[changed], a[changed], final_a[changed])
        volume = self.volumes(k, idx)
        region = self.region[idx]
        lost = np.zeros((n_p + 1) * n_r)
        moved = np.zeros((n_p + 1) * n_r)
        for member, before in ((a, f0), (b, 1.0 - f0)):
            in_a, in_b = final_a == member, final_b == member
            after = np.where(in_a, f1, 0.0) + np.where(in_b, 1.0 - f1, 0.0)
            where = member * n_r + region
            gone = (member < n_p) & ~(in_a | in_b)
            lost += np.bincount(where[gone], minlength=(n_p + 1) * n_r)
            moved += np.bincount(where, weights=volume * np.maximum(before - after, 0.0), minlength=(n_p + 1) * n_r)
        return lost.reshape(n_p + 1, n_r)[:n_p], moved.reshape(n_p + 1, n_r)[:n_p]

    def _set_wallets(
        self, k: int, idx: np.ndarray, a: np.ndarray, b: np.ndarray, weight_a: np.ndarray, weight_b: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Set the wallets of ``idx`` for product k: members a, b (b = P: none) splitting by their weights.

        The weights are finite and >= 0; the member with the larger share becomes the primary.
        Returns the primaries, the seconds (intp) and the primaries' shares as stored (float32
        values as float64). Neighbour counts are the caller's to move.
        """
        n_p = self.n_providers
        a, b = np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp)
        total = weight_a + weight_b
        # a's share; 1 without a second, without a first, or without weight (0 / 0).
        f = np.divide(weight_a, total, out=np.ones(len(a)), where=(b < n_p) & (a < n_p) & (total > 0))
        swap = (f < 0.5) & (b < n_p)
        first, second = np.where(swap, b, a), np.where(swap, a, b)
        f = np.where(swap, 1.0 - f, f)
        second = np.where(first < n_p, second, n_p)
        self.provider[k, idx] = first
        self.second[k, idx] = second
        share = f.astype(np.float32)
        self.share[k, idx] = share
        return first, second, share.astype(np.float64)

    def utilities(
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
        model = self.model
        w = model.config.choice
        product = model.products[k]
        spread = self._spreader(idx)
        n_p, m = self.n_providers, len(idx)
        # Terms that depend only on (provider, region): availability, ecosystem, service level.
        per_region = model.log_presence.copy()
        if w.ecosystem_weight:
            per_region += w.ecosystem_weight * np.array([p.ecosystem for p in model.providers_list])[:, None]
        if w.service_weight:
            service = np.array([p.service_level for p in model.providers_list])
            per_region += w.service_weight * np.log(np.maximum(service, 1e-6))
        # One row more than providers: bonuses aimed at the outside option land there and are dropped,
        # so every enterprise's bonus goes in with one flat index, no masks.
        terms = np.empty((n_p + 1, m), dtype=dtype)
        extra = terms[:n_p]
        terms[n_p] = 0.0
        spread(per_region.astype(dtype), out=extra)
        if w.network_weight and neighbour_shares is not None:
            extra += w.network_weight * neighbour_shares.T
        elif w.network_weight:
            self.neighbour_counts[k].add_shares(extra, idx, w.network_weight)
        flat = terms.reshape(-1)
        columns = np.arange(m)
        if model.captive_bonus is not None:
            tied = np.flatnonzero(self.platform[idx] < n_p)  # the others' bonus would land in row P
            tie = self.platform[idx[tied]].astype(np.intp)
            flat[tie * m + tied] += model.captive_bonus.astype(dtype)[tie]
        if w.ai_pull and k == self.cloud and self.ai is not None:
            flat[self.provider[self.ai, idx].astype(np.intp) * m + columns] += dtype(w.ai_pull)
        if switching:
            cost = self.switching_cost[idx].astype(dtype, copy=False)
            flat[self.provider[k, idx].astype(np.intp) * m + columns] += cost
            if self.wallets:  # both providers of a wallet are incumbents (row P, no second, is dropped)
                flat[self.second[k, idx].astype(np.intp) * m + columns] += cost
        return utility(
            spread(model.quality[:, k, :].astype(dtype)),
            spread(prices.astype(dtype)),
            quality_sensitivity=self.quality_sensitivity[idx].astype(dtype, copy=False),
            price_sensitivity=self.price_sensitivity[idx].astype(dtype, copy=False),
            reference_price=product.reference_price,
            extra=extra,
            out=extra,
        )

    def _spreader(self, idx: np.ndarray) -> Callable[..., np.ndarray]:
        """The function ``table`` (rows, R) -> (rows, len(idx)), each enterprise's region's column, ``out`` optional.

        Enterprises are numbered region by region, so sorted ``idx`` (every caller's) are one run
        per region: each run is one broadcast copy of its column, not a gather per entry.
        """
        if len(idx) > 1 and not (idx[1:] >= idx[:-1]).all():
            at = self.region[idx].astype(np.intp)
            return lambda table, out=None: np.take(table, at, axis=1, out=out, mode="clip")
        bounds = np.searchsorted(idx, self._region_starts).tolist()  # where each region's run begins
        runs = [(r, a, b) for r, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)) if b > a]

        def spread(table: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
            if out is None:
                out = np.empty((len(table), len(idx)), dtype=table.dtype)
            for r, a, b in runs:
                out[:, a:b] = table[:, r : r + 1]
            return out

        return spread

    def choice_utilities(self, k: int, idx: np.ndarray) -> np.ndarray:
        """This quarter's utilities (len(idx), P) for product k at current prices, utility units."""
        return self.utilities(k, idx, self.model.prices[:, k, :]).T

    def volumes(self, k: int, idx: np.ndarray | None = None) -> np.ndarray:
        """Volume (units per quarter) each enterprise (default: all) would buy of product k this quarter.

        size x the region's volume scale x the product's demand growth; for AI, times the usage
        ramp since adoption (0 for non-adopters).
        """
        model = self.model
        everyone = slice(None) if idx is None else idx  # everyone: the arrays themselves, no gather
        growth = demand_growth_factor(model.products[k], model.quarter)
        # Everyone's regional scale: one value per region slice, repeated (the same numbers as a gather).
        scale = (
            np.repeat(self.volume_scale[k], self.count_by_region)
            if idx is None
            else self.volume_scale[k, self.region[idx]]
        )
        v = self.size[everyone] * scale * growth
        if k == self.ai:
            spec = model.config.adoption
            ages = np.arange(model.quarter + 1)
            ramp = np.minimum((1.0 + spec.usage_growth) ** (ages / 4.0), spec.usage_cap)  # by quarters since adoption
            # Ages since adoption, kept within 0 and the quarter (non-adopters, at -1, get 0 anyway).
            v *= np.where(
                self.adopted[everyone], ramp.take(model.quarter - self.adopted_quarter[everyone], mode="clip"), 0.0
            )
        return v

    def slots(self, k: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Product k's purchases as (provider per enterprise, share of its volume), one pair per wallet slot.

        Single-homing: one slot, the whole volume (share None). Wallets: the primary with its share
        and the second provider (P = none) with the rest.
        """
        if not self.wallets:
            return [(self.provider[k], None)]
        return [(self.provider[k], self.share[k]), (self.second[k], 1.0 - self.share[k])]

    def tally(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Demand of every provider this quarter, (P, K, R) each: volume demanded (units per quarter),
        customers (enterprises buying from it, a wallet counting for both its providers) and the
        realised price (USD per unit: its customers' contract prices, weighted by their volumes)."""
        volume, customers, price = zip(*(self._tally(k) for k in range(len(self.provider))), strict=True)
        return np.stack(volume, axis=1), np.stack(customers, axis=1), np.stack(price, axis=1)

    def _tally(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P, R) volume of product k demanded from each provider, its customers and its realised price.

        The realised price is the list price of the quarter each customer signed in
        (:attr:`signed`, the market's ``price_log``), weighted by volume; where every customer
        signed this quarter it is the list price exactly.
        """
        model = self.model
        n_p, n_r = self.n_providers, len(self.count_by_region)
        log = model.contract_prices(k)  # (P, R, quarters so far + 1)
        cohorts = log.shape[2]
        volumes = self.volumes(k)
        signed = self.signed[k]
        volume = np.zeros((n_p + 1, n_r, cohorts))
        customers = np.zeros((n_p + 1) * n_r, dtype=np.int64)
        for providers, share in self.slots(k):
            flat = providers.astype(np.intp)
            flat *= n_r
            flat += self.region
            customers += np.bincount(flat, minlength=(n_p + 1) * n_r)
            flat *= cohorts
            flat += signed
            weights = volumes if share is None else volumes * share
            volume += np.bincount(flat, weights=weights, minlength=(n_p + 1) * n_r * cohorts).reshape(
                n_p + 1, n_r, cohorts
            )
        volume = volume[:n_p]
        total = volume.sum(axis=2)
        list_price = model.prices[:, k, :]
        # Contract prices against this quarter's list price: exactly zero for this quarter's signers.
        gap = log - list_price[:, :, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            realised = list_price + np.where(total > 0, (volume * gap).sum(axis=2) / total, 0.0)
        return total, customers.reshape(n_p + 1, n_r)[:n_p], realised

    def multi_homing(self) -> tuple[np.ndarray, np.ndarray]:
        """Buyers of each product in each region, and those of them buying it from two providers: (K, R) each."""
        n_p, n_r = self.n_providers, len(self.count_by_region)
        buyers, both = np.zeros((len(self.provider), n_r)), np.zeros((len(self.provider), n_r))
        for k in range(len(self.provider)):
            buying = self.provider[k] < n_p
            buyers[k] = self._count_by_region(buying)
            if self.wallets:
                both[k] = self._count_by_region(buying & (self.second[k] < n_p))
        return buyers, both

    def _count_by_region(self, mask: np.ndarray) -> list[int]:
        """Enterprises of each region in ``mask`` (n,) bool."""
        return [np.count_nonzero(mask[rows]) for rows in self._region_slices]

    def adoption_by_region(self) -> np.ndarray:
        """Share of each region's enterprises that use AI, (R,) (zeros without an AI product)."""
        if self.ai is None:
            return np.zeros(len(self.count_by_region))
        return np.array(self._count_by_region(self.adopted), dtype=float) / np.maximum(self.count_by_region, 1)


def _largest(size: np.ndarray, share: float) -> np.ndarray:
    """Mask of the ``share`` of enterprises largest by size (ties broken by index, lower first)."""
    n = len(size)
    count = int(round(share * n))
    mask = np.zeros(n, dtype=bool)
    if count:
        order = np.argsort(-size.astype(np.float64), kind="stable")
        mask[order[:count]] = True
    return mask


def _logit_weight(value_a: np.ndarray, value_b: np.ndarray, mu: float) -> np.ndarray:
    """Logit share of a between a and b: exp(Va / mu) / (exp(Va / mu) + exp(Vb / mu)); 1 when b is -inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        gap = (value_b - value_a) / mu
        return np.where(np.isneginf(value_b), 1.0, 1.0 / (1.0 + np.exp(np.minimum(gap, 700.0))))


def _lognormal_around(rng: np.random.Generator, mean: float, sigma: float, n: int) -> np.ndarray:
    """Lognormal draws with the given mean (so sigma changes dispersion, not the average)."""
    if sigma == 0.0:
        return np.full(n, mean, dtype=np.float32)
    return (mean * np.exp(rng.normal(-0.5 * sigma**2, sigma, size=n))).astype(np.float32)


class Enterprise(mesa.Agent):
    """A Mesa agent view of one enterprise, backed by the :class:`Enterprises` arrays.

    Created on demand by :meth:`CloudMarket.enterprise`; reading an attribute reads the arrays,
    so the view and the fast engine never disagree.
    """

    def __init__(self, model: mesa.Model, index: int):
        super().__init__(model)
        self.index = index

    @property
    def _set(self) -> Enterprises:
        return self.model.enterprises

    @property
    def region(self) -> str:
        return self.model.region_names[self._set.region[self.index]]

    @property
    def industry(self) -> int:
        return int(self._set.industry[self.index])

    @property
    def size(self) -> float:
        return float(self._set.size[self.index])

    @property
    def price_sensitivity(self) -> float:
        return float(self._set.price_sensitivity[self.index])

    @property
    def quality_sensitivity(self) -> float:
        return float(self._set.quality_sensitivity[self.index])

    @property
    def switching_cost(self) -> float:
        return float(self._set.switching_cost[self.index])

    @property
    def platform(self) -> str | None:
        """The provider whose consumer platform the enterprise is tied to (captive segment), if any."""
        ties = self._set.platform
        j = len(self.model.provider_names) if ties is None else int(ties[self.index])
        return self.model.provider_names[j] if j < len(self.model.provider_names) else None

    @property
    def adopted_ai(self) -> bool:
        return bool(self._set.adopted[self.index])

    @property
    def providers(self) -> dict[str, str | None]:
        """Current provider per product (None = outside option)."""
        names = self.model.provider_names
        out = {}
        for k, product in enumerate(self.model.product_names):
            j = int(self._set.provider[k, self.index])
            out[product] = names[j] if j < len(names) else None
        return out

    def wallet(self, product: str) -> dict[str, float]:
        """Share of its spend on ``product`` each of its providers gets (empty if it does not buy it)."""
        k = self.model.product_names.index(product)
        names, pop = self.model.provider_names, self._set
        out: dict[str, float] = {}
        for providers, share in pop.slots(k):
            j = int(providers[self.index])
            if j < len(names):
                out[names[j]] = 1.0 if share is None else float(share[self.index])
        return out

    def contract_signed(self, product: str) -> int:
        """The quarter (model step; 0 = before the start) its current ``product`` contract was signed."""
        return int(self._set.signed[self.model.product_names.index(product), self.index])

    @property
    def neighbours(self) -> list[int]:
        return [int(i) for i in self.model.network.neighbours(self.index)]

    def utilities(self, product: str) -> dict[str, float]:
        """This quarter's utility of each provider for ``product`` (utility units)."""
        k = self.model.product_names.index(product)
        values = self._set.choice_utilities(k, np.array([self.index]))[0]
        return dict(zip(self.model.provider_names, (float(v) for v in values), strict=True))

    def step(self) -> None:
        """Views do not act: the model moves all enterprises at once through the arrays."""

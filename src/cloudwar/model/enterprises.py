"""The enterprise population: state in numpy arrays, one array per attribute.

An individual enterprise can be inspected as a Mesa agent view on demand
(:meth:`cloudwar.model.market.CloudMarket.enterprise`), which reads and writes these arrays.

Provider columns: for a scenario with ``P`` providers, a provider index is ``0..P-1`` and the
outside option (on-premises / no purchase) is ``P``.

Captive segment: when some provider has a ``captive_share``, :func:`draw_platform_ties` ties that
share of each region's enterprises to the provider's consumer platform (``Population.platform``,
the provider index, or ``P`` for none); the model adds the provider's ``captive_bonus`` to their
utility of it. Without captive shares the array is not created and nothing is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import mesa
import numpy as np

from cloudwar.scenario import EnterpriseSpec, Scenario


@dataclass
class Population:
    """Enterprise state. All arrays have one entry per enterprise."""

    region: np.ndarray  # int8, index into scenario regions
    industry: np.ndarray  # int16
    size: np.ndarray  # float32, relative spend (heavy-tailed, mean about 1)
    price_sensitivity: np.ndarray  # float32, multiplier on price / reference price
    quality_sensitivity: np.ndarray  # float32, multiplier on provider quality
    switching_cost: np.ndarray  # float32, utility units lost by leaving the current provider
    contract_phase: np.ndarray  # int8, quarter offset of the contract renewal
    provider: np.ndarray  # int8 (n_products, n): current provider per product, P = outside option
    adopted: np.ndarray  # bool: has adopted AI
    adopted_quarter: np.ndarray  # int16: quarter of adoption, -1 if not adopted
    platform: np.ndarray | None = None  # int8: provider whose platform the enterprise is tied to, P = none

    @property
    def n(self) -> int:
        return len(self.region)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values() if a is not None)


def _lognormal_around(rng: np.random.Generator, mean: float, sigma: float, n: int) -> np.ndarray:
    """Lognormal draws with the given mean (so sigma changes dispersion, not the average)."""
    if sigma == 0.0:
        return np.full(n, mean, dtype=np.float32)
    return (mean * np.exp(rng.normal(-0.5 * sigma**2, sigma, size=n))).astype(np.float32)


def generate_population(scenario: Scenario, rng: np.random.Generator) -> Population:
    """Draw the enterprises of a scenario: region, industry, size and sensitivities."""
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
    industry = industry[np.lexsort((industry, region))]
    if spec.identical:
        size = np.ones(n, dtype=np.float32)
    else:
        # Pareto (Lomax + 1) sizes normalised to mean 1; the heavy tail is the point.
        alpha = spec.size_tail
        raw = rng.pareto(alpha, size=n) + 1.0
        size = (raw / raw.mean()).astype(np.float32)
    identical = spec.identical
    return Population(
        region=region,
        industry=industry,
        size=size,
        price_sensitivity=_lognormal_around(
            rng, spec.price_sensitivity, 0.0 if identical else spec.price_sensitivity_spread, n
        ),
        quality_sensitivity=_lognormal_around(
            rng, spec.quality_sensitivity, 0.0 if identical else spec.quality_sensitivity_spread, n
        ),
        switching_cost=_lognormal_around(rng, spec.switching_cost, 0.0 if identical else spec.switching_cost_spread, n),
        contract_phase=rng.integers(0, 64, size=n).astype(np.int8),
        provider=np.full((len(scenario.products), n), len(scenario.providers), dtype=np.int8),
        adopted=np.zeros(n, dtype=bool),
        adopted_quarter=np.full(n, -1, dtype=np.int16),
    )


def draw_platform_ties(scenario: Scenario, population: Population, rng: np.random.Generator) -> np.ndarray | None:
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
    draws = rng.random(population.n)
    ties = np.full(population.n, n_providers, dtype=np.int8)
    for r in range(len(scenario.regions)):
        rows = population.region == r
        ties[rows] = np.searchsorted(np.cumsum(cut[r]), draws[rows], side="right")
    return ties


class Enterprise(mesa.Agent):
    """A Mesa agent view of one enterprise, backed by the population arrays.

    Created on demand by :meth:`CloudMarket.enterprise`; reading or setting an attribute reads
    or writes the arrays, so the view and the fast engine never disagree.
    """

    def __init__(self, model: mesa.Model, index: int):
        super().__init__(model)
        self.index = index

    @property
    def _pop(self) -> Population:
        return self.model.population

    @property
    def region(self) -> str:
        return self.model.region_names[self._pop.region[self.index]]

    @property
    def industry(self) -> int:
        return int(self._pop.industry[self.index])

    @property
    def size(self) -> float:
        return float(self._pop.size[self.index])

    @property
    def price_sensitivity(self) -> float:
        return float(self._pop.price_sensitivity[self.index])

    @property
    def quality_sensitivity(self) -> float:
        return float(self._pop.quality_sensitivity[self.index])

    @property
    def switching_cost(self) -> float:
        return float(self._pop.switching_cost[self.index])

    @property
    def platform(self) -> str | None:
        """The provider whose consumer platform the enterprise is tied to (captive segment), if any."""
        ties = self._pop.platform
        j = len(self.model.provider_names) if ties is None else int(ties[self.index])
        return self.model.provider_names[j] if j < len(self.model.provider_names) else None

    @property
    def adopted_ai(self) -> bool:
        return bool(self._pop.adopted[self.index])

    @property
    def providers(self) -> dict[str, str | None]:
        """Current provider per product (None = outside option)."""
        names = self.model.provider_names
        out = {}
        for k, product in enumerate(self.model.product_names):
            j = int(self._pop.provider[k, self.index])
            out[product] = names[j] if j < len(names) else None
        return out

    @property
    def neighbours(self) -> list[int]:
        return [int(i) for i in self.model.network.neighbours(self.index)]

    def utilities(self, product: str) -> dict[str, float]:
        """This quarter's utility of each provider for ``product`` (utility units)."""
        k = self.model.product_names.index(product)
        values = self.model.choice_utilities(k, np.array([self.index]))[0]
        return dict(zip(self.model.provider_names, (float(v) for v in values), strict=True))

    def step(self) -> None:
        """Views do not act: the model moves all enterprises at once through the arrays."""

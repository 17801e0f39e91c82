"""Utilities, multinomial logit choice and demand growth: pure functions on arrays.

The same functions serve one enterprise and a million: every argument broadcasts, the
last axis is always the provider axis.

The choice model is the logit of Calvano, Calzolari, Denicolo and Pastorello (AER 2020),
generalised to heterogeneous enterprises::

    V_ij = qs_i * a_j - ps_i * p_j / p_ref + extra_ij      (utility of provider j, utility units)
    V_i0 = a0                                               (outside option: on-premises / no purchase)
    P_ij = exp(V_ij / mu) / (sum_k exp(V_ik / mu) + exp(V_i0 / mu))

With qs = ps = p_ref = 1 and extra = 0 this is exactly their demand
q_j = exp((a_j - p_j)/mu) / (sum_k exp((a_k - p_k)/mu) + exp(a0/mu)).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cloudwar.scenario import ProductSpec

#: Utility given to providers that are not available (presence 0); exp(-inf) = 0.
UNAVAILABLE = -np.inf


def utility(
    quality: np.ndarray,
    price: np.ndarray,
    *,
    quality_sensitivity: np.ndarray | float = 1.0,
    price_sensitivity: np.ndarray | float = 1.0,
    reference_price: float = 1.0,
    extra: np.ndarray | float = 0.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Deterministic utility of each provider (utility units).

    quality: a_j (utility units), price: p_j (USD per unit), reference_price: USD per unit that
    turns a price into utility units for an enterprise of price sensitivity 1.
    ``extra`` carries the non-price terms (ecosystem, service level, neighbours, switching cost,
    availability) already in utility units. With ``out`` (which may be ``extra`` itself) the
    result is written there, with the same rounding as without it.
    """
    if out is None:
        return (
            np.multiply(quality_sensitivity, quality) - np.multiply(price_sensitivity, price) / reference_price + extra
        )
    value = np.multiply(quality_sensitivity, quality)
    price_term = np.multiply(price_sensitivity, price)
    price_term /= reference_price
    value -= price_term
    return np.add(value, extra, out=out)  # x + y == y + x exactly, so out may alias extra


def logit_probabilities(
    utilities: np.ndarray, outside_utility: float | np.ndarray, logit_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Choice probabilities of the multinomial logit with an outside option.

    Returns ``(provider_probabilities, outside_probability)``; the first has the shape of
    ``utilities`` (last axis = providers), the second drops the last axis. Numerically stable
    (max-shifted); providers with utility ``-inf`` get probability 0.
    """
    v = np.asarray(utilities, dtype=float) / logit_scale
    v0 = np.asarray(outside_utility, dtype=float) / logit_scale
    shift = np.maximum(np.max(v, axis=-1), v0)
    ev = np.exp(v - shift[..., None])
    ev0 = np.exp(v0 - shift)
    total = ev.sum(axis=-1) + ev0
    return ev / total[..., None], ev0 / total


def calvano_demand(
    prices: np.ndarray, quality: np.ndarray, cost: np.ndarray, outside_quality: float, logit_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Demand and profit per firm in the Calvano et al. logit Bertrand game.

    ``prices`` may have leading batch axes (sessions); the last axis is firms.
    Returns ``(quantities, profits)``.
    """
    prices = np.asarray(prices, dtype=float)
    shares, _ = logit_probabilities(quality - prices, outside_quality, logit_scale)
    return shares, (prices - cost) * shares


def split_weights(probabilities: np.ndarray, split_scale: float) -> np.ndarray:
    """The weights g = p ^ (1 / split_scale) by which a two-provider wallet splits its spend.

    ``probabilities``: the plain logit's (no switching cost), or anything proportional to
    exp(V / mu). The split is a logit at ``split_scale`` x mu: g_a / (g_a + g_b) =
    exp(V_a / (s mu)) / (exp(V_a / (s mu)) + exp(V_b / (s mu))).
    """
    return probabilities ** (1.0 / split_scale)


def sample_logit(utilities: np.ndarray, outside_utility: float, logit_scale: float, uniforms: np.ndarray) -> np.ndarray:
    """Draw one logit choice per column by inverse CDF, without normalising the probabilities.

    Same model as :func:`logit_probabilities` (max-shifted exponentials, outside option last),
    fused for speed on large populations. ``utilities`` is (k, n), **providers along the first
    axis** (reductions and the running sum then sweep whole rows of enterprises; a cumsum along a
    short last axis is several times slower), may be float32, and is overwritten: it is the work
    space. ``uniforms`` (n,) in [0, 1). Returns the chosen row per column, or ``k`` for the
    outside option.
    """
    v = utilities
    v *= v.dtype.type(1.0 / logit_scale)
    v0 = outside_utility / logit_scale
    shift = np.maximum(v.max(axis=0), v.dtype.type(v0))
    v -= shift
    np.exp(v, out=v)
    for j in range(1, len(v)):  # running sum over providers, whole rows at a time
        v[j] += v[j - 1]
    total = v[-1] + np.exp(v0 - shift)
    threshold = (uniforms * total).astype(v.dtype)
    return (threshold >= v).sum(axis=0)


def sample_choices(probabilities: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Draw one choice per row by inverse CDF.

    ``probabilities`` (n, k) over providers (rows may sum to less than 1; the rest is the
    outside option), ``uniforms`` (n,) in [0, 1). Returns the chosen column, or ``k`` for the
    outside option.
    """
    cumulative = np.cumsum(probabilities, axis=1)
    return (uniforms[:, None] >= cumulative).sum(axis=1)


def demand_growth_factor(product: ProductSpec, quarter: int) -> float:
    """Each buyer's volume of ``product`` in ``quarter`` as a multiple of the start (same for every buyer).

    (1 + g)^(quarter / 4) for a constant yearly growth g = ``demand_growth``; with a half-life
    H (``demand_growth_halflife``, years) the yearly rate in quarter i is g 0.5^(i / 4H),
    compounded quarter by quarter.
    """
    if product.demand_growth_halflife == 0.0:
        return (1.0 + product.demand_growth) ** (quarter / 4.0)
    rates = product.demand_growth * 0.5 ** (np.arange(quarter) / (4.0 * product.demand_growth_halflife))
    return float(np.prod((1.0 + rates) ** 0.25))

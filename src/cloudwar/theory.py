"""Closed-form benchmarks of the logit Bertrand game of Calvano et al. (AER 2020).

Pure functions, no state. The game (see ``cloudwar.model.demand.calvano_demand``)::

    q_i  = exp((a_i - p_i)/mu) / (sum_j exp((a_j - p_j)/mu) + exp(a0/mu))     (market share, 0..1)
    pi_i = (p_i - c_i) * q_i                                                   (profit per period)

Units: qualities ``a_i`` and the outside quality ``a0`` are in utility units, which the model
equates one-for-one with money (price units, e.g. USD per unit of demand); prices ``p_i`` and
marginal costs ``c_i`` are in price units; the logit scale ``mu`` is in utility (= price) units;
shares are fractions of a market of size 1, so a profit is in price units per period per unit
market size.

Two benchmarks bracket what a pricing algorithm can learn:

* the one-shot Bertrand-Nash equilibrium, where every firm's markup satisfies the
  first-order condition ``p_i - c_i = mu / (1 - q_i)``;
* the joint-profit-maximising ("monopoly" / full collusion) prices, which maximise
  ``sum_i pi_i``; for this demand they have a common markup ``p_i - c_i = mu / q_0`` where
  ``q_0`` is the outside share.

Baseline of the paper (two firms, a=2, c=1, a0=0, mu=0.25): Nash price 1.47293 (profit 0.22293
each), joint-profit price 1.92498 (profit 0.33749 each). Three firms: Nash price 1.37016.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from cloudwar.model.demand import calvano_demand

#: Absolute tolerance (price units) to which the equilibria are solved.
TOLERANCE = 1e-10


@dataclass(frozen=True)
class LogitGame:
    """Parameters of a logit Bertrand pricing game.

    quality: a_i per firm (utility units, shape (n,)); cost: c_i per firm (price units, shape
    (n,)); outside_quality: a0 (utility units); logit_scale: mu (utility units, > 0).
    """

    quality: np.ndarray
    cost: np.ndarray
    outside_quality: float
    logit_scale: float

    @property
    def n_firms(self) -> int:
        """Number of firms."""
        return int(np.size(self.quality))


def calvano_baseline(n_firms: int = 2) -> LogitGame:
    """The symmetric baseline of Calvano et al.: a_i = 2, c_i = 1, a0 = 0, mu = 0.25."""
    if n_firms < 1:
        raise ValueError(f"n_firms must be >= 1, got {n_firms}")
    return LogitGame(quality=np.full(n_firms, 2.0), cost=np.full(n_firms, 1.0), outside_quality=0.0, logit_scale=0.25)


def _as_arrays(quality: np.ndarray, cost: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    quality = np.atleast_1d(np.asarray(quality, dtype=float))
    cost = np.broadcast_to(np.asarray(cost, dtype=float), quality.shape).astype(float)
    if quality.ndim != 1:
        raise ValueError("quality must be a 1-d array with one entry per firm")
    return quality, cost


def profits(
    prices: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray | float,
    outside_quality: float,
    logit_scale: float,
) -> np.ndarray:
    """Profit of each firm at ``prices`` (price units per period, market size 1).

    ``prices`` may carry leading batch axes; the last axis is firms.
    """
    quality, cost = _as_arrays(quality, cost)
    return calvano_demand(np.asarray(prices, dtype=float), quality, cost, outside_quality, logit_scale)[1]


def shares(
    prices: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray | float,
    outside_quality: float,
    logit_scale: float,
) -> np.ndarray:
    """Market share of each firm at ``prices`` (fraction of a market of size 1)."""
    quality, cost = _as_arrays(quality, cost)
    return calvano_demand(np.asarray(prices, dtype=float), quality, cost, outside_quality, logit_scale)[0]


def nash_foc_residual(
    prices: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray | float,
    outside_quality: float,
    logit_scale: float,
) -> np.ndarray:
    """Residual of the Nash first-order condition, ``p_i - c_i - mu / (1 - q_i)`` (price units)."""
    quality, cost = _as_arrays(quality, cost)
    s = shares(prices, quality, cost, outside_quality, logit_scale)
    return np.asarray(prices, dtype=float) - cost - logit_scale / (1.0 - s)


def nash_prices(
    quality: np.ndarray,
    cost: np.ndarray | float,
    outside_quality: float,
    logit_scale: float,
    *,
    tol: float = TOLERANCE,
    max_iter: int = 200,
) -> np.ndarray:
    """Bertrand-Nash equilibrium prices (price units), one per firm.

    Solves the first-order conditions ``p_i - c_i = mu / (1 - q_i(p))`` for any number of firms
    (symmetric or not) by Newton's method with the analytic Jacobian, started from a few
    best-response fixed-point steps. Raises ``RuntimeError`` if the residual is not below ``tol``.
    """
    quality, cost = _as_arrays(quality, cost)
    mu = float(logit_scale)
    if mu <= 0:
        raise ValueError(f"logit_scale must be > 0, got {mu}")
    p = cost + mu
    for _ in range(20):  # fixed-point warm start: p <- c + mu / (1 - q(p))
        s = shares(p, quality, cost, outside_quality, mu)
        p = cost + mu / (1.0 - s)
    eye = np.eye(quality.size)
    for _ in range(max_iter):
        s = shares(p, quality, cost, outside_quality, mu)
        residual = p - cost - mu / (1.0 - s)
        if np.max(np.abs(residual)) < tol * 1e-2:
            break
        # d q_i / d p_j = (q_i q_j - delta_ij q_i) / mu
        ds_dp = (np.outer(s, s) - np.diag(s)) / mu
        jacobian = eye - (mu / (1.0 - s) ** 2)[:, None] * ds_dp
        step = np.linalg.solve(jacobian, residual)
        p = p - step
    residual = nash_foc_residual(p, quality, cost, outside_quality, mu)
    if not np.all(np.isfinite(p)) or np.max(np.abs(residual)) > tol:
        raise RuntimeError(f"Nash prices did not converge (max FOC residual {np.max(np.abs(residual)):.3g})")
    return p


def joint_profit_prices(
    quality: np.ndarray,
    cost: np.ndarray | float,
    outside_quality: float,
    logit_scale: float,
    *,
    tol: float = TOLERANCE,
) -> np.ndarray:
    """Prices that maximise total profit ``sum_i (p_i - c_i) q_i`` (price units), one per firm.

    Closed form. The first-order conditions of the multi-product logit monopolist give every firm
    the same markup ``m = mu / q_0`` (``q_0`` the outside share), i.e.
    ``m / mu - 1 = S exp(-m / mu)`` with ``S = sum_j exp((a_j - c_j - a0) / mu)``, whose solution
    is ``m = mu (1 + W(S / e))`` with ``W`` the principal branch of Lambert's W. Raises
    ``RuntimeError`` if the gradient of total profit is not below ``tol`` at the result.
    """
    quality, cost = _as_arrays(quality, cost)
    mu = float(logit_scale)
    if mu <= 0:
        raise ValueError(f"logit_scale must be > 0, got {mu}")
    # log(S / e), computed stably for large (a - c - a0) / mu
    z = (quality - cost - outside_quality) / mu
    log_s_over_e = float(np.logaddexp.reduce(z)) - 1.0
    w = _lambertw_from_log(log_s_over_e)
    p = cost + mu * (1.0 + w)
    s = shares(p, quality, cost, outside_quality, mu)
    # d total / d p_j = q_j * (1 - (m_j - sum_i m_i q_i) / mu)
    markup = p - cost
    gradient = s * (1.0 - (markup - np.dot(markup, s)) / mu)
    if not np.all(np.isfinite(p)) or np.max(np.abs(gradient)) > tol:
        raise RuntimeError(f"joint-profit prices did not converge (max gradient {np.max(np.abs(gradient)):.3g})")
    return p


def _lambertw_from_log(log_x: float) -> float:
    """Principal-branch Lambert W of ``x = exp(log_x)`` (x > 0), by Newton's method on ``w + ln w = ln x``.

    Works from the logarithm so that huge ``x`` (a very attractive market) does not overflow.
    """
    x_is_small = log_x < 1.0
    w = float(special.lambertw(np.exp(log_x)).real) if x_is_small else log_x - np.log(log_x)
    for _ in range(50):
        # f(w) = w + ln w - ln x; f'(w) = 1 + 1/w
        step = (w + np.log(w) - log_x) / (1.0 + 1.0 / w)
        w -= step
        if abs(step) <= 1e-15 * max(1.0, w):
            break
    return w


def nash_profits(
    quality: np.ndarray, cost: np.ndarray | float, outside_quality: float, logit_scale: float
) -> np.ndarray:
    """Profit of each firm at the Bertrand-Nash prices (price units per period)."""
    p = nash_prices(quality, cost, outside_quality, logit_scale)
    return profits(p, quality, cost, outside_quality, logit_scale)


def joint_profit_profits(
    quality: np.ndarray, cost: np.ndarray | float, outside_quality: float, logit_scale: float
) -> np.ndarray:
    """Profit of each firm at the joint-profit-maximising prices (price units per period)."""
    p = joint_profit_prices(quality, cost, outside_quality, logit_scale)
    return profits(p, quality, cost, outside_quality, logit_scale)


def profit_gain(
    profit: np.ndarray | float, nash_profit: np.ndarray | float, monopoly_profit: np.ndarray | float
) -> np.ndarray:
    """Calvano et al.'s normalised profit gain ``Delta = (pi - pi_N) / (pi_M - pi_N)`` (dimensionless).

    0 means the one-shot Nash profit, 1 the joint-profit-maximising (monopoly) profit.
    """
    return (np.asarray(profit, dtype=float) - nash_profit) / (np.asarray(monopoly_profit, dtype=float) - nash_profit)

"""Tabular Q-learning pricing agents, after Calvano, Calzolari, Denicolo and Pastorello (AER 2020).

Each of ``n`` firms repeatedly sets a price in the logit Bertrand game of ``cloudwar.theory``.
Following the paper exactly:

* actions: ``m = 15`` equally spaced prices from ``p_N - xi (p_M - p_N)`` to ``p_M + xi (p_M - p_N)``
  with ``xi = 0.1`` (``p_N`` Nash price, ``p_M`` joint-profit-maximising price, price units);
* state: the price indices all firms chose last period (memory of one period), encoded as the
  integer ``sum_i a_i m^(n-1-i)`` (firm 0 most significant), so there are ``m^n`` states;
* Q initialised to the discounted payoff of each action against uniformly randomising rivals,
  ``Q0(s, a_i) = sum_{a_-i} pi_i(a_i, a_-i) / ((1 - delta) m^(n-1))`` (price units, discounted sum);
* epsilon-greedy exploration with ``epsilon_t = exp(-beta t)`` (``t`` in periods), learning rate
  ``alpha = 0.15``, discount factor ``delta = 0.95`` per period;
* convergence when every firm's greedy action in every state has been unchanged for 100,000
  consecutive periods (the paper caps a session at 10^9 periods; here the cap is configurable);
* outcome: from the last state, the greedy strategies are played until the price path cycles and
  profits are averaged over the cycle; the profit gain is
  ``Delta = (profit - pi_N) / (pi_M - pi_N)``.

The simulator is vectorised over sessions: all sessions advance side by side as numpy arrays,
with one Python loop over periods. Each session draws its random numbers from its own
``numpy.random.Generator`` seeded from a per-session seed, so results do not depend on how
sessions are batched or split between processes. Many sessions on many processes, with the
one seed rule of the runs layer and resume, are :mod:`cloudwar.runs.sessions`.

``TabularQLearner`` is a single-firm learner with the same update (``q_update``) and the same use
of random numbers, for use inside an agent-based market model: the ``q_learning`` strategy
(:class:`QLearning`) runs one per market a provider serves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cloudwar import theory
from cloudwar.errors import ScenarioError
from cloudwar.strategies.base import Strategy, param

if TYPE_CHECKING:
    from cloudwar.model.market import CloudMarket
    from cloudwar.model.providers import Provider

#: Periods per block of pre-drawn random numbers. A constant: it never changes the results
#: (random doubles are consumed one per draw whatever the block size) but keeps memory bounded.
_BLOCK = 2048


@dataclass(frozen=True)
class QLearningConfig:
    """Settings of a Calvano et al. experiment (defaults = the paper's baseline).

    game: the logit Bertrand game (qualities, costs in price units, logit scale);
    n_prices: m, prices per firm; xi: grid extension beyond [p_N, p_M] as a fraction of p_M - p_N;
    alpha: learning rate (dimensionless); delta: discount factor per period; beta: exploration decay
    per period (epsilon_t = exp(-beta t)); convergence_window: periods with unchanged greedy
    strategies that count as convergence; max_periods: cap on periods per session.
    """

    game: theory.LogitGame = field(default_factory=theory.calvano_baseline)
    n_prices: int = 15
    xi: float = 0.1
    alpha: float = 0.15
    delta: float = 0.95
    beta: float = 4e-6
    convergence_window: int = 100_000
    max_periods: int = 5_000_000

    def __post_init__(self) -> None:
        if self.n_prices < 2:
            raise ValueError(f"n_prices must be >= 2, got {self.n_prices}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0.0 <= self.delta < 1.0:
            raise ValueError(f"delta must be in [0, 1), got {self.delta}")
        if self.beta < 0.0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.convergence_window < 1 or self.max_periods < 1:
            raise ValueError("convergence_window and max_periods must be >= 1")

    @property
    def n_firms(self) -> int:
        """Number of firms."""
        return self.game.n_firms

    @property
    def n_states(self) -> int:
        """Number of states, m^n."""
        return self.n_prices**self.n_firms


@dataclass(frozen=True)
class GameTables:
    """Precomputed quantities of a config (all prices/profits in price units).

    grid: (m,) action prices; profit: (m^n, n) per-period profit of each firm for each joint action
    (= state) index; initial_q: (n, m) Q0 per firm and action; nash_price, monopoly_price: (n,);
    nash_profit, monopoly_profit: (n,) per period.
    """

    grid: np.ndarray
    profit: np.ndarray
    initial_q: np.ndarray
    nash_price: np.ndarray
    monopoly_price: np.ndarray
    nash_profit: np.ndarray
    monopoly_profit: np.ndarray


@dataclass
class SessionResults:
    """Outcome of a batch of sessions (one row per session).

    seed: per-session seed; converged: greedy strategies stable for the window before the cap;
    periods: learning periods run; cycle_length: periods of the greedy price cycle reached;
    prices: (S, n) mean price over the cycle (price units); profits: (S, n) mean profit per period
    over the cycle (price units); delta: (S,) profit gain averaged over firms (dimensionless);
    q: (S, n, m^n, m) final Q-tables, only if requested.
    """

    seed: np.ndarray
    converged: np.ndarray
    periods: np.ndarray
    cycle_length: np.ndarray
    prices: np.ndarray
    profits: np.ndarray
    delta: np.ndarray
    q: np.ndarray | None = None

    @staticmethod
    def concatenate(parts: list[SessionResults]) -> SessionResults:
        """Stack results of several batches in order."""
        q = None if any(p.q is None for p in parts) else np.concatenate([p.q for p in parts])
        return SessionResults(
            seed=np.concatenate([p.seed for p in parts]),
            converged=np.concatenate([p.converged for p in parts]),
            periods=np.concatenate([p.periods for p in parts]),
            cycle_length=np.concatenate([p.cycle_length for p in parts]),
            prices=np.concatenate([p.prices for p in parts]),
            profits=np.concatenate([p.profits for p in parts]),
            delta=np.concatenate([p.delta for p in parts]),
            q=q,
        )


# --------------------------------------------------------------------------- building blocks


def price_grid(nash_price: float, monopoly_price: float, n_prices: int = 15, xi: float = 0.1) -> np.ndarray:
    """The paper's action set: ``n_prices`` equally spaced prices (price units) from
    ``p_N - xi (p_M - p_N)`` to ``p_M + xi (p_M - p_N)``."""
    spread = monopoly_price - nash_price
    return np.linspace(nash_price - xi * spread, monopoly_price + xi * spread, n_prices)


def state_index(actions: np.ndarray, n_prices: int) -> np.ndarray:
    """Integer state of joint price indices (last axis = firms): ``sum_i a_i m^(n-1-i)``."""
    actions = np.asarray(actions)
    n = actions.shape[-1]
    powers = n_prices ** np.arange(n - 1, -1, -1)
    return actions @ powers


def state_actions(state: np.ndarray | int, n_prices: int, n_firms: int) -> np.ndarray:
    """Inverse of ``state_index``: the price index of each firm (last axis = firms)."""
    state = np.asarray(state)
    powers = n_prices ** np.arange(n_firms - 1, -1, -1)
    return (state[..., None] // powers) % n_prices


def initial_q_values(profit: np.ndarray, n_prices: int, delta: float) -> np.ndarray:
    """``Q0[i, a] = sum_{a_-i} pi_i(a, a_-i) / ((1 - delta) m^(n-1))`` (price units).

    ``profit`` is (m^n, n), indexed by joint-action state. Returns (n, m); the same row is used
    in every state.
    """
    n = profit.shape[1]
    table = profit.reshape((n_prices,) * n + (n,))
    q0 = np.empty((n, n_prices))
    for i in range(n):
        others = tuple(ax for ax in range(n) if ax != i)
        q0[i] = table[..., i].sum(axis=others) / ((1.0 - delta) * n_prices ** (n - 1))
    return q0


def game_tables(config: QLearningConfig) -> GameTables:
    """Grid, profit table and Q0 for ``config``.

    With asymmetric firms one common grid spans the lowest Nash to the highest monopoly price.
    """
    g = config.game
    args = (g.quality, g.cost, g.outside_quality, g.logit_scale)
    p_n = theory.nash_prices(*args)
    p_m = theory.joint_profit_prices(*args)
    grid = price_grid(float(p_n.min()), float(p_m.max()), config.n_prices, config.xi)
    joint = grid[state_actions(np.arange(config.n_states), config.n_prices, config.n_firms)]
    profit = theory.profits(joint, *args)
    return GameTables(
        grid=grid,
        profit=profit,
        initial_q=initial_q_values(profit, config.n_prices, config.delta),
        nash_price=p_n,
        monopoly_price=p_m,
        nash_profit=theory.profits(p_n, *args),
        monopoly_profit=theory.profits(p_m, *args),
    )


def exploration_rate(t: np.ndarray | int, beta: float) -> np.ndarray:
    """``epsilon_t = exp(-beta t)``: probability of a uniformly random action in period ``t``."""
    return np.exp(-beta * np.asarray(t, dtype=float))


def q_update(
    q: np.ndarray | float,
    reward: np.ndarray | float,
    next_value: np.ndarray | float,
    alpha: float,
    delta: float,
) -> np.ndarray | float:
    """The Q-learning update: ``Q <- Q + alpha (reward + delta max_a' Q(s', a') - Q)``.

    ``reward`` is this period's profit (price units), ``next_value`` the maximum Q of the next
    state. The single implementation used by both the vectorised simulator and
    ``TabularQLearner``.
    """
    return q + alpha * (reward + delta * next_value - q)


class TabularQLearner:
    """One firm's epsilon-greedy tabular Q-learner (states and actions are integer indices).

    q: (n_states, n_actions) Q-table (price units, discounted); t: periods learned so far, which
    sets the exploration rate ``exp(-beta t)``. ``act`` draws two uniforms per call (explore?,
    which action) exactly as the vectorised simulator does, so with a shared generator a set of
    learners reproduces ``simulate_sessions`` bit for bit.
    """

    def __init__(
        self,
        n_states: int,
        n_actions: int,
        *,
        alpha: float = 0.15,
        delta: float = 0.95,
        beta: float = 4e-6,
        initial_q: np.ndarray | float = 0.0,
    ) -> None:
        self.n_states = int(n_states)
        self.n_actions = int(n_actions)
        self.alpha = float(alpha)
        self.delta = float(delta)
        self.beta = float(beta)
        self.q = np.array(np.broadcast_to(np.asarray(initial_q, dtype=float), (n_states, n_actions)))
        self.t = 0

    @classmethod
    def for_firm(cls, config: QLearningConfig, firm: int, tables: GameTables | None = None) -> TabularQLearner:
        """A learner for ``firm`` of ``config`` with the paper's Q0 initialisation."""
        tables = game_tables(config) if tables is None else tables
        return cls(
            config.n_states,
            config.n_prices,
            alpha=config.alpha,
            delta=config.delta,
            beta=config.beta,
            initial_q=tables.initial_q[firm],
        )

    @property
    def epsilon(self) -> float:
        """Current exploration probability."""
        return float(exploration_rate(self.t, self.beta))

    def greedy(self, state: int) -> int:
        """Action with the highest Q in ``state`` (lowest index on ties)."""
        return int(np.argmax(self.q[state]))

    def act(self, state: int, rng: np.random.Generator) -> int:
        """Epsilon-greedy action in ``state``."""
        explore, pick = rng.random(2)
        if explore < self.epsilon:
            return int(pick * self.n_actions)
        return self.greedy(state)

    def learn(self, state: int, action: int, reward: float, next_state: int) -> None:
        """Update Q(state, action) after earning ``reward`` (price units) and moving to ``next_state``."""
        self.q[state, action] = q_update(
            self.q[state, action], reward, self.q[next_state].max(), self.alpha, self.delta
        )
        self.t += 1


# --------------------------------------------------------------------------- the q_learning strategy


@dataclass
class QLearning(Strategy):
    """Tabular Q-learning over a price grid, as in Calvano, Calzolari, Denicolo and Pastorello (AER 2020).

    One learner (:class:`TabularQLearner`) per (product, region) where the provider is present.
    Actions: ``n_prices`` equally spaced prices from ``price_low`` to ``price_high``; without
    them, from p_N - xi (p_M - p_N) to p_M + xi (p_M - p_N), with p_N and p_M the Nash and
    joint-profit prices of the market's logit game (:mod:`cloudwar.theory`, from the providers'
    qualities, availability and starting unit costs: exact in theory mode, with identical
    enterprises). State: last quarter's prices of all providers in the market, each as the
    nearest grid index (memory of one quarter), ``n_prices ^ providers`` states. Reward: the
    provider's profit in that market last quarter, (price - unit cost) x served volume, USD.
    Q starts at the discounted profit against rivals playing uniformly at random, from the
    market's expected demand (:meth:`CloudMarket.demand_curve`). Exploration epsilon =
    exp(-beta t) with t the quarters learned; learning rate ``alpha``; discount factor
    ``discount`` per quarter. Random draws come from the model's generator, so a seed
    reproduces a run.

    Learned state (made by :meth:`start`): ``markets_``, per (product index, region index) the
    price grid, the learner and the last (state, action); see :meth:`learners`, :meth:`grids`.
    """

    kind: ClassVar[str] = "q_learning"
    capex_rule: str = "none"
    n_prices: int = param(15, unit="count", lo=2, hi=100, integer=True, doc="prices on the grid (actions)")
    xi: float = param(
        0.1, unit="fraction of p_M - p_N", lo=0.0, hi=10.0, doc="grid extension below Nash and above monopoly"
    )
    alpha: float = param(0.15, unit="per update", lo=0.0, hi=1.0, lo_open=True, doc="learning rate")
    discount: float = param(0.95, unit="per quarter", lo=0.0, hi=0.9999, doc="discount factor of future profit")
    beta: float = param(4e-6, unit="per quarter", lo=0.0, doc="exploration decay: epsilon = exp(-beta t)")
    price_low: float | None = param(
        None, unit="USD per unit", lo=0.0, doc="lowest grid price (with price_high; unset: from the Nash price)"
    )
    price_high: float | None = param(
        None, unit="USD per unit", lo=0.0, doc="highest grid price (with price_low; unset: from the monopoly price)"
    )
    max_states: ClassVar[int] = 100_000

    def validate(self) -> None:
        super().validate()
        if (self.price_low is None) != (self.price_high is None):
            raise ScenarioError("parameters 'price_low' and 'price_high' go together: give both or neither")
        if self.price_low is not None and self.price_high <= self.price_low:
            raise ScenarioError(f"parameter 'price_high' must be > price_low, got {self.price_high!r}")

    # --- learned state -------------------------------------------------------------------
    def start(self, provider: Provider, market: CloudMarket) -> None:
        """One price grid and learner per market where the provider is present (``markets_``)."""
        super().start(provider, market)
        self.markets_: dict[tuple[int, int], dict[str, Any]] = {
            (k, r): self._learner(provider, market, k, r)
            for k in range(len(market.product_names))
            for r in range(len(market.region_names))
            if provider.presence[r] > 0
        }

    def price_grid(self, provider: Provider, market: CloudMarket, k: int, r: int) -> np.ndarray:
        """The action prices of market (k, r), USD per unit."""
        if self.price_low is not None:
            return np.linspace(self.price_low, self.price_high, self.n_prices)
        product = market.products[k]
        ref = product.reference_price
        with np.errstate(divide="ignore"):
            quality = market.quality[:, k, r] + np.log(np.array([p.presence[r] for p in market.providers_list]))
        cost = np.array([p.unit_cost[k, r] for p in market.providers_list]) / ref
        present = np.isfinite(quality)
        args = (quality[present], cost[present], product.outside_quality, product.logit_scale)
        i = int(np.flatnonzero(present).tolist().index(provider.index))
        nash = theory.nash_prices(*args)[i] * ref
        monopoly = theory.joint_profit_prices(*args)[i] * ref
        return price_grid(nash, monopoly, self.n_prices, self.xi)

    def _learner(self, provider: Provider, market: CloudMarket, k: int, r: int) -> dict[str, Any]:
        n_providers, m = len(market.providers_list), self.n_prices
        if m**n_providers > self.max_states:
            raise ScenarioError(
                f"q_learning: {m}^{n_providers} states is too many (at most {self.max_states:,}); "
                "use fewer providers or fewer prices"
            )
        grid = self.price_grid(provider, market, k, r)
        curve = market.demand_curve(k, r)
        cost = float(provider.unit_cost[k, r])
        # Profit of every joint action (all providers on this grid), state-index order.
        joint = state_actions(np.arange(m**n_providers), m, n_providers)
        profit = np.array([(grid[a[provider.index]] - cost) * curve.quantities(grid[a])[provider.index] for a in joint])
        profit_table = np.zeros((profit.size, n_providers))
        profit_table[:, provider.index] = profit
        initial_q = initial_q_values(profit_table, m, self.discount)[provider.index]
        learner = TabularQLearner(
            m**n_providers, m, alpha=self.alpha, delta=self.discount, beta=self.beta, initial_q=initial_q
        )
        return {"grid": grid, "learner": learner, "last": None}

    def state(self, grid: np.ndarray, prices: np.ndarray) -> int:
        """State index of a price vector: each price as its nearest grid index, first provider most significant."""
        actions = np.abs(prices[:, None] - grid[None, :]).argmin(axis=1)
        return int(state_index(actions, self.n_prices))

    # --- decisions -----------------------------------------------------------------------
    def set_prices(self, provider: Provider, market: CloudMarket) -> np.ndarray:
        new = provider.prices.copy()
        for (k, r), m in self.markets_.items():
            state = self.state(m["grid"], market.prices[:, k, r])
            if m["last"] is not None:
                last_state, action = m["last"]
                books = provider.history[-1]
                reward = float(books.revenue[k, r] - books.variable_cost[k, r])
                m["learner"].learn(last_state, action, reward, state)
            action = m["learner"].act(state, market.rng)
            m["last"] = (state, action)
            new[k, r] = m["grid"][action]
        return new

    def learners(self) -> dict[tuple[int, int], TabularQLearner]:
        """The Q-learners by (product index, region index) (after :meth:`start`)."""
        return {key: m["learner"] for key, m in self.markets_.items()}

    def grids(self) -> dict[tuple[int, int], np.ndarray]:
        """The price grids by (product index, region index) (after :meth:`start`)."""
        return {key: m["grid"] for key, m in self.markets_.items()}


# --------------------------------------------------------------------------- vectorised simulator


def greedy_cycle(greedy: np.ndarray, start_state: int, n_prices: int) -> np.ndarray:
    """States visited on the cycle reached by playing greedy strategies from ``start_state``.

    ``greedy`` is (n, m^n): each firm's greedy price index per state. Returns the states of the
    cycle (each state is the joint action played in that period), in order.
    """
    n = greedy.shape[0]
    powers = n_prices ** np.arange(n - 1, -1, -1)
    seen: dict[int, int] = {}
    path: list[int] = []
    s = int(start_state)
    while s not in seen:
        seen[s] = len(path)
        path.append(s)
        s = int(greedy[:, s] @ powers)
    # s is the first repeated state: the cycle is path[seen[s]:]
    return np.array(path[seen[s] :], dtype=np.intp)


def simulate_sessions(
    config: QLearningConfig, seeds: np.ndarray | list[int], *, record_q: bool = False
) -> SessionResults:
    """Run one session per seed, all side by side, until each converges or hits the cap.

    Session ``k`` uses only ``numpy.random.default_rng(seeds[k])``: first ``n`` uniforms for the
    initial prices, then, each period, for each firm in order, one uniform deciding exploration
    and one choosing the random price. Results therefore do not depend on the batch.
    """
    seeds = np.asarray(seeds, dtype=np.int64).ravel()
    n_sessions = seeds.size
    tables = game_tables(config)
    n, m, n_states = config.n_firms, config.n_prices, config.n_states
    alpha, delta, beta = config.alpha, config.delta, config.beta
    window, cap = config.convergence_window, config.max_periods
    powers = (m ** np.arange(n - 1, -1, -1)).astype(np.intp)
    profit_table = tables.profit

    # Q[k, i, s, a]; greedy[k, i, s]
    q = np.empty((n_sessions, n, n_states, m))
    q[:] = tables.initial_q[None, :, None, :]
    q_flat = q.reshape(-1)
    q_rows = q.reshape(-1, m)
    greedy = np.empty((n_sessions, n, n_states), dtype=np.intp)
    greedy[:] = np.argmax(tables.initial_q, axis=1)[None, :, None]
    greedy_flat = greedy.reshape(-1)
    # row_profit[(k * n + i) * m^n + s]: firm i's profit when the joint action is s (same row layout as Q)
    row_profit = np.ascontiguousarray(np.broadcast_to(profit_table.T[None], (n_sessions, n, n_states))).ravel()

    rngs = [np.random.default_rng(int(s)) for s in seeds]
    start = np.array([(rng.random(n) * m).astype(np.intp) for rng in rngs]).reshape(n_sessions, n)
    final_state = start @ powers
    periods = np.zeros(n_sessions, dtype=np.int64)
    converged = np.zeros(n_sessions, dtype=bool)

    active = np.arange(n_sessions)  # global ids of sessions still learning
    state = final_state.copy()  # current state of each active session
    # last period in which a greedy action changed, per active (session, firm); -1 = never
    last_change = np.full(n_sessions * n, -1, dtype=np.int64)
    next_check = window - 1  # earliest period after which some session can have a stable window

    def layout(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row offsets of each (session, firm) Q-table and the local session of each entry."""
        base = ((ids[:, None] * n + np.arange(n)[None, :]) * n_states).ravel().astype(np.intp)
        return base, np.repeat(np.arange(ids.size, dtype=np.intp), n)

    base, owner = layout(active)
    row = state[owner] + base  # Q row (session, firm, state) of each active firm
    t = 0
    while active.size and t < cap:
        t_end = min(t + _BLOCK, cap)
        draws = np.stack([rngs[k].random((t_end - t, n, 2)) for k in active], axis=1)  # (B, k, n, 2)
        eps = exploration_rate(np.arange(t, t_end), beta)
        explore = (draws[..., 0] < eps[:, None, None]).reshape(t_end - t, -1)
        random_action = (draws[..., 1] * m).astype(np.intp).reshape(t_end - t, -1)
        del draws
        k = active.size
        row_m = row * m
        for period in range(t, t_end):
            # --- one period for all active sessions and firms (arrays of length k * n)
            j = period - t
            current = greedy_flat[row]
            action = np.where(explore[j], random_action[j], current)
            state = action.reshape(k, n) @ powers
            next_row = state[owner]
            next_row += base
            reward = row_profit[next_row]
            next_row_m = next_row * m
            next_value = q_flat[next_row_m + greedy_flat[next_row]]  # max_a' Q(s', a') before the update
            cell = row_m + action
            q_flat[cell] = q_update(q_flat[cell], reward, next_value, alpha, delta)
            new_greedy = np.take(q_rows, row, axis=0).argmax(axis=1)
            last_change[new_greedy != current] = period
            greedy_flat[row] = new_greedy
            row, row_m = next_row, next_row_m
            if period >= next_check:
                session_change = last_change.reshape(k, n).max(axis=1)
                done = period - session_change >= window
                if done.any():
                    ids = active[done]
                    converged[ids] = True
                    periods[ids] = period + 1
                    final_state[ids] = state[done]
                    keep = ~done
                    cols = np.repeat(keep, n)
                    active, state, session_change = active[keep], state[keep], session_change[keep]
                    last_change, row, row_m = last_change[cols], row[cols], row_m[cols]
                    if not active.size:
                        t = period + 1
                        break
                    base, owner = layout(active)
                    explore, random_action = explore[:, cols], random_action[:, cols]
                    k = active.size
                next_check = int(session_change.min()) + window
        else:
            t = t_end
    # sessions that hit the cap
    periods[active] = t
    final_state[active] = state

    cycle_length = np.zeros(n_sessions, dtype=np.int64)
    mean_price = np.zeros((n_sessions, n))
    mean_profit = np.zeros((n_sessions, n))
    for k in range(n_sessions):
        cycle = greedy_cycle(greedy[k], int(final_state[k]), m)
        cycle_length[k] = cycle.size
        mean_price[k] = tables.grid[state_actions(cycle, m, n)].mean(axis=0)
        mean_profit[k] = profit_table[cycle].mean(axis=0)
    gain = theory.profit_gain(mean_profit, tables.nash_profit, tables.monopoly_profit).mean(axis=1)
    return SessionResults(
        seed=seeds,
        converged=converged,
        periods=periods,
        cycle_length=cycle_length,
        prices=mean_price,
        profits=mean_profit,
        delta=gain,
        q=q if record_q else None,
    )


def mean_confidence_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and normal-approximation confidence interval ``(mean, low, high)`` of ``values``."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
    return mean, mean - half, mean + half

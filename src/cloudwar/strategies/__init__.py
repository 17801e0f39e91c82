"""Strategies: one small interface (:class:`Strategy`), the shipped playbooks, optimising and learning rules.

:mod:`~cloudwar.strategies.base` holds the interface, parameter declarations (:func:`param`), the
registry and the rules strategies share; :mod:`~cloudwar.strategies.playbooks`,
:mod:`~cloudwar.strategies.optimising` and :mod:`~cloudwar.strategies.learning` the shipped
strategies (importing this package registers them all).
"""

from cloudwar.errors import StrategyError
from cloudwar.strategies.base import (
    MAIN_RIVAL_SHARE,
    MAX_PLANNED_GROWTH,
    REGISTRY,
    Param,
    ParamRow,
    RivalMatch,
    RivalMatching,
    Strategy,
    StrategyRow,
    capex_for_utilisation,
    check_market_table,
    cost_following_prices,
    declared_parameters,
    demand_trend,
    demand_weights,
    describe_strategies,
    make_strategy,
    match_rivals,
    param,
    per_market,
    rival_price_index,
    strategy_class,
)
from cloudwar.strategies.learning import QLearning
from cloudwar.strategies.optimising import BestResponse, JointProfit
from cloudwar.strategies.playbooks import (
    CostPlus,
    FixedPrice,
    MarginController,
    MarginDiscipline,
    PlatformEmbedded,
    PriceCut,
    ShareFirst,
)

__all__ = [
    "StrategyError",
    "BestResponse",
    "CostPlus",
    "FixedPrice",
    "JointProfit",
    "MAIN_RIVAL_SHARE",
    "MAX_PLANNED_GROWTH",
    "MarginController",
    "MarginDiscipline",
    "Param",
    "ParamRow",
    "PlatformEmbedded",
    "PriceCut",
    "QLearning",
    "REGISTRY",
    "RivalMatch",
    "RivalMatching",
    "ShareFirst",
    "Strategy",
    "StrategyRow",
    "capex_for_utilisation",
    "check_market_table",
    "cost_following_prices",
    "declared_parameters",
    "demand_trend",
    "demand_weights",
    "describe_strategies",
    "make_strategy",
    "match_rivals",
    "param",
    "per_market",
    "rival_price_index",
    "strategy_class",
]

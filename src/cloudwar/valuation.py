"""Valuation of a provider's business: NPV of free cash flows, terminal value, enterprise value.

Money is USD. Quarter ``t`` (1 = the first step) is discounted to the start, quarter 0, by
``(1 + r) ** (t / 4)`` with ``r`` the scenario's ``discount_rate`` per year, as the model's books
discount their free cash flow (:class:`cloudwar.model.providers.Books`).

* :func:`npv`: the discounted sum of quarterly cash flows;
* :func:`perpetuity`: Gordon's growth perpetuity, ``CF_next / (r - g)``, with ``r > g`` checked;
* :func:`terminal_value`: what the business is worth at the horizon, discounted to the start:
  a growth perpetuity of the last year's operating income (after tax at ``tax_rate``; the
  default: no growth, pre-tax), or an exit multiple of the last year's operating income or
  revenue (a market multiple: pre-tax). A business losing money is worth 0 (it can close), not
  minus its losses forever;
* :class:`Valuer`: both metrics of the results table, quarter by quarter, as if the run ended
  there (:func:`cloudwar.results.tidy_results`): ``terminal_value`` and ``enterprise_value`` =
  NPV of the free cash flows so far (after tax) + the terminal value.

The settings are the scenario's ``[valuation]`` table (:class:`cloudwar.scenario.ValuationSpec`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cloudwar.errors import ScenarioError

if TYPE_CHECKING:
    from cloudwar.scenario import ValuationSpec

QUARTERS_PER_YEAR = 4


def discount(value: np.ndarray | float, rate: float, quarter: float) -> np.ndarray | float:
    """``value`` (USD at the end of quarter ``quarter``) discounted to the start at ``rate`` per year.

    Divides by ``(1 + rate) ** (quarter / 4)``, the books' own arithmetic, so the results agree to the bit.
    """
    return value / (1.0 + rate) ** (quarter / QUARTERS_PER_YEAR)


def npv(cash_flows: Sequence[float] | np.ndarray, rate: float, first_quarter: int = 1) -> float:
    """Net present value (USD at quarter 0) of quarterly cash flows (USD per quarter), the first at
    quarter ``first_quarter``, at ``rate`` per year; summed in order, as the books do."""
    total = 0.0
    for i, cash_flow in enumerate(np.asarray(cash_flows, dtype=float)):
        total += float(discount(cash_flow, rate, first_quarter + i))
    return total


def perpetuity(cash_flow_next_year: np.ndarray | float, rate: float, growth: float = 0.0) -> np.ndarray | float:
    """Gordon's growth perpetuity: the value (USD) a year before ``cash_flow_next_year`` (USD per year)
    is first received, of that cash flow growing at ``growth`` per year for ever: ``CF / (r - g)``.

    Raises :class:`~cloudwar.errors.ScenarioError` unless ``rate > growth`` (otherwise the sum diverges).
    """
    if not rate > growth:
        raise ScenarioError(
            f"valuation.terminal_growth: must be below discount_rate ({rate:g}) for a growth perpetuity, got {growth:g}"
        )
    return cash_flow_next_year / (rate - growth)


def terminal_value(
    operating_income_last_year: np.ndarray | float,
    discount_rate: float,
    quarters: float,
    spec: ValuationSpec | None = None,
    revenue_last_year: np.ndarray | float | None = None,
) -> np.ndarray | float:
    """Present value (USD at quarter 0) of the business after the horizon, quarter ``quarters``.

    ``operating_income_last_year``, ``revenue_last_year``: USD over the last four quarters.
    ``spec`` (default: the scenario defaults) chooses the method. ``perpetuity``: the year's
    operating income after tax, ``max(income, 0) x (1 - tax_rate)``, is next year's cash flow
    grown by ``terminal_growth`` (without growth capex only replaces what depreciates, so cash
    flow = operating income), valued as a growth perpetuity. ``exit_multiple``: ``exit_multiple x``
    the year's operating income (at least 0) or revenue. Either is discounted from the horizon.
    """
    from cloudwar.scenario import ValuationSpec

    spec = ValuationSpec() if spec is None else spec
    if spec.method == "exit_multiple":
        if spec.exit_basis == "revenue":
            if revenue_last_year is None:
                raise ValueError("an exit multiple of revenue needs revenue_last_year")
            basis = np.maximum(revenue_last_year, 0.0)
        else:
            basis = np.maximum(operating_income_last_year, 0.0)
        at_horizon = spec.exit_multiple * basis
    else:
        cash_flow = np.maximum(operating_income_last_year, 0.0) * (1.0 - spec.tax_rate)
        at_horizon = perpetuity(cash_flow * (1.0 + spec.terminal_growth), discount_rate, spec.terminal_growth)
    return discount(at_horizon, discount_rate, quarters)


def tax(operating_income: np.ndarray | float, tax_rate: float) -> np.ndarray | float:
    """Tax (USD) on a quarter's operating income: ``tax_rate`` of its positive part (losses earn no credit)."""
    return np.maximum(operating_income, 0.0) * tax_rate


class Valuer:
    """The valuation metrics of each quarter of a run, for every provider, as if the run ended there.

    Feed it the quarters in order (:meth:`value`). The "last year" is the last four quarters; in
    the first three quarters, the quarters so far scaled to a year.
    """

    def __init__(self, discount_rate: float, spec: ValuationSpec | None = None):
        from cloudwar.scenario import ValuationSpec

        self.rate = discount_rate
        self.spec = ValuationSpec() if spec is None else spec
        self.income: list[np.ndarray] = []
        self.revenue: list[np.ndarray] = []
        self.discounted_tax: np.ndarray | float = 0.0

    def value(
        self, quarter: int, operating_income: np.ndarray, revenue: np.ndarray, npv: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(terminal value, enterprise value), USD at quarter 0, per provider, after ``quarter``.

        ``operating_income``, ``revenue``: the quarter's per provider (USD per quarter); ``npv``:
        the books' pre-tax NPV of free cash flow so far (USD), from which the discounted tax is taken.
        """
        self.income = [*self.income[-(QUARTERS_PER_YEAR - 1) :], np.asarray(operating_income, dtype=float)]
        self.revenue = [*self.revenue[-(QUARTERS_PER_YEAR - 1) :], np.asarray(revenue, dtype=float)]
        income_year, revenue_year = _year(self.income), _year(self.revenue)
        tv = np.asarray(terminal_value(income_year, self.rate, quarter, self.spec, revenue_year), dtype=float)
        if self.spec.tax_rate:  # pre-tax: the books' NPV as it is, to the bit
            self.discounted_tax = self.discounted_tax + discount(
                tax(operating_income, self.spec.tax_rate), self.rate, quarter
            )
        return tv, np.asarray(npv, dtype=float) - self.discounted_tax + tv


def _year(quarters: list[np.ndarray]) -> np.ndarray:
    """The sum of the last four quarters (the sum of fewer, scaled to four, early in a run)."""
    total = quarters[0].copy()
    for q in quarters[1:]:
        total = total + q
    if len(quarters) < QUARTERS_PER_YEAR:
        total = total * (QUARTERS_PER_YEAR / len(quarters))
    return total

"""cloudwar: an agent-based simulation of competition in the AI cloud market, on Mesa.

The names below are imported on first use (PEP 562), so ``import cloudwar`` and the command
line start quickly and a Ctrl-C at start-up ends as cleanly as one during a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudwar.model.market import CloudMarket
    from cloudwar.scenario import Scenario, ScenarioError, load_scenario, shipped_scenarios

__all__ = ["CloudMarket", "Scenario", "ScenarioError", "load_scenario", "shipped_scenarios"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "CloudMarket":
        from cloudwar.model.market import CloudMarket

        return CloudMarket
    if name in ("Scenario", "ScenarioError", "load_scenario", "shipped_scenarios"):
        from cloudwar import scenario

        return getattr(scenario, name)
    raise AttributeError(f"module 'cloudwar' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

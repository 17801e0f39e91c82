"""cloudwar: an agent-based simulation of competition in the AI cloud market, on Mesa."""

from cloudwar.model import CloudMarket
from cloudwar.scenario import Scenario, ScenarioError, load_scenario, shipped_scenarios

__all__ = ["CloudMarket", "Scenario", "ScenarioError", "load_scenario", "shipped_scenarios"]
__version__ = "0.1.0"

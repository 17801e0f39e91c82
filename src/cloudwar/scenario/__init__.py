"""Scenarios: the typed schema (validated once, unit and meaning per field) and the shipped TOML files.

``cloudwar.scenario.schema`` holds the schema, loading and overrides; the shipped scenarios are the
TOML files in ``cloudwar/scenario/data/``.
"""

from cloudwar.errors import ScenarioError, one_line
from cloudwar.scenario.schema import (
    PRODUCTS,
    AdoptionSpec,
    CapacitySpec,
    ChoiceSpec,
    EcosystemSpec,
    EnterpriseSpec,
    NetworkSpec,
    ProductSpec,
    ProviderSpec,
    RegionSpec,
    Scenario,
    StrategySpec,
    ValuationSpec,
    apply_overrides,
    describe_fields,
    load_scenario,
    parse_override,
    parse_scenario,
    per_region,
    read_scenario_toml,
    scenario_to_dict,
    shipped_scenarios,
)

__all__ = [
    "PRODUCTS",
    "AdoptionSpec",
    "CapacitySpec",
    "ChoiceSpec",
    "EcosystemSpec",
    "EnterpriseSpec",
    "NetworkSpec",
    "ProductSpec",
    "ProviderSpec",
    "RegionSpec",
    "Scenario",
    "ScenarioError",
    "StrategySpec",
    "ValuationSpec",
    "apply_overrides",
    "describe_fields",
    "load_scenario",
    "one_line",
    "parse_override",
    "parse_scenario",
    "per_region",
    "read_scenario_toml",
    "scenario_to_dict",
    "shipped_scenarios",
]

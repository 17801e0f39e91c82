"""Scenarios: the typed schema (validated once, unit and meaning per field) and the shipped TOML files.

``cloudwar.scenario.schema`` holds the schema, loading and overrides; ``cloudwar.scenario.layering``
the ``extends`` chains (a file that changes only what differs from its parent);
``cloudwar.scenario.effective`` each value's source, the effective scenario a run writes, and its
provenance. The shipped scenarios are the TOML files in ``cloudwar/scenario/data/``.
"""

from cloudwar.errors import ScenarioError, one_line
from cloudwar.scenario.effective import (
    ValueRow,
    effective_values,
    provenance,
    record_run,
    scenario_label,
    write_effective_scenario,
)
from cloudwar.scenario.layering import read_layers, shipped_scenarios
from cloudwar.scenario.schema import (
    PRODUCTS,
    AdoptionSpec,
    CapacitySpec,
    ChoiceSpec,
    EcosystemSpec,
    EnterpriseSpec,
    EventRow,
    EventSpec,
    NetworkSpec,
    ProductSpec,
    ProviderSpec,
    RegionSpec,
    Scenario,
    StrategySpec,
    TimedEvent,
    apply_overrides,
    cost_multiplier,
    describe_events,
    describe_fields,
    event_timeline,
    load_scenario,
    parse_override,
    parse_scenario,
    per_region,
    read_scenario_toml,
    scenario_from_raw,
    scenario_to_dict,
)

__all__ = [
    "PRODUCTS",
    "AdoptionSpec",
    "CapacitySpec",
    "ChoiceSpec",
    "EcosystemSpec",
    "EnterpriseSpec",
    "EventRow",
    "EventSpec",
    "NetworkSpec",
    "ProductSpec",
    "ProviderSpec",
    "RegionSpec",
    "Scenario",
    "ScenarioError",
    "StrategySpec",
    "TimedEvent",
    "ValueRow",
    "apply_overrides",
    "cost_multiplier",
    "describe_events",
    "describe_fields",
    "effective_values",
    "event_timeline",
    "load_scenario",
    "one_line",
    "parse_override",
    "parse_scenario",
    "per_region",
    "provenance",
    "read_layers",
    "read_scenario_toml",
    "record_run",
    "scenario_from_raw",
    "scenario_label",
    "scenario_to_dict",
    "shipped_scenarios",
    "write_effective_scenario",
]

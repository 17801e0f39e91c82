"""The dashboard's controls: the sidebar's inputs, checked, and turned into scenario overrides.

:class:`Controls` holds one model's settings (see :mod:`cloudwar.dashboard.app` for what each
control means); :func:`model_params` describes the sidebar in SolaraViz's format. Nothing here
imports Solara.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloudwar.model.market import CloudMarket
from cloudwar.scenario import Scenario, ScenarioError, load_scenario, shipped_scenarios
from cloudwar.strategies import REGISTRY, strategy_class

DEFAULT_PRESET = "baseline"
DEFAULT_ENTERPRISES = 3_000  # small enough that a quarter takes a few milliseconds
CAPEX_PLAN_RMB = 380e9  # facts.md: Alibaba's RMB 380bn capex plan ...
CAPEX_PLAN_QUARTERS = 12  # ... over three years
PRESETS_OWN = "preset's"  # strategy choice: keep the preset's strategy
PRESETS_RULE = "preset's rule"  # capex choice: keep the preset's capex rule
CAPEX_PLAN_MULTIPLES = ("0", "0.5", "1", "1.5", "2", "3")
STRATEGY_KEY = "strategy: "  # input name prefix: "strategy: Alibaba"


@dataclass(frozen=True)
class Controls:
    """The dashboard's settings for one model (see :mod:`cloudwar.dashboard.app` for their meaning)."""

    preset: str = DEFAULT_PRESET
    seed: int = 0
    enterprises: int = DEFAULT_ENTERPRISES
    alibaba_price_level: float = 1.0
    alibaba_capex_plan: float | None = None  # multiple of the RMB 380bn plan; None = preset's rule
    switching_cost: float = 1.0
    network_weight: float = 1.0
    strategies: tuple[tuple[str, str], ...] = ()  # (provider, strategy kind) replacing the preset's

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any]) -> Controls:
        """Controls from the sidebar's values (text from text boxes, choices as shown); ScenarioError if bad."""
        values: dict[str, Any] = {}
        strategies = []
        simple = {f.name for f in dataclasses.fields(cls)} - {"strategies"}
        for key, value in inputs.items():
            if key.startswith(STRATEGY_KEY):
                if value != PRESETS_OWN:
                    strategies.append((key[len(STRATEGY_KEY) :], str(value)))
            elif key in simple:
                values[key] = value
            else:
                raise ScenarioError(f"unknown dashboard control '{key}'")
        if "seed" in values:
            values["seed"] = _whole_number("seed", values["seed"], 0)
        if "enterprises" in values:
            values["enterprises"] = _whole_number("enterprises", values["enterprises"], 1)
        plan = values.get("alibaba_capex_plan")
        if plan == PRESETS_RULE:
            values["alibaba_capex_plan"] = None
        elif plan is not None:
            values["alibaba_capex_plan"] = _number("Alibaba capex plan", str(plan).removesuffix("x").strip(), 0.0)
        for key in ("alibaba_price_level", "switching_cost", "network_weight"):
            if key in values:
                values[key] = _number(key.replace("_", " "), values[key], 0.0)
        return cls(**values, strategies=tuple(strategies))

    def overrides(self, base: Scenario) -> dict[str, Any]:
        """Dotted-key scenario overrides that turn the preset ``base`` into these controls' model."""
        out: dict[str, Any] = {"enterprises": self.enterprises}
        specs = {p.name: p for p in base.providers}

        def provider(name: str, control: str):
            if name not in specs:
                raise ScenarioError(
                    f"{control}: preset '{self.preset}' has no provider named '{name}' "
                    f"(it has: {', '.join(specs)}); leave it at its default for this preset"
                )
            return specs[name]

        strategy_tables: dict[str, dict[str, Any]] = {}
        for name, kind in self.strategies:
            spec = provider(name, f"{name} strategy")
            accepted = {f.name for f in dataclasses.fields(strategy_class(kind))}
            kept = {k: v for k, v in spec.strategy.params.items() if k in accepted}
            strategy_tables[name] = {"kind": kind, **kept}
        if self.alibaba_capex_plan is not None:
            spec = provider("Alibaba", "Alibaba capex plan")
            table = strategy_tables.setdefault("Alibaba", {"kind": spec.strategy.kind, **spec.strategy.params})
            if "capex_plan" in {f.name for f in dataclasses.fields(strategy_class(table["kind"]))}:
                table["capex_plan"] = self.alibaba_capex_plan * CAPEX_PLAN_RMB  # a playbook with a committed plan
            else:
                table["capex_rule"] = "fixed"
                table["capex"] = self.alibaba_capex_plan * CAPEX_PLAN_RMB / CAPEX_PLAN_QUARTERS / base.rmb_per_usd
        for name, table in strategy_tables.items():
            out[f"providers.{name}.strategy"] = table
        if self.alibaba_price_level != 1.0:
            spec = provider("Alibaba", "Alibaba price level")
            out["providers.Alibaba.price"] = {
                product: _scale_per_region(entry, self.alibaba_price_level) for product, entry in spec.price.items()
            }
        if self.switching_cost != 1.0:
            out["enterprise.switching_cost"] = base.enterprise.switching_cost * self.switching_cost
        if self.network_weight != 1.0:
            out["choice.network_weight"] = base.choice.network_weight * self.network_weight
        return out

    def build(self) -> CloudMarket:
        """The model these controls describe (ScenarioError with a one-line message if they are bad)."""
        return CloudMarket(self.preset, rng=self.seed, overrides=self.overrides(load_scenario(self.preset)))


def _whole_number(name: str, value: Any, lo: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().replace(",", "").replace("_", "")
    try:
        number = int(text)
    except ValueError:
        raise ScenarioError(f"{name}: expected a whole number >= {lo}, got {str(value)!r}") from None
    if number < lo:
        raise ScenarioError(f"{name}: expected a whole number >= {lo}, got {number}")
    return number


def _number(name: str, value: Any, lo: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ScenarioError(f"{name}: expected a number >= {lo:g}, got {value!r}") from None
    if not np.isfinite(number) or number < lo:
        raise ScenarioError(f"{name}: expected a number >= {lo:g}, got {value!r}")
    return number


def _scale_per_region(entry: dict[str, float], factor: float) -> float | dict[str, float]:
    """A parsed 'number or table per region' value times ``factor``, in raw TOML form."""
    if set(entry) == {"*"}:
        return entry["*"] * factor
    return {region: value * factor for region, value in entry.items()}


def model_params(preset: str = DEFAULT_PRESET) -> dict[str, dict[str, Any]]:
    """The sidebar's controls in SolaraViz's format; one strategy choice per provider of ``preset``."""
    kinds = [PRESETS_OWN, *sorted(REGISTRY)]
    params: dict[str, dict[str, Any]] = {
        "preset": {"type": "Select", "value": preset, "values": list(shipped_scenarios()), "label": "Scenario preset"},
        "seed": {"type": "InputText", "value": "0", "label": "Random seed"},
        "enterprises": {
            "type": "SliderInt",
            "value": DEFAULT_ENTERPRISES,
            "min": 500,
            "max": 20_000,
            "step": 500,
            "label": "Enterprises",
        },
        "alibaba_price_level": {
            "type": "SliderFloat",
            "value": 1.0,
            "min": 0.2,
            "max": 2.0,
            "step": 0.05,
            "label": "Alibaba price level (x starting prices)",
        },
        "alibaba_capex_plan": {
            "type": "Select",
            "value": PRESETS_RULE,
            "values": [PRESETS_RULE, *(f"{m}x" for m in CAPEX_PLAN_MULTIPLES)],
            "label": "Alibaba capex (x RMB 380bn / 3 years plan)",
        },
        "switching_cost": {
            "type": "SliderFloat",
            "value": 1.0,
            "min": 0.0,
            "max": 4.0,
            "step": 0.1,
            "label": "Switching cost (x preset's)",
        },
        "network_weight": {
            "type": "SliderFloat",
            "value": 1.0,
            "min": 0.0,
            "max": 4.0,
            "step": 0.1,
            "label": "Network effect (x preset's)",
        },
    }
    # One strategy choice per provider of every shipped preset (SolaraViz's controls are fixed once
    # the page is built): the chosen preset's providers first, others labelled with their presets.
    owners: dict[str, list[str]] = {name: [preset] for name in load_scenario(preset).provider_names}
    for other in shipped_scenarios():
        if other != preset:
            for name in load_scenario(other).provider_names:
                owners.setdefault(name, []).append(other)
    for name, presets in owners.items():
        label = name if preset in presets else f"{name} ({', '.join(presets)} only)"
        params[f"{STRATEGY_KEY}{name}"] = {"type": "Select", "value": PRESETS_OWN, "values": kinds, "label": label}
    return params

"""The dashboard's controls: the sidebar's inputs, checked, and turned into scenario overrides.

:class:`Controls` holds one model's settings (see :mod:`cloudwar.dashboard.app` for what each
control means), read from the sidebar's inputs, a flat dict (:func:`default_inputs`):

* ``preset``, ``seed``, ``enterprises``, ``alibaba_price_level``, ``alibaba_capex_plan``,
  ``switching_cost``, ``network_weight``: the scenario controls (:func:`scenario_controls`);
* ``"strategy: <provider>"``: the provider's strategy kind (``preset's`` keeps the preset's);
* ``"param: <provider>: <name>"``: one strategy parameter as typed (text), read and checked by
  :func:`parse_param` against the strategy's declaration (:func:`cloudwar.strategies.param`:
  bounds, whole numbers, choices), the one place parameters are validated. A parameter whose
  unit is ``quarter`` also accepts a calendar quarter (``2027Q1``), turned into the model step
  the strategy takes (:mod:`cloudwar.quarters`);
* ``"gpu: <provider>: <region>"`` (``*`` = all regions together): the provider's GPU supply limit
  (fraction of capacity a quarter), read by :func:`parse_gpu` and checked by the scenario schema;
* ``"events"``: the whole events timeline as edited (:class:`EventEntry` items; absent = the
  preset's), checked by the scenario's event validation (:func:`parse_events_input`).

:meth:`Controls.overrides` turns them into the dotted-key overrides of ``--set``, and
:meth:`Controls.command` into the ``cloudwar run`` command that runs the same model. Nothing
here imports Solara.

To add a control (as GPU supply and the events timeline do): a field of :class:`Controls`, read in
:meth:`Controls.from_inputs` (inputs with a prefix of their own, like ``param:``), applied in
:meth:`Controls.overrides` (so that the exported command carries it too) and named in
:meth:`Controls.settings` (so that pending changes and comparisons show it).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudwar import quarters
from cloudwar.model.market import CloudMarket
from cloudwar.scenario import Scenario, ScenarioError, load_scenario, parse_override, shipped_scenarios
from cloudwar.strategies import REGISTRY, Param, declared_parameters, strategy_class

DEFAULT_PRESET = "baseline"
DEFAULT_ENTERPRISES = 3_000  # small enough that a quarter takes a few milliseconds
CAPEX_PLAN_RMB = 380e9  # facts.md: Alibaba's RMB 380bn capex plan ...
CAPEX_PLAN_QUARTERS = 12  # ... over three years
PRESETS_OWN = "preset's"  # strategy choice: keep the preset's strategy
PRESETS_RULE = "preset's rule"  # capex choice: keep the preset's capex rule
CAPEX_PLAN_MULTIPLES = ("0", "0.5", "1", "1.5", "2", "3")
STRATEGY_KEY = "strategy: "  # input name prefix: "strategy: Alibaba"
PARAM_KEY = "param: "  # input name prefix: "param: Alibaba: harvest_quarter"
GPU_KEY = "gpu: "  # input name prefix: "gpu: Tencent: *" (all regions together), "gpu: Tencent: china"
ALL_REGIONS = "*"  # a GPU supply limit on all regions together (the scenario's '*')
GPU_UNIT = "max net capacity growth per quarter"
EVENTS_KEY = "events"  # input: the whole events timeline as edited (absent: the preset's)
QUARTER_UNIT = "quarter"  # a declared parameter in this unit names a model step
AS_PRESET = "as in the preset"  # a setting that leaves the preset as shipped


# --------------------------------------------------------------------------------------------
# The sidebar's description
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Control:
    """One scenario control of the sidebar: its input key, label, widget and accepted values.

    ``widget`` is ``select`` (one of ``values``), ``text`` (a whole number typed), ``int`` or
    ``float`` (a slider from ``lo`` to ``hi`` by ``step``); :meth:`show` is the value as the
    sidebar prints it beside the control, with its unit.
    """

    key: str
    label: str
    widget: str
    default: Any
    values: tuple[str, ...] = ()
    lo: float = 0.0
    hi: float = 0.0
    step: float = 1.0
    unit: str = ""

    def show(self, value: Any) -> str:
        """The value as the sidebar shows it: ``3,000 enterprises``, ``x1.00 starting prices``."""
        if self.widget == "int":
            return f"{int(value):,} {self.unit}".strip()
        if self.widget == "float":
            return f"x{float(value):.2f} {self.unit}".strip()
        return str(value)


def scenario_controls(preset: str = DEFAULT_PRESET) -> list[Control]:
    """The scenario controls that apply to ``preset``: Alibaba's only when the preset has Alibaba."""
    controls = [
        Control("preset", "Scenario preset", "select", DEFAULT_PRESET, values=tuple(shipped_scenarios())),
        Control("seed", "Random seed", "text", "0", unit="whole number >= 0"),
        Control("enterprises", "Enterprises", "int", DEFAULT_ENTERPRISES, lo=500, hi=20_000, step=500, unit=""),
    ]
    if "Alibaba" in preset_scenario(preset).provider_names:
        controls += [
            Control(
                "alibaba_price_level",
                "Alibaba price level",
                "float",
                1.0,
                lo=0.2,
                hi=2.0,
                step=0.05,
                unit="starting prices",
            ),
            Control(
                "alibaba_capex_plan",
                "Alibaba capex (x RMB 380bn / 3 years plan)",
                "select",
                PRESETS_RULE,
                values=(PRESETS_RULE, *(f"{m}x" for m in CAPEX_PLAN_MULTIPLES)),
            ),
        ]
    controls += [
        Control("switching_cost", "Switching cost", "float", 1.0, lo=0.0, hi=4.0, step=0.1, unit="preset's"),
        Control("network_weight", "Network effect", "float", 1.0, lo=0.0, hi=4.0, step=0.1, unit="preset's"),
    ]
    return controls


def default_inputs(preset: str = DEFAULT_PRESET) -> dict[str, Any]:
    """The sidebar's inputs at their defaults for ``preset``: the preset exactly as shipped."""
    inputs: dict[str, Any] = {c.key: c.default for c in scenario_controls(preset)}
    inputs["preset"] = preset
    for name in preset_scenario(preset).provider_names:
        inputs[f"{STRATEGY_KEY}{name}"] = PRESETS_OWN
    return inputs


def for_preset(inputs: Mapping[str, Any], preset: str) -> dict[str, Any]:
    """``inputs`` moved to another preset: the settings that apply to both kept, the rest at
    ``preset``'s defaults (another preset's providers' strategies and parameters dropped)."""
    out = default_inputs(preset)
    names = set(preset_scenario(preset).provider_names)
    for key, value in inputs.items():
        provider = input_provider(key)
        if key == "preset" or (provider is None and key not in out) or (provider is not None and provider not in names):
            continue
        out[key] = value
    return out


def input_provider(key: str) -> str | None:
    """The provider a strategy, parameter or GPU supply input belongs to ('strategy: AWS' -> 'AWS'); None for others."""
    if key.startswith(STRATEGY_KEY):
        return key[len(STRATEGY_KEY) :]
    if key.startswith(PARAM_KEY):
        return key[len(PARAM_KEY) :].rpartition(": ")[0]
    if key.startswith(GPU_KEY):
        return key[len(GPU_KEY) :].rpartition(": ")[0]
    return None


def gpu_key(provider: str, region: str = ALL_REGIONS) -> str:
    """The input key of one GPU supply limit: ``gpu: Tencent: *`` (all regions), ``gpu: Tencent: china``."""
    return f"{GPU_KEY}{provider}: {region}"


@dataclass(frozen=True)
class GpuControl:
    """One provider's GPU supply limit in the sidebar (the provider field ``gpu_supply``): all its
    regions together (``region == '*'``) or one region, as the preset sets it; ``text`` is the
    preset's value (empty: unlimited)."""

    provider: str
    region: str
    text: str

    @property
    def key(self) -> str:
        return gpu_key(self.provider, self.region)

    @property
    def label(self) -> str:
        where = "all regions" if self.region == ALL_REGIONS else self.region
        return f"GPU supply ({where})"

    def show(self, text: Any) -> str:
        """The value as the sidebar shows it beside the field: ``2.5% max net capacity growth per quarter``."""
        try:
            value = parse_gpu(self.provider, self.region, text)
        except ScenarioError:
            return "?"
        return "unlimited" if value is None else f"{value:.3g} = {100 * value:.3g}% {GPU_UNIT}"


def gpu_controls(preset: str, provider: str) -> list[GpuControl]:
    """``provider``'s GPU supply limits in ``preset``: one for all regions together, then one per
    region the preset limits on its own."""
    spec = _provider_spec(preset_scenario(preset), provider, f"{provider} GPU supply")
    regions = [ALL_REGIONS, *(r for r in spec.gpu_supply if r != ALL_REGIONS)]
    return [GpuControl(provider, r, show_value(spec.gpu_supply.get(r))) for r in regions]


def parse_gpu(provider: str, region: str, text: Any, preset: str | None = None) -> float | None:
    """A GPU supply limit typed as ``text`` (a fraction: 0.025 = 2.5% net capacity growth a
    quarter; empty = unlimited), checked by the scenario schema itself when ``preset`` is given
    (bounds, region names): ScenarioError naming the provider and region otherwise."""
    text = str(text).strip()
    where = f"{provider} GPU supply" + ("" if region == ALL_REGIONS else f" ({region})")
    if not text:
        return None
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise ScenarioError(
            f"{where}: expected a fraction of capacity a quarter (0.025 or 2.5%), got {text!r}"
        ) from None
    if preset is not None:
        _check_overrides(preset, toml_value({f"providers.{provider}.gpu_supply.{region}": value}), where)
    return value


@functools.lru_cache(maxsize=256)
def _check_overrides(preset: str, overrides: str, where: str) -> None:
    """Load ``preset`` with ``overrides`` (an inline TOML table of dotted keys): the schema's checks,
    once per distinct text (the page re-reads its inputs on every render)."""
    try:
        load_scenario(preset, parse_override(f"x={overrides}")[1])
    except ScenarioError as err:
        raise ScenarioError(f"{where}: {err}" if where else str(err)) from None


def param_key(provider: str, name: str) -> str:
    """The input key of one strategy parameter: ``param: Alibaba: harvest_quarter``."""
    return f"{PARAM_KEY}{provider}: {name}"


@dataclass(frozen=True)
class ParamControl:
    """One strategy parameter in the sidebar: its value as text (a calendar quarter for a quarter),
    unit, accepted values and meaning (from the strategy's :func:`~cloudwar.strategies.param`)."""

    provider: str
    name: str
    text: str
    unit: str
    accepts: str
    doc: str
    choices: tuple[str, ...] | None
    quarter: bool

    @property
    def key(self) -> str:
        return param_key(self.provider, self.name)

    @property
    def hint(self) -> str:
        """What the field accepts, in which unit, and what it means: ``fraction, [0, 1]; cut below ...``."""
        if self.quarter:
            return f"calendar quarter (e.g. 2027Q1) or model step, {self.accepts}; {self.doc}"
        unit = f"{self.unit}, " if self.unit and self.unit != "name" else ""
        return f"{unit}{self.accepts}; {self.doc}"


def strategy_controls(preset: str, provider: str, kind: str = PRESETS_OWN) -> list[ParamControl]:
    """Every declared parameter of ``provider``'s strategy (the preset's, or ``kind``), with the
    value it has: the preset's where it sets one (and the kind accepts it), else the default."""
    config = preset_scenario(preset)
    spec = _provider_spec(config, provider, f"{provider} strategy")
    cls = strategy_class(spec.strategy.kind if kind == PRESETS_OWN else kind)
    values = effective_params(config, provider, kind)
    out = []
    for name, declared in declared_parameters(cls).items():
        quarter = declared.unit == QUARTER_UNIT
        out.append(
            ParamControl(
                provider,
                name,
                show_value(values[name], config.start if quarter else None),
                declared.unit,
                declared.accepts,
                declared.doc,
                declared.choices,
                quarter,
            )
        )
    return out


def effective_params(config: Scenario, provider: str, kind: str = PRESETS_OWN) -> dict[str, Any]:
    """The parameters ``provider``'s strategy is built with: the class defaults, then the preset's
    parameters (with another ``kind``: those that kind accepts)."""
    spec = _provider_spec(config, provider, f"{provider} strategy")
    cls = strategy_class(spec.strategy.kind if kind == PRESETS_OWN else kind)
    fields = {f.name: f.default for f in dataclasses.fields(cls) if f.init}
    return {**fields, **{k: v for k, v in spec.strategy.params.items() if k in fields}}


# --------------------------------------------------------------------------------------------
# The events timeline
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventEntry:
    """One event of the timeline editor as typed: the quarter (``2027Q1`` or a model step), the
    name, the keys set (text, one ``key = value`` a line, the keys of ``--set``) and the source."""

    at: str
    name: str
    keys: str
    source: str = ""

    def raw(self) -> dict[str, Any]:
        """The event as a raw ``[[events]]`` table; ScenarioError naming the event if a line is not
        ``key = value``."""
        keys: dict[str, Any] = {}
        for line in self.keys.splitlines():
            if not line.strip():
                continue
            try:
                key, value = parse_override(line.strip())
            except ScenarioError as err:
                raise ScenarioError(f'event "{self.name}" ({self.at}): {err}') from None
            keys[key.strip().strip("\"'")] = value
        at: int | str = int(self.at) if self.at.strip().isdigit() else self.at.strip()
        out = {"at": at, "name": self.name.strip(), "set": keys}
        if self.source:
            out["source"] = self.source
        return out


def preset_events(preset: str) -> list[EventEntry]:
    """The events of ``preset`` as the editor shows them (one ``key = value`` a line)."""
    return [
        EventEntry(str(e.at), e.name, "\n".join(f"{k} = {toml_value(v)}" for k, v in e.set.items()), e.source)
        for e in preset_scenario(preset).events
    ]


def parse_events_input(preset: str, entries: Any) -> tuple[dict[str, Any], ...]:
    """The edited timeline (:class:`EventEntry` or their dicts) as raw ``[[events]]`` tables, checked
    by the scenario's own event validation against ``preset`` (keys, providers, values, quarters):
    ScenarioError with its one line (``events[2] ("...", 2027Q1): ...``) otherwise."""
    raws = tuple((e if isinstance(e, EventEntry) else EventEntry(**e)).raw() for e in entries)
    _check_overrides(preset, toml_value({"events": list(raws)}), "")
    return raws


# --------------------------------------------------------------------------------------------
# Parameter values: read, checked, shown
# --------------------------------------------------------------------------------------------
def parse_param(kind: str, name: str, text: Any, start: str) -> Any:
    """The value of strategy ``kind``'s parameter ``name`` typed as ``text``, checked against its
    declaration; ScenarioError naming it otherwise.

    Text is read as a ``--set`` value is (a TOML value: ``0.3``, ``12``, ``{ai = 0.9}``, or a bare
    word). A parameter in quarters also accepts a calendar quarter (``2027Q1``), returned as the
    model step it names (1 = ``start``). Empty text is "unset" for a parameter that may be unset.
    """
    declared = declared_parameters(strategy_class(kind)).get(name)
    if declared is None:
        raise ScenarioError(f"strategy '{kind}' has no declared parameter '{name}'")
    text = str(text).strip()
    if not text and declared.optional:
        return None
    if declared.choices is not None or declared.text:
        value: Any = text.strip("\"'")
    elif declared.unit == QUARTER_UNIT and quarters.is_label(text):
        value = quarters.step(start, text, name)
    else:
        value = parse_override(f"{name}={text}")[1] if text else text
    declared.check(name, value)
    return value


def show_value(value: Any, start: str | None = None) -> str:
    """A parameter value as the sidebar's text field shows it (and :func:`parse_param` reads back):
    a quarter (``start`` given) as its calendar label (0 = never stays 0), unset as empty text."""
    if value is None:
        return ""
    if start is not None and isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return quarters.label(start, value)
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value) and float(f"{value:g}") == value:
        return f"{value:g}"  # 3e+08, not 300000000.0: the same number, easier to read
    return toml_value(value)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_value(value: Any) -> str:
    """``value`` as a TOML value that reads back to the same value: floats to the last bit
    (``repr``), text quoted, tables inline (``{kind = "share_first", capex_plan = 7.6e+11}``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Mapping):
        items = (f"{k if _BARE_KEY.fullmatch(k) else toml_value(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise ScenarioError(f"cannot write {value!r} as a TOML value")


# --------------------------------------------------------------------------------------------
# Controls
# --------------------------------------------------------------------------------------------
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
    params: tuple[tuple[str, str, Any], ...] = ()  # (provider, parameter, value) differing from the preset's
    gpu_supply: tuple[tuple[str, str, float], ...] = ()  # (provider, region or '*', fraction) differing from preset
    events: tuple[dict[str, Any], ...] | None = None  # the whole timeline as raw [[events]]; None = the preset's

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any]) -> Controls:
        """Controls from the sidebar's values (text from text boxes, choices as shown); ScenarioError if bad.

        A parameter typed with the value it has anyway (the preset's or the default) is no change.
        """
        values: dict[str, Any] = {}
        strategies = []
        typed: list[tuple[str, str, Any]] = []
        simple = {f.name for f in dataclasses.fields(cls)} - {"strategies", "params", "gpu_supply", "events"}
        edited_events = None
        gpu: list[tuple[str, str, Any]] = []
        for key, value in inputs.items():
            if key.startswith(STRATEGY_KEY):
                if value != PRESETS_OWN:
                    strategies.append((key[len(STRATEGY_KEY) :], str(value)))
            elif key.startswith(PARAM_KEY) and ": " in key[len(PARAM_KEY) :]:
                provider, _, name = key[len(PARAM_KEY) :].rpartition(": ")
                typed.append((provider, name, value))
            elif key.startswith(GPU_KEY) and ": " in key[len(GPU_KEY) :]:
                provider, _, region = key[len(GPU_KEY) :].rpartition(": ")
                gpu.append((provider, region, value))
            elif key == EVENTS_KEY:
                edited_events = value
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
        params = []
        if typed:
            config = preset_scenario(values.get("preset", DEFAULT_PRESET))
            kinds = dict(strategies)
            for provider, name, text in typed:
                spec = _provider_spec(config, provider, f"{provider} {name}")
                kind = kinds.get(provider, spec.strategy.kind)
                try:
                    value = parse_param(kind, name, text, config.start)
                except ScenarioError as err:
                    raise ScenarioError(f"{provider} strategy: {err}") from None
                if not _same(value, effective_params(config, provider, kinds.get(provider, PRESETS_OWN)).get(name)):
                    params.append((provider, name, value))
        supply = []
        for provider, region, text in gpu:
            preset = values.get("preset", DEFAULT_PRESET)
            spec = _provider_spec(preset_scenario(preset), provider, f"{provider} GPU supply")
            value = parse_gpu(provider, region, text, preset)
            before = spec.gpu_supply.get(region)
            if value is None and before is not None:
                raise ScenarioError(
                    f"{provider} GPU supply: the preset limits it to {before:g}; type a fraction "
                    "(10 = 1000% a quarter, practically unlimited)"
                )
            if value is not None and not _same(value, before):
                supply.append((provider, region, value))
        events = None
        if edited_events is not None:
            preset = values.get("preset", DEFAULT_PRESET)
            events = parse_events_input(preset, edited_events)
            if list(events) == [e.raw() for e in preset_events(preset)]:
                events = None  # the preset's timeline as shipped: no change
        return cls(
            **values, strategies=tuple(strategies), params=tuple(params), gpu_supply=tuple(supply), events=events
        )

    def overrides(self, base: Scenario) -> dict[str, Any]:
        """Dotted-key scenario overrides that turn the preset ``base`` into these controls' model."""
        out: dict[str, Any] = {"enterprises": self.enterprises}

        def provider(name: str, control: str):
            return _provider_spec(base, name, control, self.preset)

        strategy_tables: dict[str, dict[str, Any]] = {}

        def table(name: str, control: str) -> dict[str, Any]:
            spec = provider(name, control)
            return strategy_tables.setdefault(name, {"kind": spec.strategy.kind, **spec.strategy.params})

        for name, kind in self.strategies:
            spec = provider(name, f"{name} strategy")
            accepted = {f.name for f in dataclasses.fields(strategy_class(kind))}
            kept = {k: v for k, v in spec.strategy.params.items() if k in accepted}
            strategy_tables[name] = {"kind": kind, **kept}
        if self.alibaba_capex_plan is not None:
            plan = table("Alibaba", "Alibaba capex plan")
            if "capex_plan" in {f.name for f in dataclasses.fields(strategy_class(plan["kind"]))}:
                plan["capex_plan"] = self.alibaba_capex_plan * CAPEX_PLAN_RMB  # a playbook with a committed plan
            else:
                plan["capex_rule"] = "fixed"
                plan["capex"] = self.alibaba_capex_plan * CAPEX_PLAN_RMB / CAPEX_PLAN_QUARTERS / base.rmb_per_usd
        for name, parameter, value in self.params:  # last: a typed parameter wins over the capex control
            edited = table(name, f"{name} {parameter}")
            if value is None:
                edited.pop(parameter, None)  # unset: TOML has no null, the parameter is left out
            else:
                edited[parameter] = value
        for name, strategy in strategy_tables.items():
            out[f"providers.{name}.strategy"] = strategy
        for name, region, value in self.gpu_supply:
            provider(name, f"{name} GPU supply")
            out[f"providers.{name}.gpu_supply.{region}"] = value
        if self.events is not None:
            out["events"] = list(self.events)
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
        return CloudMarket(self.preset, rng=self.seed, overrides=self.overrides(preset_scenario(self.preset)))

    def set_list(self) -> list[str]:
        """The ``--set KEY=VALUE`` arguments of :meth:`overrides`, each value written as TOML."""
        return [f"{key}={toml_value(value)}" for key, value in self.overrides(preset_scenario(self.preset)).items()]

    def command(self, quarters: int | None = None, out: str = "cloudwar-run") -> str:
        """The ``cloudwar run`` command (shell-quoted) that runs this model: the same seed, the same
        numbers. ``quarters``: stop after that many (the dashboard's current quarter)."""
        argv = ["cloudwar", "run", "--scenario", self.preset, "--seed", str(self.seed)]
        if quarters is not None:
            argv += ["--quarters", str(quarters)]
        for item in self.set_list():
            argv += ["--set", item]
        argv += ["--out", out]
        return shlex.join(argv)

    def settings(self) -> dict[str, str]:
        """The settings by name, as text (``'Alibaba harvest_quarter': '2027Q1 (step 6)'``): preset,
        seed and enterprises, then those that change the preset. What pending changes and the
        comparison with a pinned run list."""
        start = preset_scenario(self.preset).start
        out = {"preset": self.preset, "seed": str(self.seed), "enterprises": f"{self.enterprises:,}"}
        # The others only where they change the preset (absent: AS_PRESET).
        if self.alibaba_price_level != 1.0:
            out["Alibaba price level"] = f"x{self.alibaba_price_level:.2f}"
        if self.alibaba_capex_plan is not None:
            out["Alibaba capex"] = f"{self.alibaba_capex_plan:g}x plan"
        if self.switching_cost != 1.0:
            out["switching cost"] = f"x{self.switching_cost:.2f}"
        if self.network_weight != 1.0:
            out["network effect"] = f"x{self.network_weight:.2f}"
        out.update({f"{name} strategy": kind for name, kind in self.strategies})
        for name, region, value in self.gpu_supply:
            where = "" if region == ALL_REGIONS else f" ({region})"
            out[f"{name} GPU supply{where}"] = f"{100 * value:.3g}% a quarter"
        if self.events is not None:
            out["events"] = "; ".join(f"{e['at']} {e['name']}" for e in self.events) or "none"
        for name, parameter, value in self.params:
            quarter = _is_quarter(self, name, parameter)
            text = show_value(value, start if quarter else None) or "unset"
            out[f"{name} {parameter}"] = f"{text} (step {value})" if quarter and text != str(value) else text
        return out


def changes(before: Controls, after: Controls) -> list[str]:
    """What differs from ``before`` to ``after``, one item a setting: ``seed: 0 → 7``."""
    a, b = before.settings(), after.settings()
    keys = [*a, *(k for k in b if k not in a)]
    return [f"{k}: {a.get(k, AS_PRESET)} → {b.get(k, AS_PRESET)}" for k in keys if a.get(k) != b.get(k)]


def _is_quarter(controls: Controls, provider: str, parameter: str) -> bool:
    spec = _provider_spec(preset_scenario(controls.preset), provider, provider)
    kind = dict(controls.strategies).get(provider, spec.strategy.kind)
    declared: Param | None = declared_parameters(strategy_class(kind)).get(parameter)
    return declared is not None and declared.unit == QUARTER_UNIT


def _same(a: Any, b: Any) -> bool:
    """The same parameter value: equal, and of one type, except that 1 and 1.0 are the same number."""
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
    return a == b and (numbers or type(a) is type(b))


@functools.lru_cache(maxsize=16)
def preset_scenario(preset: str) -> Scenario:
    """The shipped scenario ``preset``, loaded once (ScenarioError naming it if unknown)."""
    return load_scenario(preset)


def preset_kind(preset: str, provider: str) -> str:
    """The strategy kind ``provider`` plays in the shipped scenario ``preset``."""
    config = preset_scenario(preset)
    return _provider_spec(config, provider, f"{provider} strategy").strategy.kind


def _provider_spec(base: Scenario, name: str, control: str, preset: str | None = None):
    specs = {p.name: p for p in base.providers}
    if name not in specs:
        raise ScenarioError(
            f"{control}: preset '{preset or base.name}' has no provider named '{name}' "
            f"(it has: {', '.join(specs)}); leave it at its default for this preset"
        )
    return specs[name]


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
    if not math.isfinite(number) or number < lo:
        raise ScenarioError(f"{name}: expected a number >= {lo:g}, got {value!r}")
    return number


def _scale_per_region(entry: dict[str, float], factor: float) -> float | dict[str, float]:
    """A parsed 'number or table per region' value times ``factor``, in raw TOML form."""
    if set(entry) == {"*"}:
        return entry["*"] * factor
    return {region: value * factor for region, value in entry.items()}


def strategy_kinds() -> list[str]:
    """The strategy choices of every provider: the preset's, then every registered kind."""
    return [PRESETS_OWN, *sorted(REGISTRY)]

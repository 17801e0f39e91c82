"""Scenario events: a timeline of changes that happen at a calendar quarter of the run.

A scenario's ``[[events]]`` each name a quarter (``at``, a calendar label such as ``"2024Q2"``
or a step), a ``name``, an optional ``source`` (a citation) and a ``set`` table of the same
dotted keys as ``--set``::

    [[events]]
    at = "2024Q2"
    name = "May 2024 LLM price war"
    source = "history.md: 2024-05-21 Alibaba cuts Qwen-Long by 97%"
    set = { "providers.Alibaba.strategy" = { kind = "price_cut", cut = 0.97, product = "ai", region = "china" } }

The keys an event may set (:data:`EVENT_KEYS`):

* ``providers.NAME.strategy`` (a whole strategy table: a new strategy, started when installed)
  or ``providers.NAME.strategy.PARAM`` (one parameter of the strategy in play, which keeps its
  learned state; ``.strategy.kind`` installs a new strategy);
* ``providers.NAME.gpu_supply`` or ``.gpu_supply.REGION``: the GPU supply limit, the largest net
  growth of capacity in service a quarter (fraction);
* ``providers.NAME.cost_shock``, ``.cost_shock.PRODUCT`` or ``.cost_shock.PRODUCT.REGION``: a
  multiplier of unit cost from then on (1 = none; not cumulative: the latest value holds);
* ``providers.NAME.price.PRODUCT`` or ``.price.PRODUCT.REGION``: a list price (USD per unit)
  charged in the event's quarter; the strategy decides again from the next quarter on.

Events are validated once, when the scenario is loaded: in the order they happen, each event's
keys are applied to the scenario as it stands after the earlier events and the result is
validated like any scenario, so a wrong key or value is one line naming the event
(``events[2] ("May 2024 price war", 2024Q2): providers.Alibaba.strategy: ...``). The model
applies them at the start of the quarter ``at``, before the strategies decide
(:meth:`cloudwar.model.market.CloudMarket.apply_events`).

This module needs only the raw-table operations of the schema, which the schema passes in
(:func:`resolve_events`), so it imports nothing from :mod:`cloudwar.scenario.schema`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from cloudwar import quarters
from cloudwar.errors import ScenarioError

if TYPE_CHECKING:
    from cloudwar.scenario.schema import ProviderSpec, Scenario, StrategySpec

#: The provider keys an event may set: key -> how many more dotted parts may follow it (at most).
EVENT_KEYS = {"strategy": 1, "gpu_supply": 1, "cost_shock": 2, "price": 2}
SUPPORTED = (
    "providers.NAME.strategy[.PARAM], providers.NAME.gpu_supply[.REGION], "
    "providers.NAME.cost_shock[.PRODUCT[.REGION]], providers.NAME.price.PRODUCT[.REGION]"
)


def _meta(unit: str, doc: str) -> dict[str, Any]:
    return {"unit": unit, "doc": doc, "lo": None, "hi": None, "lo_open": False, "choices": None}


@dataclass(frozen=True)
class EventSpec:
    """One scenario event as the file writes it (``[[events]]``)."""

    at: int | str = field(metadata=_meta("YYYYQn or step", "quarter the event happens, at its start"))
    name: str = field(metadata=_meta("text", "what happened (shown in summaries and on figures)"))
    set: dict[str, Any] = field(metadata=_meta("table", "dotted keys as --set takes them: " + SUPPORTED))
    source: str = field(default="", metadata=_meta("text", "citation of the event, e.g. 'history.md: 2024-05-21 ...'"))


@dataclass(frozen=True)
class ProviderChange:
    """What one event changes for one provider (None / empty: unchanged).

    ``strategy``: the provider's strategy spec after the event; ``new_strategy``: whether it is
    a new strategy (installed and started) or ``params``, parameters of the strategy in play, are
    set. ``gpu_supply`` and ``cost_shock``: the provider's new tables (as in
    :class:`~cloudwar.scenario.ProviderSpec`). ``prices``: (product, region, USD per unit) list
    prices charged in the event's quarter.
    """

    provider: str
    strategy: StrategySpec | None = None
    new_strategy: bool = False
    params: tuple[str, ...] = ()
    gpu_supply: dict[str, float] | None = None
    cost_shock: dict[str, dict[str, float]] | None = None
    prices: tuple[tuple[str, str, float], ...] = ()


@dataclass(frozen=True)
class TimedEvent:
    """An event resolved against its scenario: when (step and calendar label) and what changes."""

    step: int  #: model step of the event (1 = the scenario's start)
    label: str  #: calendar quarter, e.g. ``2024Q2``
    name: str
    source: str
    keys: dict[str, Any]  #: the ``set`` table as written
    changes: tuple[ProviderChange, ...]
    index: int  #: position in the scenario's ``events`` list

    @property
    def where(self) -> str:
        """How messages name the event: ``events[2] ("May 2024 price war", 2024Q2)``."""
        return f'events[{self.index}] ("{self.name}", {self.label})'


class EventRow(NamedTuple):
    """One event as ``cloudwar describe --scenario`` and the run summary show it (all text)."""

    at: str  #: calendar quarter
    step: str  #: model step
    name: str
    changes: str  #: ``key = value; ...``
    source: str


def _where(index: int, raw: Any) -> str:
    name = raw.get("name", "?") if isinstance(raw, dict) else "?"
    at = raw.get("at", "?") if isinstance(raw, dict) else "?"
    return f'events[{index}] ("{name}", {at})'


def parse_events(raw: Any, start: str) -> list[EventSpec]:
    """The ``events`` list of a raw scenario as :class:`EventSpec` objects (ScenarioError naming the event)."""
    if not isinstance(raw, list):
        raise ScenarioError(f"events: expected a list of tables ([[events]]), got {raw!r}")
    out = []
    allowed = ("at", "name", "source", "set")
    for i, item in enumerate(raw):
        where = _where(i, item)
        if not isinstance(item, dict):
            raise ScenarioError(f"events[{i}]: expected a table with at, name and set, got {item!r}")
        unknown = sorted(set(item) - set(allowed))
        if unknown:
            raise ScenarioError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(allowed)})")
        for key in ("at", "name", "set"):
            if key not in item:
                raise ScenarioError(f"{where}: {key}: missing (an event needs at, name and set)")
        if not isinstance(item["name"], str) or not item["name"].strip():
            raise ScenarioError(f"{where}: name: expected text, got {item['name']!r}")
        if not isinstance(item.get("source", ""), str):
            raise ScenarioError(f"{where}: source: expected text, got {item['source']!r}")
        if not isinstance(item["set"], dict) or not item["set"]:
            raise ScenarioError(f"{where}: set: expected a table of dotted keys ({SUPPORTED}), got {item['set']!r}")
        try:
            step = quarters.step(start, item["at"], "at")
        except ScenarioError as err:
            raise ScenarioError(f"{where}: {err}") from None
        if step < 1:
            raise ScenarioError(f"{where}: at: must be step 1 (the start, {start}) or later, got {item['at']!r}")
        for key in item["set"]:
            event_key(key, where)
        out.append(EventSpec(at=item["at"], name=item["name"], set=dict(item["set"]), source=item.get("source", "")))
    return out


def event_key(key: str, where: str = "event") -> tuple[str, str, list[str]]:
    """(provider, field, rest) of an event key such as ``providers.Alibaba.strategy.price_ratio``.

    Raises a one-line ScenarioError naming ``where`` and the key, listing the supported keys,
    for any other key.
    """
    parts = key.split(".")
    if len(parts) < 3 or parts[0] != "providers" or parts[2] not in EVENT_KEYS:
        raise ScenarioError(f"{where}: {key}: not a key an event can set (supported: {SUPPORTED})")
    rest = parts[3:]
    if len(rest) > EVENT_KEYS[parts[2]] or (parts[2] == "price" and not rest):
        raise ScenarioError(f"{where}: {key}: not a key an event can set (supported: {SUPPORTED})")
    return parts[1], parts[2], rest


def resolve_events(
    scenario: Scenario,
    base: dict[str, Any],
    apply: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    parse: Callable[[dict[str, Any]], Scenario],
) -> list[TimedEvent]:
    """The scenario's events in the order they happen, each validated and resolved.

    ``base`` is the raw scenario table without its events; ``apply(raw, keys)`` sets dotted keys
    in a raw table (:func:`~cloudwar.scenario.apply_overrides`) and ``parse(raw)`` validates one
    (:func:`~cloudwar.scenario.parse_scenario`). Each event's keys are applied to the table as it
    stands after the events before it, and the result validated; a problem is a ScenarioError
    naming the event. Events of the same quarter keep the file's order.
    """
    start = scenario.start
    order = sorted(enumerate(scenario.events), key=lambda e: (quarters.step(start, e[1].at), e[0]))
    raw, out = base, []
    for index, event in order:
        step = quarters.step(start, event.at)
        timed = TimedEvent(step, quarters.label(start, step), event.name, event.source, event.set, (), index)
        try:
            raw = apply(raw, event.set)
            after = parse(raw)
        except ScenarioError as err:
            raise ScenarioError(f"{timed.where}: {err}") from None
        changes = _changes(event.set, after, timed.where)
        out.append(TimedEvent(**{**timed.__dict__, "changes": changes}))
    return out


def _changes(keys: dict[str, Any], after: Scenario, where: str) -> tuple[ProviderChange, ...]:
    """Per provider named in ``keys``, what changes, read from the scenario after the event."""
    touched: dict[str, dict[str, list[list[str]]]] = {}
    for key in keys:
        provider, name, rest = event_key(key, where)
        touched.setdefault(provider, {}).setdefault(name, []).append(rest)
    specs = {p.name: p for p in after.providers}
    changes = []
    for provider, fields in touched.items():
        spec: ProviderSpec = specs[provider]  # apply() refused names that are not providers
        strategy = fields.get("strategy")
        new = strategy is not None and any(not rest or rest == ["kind"] for rest in strategy)
        params = () if strategy is None or new else tuple(rest[0] for rest in strategy)
        prices = tuple(
            (product, region, _price(spec, product, region))
            for rest in fields.get("price", [])
            for product in rest[:1]
            for region in (rest[1:] or after.region_names)
        )
        changes.append(
            ProviderChange(
                provider,
                strategy=spec.strategy if strategy is not None else None,
                new_strategy=new,
                params=params,
                gpu_supply=dict(spec.gpu_supply) if "gpu_supply" in fields else None,
                cost_shock={k: dict(v) for k, v in spec.cost_shock.items()} if "cost_shock" in fields else None,
                prices=prices,
            )
        )
    return tuple(changes)


def _price(spec: ProviderSpec, product: str, region: str) -> float:
    entry = spec.price[product]
    return entry.get(region, entry.get("*"))  # validation made sure the product covers every region


def event_rows(timeline: Sequence[TimedEvent]) -> list[EventRow]:
    """The events as rows for ``cloudwar describe --scenario`` and the run summary, in the order they happen."""
    return [
        EventRow(
            e.label,
            str(e.step),
            e.name,
            "; ".join(f"{key} = {_show(value)}" for key, value in e.keys.items()),
            e.source,
        )
        for e in timeline
    ]


def _show(value: Any) -> str:
    """A value as TOML writes it, short: ``0.9``, ``"price_cut"``, ``{kind = "price_cut", cut = 0.97}``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)

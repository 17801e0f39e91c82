"""The effective scenario of a run: every value with its unit and source, the file that reproduces it, provenance.

- :func:`effective_values` lists each key's value, unit and source: the file that set it and the
  comment on its line (``baseline.toml: USD per quarter; facts.md: Synergy ...``), ``override --set``,
  or ``schema default`` (``cloudwar describe --scenario NAME``).
- :func:`write_effective_scenario` writes a scenario as one TOML file with every value explicit and
  its source as the line's comment; loading that file gives the same scenario back.
- :func:`provenance` is the record of a run (scenario, overrides, seed, versions, command) and
  :func:`record_run` writes both into a run's output folder.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shlex
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from cloudwar.scenario.layering import Layer, forget, leaf_keys, merge_layers, read_layers
from cloudwar.scenario.schema import Scenario, StrategySpec, parse_scenario, scenario_from_raw, scenario_to_dict

OVERRIDE_SOURCE = "override --set"
DEFAULT_SOURCE = "schema default"
SCENARIO_FILE = "scenario.toml"
PROVENANCE_FILE = "provenance.json"


class ValueRow(NamedTuple):
    """One effective value: dotted key (as ``--set`` takes it), value as TOML writes it, unit, source."""

    key: str
    value: str
    unit: str
    source: str


def toml_item(value: Any) -> Any:
    """A tomlkit item of ``value``; tables (at any depth) inline, as ``{china = 0.3, global = 1.0}``."""
    import tomlkit

    if not isinstance(value, dict):
        return tomlkit.item(value)
    table = tomlkit.inline_table()
    for key, entry in value.items():
        table.append(key, toml_item(entry))
    return table


def toml_value(value: Any) -> str:
    """A value as TOML writes it (``0.85``, ``"cost_plus"``, ``true``, ``{cloud = 13000000000.0}``)."""
    return toml_item(value).as_string()


def layered(
    name_or_path: str | Path, overrides: dict[str, Any] | None = None
) -> tuple[Scenario, dict[str, str], list[Layer]]:
    """The validated scenario, the source of each value set by a file or an override, and the files' chain.

    Sources map dotted keys to text (see :func:`cloudwar.scenario.layering.merge_layers`); a key not
    in the map has its schema default.
    """
    layers = read_layers(name_or_path)
    raw, sources = merge_layers(layers, with_sources=True)
    scenario = scenario_from_raw(raw, overrides)
    for key, value in (overrides or {}).items():
        forget(sources, key)
        sources.update(dict.fromkeys(leaf_keys(value, key + "."), OVERRIDE_SOURCE))
    return scenario, sources, layers


def source_of(key: str, sources: dict[str, str]) -> str:
    """The source of ``key``: its own, else that of the table it sits in (a strategy given by name)."""
    parts = key.split(".")
    for i in range(len(parts), 0, -1):
        found = sources.get(".".join(parts[:i]))
        if found is not None:
            return found
    return DEFAULT_SOURCE


def _rows(obj: Any, prefix: str, sources: dict[str, str]) -> Iterator[ValueRow]:
    """The effective values of a scenario's (sub)table, keys as ``--set`` addresses them."""

    def row(key: str, value: Any, unit: str) -> ValueRow:
        return ValueRow(key, toml_value(value), unit, source_of(key, sources))

    for f in dataclasses.fields(obj):
        key, value, unit = prefix + f.name, getattr(obj, f.name), f.metadata["unit"]
        if isinstance(value, StrategySpec):
            yield row(f"{key}.kind", value.kind, "name")
            for name, param in value.params.items():
                yield row(f"{key}.{name}", param, "strategy parameter")
        elif dataclasses.is_dataclass(value):
            yield from _rows(value, key + ".", sources)
        elif isinstance(value, list):  # providers, by name
            for item in value:
                yield from _rows(item, f"{key}.{item.name}.", sources)
        elif isinstance(value, dict) and value:
            for name, entry in value.items():
                if dataclasses.is_dataclass(entry):  # products, regions
                    yield from _rows(entry, f"{key}.{name}.", sources)
                elif isinstance(entry, dict) and set(entry) != {"*"}:  # a table per region
                    for region, x in entry.items():
                        yield row(f"{key}.{name}.{region}", x, unit)
                else:  # one number for every region, or a plain table of numbers
                    yield row(f"{key}.{name}", entry["*"] if isinstance(entry, dict) else entry, unit)
        else:
            yield row(key, value, unit)


def value_rows(scenario: Scenario, sources: dict[str, str]) -> list[ValueRow]:
    """Every effective value of ``scenario`` with its unit and its source from ``sources``."""
    return list(_rows(scenario, "", sources))


def effective_values(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> list[ValueRow]:
    """(key, value, unit, source) of every value of a scenario with overrides, as a run would use it.

    The source is ``"FILE: COMMENT"`` for a value a scenario file sets (the comment on its line,
    which cites facts.md, an assumption or a calibration), ``override --set`` for an override, and
    ``schema default`` for a value nobody set.
    """
    scenario, sources, _ = layered(name_or_path, overrides)
    return value_rows(scenario, sources)


def scenario_label(name: str, overrides: dict[str, Any] | None = None) -> str:
    """A scenario's name with its overrides: ``baseline + providers.AWS.strategy.kind=cost_plus, enterprises=5000``."""
    if not overrides:
        return name
    shown = (f"{k}={v if isinstance(v, str) else toml_value(v)}" for k, v in overrides.items())
    return f"{name} + {', '.join(shown)}"


# --------------------------------------------------------------------------------------------
# Writing the effective scenario
# --------------------------------------------------------------------------------------------
def write_effective_scenario(
    scenario: Scenario, path: str | Path, sources: dict[str, str] | None = None, header: str = ""
) -> Path:
    """Write ``scenario`` to ``path`` as TOML with every value explicit, each line's source as its comment.

    Loading the file gives ``scenario`` back, except that ``oracle_sample`` is written as at most
    ``enterprises`` (an override may have lowered ``enterprises`` below it; the model samples every
    enterprise then, so a run is the same). The file is read back and checked before it is kept.
    """
    import tomlkit

    path = Path(path)
    scenario = dataclasses.replace(scenario, oracle_sample=min(scenario.oracle_sample, scenario.enterprises))
    data = scenario_to_dict(scenario)
    by_line = _line_sources(value_rows(scenario, sources or {}))

    def item(value: Any, key: str) -> Any:
        out = toml_item(value)
        if key in by_line:
            out.comment(by_line[key])
        return out

    def table(values: dict[str, Any], prefix: str) -> Any:
        out = tomlkit.table()
        for key, value in values.items():
            out.add(key, item(value, prefix + key))
        return out

    doc = tomlkit.document()
    for line in (header or "The effective scenario: every value explicit; comments give each value's source.").split(
        "\n"
    ):
        doc.add(tomlkit.comment(line))
    tables = {k: v for k, v in data.items() if isinstance(v, dict | list)}
    for key, value in data.items():
        if key not in tables:
            doc.add(key, item(value, key))
    for key, value in tables.items():
        field = next(f for f in dataclasses.fields(Scenario) if f.name == key)
        if isinstance(value, list):  # providers
            doc.add(key, tomlkit.aot())
            for provider in value:
                doc[key].append(table(provider, f"{key}.{provider['name']}."))
        elif field.metadata["unit"] == "table" and not dataclasses.is_dataclass(getattr(scenario, key)):
            group = tomlkit.table(is_super_table=True)  # products, regions: one table each
            for name, sub in value.items():
                group.add(name, table(sub, f"{key}.{name}."))
            doc.add(key, group)
        else:
            doc.add(key, table(value, key + "."))
    text = tomlkit.dumps(doc)
    if parse_scenario(tomllib.loads(text)) != scenario:  # a bug, not a user error
        raise RuntimeError(f"the effective scenario written to {path} does not load back the same")
    path.write_text(text, encoding="utf-8")
    return path


def _line_sources(rows: list[ValueRow]) -> dict[str, str]:
    """The comment of each line the writer makes: the sources of the values on it, each once."""
    found: dict[str, list[str]] = {}
    for row in rows:
        parts = row.key.split(".")
        for i in range(1, len(parts) + 1):
            sources = found.setdefault(".".join(parts[:i]), [])
            if row.source not in sources:
                sources.append(row.source)
    return {key: " | ".join(sources) for key, sources in found.items()}


# --------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------
def provenance(
    scenario_ref: str | Path,
    overrides: dict[str, Any] | None,
    seed: int | None,
    command: list[str] | None = None,
    layers: list[Layer] | None = None,
) -> dict[str, Any]:
    """The record of a run: what was asked (scenario, overrides, seed, command), with which code.

    ``extends`` lists the scenario's files, the root first; ``label`` is the name figures show;
    ``versions`` are the package's and its main libraries'; ``written_at`` is UTC.
    """
    from cloudwar import __version__

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    layers = layers if layers is not None else read_layers(scenario_ref)
    return {
        "scenario": str(scenario_ref),
        "extends": [layer.origin for layer in layers],
        "overrides": dict(overrides or {}),
        "seed": seed,
        "command": shlex.join(command) if command is not None else None,
        "cloudwar_version": __version__,
        "versions": {
            "python": platform.python_version(),
            **{dist: version(dist) for dist in ("mesa", "numpy", "pandas", "networkx")},
        },
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def record_run(
    folder: str | Path,
    scenario_ref: str | Path,
    overrides: dict[str, Any] | None,
    seed: int | None,
    command: list[str] | None = None,
    final: str | Path | None = None,
) -> list[Path]:
    """Write ``scenario.toml`` (the effective scenario, named with its overrides) and ``provenance.json``.

    ``cloudwar run --scenario FOLDER/scenario.toml --seed SEED`` repeats the run exactly; ``final``
    is the folder the files end up in, when they are written elsewhere first (default ``folder``).
    Returns the two paths.
    """
    folder = Path(folder)
    scenario, sources, layers = layered(scenario_ref, overrides)
    label = scenario_label(scenario.name, overrides)
    if label != scenario.name:
        sources["name"] = f"{source_of('name', sources)}, + the run's overrides"
    record = provenance(scenario_ref, overrides, seed, command, layers)
    again = ["cloudwar", "run", "--scenario", str(Path(final or folder) / SCENARIO_FILE)]
    record.update(
        label=label,
        effective_scenario=SCENARIO_FILE,
        reproduce=shlex.join([*again, "--seed", str(seed)] if seed is not None else again),
    )
    header = (
        f"The effective scenario of a run of {scenario_ref} (see {PROVENANCE_FILE}): every value explicit,\n"
        f"each line's comment gives its source. Repeat the run: {record['reproduce']}"
    )
    written = write_effective_scenario(
        dataclasses.replace(scenario, name=label), folder / SCENARIO_FILE, sources, header
    )
    record_path = folder / PROVENANCE_FILE
    record_path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    return [written, record_path]

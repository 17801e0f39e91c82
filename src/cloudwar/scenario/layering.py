"""Scenario layering: a TOML file may ``extends`` another and say only what changes.

``extends = "baseline"`` names a shipped scenario; ``extends = "base.toml"`` (or any path) is a file,
relative to the extending file's folder. The parent may itself extend another file (a chain); a
cycle is refused. The child is merged over its parent:

- tables merge key by key, at every depth (``[products.ai]`` with one key changes that key only;
  ``quality = { ai = { china = 0.4 } }`` changes one region's value);
- a value, or an array other than ``providers``, replaces the parent's;
- ``[[providers]]`` tables are matched by ``name``: a known name changes that provider's keys, a new
  name adds a provider (after the parent's), and ``remove = true`` drops the parent's provider;
- a provider's ``strategy`` with a different ``kind`` replaces the parent's strategy table (the old
  kind's parameters would not fit the new one); with the same or no ``kind`` it merges;
- a file that extends another and has no ``name`` is named after its file (``cheap_ai.toml`` is
  ``cheap_ai``), since it is no longer its parent.

The merged table is validated once, by :func:`cloudwar.scenario.schema.parse_scenario`. Alongside it,
:func:`merge_layers` can tell for every value which file set it and the comment on its line (the
scenario files cite their sources in comments, read here with :mod:`tomlkit`).
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from cloudwar.errors import ScenarioError

EXTENDS = "extends"
#: In a ``[[providers]]`` table of an extending file: ``remove = true`` drops the parent's provider.
REMOVE = "remove"
PROVIDERS = "providers"
_DATA = "cloudwar.scenario.data"


@dataclass(frozen=True)
class Layer:
    """One file of an ``extends`` chain: its own table (``extends`` taken out) and where it came from."""

    origin: str  # how messages and sources name the file: "baseline.toml", or its path
    identity: str  # the same file always has the same identity (cycle detection)
    raw: dict[str, Any]
    text: str
    extends: str | None  # the parent as written in the file, if any


def shipped_scenarios() -> dict[str, str]:
    """Names and one-line descriptions of the scenarios shipped with the package."""
    out = {}
    for entry in sorted(resources.files(_DATA).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            raw = tomllib.loads(entry.read_text(encoding="utf-8"))
            lines = str(raw.get("description", "")).strip().splitlines()
            out[entry.name[:-5]] = lines[0] if lines else ""
    return out


def _is_bare(ref: str | Path) -> bool:
    """A bare name (no folder, no ``.toml``) means a shipped scenario."""
    text = str(ref)
    return not isinstance(ref, Path) and Path(text).suffix != ".toml" and "/" not in text and "\\" not in text


def _locate(ref: str | Path, base: Path | Traversable | None) -> tuple[str, str, str, Path | Traversable]:
    """(text, origin, identity, folder for the file's own ``extends``) of a scenario reference.

    A bare name is a shipped scenario, even when a file or folder of that name sits in the working
    folder (``--out baseline`` makes one); a file of that name is read only if no scenario of that
    name is shipped. Anything else is a path, relative to ``base`` (the extending file's folder)
    when one is given.
    """
    name = str(ref)
    bare = _is_bare(ref)
    data = resources.files(_DATA)
    if bare and name and (data / f"{name}.toml").is_file():
        resource = data / f"{name}.toml"
        return resource.read_text(encoding="utf-8"), f"{name}.toml", f"shipped:{name}", data
    if base is not None and not isinstance(base, Path):  # a shipped file extends a file beside it
        resource = base / name
        if resource.is_file():
            return resource.read_text(encoding="utf-8"), name, f"shipped:{name.removesuffix('.toml')}", base
        raise ScenarioError(f"scenario file not found: {name} (beside the shipped scenarios)")
    path = Path(ref) if base is None else Path(os.path.normpath(base / Path(ref)))
    if bare and not path.is_file():
        known = ", ".join(shipped_scenarios())
        raise ScenarioError(f"unknown scenario '{name}' (shipped: {known}; or give a .toml path)")
    origin = str(path)
    if path.is_dir():
        raise ScenarioError(f"scenario {origin} is a folder, not a TOML file")
    if not path.is_file():
        raise ScenarioError(f"scenario file not found: {origin}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScenarioError(f"{origin}: not a UTF-8 text file (byte {err.start}), so not a TOML scenario") from None
    return text, origin, str(path.resolve()), path.parent


_PARSED: dict[str, dict[str, Any]] = {}  # TOML text -> its table (a few shipped files, read for every run)


def _parse_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads(text)``, parsed once per text; every caller gets its own deep copy to change."""
    if text not in _PARSED:
        if len(_PARSED) >= 64:  # edited files (the dashboard) make new texts: keep the cache small
            _PARSED.clear()
        _PARSED[text] = tomllib.loads(text)
    return copy.deepcopy(_PARSED[text])


def read_layers(ref: str | Path) -> list[Layer]:
    """The files of ``ref``'s ``extends`` chain, the root (which extends nothing) first, ``ref`` last."""
    chain: list[Layer] = []
    base: Path | Traversable | None = None
    while True:
        try:
            text, origin, identity, folder = _locate(ref, base)
        except ScenarioError as err:
            if not chain:
                raise
            raise ScenarioError(f"{chain[-1].origin}: extends {str(ref)!r}: {err}") from None
        seen = [layer.identity for layer in chain]
        if identity in seen:
            loop = [layer.origin for layer in chain[seen.index(identity) :]] + [origin]
            raise ScenarioError(f"{chain[-1].origin}: extends {str(ref)!r}: a cycle ({' -> '.join(loop)})")
        try:
            raw = _parse_toml(text)
        except tomllib.TOMLDecodeError as err:
            raise ScenarioError(f"{origin}: malformed TOML: {err}") from None
        parent = raw.pop(EXTENDS, None)
        if parent is not None and (not isinstance(parent, str) or not parent.strip()):
            raise ScenarioError(f"{origin}: extends: expected a scenario name or a path (text), got {parent!r}")
        chain.append(Layer(origin, identity, raw, text, parent))
        if parent is None:
            return chain[::-1]
        ref, base = parent, folder


# --------------------------------------------------------------------------------------------
# Merging, with the source of every value
# --------------------------------------------------------------------------------------------
def leaf_keys(raw: Any, prefix: str = "") -> list[str]:
    """The dotted keys of every value in a raw table; providers are named (``providers.AWS.price.ai``).

    An empty table is a value of its own (``presence = {}``).
    """
    if isinstance(raw, dict) and raw:
        out = []
        for key, value in raw.items():
            out.extend(leaf_keys(value, f"{prefix}{key}."))
        return out
    if prefix == f"{PROVIDERS}." and isinstance(raw, list):
        out = []
        for i, item in enumerate(raw):
            name = item.get("name") if isinstance(item, dict) else None
            out.extend(leaf_keys(item, f"{prefix}{name if isinstance(name, str) else f'[{i}]'}."))
        return out
    return [prefix[:-1]]


def forget(sources: dict[str, str], key: str) -> None:
    """Drop the sources of ``key``, of every key below it and of any value above it (all replaced)."""
    parts = key.split(".")
    for i in range(1, len(parts)):
        sources.pop(".".join(parts[:i]), None)
    below = key + "."
    for k in [k for k in sources if k == key or k.startswith(below)]:
        del sources[k]


class _Merge:
    """Merges one layer over the tables below it, noting in ``sources`` who set each value."""

    def __init__(self, layer: Layer, sources: dict[str, str], comments: dict[str, str] | None) -> None:
        self.layer, self.sources, self.comments = layer, sources, comments

    def set(self, table: dict[str, Any], key: str, value: Any, where: str) -> None:
        """``table[key] = value`` at dotted key ``where``: replaces whatever was there."""
        table[key] = copy.deepcopy(value)
        forget(self.sources, where)
        if self.comments is not None:
            for leaf in leaf_keys(value, where + "."):
                self.sources[leaf] = self.source_of(leaf)

    def source_of(self, key: str) -> str:
        """``"file: comment on its line"``: the comment of the key's line or the nearest line above it."""
        parts = key.split(".")
        assert self.comments is not None
        for i in range(len(parts), 0, -1):
            comment = self.comments.get(".".join(parts[:i]))
            if comment:
                return f"{self.layer.origin}: {comment}"
        return self.layer.origin

    def table(self, parent: dict[str, Any], child: dict[str, Any], where: str) -> None:
        for key, value in child.items():
            sub = f"{where}.{key}" if where else key
            old = parent.get(key)
            if not where and key == PROVIDERS and isinstance(old, list) and isinstance(value, list):
                self.providers(old, value)
            elif isinstance(old, dict) and isinstance(value, dict) and not _new_strategy(where, key, old, value):
                self.table(old, value, sub)
            else:
                self.set(parent, key, value, sub)

    def providers(self, parent: list[Any], child: list[Any]) -> None:
        origin = self.layer.origin
        for i, item in enumerate(child):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                raise ScenarioError(
                    f"{origin}: providers[{i}]: a provider of a file that extends another needs a name "
                    "(a known name changes that provider, a new one adds a provider)"
                )
            where = f"{PROVIDERS}.{name}"
            known = [p for p in parent if isinstance(p, dict) and p.get("name") == name]
            if REMOVE in item:
                if item[REMOVE] is not True or set(item) != {"name", REMOVE}:
                    raise ScenarioError(
                        f"{origin}: {where}.{REMOVE}: write only name and remove = true to drop a provider"
                    )
                if not known:
                    names = ", ".join(str(p.get("name")) for p in parent if isinstance(p, dict))
                    raise ScenarioError(f"{origin}: {where}.{REMOVE}: no provider named '{name}' (providers: {names})")
                parent.remove(known[0])
                forget(self.sources, where)
            elif known:
                self.table(known[0], {k: v for k, v in item.items() if k != "name"}, where)
            else:
                parent.append({})
                self.table(parent[-1], item, where)


def _new_strategy(where: str, key: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A provider's strategy whose kind changes starts afresh (the old parameters belong to the old kind)."""
    return (
        key == "strategy" and where.startswith(f"{PROVIDERS}.") and new.get("kind", old.get("kind")) != old.get("kind")
    )


def merge_layers(layers: list[Layer], *, with_sources: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged raw table of a chain (root first) and, if asked, each value's source.

    Sources map dotted keys (``providers.AWS.price.ai``; see :func:`leaf_keys`) to
    ``"file: comment"``; without ``with_sources`` the TOML comments are not read and the map is empty.
    """
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for i, layer in enumerate(layers):
        merge = _Merge(layer, sources, comments_by_key(layer.text) if with_sources else None)
        if i == 0:
            for key, value in layer.raw.items():
                merge.set(merged, key, value, key)
            continue
        merge.table(merged, layer.raw, "")
        if "name" not in layer.raw:
            merged["name"] = Path(layer.origin).stem
            forget(sources, "name")
            if with_sources:
                sources["name"] = f"{layer.origin}: its file name (the file sets no name)"
    return merged, sources


def resized_by_a_layer(layers: list[Layer]) -> bool:
    """True if a file that extends another set ``enterprises`` after the last file to set ``oracle_sample``.

    The root file counts as setting ``oracle_sample`` (its schema default, if not its own value), so a
    single file asking for a sample larger than its enterprises is still refused.
    """

    def last(key: str) -> int:
        return max((i for i, layer in enumerate(layers) if key in layer.raw), default=0)

    return last("enterprises") > last("oracle_sample")


def read_merged(ref: str | Path) -> dict[str, Any]:
    """The raw table of a shipped scenario name or a TOML path, its ``extends`` chain merged in."""
    return merge_layers(read_layers(ref))[0]


def comments_by_key(text: str) -> dict[str, str]:
    """The comment on each key's line in a TOML text, by dotted key (providers by name), ``#`` removed."""
    import tomlkit  # only where sources are shown: it is slower than tomllib
    from tomlkit.items import AoT, InlineTable, Table

    out: dict[str, str] = {}

    def walk(body: list[tuple[Any, Any]], prefix: str) -> None:
        for key, item in body:
            if key is None:  # whitespace and comment lines
                continue
            where = f"{prefix}{key.key}"
            comment = item.trivia.comment.lstrip("#").strip() if hasattr(item, "trivia") else ""
            if comment:
                out[where] = comment
            if isinstance(item, Table | InlineTable):
                walk(item.value.body, where + ".")
            elif isinstance(item, AoT) and where == PROVIDERS:
                for i, table in enumerate(item.body):
                    name = table.get("name")
                    here = f"{where}.{name if isinstance(name, str) else f'[{i}]'}"
                    if table.trivia.comment.strip("# "):
                        out[here] = table.trivia.comment.lstrip("#").strip()
                    walk(table.value.body, here + ".")

    walk(tomlkit.parse(text).body, "")
    return out

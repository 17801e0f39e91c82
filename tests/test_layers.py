"""The package's import direction: nothing below cli/ imports the command line, and no import cycles.

Every import statement in src/cloudwar is read with ast (module level and inside functions;
imports under ``if TYPE_CHECKING:`` do not count, they never run), and every module is
imported for real to check it imports on its own.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import ROOT

SRC = ROOT / "src"
PACKAGE = SRC / "cloudwar"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str) -> set[str]:
    """The cloudwar modules ``name`` imports (anywhere but under TYPE_CHECKING), resolved to module names."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def test_the_graph_sees_the_imports_it_should():
    # A guard on the checker itself: known edges must be found.
    assert "cloudwar.runs.store" in GRAPH["cloudwar.runs.runner"]
    assert "cloudwar.runs.sensitivity" in GRAPH["cloudwar.cli.sensitivity"]  # a function-level import
    assert "cloudwar.model.market" in GRAPH["cloudwar"]  # inside __getattr__: function-level imports count
    assert "cloudwar.scenario" in GRAPH["cloudwar.runs.design"]


def test_nothing_below_cli_imports_the_command_line():
    offenders = {
        name: sorted(m for m in deps if m == "cloudwar.cli" or m.startswith("cloudwar.cli."))
        for name, deps in GRAPH.items()
        if not (name == "cloudwar.cli" or name.startswith("cloudwar.cli."))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycles():
    """A cycle is any path from a module back to itself (package __init__ -> its own submodule excepted)."""
    cycles = []

    def edges(name: str) -> set[str]:
        # A package's __init__ importing its own submodules is how packages re-export; not a cycle.
        return {m for m in GRAPH[name] if not m.startswith(name + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(edges(name)):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                walk(dep)
        stack.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            walk(name)
    assert cycles == []


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if n not in ("cloudwar.dashboard.app", "cloudwar.cli.__main__"))
)
def test_every_module_imports_on_its_own(name):
    importlib.import_module(name)

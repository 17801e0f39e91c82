"""Calendar quarters: model step <-> calendar label (``2026Q1``), and quarter-valued parameters.

Step 1 is the scenario's ``start`` quarter; step 0 is the state before the first step. A
parameter that names a quarter accepts a step (a whole number) or a calendar label.
"""

from __future__ import annotations

import re

from cloudwar.errors import ScenarioError

_LABEL = re.compile(r"(\d{4})Q([1-4])")


def is_label(value: object) -> bool:
    """True if ``value`` is a calendar quarter label such as ``"2027Q1"``."""
    return isinstance(value, str) and _LABEL.fullmatch(value) is not None


def index(label: str) -> int:
    """A label's running quarter number (year x 4 + quarter - 1), for differences between labels."""
    match = _LABEL.fullmatch(label) if isinstance(label, str) else None
    if match is None:
        raise ScenarioError(f"expected a calendar quarter like 2025Q4 (YYYYQn), got {label!r}")
    return int(match[1]) * 4 + int(match[2]) - 1


def label(start: str, step: int) -> str:
    """Calendar label of model step ``step`` (1 = ``start``), e.g. ``label("2025Q4", 2) == "2026Q1"``."""
    i = index(start) + int(step) - 1
    return f"{i // 4}Q{i % 4 + 1}"


def labels(start: str, steps: object) -> list[str]:
    """Calendar labels of many steps (any iterable of whole numbers)."""
    base = index(start) - 1
    return [f"{(base + int(s)) // 4}Q{(base + int(s)) % 4 + 1}" for s in steps]  # type: ignore[union-attr]


def step(start: str, value: int | str, name: str = "quarter") -> int:
    """The model step that ``value`` names: a whole number is a step, a label is converted.

    Raises :class:`ScenarioError` (naming ``name``) for anything else, or for a label before
    ``start``.
    """
    if isinstance(value, bool):
        raise ScenarioError(f"{name}: expected a step (whole number) or a calendar quarter like 2027Q1, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if is_label(value):
        s = index(value) - index(start) + 1  # type: ignore[arg-type]
        if s < 1:
            raise ScenarioError(f"{name}: {value} is before the scenario's start ({start})")
        return s
    raise ScenarioError(f"{name}: expected a step (whole number) or a calendar quarter like 2027Q1, got {value!r}")

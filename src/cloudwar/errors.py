"""One error hierarchy for the whole package, and the one-line formatter every report uses.

Every error a user can cause (a bad scenario, a strategy that fails, a sweep folder that does
not fit) is a :class:`CloudwarError`; the command line and the experiment scripts print it as
``cloudwar: error: <one line>`` and exit with status 2.
"""

from __future__ import annotations

EXIT_USAGE = 2  # exit status of every user error, in the command line and the experiment scripts


class CloudwarError(Exception):
    """A problem the user can fix; its message is one line that names what to change."""


class ScenarioError(CloudwarError, ValueError):
    """A scenario problem, reported as one line that names the key."""


class StrategyError(ScenarioError):
    """A strategy failed while the model ran (raised, or returned invalid decisions)."""


class SweepError(CloudwarError):
    """A problem with a design of many runs, its output folder or its executor."""


class UsageError(CloudwarError):
    """A command-line argument that cannot be used as given."""


def one_line(err: BaseException | str) -> str:
    """An exception's message (or a text) on one line, for one-line error reports."""
    return " ".join(str(err).split()) or (type(err).__name__ if isinstance(err, BaseException) else "")

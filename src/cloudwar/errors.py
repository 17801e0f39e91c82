"""One error hierarchy for the whole package, and the one-line formatter every report uses.

Every error a user can cause (a bad scenario, a strategy that fails, a sweep folder that does
not fit) is a :class:`CloudwarError`; the command line and the experiment scripts print it as
``cloudwar: error: <one line>`` and exit with status 2.

An error about one argument of a Python function names that argument (``param``) and its
message starts with the argument's name (``"seeds must be at least 1, got 0"``); the command
line shows the same message with its option instead (``"--seeds must be at least 1, got 0"``),
see :func:`one_line`. So the engine never needs to know which flag a value came from.
"""

from __future__ import annotations

from collections.abc import Mapping

EXIT_USAGE = 2  # exit status of every user error, in the command line and the experiment scripts
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)


class CloudwarError(Exception):
    """A problem the user can fix; its message is one line that names what to change.

    ``param``: the Python argument (or scenario key) at fault, when there is one; the message
    then starts with that name.
    """

    def __init__(self, message: str = "", *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ScenarioError(CloudwarError, ValueError):
    """A scenario problem, reported as one line that names the key."""


class StrategyError(ScenarioError):
    """A strategy failed while the model ran (raised, or returned invalid decisions)."""


class SweepError(CloudwarError):
    """A problem with a design of many runs, its output folder or its executor."""


class UsageError(CloudwarError):
    """A command-line argument that cannot be used as given."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (save what is finished, say so, exit 143)."""


def one_line(err: BaseException | str, options: Mapping[str, str] | None = None) -> str:
    """An exception's message (or a text) on one line, for one-line error reports.

    With ``options`` (Python argument name -> command-line option), an error whose ``param`` is
    one of them has that leading name replaced by the option: ``seeds must ...`` -> ``--seeds must ...``.
    """
    text = " ".join(str(err).split()) or (type(err).__name__ if isinstance(err, BaseException) else "")
    param = getattr(err, "param", None)
    if options and param in options and text.startswith(param):
        text = options[param] + text[len(param) :]
    return text

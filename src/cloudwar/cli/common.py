"""What every command line of cloudwar shares: the parser, argument types, and the error handling.

The ``cloudwar`` command and the experiment scripts (``experiments/*.py``) report every user
error the same way: one line, ``PROG: error: ...``, exit status 2 (:data:`~cloudwar.errors.EXIT_USAGE`);
Ctrl-C exits 130 and SIGTERM 143 without a traceback. Errors raised below the command line name
Python arguments (``seeds must be ...``); :func:`guard` shows them with the option instead
(``--seeds must be ...``) through the command's ``options`` map.

Cheap to import (argparse only): every command loads it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from cloudwar.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    CloudwarError,
    Terminated,
    UsageError,
    one_line,
)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (a :class:`UsageError`) instead of the usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _whole_number(text: str, minimum: int, expected: str, below: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{below}, got {value}")
    return value


def seed_int(text: str) -> int:
    """An argument type: a random seed, a whole number >= 0."""
    return _whole_number(text, 0, "a whole number >= 0", "must be >= 0")


def positive_int(text: str) -> int:
    """An argument type: a whole number >= 1."""
    return _whole_number(text, 1, "a whole number", "must be at least 1")


def seconds(text: str) -> float:
    """An argument type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0), got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds (a finite number > 0), got {text!r}")
    return value


def parse_sets(items: list[str]) -> dict[str, object]:
    """``--set KEY=VALUE`` items as scenario overrides."""
    from cloudwar.scenario import parse_override

    return dict(parse_override(item) for item in items)


#: Python argument names -> options, shared by every command that runs many runs.
RUN_OPTIONS = {
    "out": "--out",
    "seeds": "--seeds",
    "seed": "--seed",
    "fixed": "--set",
    "metrics": "--metrics",
    "workers": "--workers",
    "scheduler": "--scheduler",
    "samples": "--samples",
    "levels": "--levels",
    "method": "--method",
    "outputs": "--output",
}


def interrupted(err: KeyboardInterrupt, prog: str, what: str = "") -> int:
    """Report Ctrl-C or SIGTERM on one line (``what``: what is saved, if anything); the exit status."""
    if isinstance(err, Terminated):
        if what:
            print(f"{prog}: terminated: {what}", file=sys.stderr)
        return EXIT_TERMINATED
    print(f"{prog}: interrupted" + (f": {what}" if what else ""), file=sys.stderr)
    return EXIT_INTERRUPTED


def fail(prog: str, err: BaseException | str, options: Mapping[str, str] | None = None) -> int:
    """Print ``PROG: error: ...`` on one line; the exit status of a user error."""
    print(f"{prog}: error: {one_line(err, options)}", file=sys.stderr)
    return EXIT_USAGE


def guard(prog: str, body: Callable[[], int | None], options: Callable[[], Mapping[str, str] | None] = dict) -> int:
    """Run ``body`` and turn what a user can cause into one line and an exit status (2 for errors).

    ``options()`` gives the map of Python argument names to options for the message (called
    only when an error is reported, so it may depend on what the body parsed).
    """
    try:
        status = body()
        return 0 if status is None else int(status)
    except CloudwarError as err:
        return fail(prog, err, options())
    except MemoryError:
        return fail(prog, "out of memory: try fewer enterprises (about 250 bytes each at 20 links) or a bigger machine")
    except BrokenPipeError:
        # The reader went away (``cloudwar describe | head``): nothing to say, and nowhere to say it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        return fail(prog, f"{err.strerror or err}: {err.filename or ''}".rstrip(": "))
    except KeyboardInterrupt as err:
        return interrupted(err, prog)


def saved_runs(out: Any, total: int) -> str:
    """``N of M runs are saved in OUT; run the same command again to finish`` (after an interruption)."""
    from pathlib import Path

    from cloudwar.runs.store import Store

    store = Store(out)
    saved = store.saved_runs() if Path(store.runs_dir).is_dir() else 0
    return f"{saved} of {total} runs are saved in {out}; run the same command again to finish"

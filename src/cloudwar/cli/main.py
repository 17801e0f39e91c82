"""The command line: ``cloudwar run``, ``cloudwar scenarios``, ``cloudwar describe``.

Every user error (bad scenario, bad value, missing file) ends with one line on stderr,
``cloudwar: error: ...``, and exit status 2; nothing is written to ``--out`` unless the whole
run succeeded (outputs are written to a temporary folder beside it, then moved in).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from cloudwar.scenario import ScenarioError, one_line

EXIT_USAGE = 2


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise CliError(message)


def seed_int(text: str) -> int:
    """An argument type: a random seed, a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_sets(items: list[str]) -> dict[str, object]:
    from cloudwar.scenario import parse_override

    return dict(parse_override(item) for item in items)


def check_out_folder(out: Path, flag: str = "--out") -> Path:
    """Refuse, before any work, an output folder that cannot be made: one-line CliError naming ``flag``.

    ``out`` must be a folder or not exist yet, and its nearest existing ancestor a folder this
    process may write in. Returns the absolute path.
    """
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise CliError(f"{flag} {out} exists and is not a folder")
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CliError(f"{flag} {out}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CliError(f"{flag} {out}: cannot write in {ancestor}")
    return out


def write_atomically(out: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmpdir)``, then move every file it made into ``out``; on failure leave ``out`` as it was.

    The files are written beside ``out`` first; nothing is moved until every one of them is
    written and every target is known to be free for it (no folder in the way), and each move
    is an atomic rename, so ``out`` holds either none of the new files or all of them.
    """
    out = check_out_folder(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"--out {out}: cannot create {out.parent}: {err.strerror}") from None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as err:
        raise CliError(f"--out {out}: cannot write in {out.parent}: {err.strerror}") from None
    try:
        write(tmp)
        items = sorted(tmp.iterdir())
        blocked = [out / item.name for item in items if (out / item.name).is_dir()]
        if blocked:
            raise CliError(f"--out {out}: a folder named {blocked[0].name} is in the way of the output file")
        out.mkdir(exist_ok=True)
        for item in items:
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cloudwar.model.market import CloudMarket
    from cloudwar.results import plot_results, summary_table
    from cloudwar.scenario import record_run, scenario_label

    overrides = parse_sets(args.set)
    if args.quarters is not None:
        overrides["quarters"] = args.quarters
    if args.out is not None:
        check_out_folder(Path(args.out))
    from cloudwar.scenario import load_scenario

    scenario = load_scenario(args.scenario, overrides)
    quarters = scenario.quarters
    show = args.progress if args.progress is not None else (scenario.enterprises * quarters >= 2_000_000)
    if show:
        print(f"building {scenario.enterprises:,} enterprises and their network ...", file=sys.stderr, flush=True)
    model = CloudMarket(scenario, rng=args.seed)
    with tqdm(total=quarters, desc=f"{model.config.name}", unit="quarter", disable=not show, file=sys.stderr) as bar:
        results = model.run(progress=bar)
    summary = summary_table(results)

    def write(tmp: Path) -> None:
        results.to_csv(tmp / "results.csv", index=False)
        plot_results(
            results,
            tmp / "shares_and_margins.png",
            title=f"{scenario_label(model.config.name, overrides)}: {quarters} quarters from {model.config.start}, "
            f"seed {args.seed}",
        )
        summary.to_csv(tmp / "summary.csv")
        command = ["cloudwar", *getattr(args, "argv", [])]  # scenario.toml and provenance.json:
        record_run(tmp, args.scenario, overrides, args.seed, command, final=Path(args.out))

    if args.out is not None:
        write_atomically(Path(args.out), write)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(f"{model.config.name}: quarter {quarters} of a run from {model.config.start} (seed {args.seed})")
        print(summary.to_string())
    if args.out is not None:
        out = Path(args.out)
        print(f"wrote {out / 'results.csv'}, {out / 'summary.csv'}, {out / 'shares_and_margins.png'}")
        print(f"wrote {out / 'scenario.toml'} (the effective scenario) and {out / 'provenance.json'}")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    from cloudwar.scenario import shipped_scenarios

    for name, description in shipped_scenarios().items():
        print(f"{name:20s} {description}")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from cloudwar.scenario import describe_fields, effective_values

    if args.scenario is not None or args.set:  # one scenario's values, each with its source
        rows = effective_values(args.scenario or "baseline", parse_sets(args.set))
        print(f"{'key':45s} {'value':24s} {'unit':28s} source")
        for key, value, unit, source in rows:
            print(f"{key:45s} {value:24s} {unit:28s} {source}")
        return 0

    for key, unit, default, doc in describe_fields():
        print(f"{key:45s} {unit:28s} {default:12s} {doc}")
    from cloudwar.strategies import describe_strategies

    print("\nstrategies (providers.<name>.strategy.kind) and their parameters: name=default, unit, values, meaning")
    for kind, summary, params in describe_strategies():
        print(f"  {kind}: {summary}")
        for p in params:
            print(f"    {p.name + '=' + p.default:33s} {p.unit:28s} {p.accepts:24s} {p.doc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cloudwar", description="Agent-based simulation of competition in the AI cloud market.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run one scenario and write its table and figure")
    run.add_argument("--scenario", default="baseline", help="shipped scenario name or TOML file (default: baseline)")
    run.add_argument("--quarters", type=positive_int, help="quarters to run (default: the scenario's)")
    run.add_argument("--seed", type=seed_int, default=0, help="random seed, >= 0 (default: 0)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario value, e.g. --set enterprises=50000 --set providers.Alibaba.price.ai=0.2",
    )
    run.add_argument(
        "--out", help="folder for results.csv, summary.csv, shares_and_margins.png, scenario.toml, provenance.json"
    )
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on for long runs)",
    )
    run.set_defaults(func=cmd_run)

    scen = sub.add_parser("scenarios", help="list the shipped scenarios")
    scen.set_defaults(func=cmd_scenarios)

    desc = sub.add_parser("describe", help="every scenario key with its unit, default and meaning")
    desc.add_argument("--scenario", help="show this scenario's effective values and their sources instead")
    desc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override, as for run")
    desc.set_defaults(func=cmd_describe)

    for register in _EXTENSIONS:
        register(sub)
    return parser


# Modules that add subcommands through a ``register_cli(subparsers)`` function. They must be
# cheap to import (heavy imports inside the command functions), since every call loads them.
EXTENSION_MODULES = ("cloudwar.runs.sweep", "cloudwar.dashboard.serve")
_EXTENSIONS: list[Callable[[argparse._SubParsersAction], None]] = []


def _load_extensions() -> None:
    import importlib

    for module in EXTENSION_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name == module:  # that part of the product is not there
                continue
            raise
        register = getattr(mod, "register_cli", None)
        if register is not None and register not in _EXTENSIONS:
            _EXTENSIONS.append(register)


def main(argv: list[str] | None = None) -> int:
    try:
        _load_extensions()
        args = build_parser().parse_args(argv)
        args.argv = sys.argv[1:] if argv is None else list(argv)  # for provenance.json
        return args.func(args)
    except (CliError, ScenarioError) as err:
        return _fail(err)
    except MemoryError:
        return _fail("out of memory: try fewer enterprises (about 250 bytes each at 20 links) or a bigger machine")
    except BrokenPipeError:
        # The reader went away (``cloudwar describe | head``): nothing to say, and nowhere to say it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        return _fail(f"{err.strerror or err}: {err.filename or ''}".rstrip(": "))
    except KeyboardInterrupt:
        print("cloudwar: interrupted", file=sys.stderr)
        return 130


def _fail(err: BaseException | str) -> int:
    """Print ``cloudwar: error: ...`` on one line; the exit status of a user error."""
    print(f"cloudwar: error: {one_line(err)}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

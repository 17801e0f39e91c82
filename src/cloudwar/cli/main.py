"""The command line: ``cloudwar run``, ``scenarios``, ``describe``, ``sweep``, ``sensitivity``, ``compare``, ``serve``.

Every user error (bad scenario, bad value, missing file) ends with one line on stderr,
``cloudwar: error: ...``, and exit status 2; nothing is written to ``--out`` unless the whole
run succeeded (outputs are written to a temporary folder beside it, then moved in:
:func:`cloudwar.runs.output.output_folder`).

All argparse code lives in :mod:`cloudwar.cli`; nothing below it imports it. The commands import
what they run inside their functions, so ``cloudwar --help`` and ``cloudwar describe`` start fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cloudwar.cli import backtest, calibrate, compare, sensitivity, serve, sweep
from cloudwar.cli.common import RUN_OPTIONS, Parser, guard, parse_sets, positive_int, seed_int
from cloudwar.errors import EXIT_USAGE

__all__ = ["EXIT_USAGE", "build_parser", "main"]


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cloudwar.model.market import CloudMarket
    from cloudwar.results import plot_results, summary_table
    from cloudwar.runs.output import check_out_folder, write_atomically
    from cloudwar.scenario import record_run, scenario_label
    from cloudwar.scenario.events import event_rows

    overrides = parse_sets(args.set)
    if args.quarters is not None:
        overrides["quarters"] = args.quarters
    if args.seeds is not None or args.workers or args.scheduler:  # an ensemble of seeds, through the runs layer
        return compare.cmd_run_seeds(args, overrides)
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
            events=model.events,
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
    for row in event_rows([e for e in model.events if e.step <= quarters]):  # the events that happened
        print(f"event {row.at} (quarter {row.step}): {row.name}: {row.changes}")
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
        from cloudwar.scenario import describe_events, load_scenario

        events = describe_events(load_scenario(args.scenario or "baseline", parse_sets(args.set)))
        print(f"\nevents ({len(events)}): quarter (step), name, what changes, source")
        for e in events:
            print(f"  {e.at} ({e.step}) {e.name}: {e.changes}" + (f"  [{e.source}]" if e.source else ""))
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
    parser = Parser(prog="cloudwar", description="Agent-based simulation of competition in the AI cloud market.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

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
    compare.add_run_seeds_arguments(run)
    run.set_defaults(func=cmd_run, options=RUN_OPTIONS)

    scen = sub.add_parser("scenarios", help="list the shipped scenarios")
    scen.set_defaults(func=cmd_scenarios)

    desc = sub.add_parser("describe", help="every scenario key with its unit, default and meaning")
    desc.add_argument("--scenario", help="show this scenario's effective values and their sources instead")
    desc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override, as for run")
    desc.set_defaults(func=cmd_describe)

    for module in (sweep, sensitivity, compare, backtest, calibrate, serve):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``cloudwar`` command; returns its exit status."""
    parsed: list[argparse.Namespace] = []

    def body() -> int:
        parsed.append(build_parser().parse_args(argv))
        parsed[0].argv = sys.argv[1:] if argv is None else list(argv)  # for provenance.json
        return parsed[0].func(parsed[0])

    return guard("cloudwar", body, lambda: getattr(parsed[0], "options", None) if parsed else None)


if __name__ == "__main__":
    sys.exit(main())

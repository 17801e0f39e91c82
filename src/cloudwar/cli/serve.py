"""``cloudwar serve``: the command line of the live dashboard (the server itself is :mod:`cloudwar.dashboard.serve`).

Cheap to import: the dashboard module is imported inside the command.
"""

from __future__ import annotations

import argparse

DEFAULT_HOST = "127.0.0.1"  # cloudwar.dashboard.serve.DEFAULT_HOST, without importing it
DEFAULT_PORT = 8765


def port_number(text: str) -> int:
    """An argument type: a TCP port, 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535, got {value}")
    return value


def cmd_serve(args: argparse.Namespace) -> int:
    from cloudwar.dashboard.serve import serve

    return serve(args.host, args.port)


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="start the live dashboard (a Solara web server)")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})")
    serve.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"port to listen on (default: {DEFAULT_PORT})"
    )
    serve.set_defaults(func=cmd_serve, options={"host": "--host", "port": "--port"})

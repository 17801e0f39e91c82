"""The command line (argparse lives here only; nothing below it imports it)."""

from cloudwar.cli.main import main

__all__ = ["main"]

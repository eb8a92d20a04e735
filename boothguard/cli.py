"""The one entry point, `boothguard`. Each feature package registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from boothguard.errors import EXIT_USAGE, BoothguardError

# Modules with `register(subparsers)`; kept light: heavy imports happen inside the command functions.
COMMAND_MODULES = (
    "boothguard.agent.commands",
    "boothguard.usb.commands",
    "boothguard.collector.commands",
    "boothguard.session.commands",
    "boothguard.lock.commands",
    "boothguard.quickstart",
    "boothguard.install.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boothguard", description="Booth PC agent, watcher and collector.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args))
    except BoothguardError as exc:
        print(f"boothguard: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130

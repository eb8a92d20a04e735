"""The one entry point, `boothguard`. Each feature package registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from boothguard.errors import EXIT_USAGE, BoothguardError

DISTRIBUTION = "boothguard"

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


def version() -> str:
    """The installed distribution's version (what pip or the .deb put in place), else the source tree's."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        from boothguard import __version__

        return __version__


class _VersionAction(argparse.Action):
    """`--version`, read from the package metadata only when asked (the agent's start stays lean)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kw: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"{parser.prog} {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boothguard", description="Booth PC agent, watcher and collector.")
    parser.add_argument("--version", action=_VersionAction)
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

"""`boothguard install` and `boothguard doctor`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from boothguard.errors import EXIT_PERMISSION


def register(sub: Any) -> None:
    p = sub.add_parser("install", help="place units, udev rule, example config and state directories")
    p.add_argument(
        "--root", type=Path, default=Path("/"), help="install into this directory tree (default /)"
    )
    p.add_argument("--bin", default=None, help="the boothguard command the units run (default: this one)")
    p.add_argument("--python", default=None, help="the Python the udev helper runs (default: this one)")
    p.add_argument("--enable", action="store_true", help="enable the agent and the session watcher")
    p.add_argument("--no-accounts", action="store_true", help="do not run systemd-sysusers")
    p.add_argument("--quiet", action="store_true", help="print problems only")
    p.set_defaults(func=_install)

    p = sub.add_parser("doctor", help="what works on this PC and what to fix")
    p.add_argument(
        "--config", type=Path, default=None, help="agent config (default /etc/boothguard/agent.toml)"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per network or bus probe")
    p.add_argument(
        "--root", type=Path, default=Path("/"), help="look for units, udev rules and X sockets under DIR"
    )
    p.set_defaults(func=_doctor)


def _install(args: argparse.Namespace) -> int:
    import os
    import sys

    from boothguard.install.installer import Options, default_bin, install

    root = args.root.resolve()
    if os.geteuid() != 0:
        print(
            "boothguard install: run as root (owners and modes are part of the installation)", file=sys.stderr
        )
        return EXIT_PERMISSION
    opts = Options(
        root=root,
        bin=args.bin or default_bin(),
        python=args.python or sys.executable,
        accounts=not args.no_accounts,
        enable=args.enable,
    )
    report = install(opts)
    if not args.quiet:
        for what, path in report.actions:
            print(f"{what:9} {path}")
    for problem in report.problems:
        print(f"problem   {problem}", file=sys.stderr)
    if not args.quiet:
        print(
            "\nnext: boothguard enroll --collector URL --secret-file FILE; "
            "systemctl enable --now boothguard.service; systemctl --global enable boothguard-session.service"
        )
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from boothguard.install.doctor import Probe, render_text, run_checks

    results = run_checks(Probe.from_system(args.config, timeout=args.timeout, root=args.root))
    if args.json:
        print(json.dumps({"checks": [r.as_dict() for r in results]}, indent=2))
    else:
        sys.stdout.write(render_text(results))
    return 1 if any(r.status == "fail" for r in results) else 0

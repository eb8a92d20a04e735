"""Collector-side commands: `collector` (serve), `collector user add`, and the agent's `enroll`."""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path
from typing import Any

ROLES = ("viewer", "analyst", "admin")


def register(sub: Any) -> None:
    p = sub.add_parser("collector", help="run the central collector (or manage its users)")
    p.add_argument(
        "--config", type=Path, default=None, help="main config file (default /etc/boothguard/collector.toml)"
    )
    p.set_defaults(func=_collector)
    csub = p.add_subparsers(dest="collector_command", metavar="SUBCOMMAND")
    user = csub.add_parser("user", help="dashboard/API users")
    usub = user.add_subparsers(dest="user_command", metavar="SUBCOMMAND", required=True)
    add = usub.add_parser("add", help="create a user (password from stdin, or generated and printed once)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="main config file")
    add.set_defaults(func=_user_add)

    p = sub.add_parser("enroll", help="obtain this host's token from the collector and store it (0600)")
    p.add_argument("--collector", required=True, help="collector base URL, e.g. https://collector:8443")
    p.add_argument("--secret-file", required=True, type=Path, help="file holding the enrollment secret")
    p.add_argument(
        "--config", type=Path, default=None, help="agent config file (default /etc/boothguard/agent.toml)"
    )
    p.set_defaults(func=_enroll)


def _collector(args: argparse.Namespace) -> int:
    from boothguard import config, log
    from boothguard.collector.server import run

    cfg = config.load_collector(args.config)
    log.setup(cfg.collector.log_level)
    return run(cfg, args.config)


def _read_password() -> tuple[str, bool]:
    """The first line of stdin when it is not a terminal and holds one; else a generated password."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if line:
            return line, False
    return secrets.token_urlsafe(18), True


def _user_add(args: argparse.Namespace) -> int:
    from boothguard import config, log
    from boothguard.collector import db, migrations, users

    cfg = config.load_collector(args.config)
    log.setup("warning")
    engine = db.create(cfg.collector.database_url, pool_size=1)
    try:
        migrations.migrate(engine)
        password, generated = _read_password()
        users.add_user(engine, args.name, args.role, password, now=time.time())
    finally:
        engine.dispose()
    if generated:
        print(f"password for {args.name}: {password}")
        print("(shown once; it is stored only as an argon2id hash)", file=sys.stderr)
    else:
        print(f"user {args.name} added ({args.role})", file=sys.stderr)
    return 0


def _enroll(args: argparse.Namespace) -> int:
    from boothguard import config
    from boothguard.ship.enroll import enroll

    cfg = config.load_agent(args.config)
    path = enroll(cfg, args.collector, args.secret_file)
    print(f"enrolled; token written to {path}", file=sys.stderr)
    return 0

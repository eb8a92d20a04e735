"""Agent-side commands: agent, status, emit, config check, schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from boothguard.errors import EXIT_CONFIG, EXIT_USAGE, ConfigError


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="main config file (default /etc/boothguard/…)")


def register(sub: Any) -> None:
    p = sub.add_parser("agent", help="run the system daemon")
    add_config_arg(p)
    p.set_defaults(func=_agent)

    p = sub.add_parser("status", help="show the local agent's state")
    add_config_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)

    p = sub.add_parser("emit", help="send a custom.* event through the local agent")
    add_config_arg(p)
    p.add_argument("type")
    p.add_argument("--severity", default="info", choices=["info", "low", "medium", "high", "critical"])
    p.add_argument("--data", default="{}", help="a JSON object")
    p.set_defaults(func=_emit)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    c = csub.add_parser("check", help="validate config; exit 78 with one line per problem")
    add_config_arg(c)
    c.add_argument("--collector", action="store_true", help="check the collector's config instead")
    c.set_defaults(func=_config_check)

    p = sub.add_parser("schema", help="print the JSON Schema of the event envelope")
    p.set_defaults(func=_schema)


def _agent(args: argparse.Namespace) -> int:
    from boothguard import config, log
    from boothguard.agent.daemon import run

    cfg = config.load_agent(args.config)
    log.setup()
    return run(cfg, args.config)


def socket_path(args: argparse.Namespace) -> Path:
    from boothguard import config

    return config.load_agent(args.config, check_permissions=False).socket_path


def _status(args: argparse.Namespace) -> int:
    from boothguard.agent.client import request

    reply = request(socket_path(args), "status")
    reply.pop("ok", None)
    reply.pop("id", None)
    if args.json:
        print(json.dumps(reply, indent=2, sort_keys=True))
    else:
        _print_tree(reply)
    return 0


def _print_tree(value: Any, indent: int = 0) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                print(f"{pad}{key}:")
                _print_tree(item, indent + 1)
            else:
                print(f"{pad}{key}: {json.dumps(item) if isinstance(item, dict | list) else item}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                print(f"{pad}-")
                _print_tree(item, indent + 1)
            else:
                print(f"{pad}- {item}")


def _emit(args: argparse.Namespace) -> int:
    from boothguard.agent.client import request

    if not args.type.startswith("custom."):
        print("boothguard: emit: TYPE must start with 'custom.'", file=sys.stderr)
        return EXIT_USAGE
    data, problem = parse_data(args.data)
    if problem is not None:
        print(f"boothguard: emit: {problem}", file=sys.stderr)
        return EXIT_USAGE
    # The agent checks again, exactly (the sealed size included), and answers why it refuses.
    reply = request(socket_path(args), "emit", type=args.type, severity=args.severity, data=data)
    print(reply.get("seq", ""))
    return 0


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_data(text: str) -> tuple[dict[str, Any], str | None]:
    """`--data` as an event's data: strict JSON (no NaN/Infinity, which Python's json accepts), an object,
    and within what the collector stores (no NUL, integers within 64 bits, finite: 1e400 parses as inf)."""
    from boothguard.envelope_limits import envelope_problem

    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        return {}, f"--data is not JSON: {exc}"
    if not isinstance(data, dict):
        return {}, "--data must be a JSON object"
    problem = envelope_problem(data, where="data")
    return data, None if problem is None else f"--data refused: {problem}"


def _config_check(args: argparse.Namespace) -> int:
    from boothguard import config

    try:
        cfg = config.load_collector(args.config) if args.collector else config.load_agent(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return EXIT_CONFIG
    # Valid, and it runs; but say which local values the collector's policy keeps from applying.
    for override in cfg.refused_overrides:
        print(override)
    count = len(cfg.refused_overrides)
    print(f"ok ({count} local override(s) refused)" if count else "ok")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from boothguard.events import event_schema

    print(json.dumps(event_schema(), indent=2, sort_keys=True))
    return 0

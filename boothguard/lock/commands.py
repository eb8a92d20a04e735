"""`boothguard away [--reason TEXT] [--session ID]` and `boothguard back [--session ID]`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from boothguard.agent.commands import add_config_arg, socket_path

# Verification, fallbacks and escalation can take a while; the agent answers when the lock is proven.
AWAY_TIMEOUT = 120.0


def register(sub: Any) -> None:
    p = sub.add_parser("away", help="signal the away state: lock your session and verify the lock")
    add_config_arg(p)
    p.add_argument("--reason", default="", help="why (shown in the event)")
    p.add_argument("--session", default=None, help="logind session id (root may name any)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_away)

    p = sub.add_parser("back", help="end the away state of your session")
    add_config_arg(p)
    p.add_argument("--session", default=None, help="logind session id (root may name any)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_back)


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    return {"session": args.session} if args.session else {}


def _away(args: argparse.Namespace) -> int:
    from boothguard.agent.client import request

    reply = request(socket_path(args), "away", timeout=AWAY_TIMEOUT, reason=args.reason, **_fields(args))
    sessions = reply.get("sessions", {})
    if args.json:
        print(json.dumps({"sessions": sessions}, sort_keys=True))
    else:
        for sid in sorted(sessions):
            print(f"session {sid}: locked")
    return 0


def _back(args: argparse.Namespace) -> int:
    from boothguard.agent.client import request

    reply = request(socket_path(args), "back", **_fields(args))
    ended = reply.get("ended", [])
    if args.json:
        print(json.dumps({"ended": ended}))
    else:
        print("back: " + (", ".join(ended) if ended else "no away state to end"))
    return 0

"""`boothguard session [--config PATH]`: the per-user watcher."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("session", help="run the per-session watcher (clipboard, captures, idle)")
    p.add_argument("--config", type=Path, default=None, help="agent config, to find its socket")
    p.set_defaults(func=_session)


def _session(args: argparse.Namespace) -> int:
    import asyncio

    from boothguard import config, log
    from boothguard.errors import ConfigError
    from boothguard.session.watcher import Watcher, WatcherOptions

    log.setup()
    _log = log.get("watcher")
    try:
        cfg = config.load_agent(args.config, check_permissions=False)
    except ConfigError as exc:
        if args.config is not None:
            raise
        # /etc/boothguard may be unreadable for operators; the policy comes from the agent anyway.
        _log.warning("config_unreadable_using_defaults", problems=[str(p) for p in exc.problems][:5])
        cfg = config.AgentConfig()
    opts = WatcherOptions.from_env(cfg.socket_path)
    return asyncio.run(Watcher(opts).run())

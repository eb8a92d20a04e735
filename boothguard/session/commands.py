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

    from boothguard import log
    from boothguard.session.watcher import Watcher, WatcherOptions

    log.setup()
    opts = WatcherOptions.from_env(agent_socket(args.config, log.get("watcher")))
    return asyncio.run(Watcher(opts).run())


def agent_socket(path: Path | None, logger: Any) -> Path:
    """The agent's socket from its config, honouring --config, drop-ins and BOOTHGUARD_ as the agent does.

    Only `agent.runtime_dir` matters here, read without pydantic (it would stay resident in every
    watcher); what the light reader cannot judge goes through the full validation, which reports it.
    """
    import os

    from boothguard.configfiles import Unsure, agent_socket_path, runtime_dir
    from boothguard.errors import ConfigError

    try:
        try:
            return agent_socket_path(path)
        except Unsure:
            from boothguard import config

            return config.load_agent(path, check_permissions=False).socket_path
    except ConfigError as exc:
        if path is not None:
            raise
        # /etc/boothguard may be unreadable for operators; the policy comes from the agent anyway.
        logger.warning("config_unreadable_using_defaults", problems=[str(p) for p in exc.problems][:5])
        try:
            return runtime_dir({}, os.environ) / "agent.sock"
        except Unsure:
            from boothguard import config

            return config.AgentConfig().socket_path

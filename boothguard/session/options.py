"""Who and where the session watcher runs: its options, from the environment."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from boothguard.session import protocol as p
from boothguard.session.wl_registry import socket_path as wayland_socket_path


def session_id_from_env(env: Mapping[str, str], display: str | None) -> str:
    """XDG_SESSION_ID, else the audit session (logind uses it as the session id), else the display."""
    sid = env.get("XDG_SESSION_ID", "")
    if sid and p.SESSION_ID.match(sid):
        return sid
    try:
        audit = Path("/proc/self/sessionid").read_text().strip()
        if audit and audit != "4294967295":
            return audit
    except OSError:
        pass
    return "display" + "".join(ch if ch.isalnum() else "_" for ch in (display or "none"))


@dataclass
class WatcherOptions:
    socket_path: Path
    display: str | None
    wayland_display: str | None
    session_id: str
    home: Path
    user: str
    extra_env: dict[str, str] = field(default_factory=dict)
    wayland_socket: Path | None = None

    @classmethod
    def from_env(cls, socket_path: Path, env: Mapping[str, str] | None = None) -> WatcherOptions:
        env = os.environ if env is None else env
        pw = pwd.getpwuid(os.getuid())
        display = env.get("DISPLAY") or None
        return cls(
            socket_path=socket_path,
            display=display,
            wayland_display=env.get("WAYLAND_DISPLAY") or None,
            session_id=session_id_from_env(env, display),
            home=Path(env.get("HOME") or pw.pw_dir),
            user=pw.pw_name,
            wayland_socket=wayland_socket_path(env),
        )

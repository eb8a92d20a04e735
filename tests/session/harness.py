"""The real agent and the real watcher as subprocesses, with their output and the spool readable."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.session.conftest import wait_for, x_env

REPO = Path(__file__).resolve().parents[2]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path


class Proc:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, env
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self) -> Proc:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env, cwd=REPO
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def logged(self, event: str) -> bool:
        return any(f'"event": "{event}"' in line or f'"event":"{event}"' in line for line in self.lines)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=5)


class Agent(Proc):
    def __init__(self, tmp: Path, sections: dict[str, dict[str, Any]] | None = None) -> None:
        self.tmp = tmp
        self.state_dir, self.runtime_dir = tmp / "state", tmp / "run"
        base: dict[str, dict[str, Any]] = {
            "agent": {
                "state_dir": str(self.state_dir),
                "runtime_dir": str(self.runtime_dir),
                "heartbeat_seconds": 3600,
                "machine_id_file": str(tmp / "no-machine-id"),
            },
            "usb": {"mode": "off"},
            "clipboard": {"watcher_heartbeat_seconds": 0.5, "watcher_timeout_seconds": 3},
        }
        for section, values in (sections or {}).items():
            base.setdefault(section, {}).update(values)
        self.config = write_config(tmp / "agent.toml", base)
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        super().__init__([sys.executable, "-m", "boothguard", "agent", "--config", str(self.config)], env)

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "agent.sock"

    def start(self) -> Agent:
        super().start()
        if not wait_for(lambda: self.logged("agent_ready"), 30):
            raise RuntimeError(f"agent not ready: {self.lines[-20:]}")
        return self

    def events(self, etype: str | None = None) -> list[dict[str, Any]]:
        db = sqlite3.connect(self.state_dir / "spool.db", timeout=5)
        try:
            rows = db.execute("SELECT body FROM events ORDER BY seq").fetchall()
        finally:
            db.close()
        out = [json.loads(r[0]) for r in rows]
        return [e for e in out if etype is None or e["type"] == etype]

    def wait_event(self, etype: str, pred: Any = None, timeout: float = 15) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [e for e in self.events(etype) if pred is None or pred(e)]
            return bool(found)

        if not wait_for(check, timeout, 0.05):
            raise AssertionError(f"no {etype} event; have {[e['type'] for e in self.events()]}")
        return found[-1]


class WatcherProc(Proc):
    def __init__(self, agent: Agent, display: str | None, session_id: str, home: Path, **env: str) -> None:
        """display None: no DISPLAY at all (a Wayland-only session; pass WAYLAND_DISPLAY in env)."""
        home.mkdir(parents=True, exist_ok=True)
        e = x_env(display or "", XDG_SESSION_ID=session_id, HOME=str(home), **env)
        if display is None:
            e.pop("DISPLAY")
        e.pop("XDG_CONFIG_HOME", None)
        super().__init__([sys.executable, "-m", "boothguard", "session", "--config", str(agent.config)], e)

    def wait_registered(self, count: int = 1, timeout: float = 20) -> None:
        def n() -> int:
            return sum('"agent_registered"' in line for line in self.lines)

        if not wait_for(lambda: n() >= count, timeout):
            raise AssertionError(f"watcher did not register: {self.lines[-20:]}")


def wait_until(pred: Any, timeout: float = 10) -> bool:
    return wait_for(pred, timeout)


__all__ = ["Agent", "WatcherProc", "time", "wait_until"]

"""Run the real agent as a subprocess with its own state/runtime dirs (for end-to-end tests)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from boothguard.agent.client import request


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, int | float):
                lines.append(f"{key} = {value}")
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                lines.append(f"{key} = {json.dumps(value)}")  # a JSON string array is a TOML one
            else:
                lines.append(f'{key} = "{value}"')
        lines.append("")
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path


class AgentProcess:
    """`python -m boothguard agent --config X` with stdout collected by a thread."""

    def __init__(
        self, tmp: Path, sections: dict[str, dict[str, Any]] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.tmp = tmp
        self.state_dir = tmp / "state"
        self.runtime_dir = tmp / "run"
        base: dict[str, dict[str, Any]] = {
            "agent": {
                "state_dir": str(self.state_dir),
                "runtime_dir": str(self.runtime_dir),
                "heartbeat_seconds": 3600,
            },
            "usb": {"mode": "off"},
        }
        for section, values in (sections or {}).items():
            base.setdefault(section, {}).update(values)
        self.config = write_config(tmp / "agent.toml", base)
        self.env = {**os.environ, **(env or {})}
        self.env.pop("NOTIFY_SOCKET", None) if "NOTIFY_SOCKET" not in (env or {}) else None
        self.python = sys.executable  # the interpreter the agent runs on (bench_idle: a runtime-only venv)
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._mark = 0

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "agent.sock"

    def start(self, wait: bool = True) -> AgentProcess:
        self._mark = len(self.lines)  # a restart must wait for its own agent_ready line
        self.proc = subprocess.Popen(
            [self.python, "-m", "boothguard", "agent", "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if wait:
            self.wait_ready()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited {self.proc.returncode}: {self.lines[-20:]}")
            if any('"agent_ready"' in line for line in self.lines[self._mark :]):
                return
            time.sleep(0.02)
        raise TimeoutError(f"agent not ready: {self.lines[-20:]}")

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        return request(self.socket, op, **fields)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def crash_repeatedly(self, times: int, seed: int, pause: tuple[float, float]) -> None:
        """SIGKILL at random moments (reproducible by seed) and start again each time."""
        rng = random.Random(seed)
        for _ in range(times):
            time.sleep(rng.uniform(*pause))
            self.kill()
            self.start()

    def stop(self, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def spool_rows(self) -> list[tuple[int, bytes]]:
        import sqlite3

        db = sqlite3.connect(self.state_dir / "spool.db")
        try:
            return db.execute("SELECT seq, body FROM events ORDER BY seq").fetchall()
        finally:
            db.close()

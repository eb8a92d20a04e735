"""What the lock red-team tests share: a real operator user, the mocked logind on a bus that user may use, a
real Xvfb, the real agent (root) and processes started as the operator with a gate on stdin."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.operator import Operator, open_bus_to_everyone, operator_user, shared_tmp
from tests.helpers.xvfb import xvfb
from tests.session.conftest import wait_for
from tests.session.harness import Agent

try:
    from tests.lock.mocklogind import SESSION_IFACE, MockLogind
except ImportError as exc:  # pragma: no cover - the suite installs python-dbusmock
    pytest.skip(f"python-dbusmock/dbus-python not installed: {exc}", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
MOCK_IFACE = "org.freedesktop.DBus.Mock"


@pytest.fixture
def operator() -> Iterator[Operator]:
    with operator_user() as op:
        yield op


@pytest.fixture
def logind() -> Iterator[MockLogind]:
    if shutil.which("dbus-daemon") is None:  # pragma: no cover
        pytest.skip("dbus-daemon is not installed (tests/apt-packages.txt)")
    mock = MockLogind()
    try:
        open_bus_to_everyone(mock)
        yield mock
    finally:
        mock.close()


@pytest.fixture(scope="module")
def xdisplay() -> Iterator[str]:
    with xvfb() as name:
        yield name


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = shared_tmp("bg-redteam-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def x11_session(mock: MockLogind, sid: str, op: Operator, display: str, **kw: Any) -> None:
    """A graphical session of the operator's whose Display logind knows (what the agent may check)."""
    mock.add_session(sid, op.uid, op.name, **kw)
    mock.session(sid).UpdateProperties(SESSION_IFACE, {"Display": display}, dbus_interface=MOCK_IFACE)


def agent(workdir: Path, mock: MockLogind, **lock: Any) -> Agent:
    settings = {
        "bus_address": mock.address,
        "verify_seconds": 2,
        "refresh_seconds": 1,
        "idle_seconds": 0,
        "fallback_timeout_seconds": 3,
        **lock,
    }
    return Agent(workdir, {"lock": settings})


class AsOperator:
    """A process run as the operator; it may wait for `go()` (a line on stdin) before it acts."""

    def __init__(self, op: Operator, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            op.argv(*argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=op.env(**env),
            cwd=REPO,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def wait_line(self, prefix: str, timeout: float = 30) -> str:
        found: list[str] = []

        def seen() -> bool:
            found[:] = [line for line in self.lines if line.startswith(prefix)]
            return bool(found)

        if not wait_for(seen, timeout):
            raise AssertionError(f"no {prefix!r} line; output: {self.lines[-20:]}")
        return found[0]

    def stop(self, sig: int = 15) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def fake_watcher(op: Operator, a: Agent, sid: str, answers: dict[str, Any]) -> AsOperator:
    import json

    argv = [sys.executable, "-m", "tests.redteam.fake_watcher", str(a.socket), sid, json.dumps(answers)]
    return AsOperator(op, argv, {})


def real_watcher(op: Operator, a: Agent, sid: str, display: str) -> AsOperator:
    """`boothguard session` as the operator, started once go() is called (its pid is known before)."""
    code = "import sys, runpy; sys.stdin.readline(); sys.argv = ['boothguard', 'session']; "
    code += "runpy.run_module('boothguard', run_name='__main__')"
    env = {"DISPLAY": display, "XDG_SESSION_ID": sid, "BOOTHGUARD_AGENT__RUNTIME_DIR": str(a.runtime_dir)}
    return AsOperator(op, [sys.executable, "-c", code], env)

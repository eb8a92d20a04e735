"""Red-team fixtures: real unprivileged users (useradd), the real agent process, a private system bus with
dbusmock's logind, and an attacker process running as one of those users (setpriv) against the agent."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.agent import AgentProcess
from tests.lock.conftest import logind, shared_dir  # noqa: F401 -- fixtures shared with the lock tests
from tests.lock.mocklogind import MockLogind

ATTACKER = (Path(__file__).parent / "attacker.py").read_text()
USERS = ("bgred-op", "bgred-other")


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
        )
        return pwd.getpwnam(name)


@pytest.fixture(scope="session")
def users() -> Iterator[dict[str, pwd.struct_passwd]]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("useradd") is None:
        pytest.skip("needs root, useradd and setpriv to act as a real unprivileged operator")
    made = {name: _ensure_user(name) for name in USERS}
    yield made
    for name in USERS:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := pred():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class Agent(AgentProcess):
    cti_port = 0

    def stop(self, timeout: float = 15) -> int:
        try:
            return super().stop(timeout)
        except subprocess.TimeoutExpired:
            tail = "\n".join(self.lines[-25:])
            raise AssertionError(f"agent did not stop on SIGTERM; its last lines:\n{tail}") from None

    def logged(self, name: str) -> list[dict[str, Any]]:
        """The agent's own log lines named `name` (waiting on these, not on the spool: a test reading
        spool.db while the agent commits can make a commit fail, see the report)."""
        out = []
        for line in list(self.lines):
            if f'"{name}"' in line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def events(self, etype: str | None = None) -> list[dict[str, Any]]:
        """The spool's events: read only after `stop()`."""
        assert self.proc is not None
        assert self.proc.poll() is not None, "read the spool once stopped"
        evs = [json.loads(body) for _seq, body in self.spool_rows()]
        return [e for e in evs if etype is None or e["type"] == etype]

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture
def agent(tmp_path: Path, shared_dir: Path, logind: MockLogind) -> Iterator[Agent]:  # noqa: F811
    runtime = shared_dir / "run"
    port = free_port()
    proc = Agent(
        tmp_path,
        {
            "agent": {"runtime_dir": str(runtime)},
            "lock": {
                "bus_address": logind.address,
                "verify_seconds": 1,
                "refresh_seconds": 1,
                "http_port": port,
                "http_rate_per_second": 5.0,
                "http_rate_burst": 20,
            },
        },
    )
    proc.runtime_dir = runtime
    proc.cti_port = port
    proc.start()
    yield proc
    try:
        proc.stop()
    except subprocess.TimeoutExpired:
        raise AssertionError("agent did not stop: " + "\n".join(proc.lines[-30:])) from None


class Attacker:
    """`python -c attacker.py SOCKET` as a real unprivileged uid; one command per call."""

    def __init__(self, user: pwd.struct_passwd, socket_path: Path) -> None:
        argv = [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            sys.executable,
            "-c",
            ATTACKER,
            str(socket_path),
        ]
        env = {"PATH": "/usr/bin:/bin", "HOME": "/"}
        self.uid = user.pw_uid
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd="/"
        )
        assert json.loads(self._line()) == {"ready": True}

    @property
    def pid(self) -> int:
        return self.proc.pid  # setpriv execs python: the same pid is the socket's peer

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "attacker exited"
        return line

    def do(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self._line())
        return reply

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        return self.do({"call": {"op": op, "id": 1, **fields}})

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def attackers(agent: Agent) -> Iterator[Callable[[pwd.struct_passwd], Attacker]]:
    made: list[Attacker] = []

    def make(user: pwd.struct_passwd) -> Attacker:
        a = Attacker(user, agent.socket)
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()

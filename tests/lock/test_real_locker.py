"""Real lockers on a real Xvfb (cookie-protected, its -auth file root-owned) against dbusmock's logind, run as
a real unprivileged operator, with the real agent as root.

- xss-lock + i3lock: logind's Lock → xss-lock starts i3lock (and, in Debian 12's xss-lock, sets LockedHint
  when it starts the locker) → i3lock grabs keyboard and pointer → the agent's own X check → `screen.locked`
  `verified_by: x11_grab`. Unlock through logind and a killed i3lock are both seen and recorded.
- A locker that dies at once (xss-lock still set LockedHint for a moment) and no locker at all: escalation.
- i3lock alone (what a fallback command starts) sets no LockedHint: the grab proves the lock, and the grab
  going away is the unlock.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boothguard.agent.client import AgentError, request
from tests.helpers.operator import Operator, open_bus_to_everyone, operator_user, shared_tmp
from tests.helpers.xauth import xauth_entry
from tests.helpers.xvfb import start_xvfb
from tests.lock.mocklogind import SESSION_IFACE, MockLogind
from tests.session.harness import Agent, wait_until

MOCK_IFACE = "org.freedesktop.DBus.Mock"

pytestmark = pytest.mark.skipif(
    not (shutil.which("xss-lock") and shutil.which("i3lock") and shutil.which("Xvfb")),
    reason="needs xss-lock, i3lock and xvfb (tests/apt-packages.txt)",
)


@pytest.fixture(scope="module")
def xserver() -> Iterator[tuple[str, bytes]]:
    """Xvfb as root with `-auth` in a root-only directory, as a display manager starts Xorg."""
    authdir = Path(tempfile.mkdtemp(prefix="bg-xauth-"))
    cookie = secrets.token_bytes(16)
    (authdir / "auth").write_bytes(xauth_entry(cookie))
    (authdir / "auth").chmod(0o600)
    proc, display = start_xvfb(["-auth", str(authdir / "auth")])
    try:
        yield display, cookie
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(authdir, ignore_errors=True)


@pytest.fixture
def operator() -> Iterator[Operator]:
    with operator_user() as op:
        yield op


@pytest.fixture
def logind() -> Iterator[MockLogind]:
    mock = MockLogind()
    try:
        open_bus_to_everyone(mock)
        yield mock
    finally:
        mock.close()


@pytest.fixture
def booth(logind: MockLogind) -> Iterator[Agent]:
    work = shared_tmp("bg-locker-")
    a = Agent(
        work,
        {
            "lock": {
                "bus_address": logind.address,
                "verify_seconds": 15,  # a real locker under a loaded CI machine; a proof ends the wait early
                "refresh_seconds": 1,
                "idle_seconds": 0,
                "x11_poll_seconds": 0.3,
                "fallback_commands": [],
            }
        },
    )
    a.start()
    yield a
    a.stop()
    shutil.rmtree(work, ignore_errors=True)


class Session:
    """The operator's X11 session c1: logind knows its Display; the operator has the cookie in their home."""

    def __init__(self, op: Operator, logind: MockLogind, display: str, cookie: bytes) -> None:
        self.op, self.logind, self.display = op, logind, display
        logind.add_session("c1", op.uid, op.name, locker="never")
        logind.session("c1").UpdateProperties(SESSION_IFACE, {"Display": display}, dbus_interface=MOCK_IFACE)
        xauth = op.home / ".Xauthority"
        xauth.write_bytes(xauth_entry(cookie))
        os.chown(xauth, op.uid, op.gid)
        self.env = {"DISPLAY": display, "XAUTHORITY": str(xauth), "DBUS_SYSTEM_BUS_ADDRESS": logind.address}
        self.procs: list[subprocess.Popen[bytes]] = []

    def run(self, *argv: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self.op.argv(*argv),
            env=self.op.env(**self.env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def xss_lock(self, *locker: str) -> subprocess.Popen[bytes]:
        self.logind.clear_calls()
        proc = self.run("xss-lock", "-s", "c1", "--", *locker)
        # ready once it holds its sleep inhibitor (after it subscribed to the session's Lock signal)
        assert wait_until(lambda: self.logind.calls("Inhibit"), 20), "xss-lock did not start"
        return proc

    def i3lock_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-u", str(self.op.uid), "-x", "i3lock"], capture_output=True, text=True, check=False
        )
        return [int(p) for p in out.stdout.split()]

    def close(self) -> None:
        for pid in self.i3lock_pids():
            os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def session(operator: Operator, logind: MockLogind, xserver: tuple[str, bytes]) -> Iterator[Session]:
    s = Session(operator, logind, *xserver)
    yield s
    s.close()


def away(booth: Agent) -> dict[str, Any]:
    return request(booth.socket, "away", timeout=60, session="c1", reason="break")


def test_xss_lock_with_i3lock_is_proven_by_the_agents_own_grab_check(
    session: Session, booth: Agent, logind: MockLogind
) -> None:
    session.xss_lock("i3lock", "-n")
    assert away(booth)["sessions"] == {"c1": True}
    locked = booth.wait_event("screen.locked")["data"]
    assert locked["verified_by"] == "x11_grab"
    assert locked["evidence"]["locked_hint"] is True  # xss-lock set it when it started i3lock
    x11 = locked["evidence"]["x11"]
    assert (x11["grabbed"], x11["keyboard"], x11["pointer"]) == (True, "already_grabbed", "already_grabbed")
    assert session.i3lock_pids()  # i3lock runs as the operator

    # unlock through logind (loginctl unlock-session): xss-lock stops i3lock and clears the hint
    logind.session("c1").Unlock(dbus_interface=SESSION_IFACE)
    unlocked = booth.wait_event("screen.unlocked")["data"]
    assert unlocked["via"] in ("locked_hint", "x11_grab")
    assert booth.wait_event("away.ended")["data"]["source"] == "unlock"

    # locked again, then the operator kills i3lock (from another VT, ssh): the unlock is in the record
    assert away(booth)["sessions"] == {"c1": True}
    assert wait_until(lambda: len(booth.events("screen.locked")) == 2, 15)
    for pid in session.i3lock_pids():
        os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: len(booth.events("screen.unlocked")) == 2, 15)
    assert wait_until(lambda: len(booth.events("away.ended")) == 2, 15)


def test_dying_locker_and_no_locker_escalate(session: Session, booth: Agent) -> None:
    # xss-lock sets LockedHint as it starts the locker, which dies at once: the hint alone proves nothing
    session.xss_lock("sh", "-c", "kill -9 $$")
    with pytest.raises(AgentError, match="lock not verified"):
        away(booth)
    failed = booth.wait_event("screen.lock_failed")["data"]
    assert failed["verified_by"] is None
    assert failed["evidence"]["x11"]["grabbed"] is False
    assert failed["fallback"] == {"ran": False, "why": "none configured"}
    for proc in session.procs:
        proc.terminate()
        proc.wait(timeout=10)

    # nothing answers logind's Lock at all
    with pytest.raises(AgentError, match="lock not verified"):
        away(booth)
    assert wait_until(lambda: len(booth.events("screen.lock_failed")) == 2, 15)
    second = booth.events("screen.lock_failed")[1]["data"]
    assert second["evidence"]["locked_hint"] is False
    assert second["evidence"]["x11"]["grabbed"] is False


def test_i3lock_alone_sets_no_hint_the_grab_proves_and_ends_the_lock(session: Session, booth: Agent) -> None:
    session.run("i3lock", "-n")  # as a fallback command would start it; nobody tells logind
    assert wait_until(session.i3lock_pids, 15)
    assert away(booth)["sessions"] == {"c1": True}
    locked = booth.wait_event("screen.locked")["data"]
    assert locked["verified_by"] == "x11_grab"
    assert locked["evidence"]["locked_hint"] is False
    for pid in session.i3lock_pids():
        os.kill(pid, signal.SIGKILL)
    assert booth.wait_event("screen.unlocked")["data"]["via"] == "x11_grab"
    assert booth.wait_event("away.ended")["data"]["source"] == "unlock"

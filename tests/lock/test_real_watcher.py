"""The real agent and the real session watcher (under Xvfb) against dbusmock's logind: the in-session fallback
is a real command the watcher runs, and a killed watcher locks the session and escalates."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lock.mocklogind import SESSION_IFACE, MockLogind
from tests.session.conftest import xdisplay  # noqa: F401 -- fixture
from tests.session.harness import Agent, WatcherProc, wait_until


def in_session_locker(address: str, sid: str) -> list[str]:
    """A screen locker run by the watcher: it sets the session's LockedHint, as a desktop locker does."""
    path = f"/org/freedesktop/login1/session/{sid}"
    code = "\n".join(
        [
            "import dbus",
            f"s = dbus.bus.BusConnection({address!r}).get_object('org.freedesktop.login1', {path!r})",
            f"s.UpdateProperties({SESSION_IFACE!r}, {{'LockedHint': dbus.Boolean(True)}},",
            "                   dbus_interface='org.freedesktop.DBus.Mock')",
        ]
    )
    return [sys.executable, "-c", code]


@pytest.fixture
def agent(tmp_path: Path, logind: MockLogind) -> Any:
    a = Agent(
        tmp_path,
        {
            "lock": {
                "bus_address": logind.address,
                "verify_seconds": 1,
                "refresh_seconds": 1,
                "idle_seconds": 0,
                "terminate_on_failure": True,
                "fallback_commands": [["/nonexistent/locker"], in_session_locker(logind.address, "c1")],
                "fallback_timeout_seconds": 20,
            }
        },
    )
    yield a
    a.stop()


def test_fallback_by_real_watcher_then_killed_watcher_escalates(
    logind: MockLogind,
    agent: Agent,
    xdisplay: str,  # noqa: F811 -- fixture
    tmp_path: Path,
) -> None:
    logind.add_session("c1", locker="never")
    agent.start()
    watcher = WatcherProc(agent, xdisplay, "c1", tmp_path / "home").start()
    try:
        watcher.wait_registered()
        from boothguard.agent.client import request

        reply = request(agent.socket, "away", timeout=60, session="c1", reason="meeting")
        assert reply["sessions"] == {"c1": True}
        locked = agent.wait_event("screen.locked")
        assert locked["data"]["method"].startswith("fallback:")
        assert "UpdateProperties" in locked["data"]["method"]
        assert locked["data"]["verified_by"] == "locked_hint"
        assert locked["data"]["fallback"]["ok"] is True
        assert logind.locked("c1")

        # the operator comes back; then the watcher is killed: the session is locked again, and with a
        # locker that never confirms and no watcher left to help, the failure escalates to TerminateSession
        logind.set_locked("c1", False)
        agent.wait_event("away.ended")
        watcher.stop(signal.SIGKILL)
        agent.wait_event("session.watcher_missing")
        started = agent.wait_event("away.started", lambda e: e["data"]["source"] == "watcher_missing")
        assert started["data"]["session"] == "c1"
        failed = agent.wait_event("screen.lock_failed", lambda e: e["data"]["method"] == "logind")
        assert failed["severity"] == "high"
        assert failed["data"]["fallback"]["ran"] is False
        agent.wait_event("screen.lock_failed", lambda e: e["data"]["method"] == "terminate")
        assert wait_until(lambda: logind.calls("TerminateSession") == [["c1"]])
    finally:
        watcher.stop()

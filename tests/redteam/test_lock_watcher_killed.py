"""The operator kills their watcher (kill -9) while the session is away and locked, then unlocks: with nobody
watching, the real agent answers every unlock (LockedHint false, or logind's Unlock signal) with a new lock
(source `watcher_missing`), until a watcher is back for the session; each step is in the record."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from boothguard.agent.client import request
from tests.helpers.operator import Operator
from tests.lock.mocklogind import SESSION_IFACE, MockLogind
from tests.redteam.lockkit import (  # noqa: F401 -- fixtures
    AsOperator,
    agent,
    logind,
    operator,
    real_watcher,
    workdir,
    xdisplay,
)
from tests.session.harness import Agent, wait_until


@pytest.fixture
def booth(workdir: Path, logind: MockLogind) -> Iterator[Agent]:  # noqa: F811 -- fixtures
    a = agent(workdir, logind)
    a.start()
    yield a
    a.stop()


def start_watcher(op: Operator, a: Agent, logind: MockLogind, display: str, n: int) -> AsOperator:  # noqa: F811
    w = real_watcher(op, a, "c1", display)
    logind.set_pids("c1", (w.pid,))
    w.go()
    assert wait_until(lambda: len(a.events("session.started")) >= n, 60), (w.lines[-20:], a.lines[-20:])
    started = a.events("session.started")[n - 1]
    assert (started["user"], started["data"]["watcher_pid"]) == (op.name, w.pid)  # the operator's own process
    return w


def test_killed_watcher_then_unlock_is_locked_again(
    operator: Operator,  # noqa: F811
    logind: MockLogind,  # noqa: F811
    xdisplay: str,  # noqa: F811
    booth: Agent,
) -> None:
    logind.add_session("c1", operator.uid, operator.name)  # its locker sets LockedHint (mocklogind "good")
    watcher = start_watcher(operator, booth, logind, xdisplay, 1)
    try:
        assert request(booth.socket, "away", timeout=60, session="c1", reason="break")["sessions"] == {
            "c1": True
        }
        assert booth.wait_event("screen.locked")["data"]["verified_by"] == "locked_hint"

        watcher.stop(signal.SIGKILL)  # the operator, from another terminal
        booth.wait_event("session.watcher_missing")

        # the operator unlocks: the locker clears the hint
        logind.set_locked("c1", False)
        relocked = booth.wait_event("screen.locked", lambda e: e["data"]["source"] == "watcher_missing")
        assert relocked["data"]["verified_by"] == "locked_hint"
        unlocked = booth.wait_event("screen.unlocked")
        assert unlocked["data"]["watcher_missing"] is True
        assert unlocked["severity"] == "medium"
        assert logind.wait_locked("c1")
        assert logind.calls("LockSession") == [["c1"], ["c1"]]
        assert not booth.events("away.ended")  # the away state holds

        # an unlock request through logind (loginctl unlock-session) is answered the same way
        logind.session("c1").Unlock(dbus_interface=SESSION_IFACE)
        assert wait_until(lambda: len(logind.calls("LockSession")) == 3, 15)
        via = [e["data"]["via"] for e in booth.events("screen.unlocked")]
        assert via == ["locked_hint", "unlock_signal"]
        assert wait_until(lambda: len(booth.events("screen.locked")) == 3, 15)

        # a watcher is back for the session: from now on an unlock ends the away state as usual
        watcher = start_watcher(operator, booth, logind, xdisplay, 2)
        assert wait_until(lambda: request(booth.socket, "status")["lock"]["watcher_missing"] == [], 15)
        logind.set_locked("c1", False)
        ended = booth.wait_event("away.ended")
        assert ended["data"]["source"] == "unlock"
        assert len(logind.calls("LockSession")) == 3
    finally:
        watcher.stop()

"""The operator forges a lock proof; the real agent (root) must not take it.

1. A watcher (the operator's own process, bound to the operator's session) answers `screensaver_state
   {"active": true}` and claims its fallback locker ran, while LockedHint stays false and nothing holds the X
   grab: the claim is recorded as evidence, the lock is `unverified` and escalates (TerminateSession).
2. The operator sets their session's LockedHint themselves (`SetLockedHint`, which logind allows a session's
   owner) with no locker running: on an X11 session whose server the agent can check, the hint without the
   grab is no proof either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boothguard.agent.client import AgentError, request
from tests.helpers.operator import Operator
from tests.lock.mocklogind import SESSION_IFACE, MockLogind
from tests.redteam.lockkit import (  # noqa: F401 -- fixtures
    AsOperator,
    agent,
    fake_watcher,
    logind,
    operator,
    workdir,
    x11_session,
    xdisplay,
)
from tests.session.harness import Agent, wait_until


@pytest.fixture
def booth(workdir: Path, logind: MockLogind) -> Iterator[Agent]:  # noqa: F811 -- fixtures
    a = agent(workdir, logind, terminate_on_failure=True)
    a.start()
    yield a
    a.stop()


def start_fake(op: Operator, a: Agent, logind: MockLogind, answers: dict[str, Any]) -> AsOperator:  # noqa: F811
    w = fake_watcher(op, a, "c1", answers)
    logind.set_pids("c1", (w.pid,))  # the fake runs in the operator's session, as it would at a booth
    w.go()
    w.wait_line("registered")
    return w


def test_watcher_screensaver_claim_is_not_a_lock(
    operator: Operator,  # noqa: F811
    logind: MockLogind,  # noqa: F811
    xdisplay: str,  # noqa: F811
    booth: Agent,
) -> None:
    x11_session(logind, "c1", operator, xdisplay, locker="never")
    answers = {"screensaver_state": {"active": True}, "lock_fallback": {"ok": True, "method": "xlock"}}
    w = start_fake(operator, booth, logind, answers)
    try:
        with pytest.raises(AgentError, match="lock not verified"):
            request(booth.socket, "away", timeout=60, session="c1", reason="lunch")
        failed = booth.wait_event("screen.lock_failed", lambda e: e["data"].get("method") == "logind")
        data = failed["data"]
        assert data["result"] == "unverified"
        assert data["verified_by"] is None
        assert data["evidence"]["watcher_screensaver"] is True  # what the watcher said is in the record
        assert data["evidence"]["locked_hint"] is False
        assert data["evidence"]["x11"]["grabbed"] is False  # the agent looked for itself
        assert data["fallback"] == {"ran": True, "ok": True, "method": "xlock"}
        assert failed["severity"] == "high"
        assert not booth.events("screen.locked")
        booth.wait_event("screen.lock_failed", lambda e: e["data"].get("method") == "terminate")
        assert logind.calls("TerminateSession") == [["c1"]]
        assert "push screensaver_state" in w.lines
    finally:
        w.stop()


def test_locked_hint_set_by_the_operator_is_not_a_lock(
    operator: Operator,  # noqa: F811
    logind: MockLogind,  # noqa: F811
    xdisplay: str,  # noqa: F811
    booth: Agent,
) -> None:
    x11_session(logind, "c1", operator, xdisplay, locker="never")
    hint = [
        "dbus-send",
        "--system",
        "--print-reply",
        "--dest=org.freedesktop.login1",
        "/org/freedesktop/login1/session/c1",
        f"{SESSION_IFACE}.SetLockedHint",
        "boolean:true",
    ]
    set_hint = AsOperator(operator, hint, {"DBUS_SYSTEM_BUS_ADDRESS": logind.address})
    assert set_hint.proc.wait(timeout=30) == 0, set_hint.lines
    assert logind.locked("c1")  # the operator could: logind lets a session's owner set its hint
    with pytest.raises(AgentError, match="lock not verified"):
        request(booth.socket, "away", timeout=60, session="c1", reason="lunch")
    failed = booth.wait_event("screen.lock_failed", lambda e: e["data"].get("method") == "logind")
    assert failed["data"]["verified_by"] is None
    assert failed["data"]["evidence"]["locked_hint"] is True
    assert failed["data"]["evidence"]["x11"]["grabbed"] is False
    assert not booth.events("screen.locked")
    booth.wait_event("screen.lock_failed", lambda e: e["data"].get("method") == "terminate")

    # after the failure, the hint turning true again (a "late" lock) is held to the same rules
    for value in ("false", "true"):
        argv = [*hint[:-1], f"boolean:{value}"]
        assert (
            AsOperator(operator, argv, {"DBUS_SYSTEM_BUS_ADDRESS": logind.address}).proc.wait(timeout=30) == 0
        )
    assert wait_until(lambda: booth.logged("late_lock_not_proven"), 15), booth.lines[-10:]
    assert not booth.events("screen.locked")
    assert [a["phase"] for a in request(booth.socket, "status")["lock"]["away"]] == ["lock_failed"]

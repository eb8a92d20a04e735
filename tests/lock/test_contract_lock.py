"""Contract: the lock events the real agent (`python -m boothguard agent`) produces against dbusmock's
logind — a verified lock, a locker that never confirms, and the escalation to TerminateSession — run
through the collector's shipped alert rules and templates."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from boothguard.agent.client import AgentError
from tests.contract.alerts_check import check
from tests.helpers.agent import AgentProcess
from tests.lock.mocklogind import MockLogind


def _events(agent: AgentProcess) -> list[dict[str, Any]]:
    return [json.loads(body) for _seq, body in agent.spool_rows()]


def _wait(agent: AgentProcess, pred: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(pred(e) for e in _events(agent)):
            return
        time.sleep(0.05)
    raise AssertionError(f"event not seen; have {[e['type'] for e in _events(agent)]}")


def test_real_lock_events_fill_every_field_of_the_shipped_rules(tmp_path: Path, logind: MockLogind) -> None:
    logind.add_session("c1", 1000, "alice")
    logind.add_session("c2", 1001, "bob", locker="never")
    agent = AgentProcess(
        tmp_path,
        {
            "agent": {"host_name": "booth-3"},
            "lock": {
                "bus_address": logind.address,
                "verify_seconds": 1,
                "refresh_seconds": 1,
                "terminate_on_failure": True,
            },
        },
    ).start()
    try:
        deadline = time.monotonic() + 20
        while len(agent.request("status")["lock"]["sessions"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert agent.request("away", session="c1", reason="lunch")["sessions"] == {"c1": True}
        with pytest.raises(AgentError, match="not verified"):
            agent.request("away", session="c2", reason="break")
        _wait(agent, lambda e: e["type"] == "screen.lock_failed" and e["data"]["method"] == "terminate")
    finally:
        agent.stop()

    events = _events(agent)
    assert {"screen.locked", "screen.lock_failed", "away.started"} <= {e["type"] for e in events}
    report = check(events)
    assert report.unresolved == []
    assert report.unresolved_other == []
    assert set(report.titles["lock-failed"]) == {"Screen lock failed on booth-3 for bob"}
    assert len(report.titles["lock-failed"]) == 2  # not verified, then the TerminateSession escalation

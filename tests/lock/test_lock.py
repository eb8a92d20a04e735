"""Away → verified lock against dbusmock's logind on a private system bus, through the real control
socket and the real sessions plugin."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tests.lock.conftest import Harness, WatcherClient
from tests.lock.mocklogind import MockLogind


async def wait_for(pred: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


async def test_away_locks_and_verifies_through_logind(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1")
    h: Harness = await make_harness()
    reply = await h.request("away", session="c1", reason="toilet")
    assert reply["ok"] is True, reply
    assert reply["sessions"] == {"c1": True}
    assert logind.calls("LockSession") == [["c1"]]
    started = h.of_type("away.started")
    assert [(e.data["session"], e.data["source"], e.data["reason"]) for e in started] == [
        ("c1", "cli", "toilet")
    ]
    locked = h.of_type("screen.locked")
    assert len(locked) == 1
    data = locked[0].data
    assert data["method"] == "logind"
    assert data["verified_by"] == "locked_hint"
    assert data["result"] == "verified"
    assert data["timings"]["signal_to_request_ms"] >= 0
    assert data["timings"]["request_to_verified_ms"] >= 0
    assert locked[0].user == "alice"
    # away.started is committed before the lock result
    types = [e.type for e in h.emitter.events]
    assert types.index("away.started") < types.index("screen.locked")
    status = h.lock.status()
    assert status["logind"] == "connected"
    assert [(a["session"], a["phase"]) for a in status["away"]] == [("c1", "locked")]


async def test_unlock_while_away_ends_away(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1")
    h: Harness = await make_harness()
    assert (await h.request("away", session="c1"))["ok"]
    logind.set_locked("c1", False)
    ended = await h.wait_event("away.ended")
    assert ended.data["source"] == "unlock"
    assert ended.data["away_source"] == "cli"
    assert h.of_type("screen.unlocked")[0].data["session"] == "c1"
    assert h.lock.status()["away"] == []


async def test_relock_while_away_then_back(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1")
    h: Harness = await make_harness(relock_after_seconds=0.3)
    assert (await h.request("away", session="c1"))["ok"]
    logind.set_locked("c1", False)
    await h.wait_event("screen.unlocked")
    assert h.of_type("away.ended") == []
    # the away state holds: locked again after the grace time
    await h.wait_event("screen.locked", lambda e: e.data["reason"] == "relock while away")
    assert logind.calls("LockSession") == [["c1"], ["c1"]]
    reply = await h.request("back", session="c1")
    assert reply["ended"] == ["c1"]
    ended = await h.wait_event("away.ended")
    assert ended.data["source"] == "cli"
    # the screen stays locked: back never unlocks
    assert logind.locked("c1")


async def test_locker_that_never_sets_lockedhint_escalates(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1", locker="never")
    h: Harness = await make_harness(terminate_on_failure=True)
    reply = await h.request("away", session="c1")
    assert reply["ok"] is False
    assert reply["code"] == 1
    failed = [e for e in h.of_type("screen.lock_failed") if e.data["method"] == "logind"]
    assert len(failed) == 1
    assert failed[0].severity == "high"
    assert failed[0].data["result"] == "unverified"
    assert failed[0].data["fallback"] == {"ran": False, "why": "watcher did not answer"}
    assert failed[0].data["timings"]["request_to_verified_ms"] is None
    await h.wait_event("screen.lock_failed", lambda e: e.data["method"] == "terminate")
    assert logind.calls("TerminateSession") == [["c1"]]
    assert h.lock.status()["away"][0]["phase"] == "lock_failed"


async def test_fallback_in_session_locks_and_verifies(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1", locker="never")
    h: Harness = await make_harness(terminate_on_failure=True)

    def watcher(push: dict[str, Any]) -> dict[str, Any] | None:
        if push["push"] == "screensaver_state":
            return {"active": False}
        if push["push"] == "lock_fallback":
            assert push["commands"][0] == ["xdg-screensaver", "lock"]
            logind.set_locked("c1", True)  # the in-session locker did its job
            return {"ok": True, "method": "xdg-screensaver"}
        return None

    w = await WatcherClient(h.socket, "c1", watcher).start()
    try:
        reply = await h.request("away", session="c1")
        assert reply["ok"] is True, reply
        locked = h.of_type("screen.locked")[0]
        assert locked.data["method"] == "fallback:xdg-screensaver"
        assert locked.data["verified_by"] == "locked_hint"
        assert locked.data["fallback"] == {"ran": True, "ok": True, "method": "xdg-screensaver"}
        assert [p["push"] for p in w.pushes if p["push"] != "config"] == [
            "screensaver_state",
            "lock_fallback",
        ]
        assert logind.calls("TerminateSession") == []
    finally:
        await w.close()


async def test_screensaver_claim_of_the_watcher_is_no_proof(logind: MockLogind, make_harness: Any) -> None:
    # The watcher runs as the operator: its "the screensaver is active" is recorded, and the lock escalates.
    logind.add_session("c1", locker="never")
    h: Harness = await make_harness(fallback_timeout_seconds=0.5)
    w = await WatcherClient(
        h.socket, "c1", lambda p: {"active": True} if p["push"] == "screensaver_state" else None
    ).start()
    try:
        assert (await h.request("away", session="c1"))["ok"] is False
        assert h.of_type("screen.locked") == []
        failed = h.of_type("screen.lock_failed")[0]
        assert failed.data["result"] == "unverified"
        assert failed.data["verified_by"] is None
        assert failed.data["evidence"] == {"locked_hint": False, "watcher_screensaver": True}
        assert failed.data["fallback"] == {"ran": False, "why": "watcher did not answer"}
    finally:
        await w.close()


async def test_fallback_that_does_not_lock_escalates(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1", locker="never")
    h: Harness = await make_harness()

    def watcher(push: dict[str, Any]) -> dict[str, Any] | None:
        if push["push"] == "lock_fallback":
            return {"ok": False, "method": "none"}
        return {"active": False} if push["push"] == "screensaver_state" else None

    w = await WatcherClient(h.socket, "c1", watcher).start()
    try:
        assert (await h.request("away", session="c1"))["ok"] is False
        failed = h.of_type("screen.lock_failed")[0]
        assert failed.data["fallback"] == {"ran": True, "ok": False, "method": "none"}
        assert logind.calls("TerminateSession") == []  # not configured
    finally:
        await w.close()


async def test_logind_absent_then_back(logind: MockLogind, make_harness: Any) -> None:
    logind.stop_logind()
    h: Harness = await make_harness()
    assert h.lock.status()["logind"] == "unavailable"
    reply = await h.request("away")  # root, no session known
    assert reply["ok"] is False
    failed = h.of_type("screen.lock_failed")[0]
    assert failed.data["result"] == "no_session"
    assert failed.data["error"] == "logind not reachable"
    assert (await h.request("status_probe_does_not_exist"))["code"] == 2  # the socket still answers
    # logind comes (back): the agent reconnects on its own and locks
    logind.start_logind()
    logind.add_session("c1")
    await wait_for(lambda: h.lock.status()["logind"] == "connected", timeout=10)
    assert (await h.request("away", session="c1"))["ok"]
    # logind goes away while connected: noticed, and reconnected when it returns
    logind.stop_logind()
    await wait_for(lambda: h.lock.status()["logind"] == "unavailable", timeout=5)
    logind.start_logind()
    await wait_for(lambda: h.lock.status()["logind"] == "connected", timeout=10)


async def test_two_graphical_sessions_and_a_tty(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1")
    logind.add_session("c2", 1001, "bob")
    logind.add_session("c3", 1002, "carol", type="tty")
    h: Harness = await make_harness()
    ok = await h.lock.handle_command({"id": "cmd-1", "type": "lock", "reason": "incident 42"})
    assert ok is True
    assert sorted(a[0] for a in logind.calls("LockSession")) == ["c1", "c2"]
    started = h.of_type("away.started")
    assert sorted(e.data["session"] for e in started) == ["c1", "c2"]
    assert {e.data["source"] for e in started} == {"collector"}
    assert {e.data["reason"] for e in started} == {"incident 42"}
    assert not logind.locked("c3")
    assert await h.lock.handle_command({"id": "x", "type": "reboot"}) is None
    # one of them unlocks: only that one is present again
    logind.set_locked("c2", False)
    await h.wait_event("away.ended")
    assert [a["session"] for a in h.lock.status()["away"]] == ["c1"]


async def test_callers_own_session_by_pid(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1")
    logind.add_session("c2", 0, "root", pids=(os.getpid(),))
    h: Harness = await make_harness()
    reply = await h.request("away")  # no --session: this process's session
    assert reply["sessions"] == {"c2": True}
    assert logind.calls("LockSession") == [["c2"]]


async def test_state_survives_restart(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1")
    logind.add_session("c2", 1001, "bob")
    h: Harness = await make_harness()
    assert (await h.request("away", reason="lunch"))["ok"]
    await h.lock.stop()
    # while the agent is down, c2 gets unlocked by someone; c1 stays locked
    logind.set_locked("c2", False)
    logind.clear_calls()
    await h.restart_lock()
    relocked = await h.wait_event("screen.locked", lambda e: e.data.get("resumed") is True)
    assert relocked.data["session"] == "c2"
    assert relocked.data["source"] == "cli"
    assert relocked.data["reason"] == "lunch"
    assert logind.calls("LockSession") == [["c2"]]
    away = {a["session"]: a["phase"] for a in h.lock.status()["away"]}
    assert away == {"c1": "locked", "c2": "locked"}
    assert len(h.of_type("away.started")) == 2  # not announced again


async def test_idle_from_watcher_locks(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1")
    h: Harness = await make_harness(idle_seconds=300)
    w = await WatcherClient(h.socket, "c1", lambda p: None).start()
    try:
        await wait_for(lambda: h.lock._listening)
        await w.heartbeat(12)
        await asyncio.sleep(0.2)
        assert h.of_type("away.started") == []
        await w.heartbeat(301)
        started = await h.wait_event("away.started")
        assert started.data["source"] == "idle"
        await h.wait_event("screen.locked")
        # unlocking and a stale idle report right after it do not lock again at once
        logind.set_locked("c1", False)
        await h.wait_event("away.ended")
        await w.heartbeat(302)
        await asyncio.sleep(0.3)
        assert len(h.of_type("away.started")) == 1
    finally:
        await w.close()


async def test_watcher_missing_locks_active_graphical_session(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1")
    h: Harness = await make_harness()
    w = await WatcherClient(h.socket, "c1", lambda p: None).start()
    await wait_for(lambda: h.lock._listening)
    await w.close()  # killed watcher: the connection drops without a goodbye
    await h.wait_event("session.watcher_missing")
    started = await h.wait_event("away.started")
    assert started.data["source"] == "watcher_missing"
    await h.wait_event("screen.locked")
    assert logind.locked("c1")


async def test_back_and_away_as_other_user_via_control_ops(logind: MockLogind, make_harness: Any) -> None:
    # the permission rules themselves, exercised in-process; the CLI-as-nobody test is in test_cli.py
    logind.add_session("c1")
    h: Harness = await make_harness()
    reply = await h.request("away", session="bad id!")
    assert reply["code"] == 2
    reply = await h.request("away", session="c404")
    assert reply["ok"] is False


async def test_reload_reaches_the_verifier(logind: MockLogind, make_harness: Any) -> None:
    """SIGHUP's new lock settings apply to the next attempt's proof and fallbacks, not only the controller."""
    logind.add_session("c1", locker="never")
    h: Harness = await make_harness()
    assert (await h.request("away", session="c1"))["ok"] is False
    assert h.of_type("screen.lock_failed")[0].data["fallback"] == {
        "ran": False,
        "why": "watcher did not answer",
    }
    assert (await h.request("back", session="c1"))["ended"] == ["c1"]
    lock = {**h.config.lock.model_dump(), "fallback_commands": []}
    h.lock.reload(h.config.model_copy(update={"lock": type(h.config.lock)(**lock)}))
    assert (await h.request("away", session="c1"))["ok"] is False
    assert h.of_type("screen.lock_failed")[1].data["fallback"] == {"ran": False, "why": "none configured"}


async def test_missing_watcher_is_remembered_across_an_agent_restart(
    logind: MockLogind, make_harness: Any
) -> None:
    logind.add_session("c1")
    h: Harness = await make_harness()
    w = await WatcherClient(h.socket, "c1", lambda p: None).start()
    assert (await h.request("away", session="c1"))["ok"] is True
    await w.close()  # killed
    await h.wait_event("session.watcher_missing")
    await wait_for(lambda: h.lock.status()["watcher_missing"] == ["c1"])
    await h.restart_lock()
    assert h.lock.status()["watcher_missing"] == ["c1"]
    logind.set_locked("c1", False)  # unlocked after the restart, still nobody watching
    relocked = await h.wait_event("screen.locked", lambda e: e.data["source"] == "watcher_missing")
    assert relocked.data["verified_by"] == "locked_hint"
    assert [e.data["via"] for e in h.of_type("screen.unlocked")] == ["locked_hint"]
    assert h.of_type("away.ended") == []


async def test_late_locked_hint_is_a_late_lock(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1", locker="never")
    h: Harness = await make_harness(fallback_commands=[])
    assert (await h.request("away", session="c1"))["ok"] is False
    logind.set_locked("c1", True)  # the locker was slow
    late = await h.wait_event("screen.locked")
    assert (late.data["method"], late.data["verified_by"]) == ("late", "locked_hint")
    assert late.data["evidence"] == {"locked_hint": True}
    assert h.lock.status()["away"][0]["phase"] == "locked"

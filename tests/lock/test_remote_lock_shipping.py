"""A remote `lock` from the collector runs as its own task: while its proof waits (the locker never sets
LockedHint, verify_seconds 60), the real agent keeps shipping to a real HTTP receiver; the command is
acknowledged only once the proof is over."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.agent import AgentProcess
from tests.helpers.receiver import Receiver
from tests.lock.mocklogind import MockLogind


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def wait_until(pred: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_events_keep_shipping_during_a_long_remote_lock_proof(
    tmp_path: Path, logind: MockLogind, receiver: Receiver
) -> None:
    logind.add_session("c1", 1000, "alice", locker="never")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "host.token").write_text(receiver.token)
    agent = AgentProcess(
        tmp_path,
        {
            "ship": {"collector_url": receiver.url, "batch_max_wait": 0.05},
            "lock": {"bus_address": logind.address, "verify_seconds": 60, "refresh_seconds": 1},
        },
    ).start()
    try:
        wait_until(lambda: len(agent.request("status")["lock"]["sessions"]) == 1)
        receiver.commands = [{"id": "cmd-lock-1", "type": "lock", "reason": "remote lock by security"}]
        agent.request("emit", type="custom.trigger", data={})
        wait_until(lambda: logind.calls("LockSession") == [["c1"]])  # the proof has begun

        seqs = [agent.request("emit", type="custom.during", data={"i": i})["seq"] for i in range(3)]
        wait_until(lambda: set(seqs) <= set(receiver.stored))
        types = [e.type for e in receiver.events()]
        assert "screen.lock_failed" not in types, "the proof was over already: the test proves nothing"
        assert "agent.command_ack" not in types
        assert agent.request("status")["ship"]["consecutive_failures"] == 0
    finally:
        agent.stop()
    assert receiver.chain_problems() == []

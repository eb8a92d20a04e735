"""The real agent daemon as a subprocess: control socket, heartbeats, reload, systemd notify, crashes."""

import json
import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from boothguard.agent.client import request
from boothguard.cli import main as cli_main
from boothguard.errors import AgentUnreachable
from boothguard.events import Event
from tests.helpers.agent import AgentProcess
from tests.helpers.asuser import run_as
from tests.helpers.load import Emitter
from tests.helpers.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def spooled(agent: AgentProcess) -> list[Event]:
    return [Event.model_validate_json(body) for _, body in agent.spool_rows()]


def wait_for(cond: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_emit_status_and_lifecycle_events(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path).start()
    try:
        reply = agent.request("emit", type="custom.cti.call_end", severity="low", data={"call": "x1"})
        assert reply["seq"] == 2
        status = agent.request("status")
        assert status["spool"]["last_seq"] == 2
        assert status["agent"]["usb_mode"] == "off"
        bad = cli_main(["emit", "agent.started", "--config", str(agent.config)])
        assert bad == 2
        assert cli_main(["emit", "custom.ok", "--data", '{"a": 1}', "--config", str(agent.config)]) == 0
    finally:
        assert agent.stop() == 0
    types = [e.type for e in spooled(agent)]
    assert types == ["agent.started", "custom.cti.call_end", "custom.ok", "agent.stopping"]
    stopping = spooled(agent)[-1]
    assert stopping.data["reason"] == "sigterm"
    assert spooled(agent)[1].user == "root" if os.geteuid() == 0 else True


def test_status_cli_when_agent_is_down_exits_69(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path)
    assert cli_main(["status", "--config", str(agent.config)]) == 69
    with pytest.raises(AgentUnreachable):
        request(agent.socket, "status")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_any_user_may_query_status_but_only_root_or_the_group_may_emit() -> None:
    # pytest's tmp_path lives under a 0700 directory; the other user must reach config and socket.
    tmp_path = Path(tempfile.mkdtemp(prefix="bg-agent-"))
    tmp_path.chmod(0o755)
    agent = AgentProcess(tmp_path).start()
    try:
        os.chmod(agent.config, 0o644)
        status_code = run_as(
            65534, 65534, lambda: cli_main(["status", "--json", "--config", str(agent.config)])
        )
        assert status_code == 0
        emit_code = run_as(
            65534, 65534, lambda: cli_main(["emit", "custom.x", "--config", str(agent.config)])
        )
        assert emit_code == 77
    finally:
        agent.stop()
    assert "custom.x" not in [e.type for e in spooled(agent)]


def test_heartbeat_carries_the_pipeline_state(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path, {"agent": {"heartbeat_seconds": 0.2}}).start()
    try:
        wait_for(lambda: any(e.type == "agent.heartbeat" for e in spooled(agent)))
    finally:
        agent.stop()
    beat = next(e for e in spooled(agent) if e.type == "agent.heartbeat")
    for key in ("last_seq", "spool_depth", "oldest_unsent_age_s", "dropped", "boot_id", "interval_seconds"):
        assert key in beat.data
    assert beat.data["last_seq"] >= 1


def test_sighup_refuses_an_invalid_config_and_applies_a_valid_one(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path).start()
    try:
        good = agent.config.read_text()
        agent.config.write_text(good + "\n[ship]\nbatch_max_evnets = 5\n")
        agent.signal(signal.SIGHUP)
        wait_for(lambda: any(e.type == "agent.config_rejected" for e in spooled(agent)))
        assert agent.request("status")["agent"]["usb_mode"] == "off"
        agent.config.write_text(good.replace('mode = "off"', 'mode = "audit"'))
        agent.signal(signal.SIGHUP)
        wait_for(lambda: agent.request("status")["agent"]["usb_mode"] == "audit")
    finally:
        assert agent.stop() == 0
    rejected = next(e for e in spooled(agent) if e.type == "agent.config_rejected")
    assert any("ship.batch_max_evnets: unknown key" in p for p in rejected.data["problems"])


def test_invalid_config_at_start_exits_78(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path)
    agent.config.write_text(agent.config.read_text() + "\n[ship]\nbatch_max_events = -1\n")
    agent.start(wait=False)
    assert agent.proc is not None
    assert agent.proc.wait(timeout=20) == 78


def test_sd_notify_ready_watchdog_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    agent = AgentProcess(tmp_path, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
    agent.start(wait=False)
    got: list[str] = []
    try:
        while "WATCHDOG=1" not in got:
            got.append(sock.recv(4096).decode())
        assert got[0] == "READY=1"
    finally:
        agent.stop()
    while "STOPPING=1" not in got:
        got.append(sock.recv(4096).decode())
    sock.close()


def test_collector_commands_are_acknowledged(tmp_path: Path, receiver: Receiver) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "host.token").write_text(receiver.token)
    receiver.commands = [{"id": "cmd-1", "type": "frobnicate"}]
    agent = AgentProcess(tmp_path, {"ship": {"collector_url": receiver.url}}).start()
    try:
        wait_for(lambda: any(e.type == "agent.command_ack" for e in receiver.events()))
    finally:
        agent.stop()
    ack = next(e for e in receiver.events() if e.type == "agent.command_ack")
    assert ack.data == {"command_id": "cmd-1", "type": "frobnicate", "status": "unknown"}


def test_conservation_under_repeated_kill_9(tmp_path: Path, receiver: Receiver) -> None:
    """Emit thousands of events while the agent is SIGKILLed at random moments: every seq arrives once
    the agent is back, the chain verifies, duplicates only from batches in flight."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "host.token").write_text(receiver.token)
    sections = {"ship": {"collector_url": receiver.url, "batch_max_wait": 0.05}}
    agent = AgentProcess(tmp_path, sections).start()
    emitter = Emitter(agent.socket).start()
    try:
        agent.crash_repeatedly(4, seed=7, pause=(0.3, 1.2))
        time.sleep(0.5)
        emitter.stop()
        assert len(emitter.confirmed) > 300
        wait_for(lambda: agent.request("status")["spool"]["depth"] == 0, timeout=60)
    finally:
        emitter.stop()
        agent.stop()
    last = max(receiver.stored)
    assert sorted(receiver.stored) == list(range(1, last + 1)), "a seq went missing"
    assert set(emitter.confirmed) <= set(receiver.stored), "a confirmed event was lost"
    assert receiver.chain_problems() == []
    starts = [e for e in receiver.events() if e.type == "agent.started"]
    assert len(starts) == 5
    assert json.dumps(receiver.events()[0].model_dump())  # envelopes parse and re-serialize

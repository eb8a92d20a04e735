"""A dead core task ends the agent (exit 1) and the systemd watchdog stops being fed (issue 15)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.agent import AgentProcess

WATCHDOG_USEC = 400_000  # the agent pings every 0.2 s


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """A real NOTIFY_SOCKET: the unix datagram socket systemd would listen on."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.05)
    yield sock
    sock.close()


def _received(sock: socket.socket) -> list[str]:
    out: list[str] = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            return out


def _wait_for(sock: socket.socket, state: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state in _received(sock):
            return
    raise TimeoutError(f"no {state} from the agent")


def test_a_dead_shipper_stops_the_watchdog_and_exits_1(tmp_path: Path, notify_socket: socket.socket) -> None:
    # Fault injection: a token file with a byte that is not UTF-8 makes the shipper's send raise.
    token = tmp_path / "host.token"
    token.write_bytes(b"t0k\xffen\n")
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    sections = {"ship": {"collector_url": "http://127.0.0.1:9/", "token_file": str(token)}}
    agent = AgentProcess(tmp_path, sections, env=env).start(wait=False)
    assert agent.proc is not None
    try:
        rc = agent.proc.wait(timeout=30)
    finally:
        if agent.proc.poll() is None:
            agent.kill()
    assert rc == 1, agent.lines[-20:]
    assert any('"core_task_died"' in line and "shipper" in line for line in agent.lines), agent.lines[-20:]
    # The death is told to systemd, and nothing feeds the watchdog after it.
    states = _received(notify_socket)
    died = [i for i, s in enumerate(states) if s.startswith("STATUS=core task died: shipper")]
    assert died, states
    assert "WATCHDOG=1" not in states[died[0] :], states


def test_a_healthy_agent_feeds_the_watchdog(tmp_path: Path, notify_socket: socket.socket) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    agent = AgentProcess(tmp_path, env=env).start()
    try:
        _wait_for(notify_socket, "READY=1")
        _wait_for(notify_socket, "WATCHDOG=1")
        assert agent.request("status")["agent"]["supervisor"]["alive"] is True
    finally:
        assert agent.stop() == 0


def test_a_plugin_that_fails_to_start_is_reported_not_hidden(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    # Fault injection: the sessions plugin's key file is a directory, so its start raises.
    (tmp_path / "state" / "clipboard.key").mkdir(parents=True)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    agent = AgentProcess(tmp_path, {"agent": {"heartbeat_seconds": 0.2}}, env=env).start()
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 20
        while "STATUS=degraded: plugin failed to start: sessions" not in seen:
            assert time.monotonic() < deadline, seen
            seen += _received(notify_socket)
        assert "READY=1" in seen  # it runs (degraded), so systemd does not restart it in a loop
        status = agent.request("status")
        assert status["agent"]["plugins_failed"] == ["sessions"]
        assert "sessions" not in status  # not started, so no status of its own
        assert status["agent"]["supervisor"]["alive"] is True  # the rest runs on
        deadline = time.monotonic() + 20
        while not any(b'"agent.heartbeat"' in body for _, body in agent.spool_rows()):
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
    finally:
        assert agent.stop() == 0
    events = [json.loads(body) for _, body in agent.spool_rows()]
    (failed,) = [e for e in events if e["type"] == "agent.plugin_failed"]
    assert failed["severity"] == "high"
    assert failed["data"]["plugin"] == "sessions"
    assert "IsADirectoryError" in failed["data"]["error"]
    beat = next(e for e in events if e["type"] == "agent.heartbeat")
    assert beat["data"]["plugins_failed"] == ["sessions"]

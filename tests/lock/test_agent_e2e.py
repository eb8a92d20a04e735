"""End to end: `python -m boothguard agent` as a subprocess against dbusmock's logind, driven by the real
CLI — as root, and as another uid (nobody) through setpriv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from boothguard.events import Event, verify_chain
from tests.helpers.agent import AgentProcess
from tests.lock.mocklogind import MockLogind

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def cli(runtime: Path, *args: str, uid: int | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "boothguard", *args]
    if uid is not None:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOOTHGUARD_AGENT__RUNTIME_DIR": str(runtime),
        "HOME": "/",
    }
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd=REPO, check=False)


def events(agent: AgentProcess) -> list[dict[str, Any]]:
    return [json.loads(body) for _seq, body in agent.spool_rows()]


def wait_until(pred: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def agent(tmp_path: Path, shared_dir: Path, logind: MockLogind) -> Any:
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run the CLI as another user")
    runtime = shared_dir / "run"
    proc = AgentProcess(
        tmp_path,
        {
            "agent": {"runtime_dir": str(runtime)},
            "lock": {"bus_address": logind.address, "verify_seconds": 1, "refresh_seconds": 1},
        },
    )
    proc.runtime_dir = runtime
    proc.start()
    yield proc
    proc.stop()


def test_away_back_and_restart_with_the_real_agent(logind: MockLogind, agent: AgentProcess) -> None:
    logind.add_session("c1", 1000, "alice")
    logind.add_session("c9", NOBODY, "nobody")
    runtime = agent.runtime_dir
    wait_until(lambda: len(agent.request("status")["lock"]["sessions"]) == 2)

    done = cli(runtime, "away", "--session", "c1", "--reason", "lunch")
    assert done.returncode == 0, done.stderr
    assert "session c1: locked" in done.stdout
    assert logind.locked("c1")

    # an operator may not end someone else's away state: refused (77) and reported
    refused = cli(runtime, "back", "--session", "c1", uid=NOBODY)
    assert refused.returncode == 77, (refused.stdout, refused.stderr)
    assert "not yours" in refused.stderr
    # ... nor lock someone else's session
    assert cli(runtime, "away", "--session", "c1", uid=NOBODY).returncode == 77
    # but may signal their own (found through their uid: this process is in no logind session)
    own = cli(runtime, "away", "--reason", "break", uid=NOBODY)
    assert own.returncode == 0, own.stderr
    assert "session c9: locked" in own.stdout
    status = json.loads(cli(runtime, "status", "--json").stdout)
    assert {a["session"]: a["phase"] for a in status["lock"]["away"]} == {"c1": "locked", "c9": "locked"}
    back = cli(runtime, "back", uid=NOBODY)
    assert back.returncode == 0
    assert "c9" in back.stdout

    evs = events(agent)
    denied = [e for e in evs if e["type"] == "away.denied"]
    assert [(d["data"]["op"], d["data"]["session"], d["data"]["uid"]) for d in denied] == [
        ("back", "c1", NOBODY),
        ("away", "c1", NOBODY),
    ]
    assert denied[0]["user"] == "nobody"
    locked = [e for e in evs if e["type"] == "screen.locked"]
    assert {e["data"]["session"] for e in locked} == {"c1", "c9"}
    assert all(e["data"]["timings"]["request_to_verified_ms"] is not None for e in locked)
    ended = [e for e in evs if e["type"] == "away.ended"]
    assert [(e["data"]["session"], e["data"]["source"]) for e in ended] == [("c9", "cli")]

    # restart: c1 is still away; unlocked behind the agent's back, it is locked again
    assert agent.stop() == 0
    logind.set_locked("c1", False)
    logind.clear_calls()
    agent.lines.clear()
    agent.start()
    wait_until(lambda: logind.calls("LockSession") == [["c1"]])
    wait_until(lambda: logind.locked("c1"))
    status = agent.request("status")
    assert [(a["session"], a["source"], a["reason"]) for a in status["lock"]["away"]] == [
        ("c1", "cli", "lunch")
    ]
    wait_until(lambda: any(e["type"] == "screen.locked" and e["data"].get("resumed") for e in events(agent)))
    # the spool's chain is intact across the restart
    assert verify_chain(Event.model_validate(e) for e in events(agent)) == []

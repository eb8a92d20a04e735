"""Agent → real collector (SQLite) while the agent is SIGKILLed mid-stream: exactly one stored copy of
every event, and the chain verifies from what the collector stored."""

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from boothguard.events import Event, verify_chain
from tests.collector.proc import CollectorProcess
from tests.helpers.agent import AgentProcess
from tests.helpers.load import Emitter


def test_agent_killed_and_restarted_mid_stream_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "enroll.secret"
    secret.write_text("s3cret-enroll\n")
    db = tmp_path / "collector.db"
    collector = CollectorProcess(tmp_path, f"sqlite:///{db}", secret).start()
    agent = AgentProcess(tmp_path, {"ship": {"collector_url": collector.url, "batch_max_wait": 0.05}})
    enroll = subprocess.run(
        [
            sys.executable,
            "-m",
            "boothguard",
            "enroll",
            "--collector",
            collector.url,
            "--secret-file",
            str(secret),
            "--config",
            str(agent.config),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert enroll.returncode == 0, enroll.stderr
    agent.start()
    emitter = Emitter(agent.socket).start()
    try:
        agent.crash_repeatedly(3, seed=11, pause=(0.8, 1.6))
        time.sleep(0.5)
        emitter.stop()
        deadline = time.monotonic() + 60
        assert agent.proc is not None
        assert agent.proc.poll() is None, agent.lines[-30:]
        while agent.request("status")["spool"]["depth"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert agent.request("status")["spool"]["depth"] == 0
    finally:
        emitter.stop()
        agent.stop()
        collector.stop()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, raw FROM events ORDER BY seq").fetchall()
    seqs = [seq for seq, _ in rows]
    assert len(emitter.confirmed) > 100
    assert seqs == list(range(1, len(seqs) + 1)), "a seq is missing or stored twice"
    assert set(emitter.confirmed) <= set(seqs)
    events = [Event.model_validate_json(raw) for _, raw in rows]
    assert [p for p in verify_chain(events) if p.kind != "declared_gap"] == []
    assert sum(e.type == "agent.started" for e in events) == 4

"""The README's run command: a collector on SQLite plus an agent shipping to it, end to end."""

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.agent import write_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stored_types(db: Path) -> list[str]:
    try:
        with sqlite3.connect(db) as conn:
            return [row[0] for row in conn.execute("SELECT type FROM events ORDER BY seq")]
    except sqlite3.Error:
        return []


def test_quickstart_ships_agent_events_to_its_collector_and_stops_cleanly(tmp_path: Path) -> None:
    agent_cfg = write_config(
        tmp_path / "agent.toml",
        {
            "agent": {"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run")},
            "ship": {"batch_max_wait": 0.1},
        },
    )
    db = tmp_path / "collector" / "events.db"
    collector_cfg = write_config(
        tmp_path / "collector.toml",
        {
            "collector": {
                "listen": f"127.0.0.1:{free_port()}",
                "database_url": f"sqlite:///{db}",
                "enroll_secret_file": str(tmp_path / "enroll.secret"),
            },
        },
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "boothguard",
            "quickstart",
            "--config",
            str(agent_cfg),
            "--collector-config",
            str(collector_cfg),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "agent.started" not in stored_types(db) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.3)
        assert "agent.started" in stored_types(db)
        assert (tmp_path / "state" / "host.token").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "enroll.secret").stat().st_mode & 0o777 == 0o600
        # The settings are in a drop-in, not the agent's environment: doctor tells the running agent's story.
        dropin = (tmp_path / "agent.d" / "10-quickstart.toml").read_text()
        assert 'mode = "audit"' in dropin
        doctor = subprocess.run(
            [sys.executable, "-m", "boothguard", "doctor", "--config", str(agent_cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
        assert "usb.mode = audit" in doctor, doctor
        assert not any(
            line.startswith(("FAIL  collector", "FAIL  agent", "FAIL  token")) for line in doctor.splitlines()
        ), doctor
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "dashboard user 'admin' created" in out
    assert stored_types(db)[-1] == "agent.stopping"

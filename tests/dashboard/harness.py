"""A real collector subprocess, real agents posting sealed events to it, and headless Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from boothguard.events import ZERO_HASH, AgentRef, Draft, HostRef, seal

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "dashboard"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = "dashboard-enroll-secret"
PASSWORDS = {
    "boss": "admin-pass-123",
    "ana": "analyst-pass-123",
    "vic": "viewer-pass-123",
    "tom": "throttle-pass-1",
}
ROLES = {"boss": "admin", "ana": "analyst", "vic": "viewer", "tom": "analyst"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Collector:
    dir: Path
    base: str
    db: Path
    config: Path
    proc: subprocess.Popen[bytes] | None = None

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db, timeout=30)) as conn:
            rows = conn.execute(query, params).fetchall()
            conn.commit()
        return rows

    def audit(self, action: str) -> list[tuple[str, str | None]]:
        return [
            (r[0], r[1]) for r in self.sql("SELECT actor, target FROM audit_log WHERE action = ?", (action,))
        ]

    def log(self) -> str:
        return (self.dir / "collector.log").read_text(errors="replace")


def write_config(
    d: Path, port: int, *, tls: tuple[Path, Path] | None = None, database_url: str | None = None
) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    secret = d / "enroll.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    lines = [
        "[collector]",
        f'listen = "127.0.0.1:{port}"',
        f'database_url = "{database_url or "sqlite:///" + str(d / "events.db")}"',
        f'enroll_secret_file = "{secret}"',
        "chain_gap_grace_seconds = 0",
        "silence_check_seconds = 3600",
    ]
    if tls:
        lines += [f'tls_cert = "{tls[0]}"', f'tls_key = "{tls[1]}"']
    lines += ["", "[alerts]", "include_default_rules = true"]
    path = d / "collector.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "boothguard", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


@contextlib.contextmanager
def run_collector(
    d: Path,
    *,
    tls: tuple[Path, Path] | None = None,
    users: tuple[str, ...] = tuple(ROLES),
    database_url: str | None = None,
) -> Iterator[Collector]:
    port = free_port()
    cfg = write_config(d, port, tls=tls, database_url=database_url)
    for name in users:
        done = cli(
            "collector",
            "--config",
            str(cfg),
            "user",
            "add",
            name,
            "--role",
            ROLES[name],
            stdin=PASSWORDS[name] + "\n",
        )
        assert done.returncode == 0, done.stderr
    scheme = "https" if tls else "http"
    col = Collector(d, f"{scheme}://127.0.0.1:{port}", d / "events.db", cfg)
    log = (d / "collector.log").open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    col.proc = subprocess.Popen(
        [sys.executable, "-m", "boothguard", "collector", "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert col.proc.poll() is None, f"collector exited:\n{col.log()}"
            try:
                if httpx.get(f"{col.base}/healthz", timeout=1, verify=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"collector not ready:\n{col.log()}"
            time.sleep(0.1)
        yield col
    finally:
        col.proc.terminate()
        try:
            col.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            col.proc.kill()
            col.proc.wait(timeout=5)
        log.close()


@dataclass
class Agent:
    """One booth: enrolls with the collector and posts sealed, chained events like the shipper does."""

    base: str
    host_id: str
    name: str
    token: str = ""
    seq: int = 0
    head: str = ZERO_HASH
    answers: list[dict[str, Any]] = field(default_factory=list)

    def enroll(self) -> Agent:
        r = httpx.post(
            f"{self.base}/v1/enroll",
            json={"host": {"id": self.host_id, "name": self.name}},
            headers={"Authorization": f"Bearer {SECRET}"},
            timeout=10,
            verify=False,
        )
        assert r.status_code == 200, r.text
        self.token = r.json()["token"]
        return self

    def send(self, *drafts: Draft) -> dict[str, Any]:
        lines = []
        for draft in drafts:
            self.seq += 1
            body = seal(
                draft,
                seq=self.seq,
                prev_hash=self.head,
                host=HostRef(id=self.host_id, name=self.name),
                agent=AgentRef(version="0.1.0"),
                unix=time.time(),
            )
            self.head = body["hash"]
            lines.append(json.dumps(body, ensure_ascii=False))
        r = httpx.post(
            f"{self.base}/v1/events",
            content=("\n".join(lines) + "\n").encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/x-ndjson"},
            timeout=10,
            verify=False,
        )
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        assert answer["accepted"] == len(drafts), answer
        self.answers.append(answer)
        return answer

"""Issue 17, retention in operation: several collectors at once, ingest going on during a run, the job in a
real collector process counted in /metrics, bad settings refused with exit 78."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from boothguard.collector import db, retention, users
from boothguard.collector.retention_settings import DAY
from boothguard.collector.schema import audit_log, events
from tests.collector import pg
from tests.collector.helpers import post
from tests.collector.proc import CollectorProcess
from tests.collector.test_retention import CFG, DAYS, Seeded, seed

RUNNER = """
import json, sys
from boothguard.collector import db, retention, users
from boothguard.collector.retention_settings import RetentionSection
engine = db.create(sys.argv[1])
cfg = RetentionSection(housekeeping_days=7, security_days=30, batch_size=10, max_batches_per_run=2)
total, locked = 0, 0
while True:
    report = retention.run(engine, cfg, float(sys.argv[2]))
    total += report.total
    locked += report.locked_out
    if report.finished and not report.locked_out and report.total == 0:
        break
print("RESULT " + json.dumps({"total": total, "locked": locked}))
"""


@pytest.fixture
def history(db_url: str, secret_file: Path) -> Iterator[tuple[Seeded, TestClient]]:
    holder: list[TestClient] = []
    s = seed(db_url, secret_file, holder)
    try:
        yield s, holder[0]
    finally:
        holder[0].__exit__(None, None, None)
        s.store.engine.dispose()


def _compacted(s: Seeded) -> set[int]:
    with db.read(s.store.engine) as conn:
        q = sa.select(events.c.seq).where(events.c.compacted.is_not(None))
        return {int(r[0]) for r in conn.execute(q)}


def test_three_collector_processes_compact_each_event_once(
    history: tuple[Seeded, TestClient], db_url: str
) -> None:
    s, _c = history
    expected = s.expected_skeletons(s.clock.now)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, db_url, str(s.clock.now)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        results.append(json.loads(out.rsplit("RESULT ", 1)[1]))  # logs go to stdout too
    assert sum(r["total"] for r in results) == len(expected)  # none compacted twice, none missed
    assert _compacted(s) == expected
    with db.read(s.store.engine) as conn:
        audited = conn.execute(
            sa.select(audit_log.c.detail).where(audit_log.c.action == retention.ACTION)
        ).all()
    assert sum(d["compacted"] for (d,) in audited) == len(expected)  # every purge audited, once


def test_a_run_skips_while_another_collector_holds_the_lock(
    pg_cluster: pg.PgCluster, secret_file: Path
) -> None:
    # PostgreSQL's advisory lock; on SQLite runs take turns on the write lock (the three-process test).
    db_url = pg_cluster.new_database()
    holder: list[TestClient] = []
    s = seed(db_url, secret_file, holder)
    holder[0].__exit__(None, None, None)
    other = db.create(db_url)
    with other.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": retention._LOCK_ID}).scalar()
        conn.commit()
        report = retention.run(s.store.engine, CFG, s.clock.now)
        assert report.locked_out
        assert report.total == 0
        assert _compacted(s) == set()
        conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": retention._LOCK_ID})
        conn.commit()
    other.dispose()
    assert retention.run(s.store.engine, CFG, s.clock.now).total == len(s.expected_skeletons(s.clock.now))
    s.store.engine.dispose()


def test_ingest_goes_on_during_a_run(history: tuple[Seeded, TestClient]) -> None:
    s, c = history
    cfg = CFG.model_copy(update={"batch_size": 10, "max_batches_per_run": 10_000})
    posted, calls = threading.Event(), [0]

    def monotonic() -> float:
        # Past the 10th batch, the run waits (between batches) until an ingest has gone through.
        calls[0] += 1
        if calls[0] > 20:
            posted.wait(60)
        return time.monotonic()

    reports: list[retention.RunReport] = []
    t = threading.Thread(
        target=lambda: reports.append(retention.run(s.store.engine, cfg, s.clock.now, monotonic=monotonic))
    )
    t.start()
    latencies = []
    during = 0
    while t.is_alive():
        began = time.monotonic()
        r = post(c, s.token, [s.agent.emit("agent.heartbeat", data={"last_seq": s.agent.seq + 1})])
        latencies.append(time.monotonic() - began)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 1
        if t.is_alive():
            during += 1
            posted.set()
    t.join()
    assert during >= 1
    assert max(latencies) < 10
    [report] = reports
    assert report.total == len(s.expected_skeletons(s.clock.now))
    assert report.batches > 40


def _metric(text: str, name: str, label: str) -> float:
    m = re.search(rf"^{name}\{{{label}\}} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_the_collector_runs_retention_in_the_background(
    db_url: str, secret_file: Path, tmp_path: Path
) -> None:
    holder: list[TestClient] = []
    start = time.time() - DAYS * DAY  # the real process uses the real clock: history ends now
    s = seed(db_url, secret_file, holder, start=start)
    holder[0].__exit__(None, None, None)
    expected = s.expected_skeletons(time.time())
    housekeeping = sum(1 for q in expected if s.types[q] in ("agent.heartbeat", "network.vpn_up"))
    coll = CollectorProcess(tmp_path, db_url, secret_file, log_level="info")
    coll.config.write_text(
        coll.config.read_text()
        + "\n[collector.retention]\nhousekeeping_days = 7\nsecurity_days = 30\nbatch_size = 50\n"
        "interval_seconds = 1\n"
    )
    with coll:
        deadline = time.monotonic() + 90
        text = ""
        while time.monotonic() < deadline:
            text = httpx.get(coll.url + "/metrics", timeout=5).text
            if _metric(text, "boothguard_collector_retention_compacted_total", 'klass="housekeeping"'):
                break
            time.sleep(0.2)
        hk = _metric(text, "boothguard_collector_retention_compacted_total", 'klass="housekeeping"')
        sec = _metric(text, "boothguard_collector_retention_compacted_total", 'klass="security"')
        assert (hk, sec) == (housekeeping, len(expected) - housekeeping), coll.output()
        assert _metric(text, "boothguard_collector_retention_runs_total", 'outcome="finished"') >= 1
        assert "boothguard_collector_retention_batch_seconds_count" in text
        assert any('"retention_compacted"' in line for line in coll.lines), coll.output()
    assert _compacted(s) == expected
    s.store.engine.dispose()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("security_days = 3\nhousekeeping_days = 7\n", "security_days (3) is shorter than housekeeping_days"),
        ('security_types = ["USB.*"]\n', "'USB.*' is not an event type pattern"),
        ("batch_size = 0\n", "batch_size: Input should be greater than or equal to 10"),
        ("housekeeping_days = 0\n", "housekeeping_days: Input should be greater than 0"),
        ("keep_forever = true\n", "keep_forever: unknown key"),
    ],
)
def test_bad_retention_settings_are_refused(tmp_path: Path, body: str, why: str) -> None:
    path = tmp_path / "collector.toml"
    path.write_text('[collector]\nlog_level = "info"\n\n[collector.retention]\n' + body)
    r = subprocess.run(
        [sys.executable, "-m", "boothguard", "config", "check", "--collector", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 78, r.stdout + r.stderr
    assert why in r.stdout + r.stderr
    assert f"{path}:" in r.stdout + r.stderr  # file:line: key: why


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_the_api_verifies_a_hosts_chain_across_skeletons(history: tuple[Seeded, TestClient]) -> None:
    s, c = history
    users.add_user(s.store.engine, "ada", "admin", "ada-password-1", now=time.time())
    users.add_user(s.store.engine, "vic", "viewer", "vic-password-1", now=time.time())
    admin, viewer = _basic("ada", "ada-password-1"), _basic("vic", "vic-password-1")
    report = retention.run(s.store.engine, CFG, s.clock.now)
    expected = sorted(s.expected_skeletons(s.clock.now))
    url = f"/v1/hosts/{s.agent.host_id}/chain"

    whole = c.get(url, headers=viewer).json()
    assert whole["ok"] is True
    assert (whole["seq_from"], whole["seq_to"]) == (1, s.agent.seq)
    assert [q for lo, hi in whole["skeleton_seqs"] for q in range(lo, hi + 1)] == expected
    part = c.get(url, params={"from_seq": 100, "to_seq": 120}, headers=viewer).json()
    assert part["ok"] is True
    assert part["seq_to"] == 120
    assert c.get(url, params={"from_seq": 5, "to_seq": 4}, headers=viewer).status_code == 400
    assert c.get("/v1/hosts/nobody/chain", headers=viewer).status_code == 404
    assert c.get("/v1/hosts/a%00b/chain", headers=viewer).status_code == 404
    assert c.get(url).status_code == 401

    state = c.get("/v1/retention", headers=admin).json()
    assert state["settings"]["housekeeping_days"] == 7  # this process's settings (defaults)
    assert {cur["class"] for cur in state["cursors"]} == {"housekeeping", "security"}
    [latest] = state["runs"]
    assert latest["compacted"] == report.total
    assert c.get("/v1/retention", headers=viewer).status_code == 403

    with db.write(s.store.engine) as conn:  # a skeleton's link forged: the API says so
        conn.execute(
            sa.update(events)
            .where(events.c.host_id == s.agent.host_id, events.c.seq == expected[3])
            .values(prev_hash="e" * 64)
        )
    broken = c.get(url, headers=viewer).json()
    assert broken["ok"] is False
    assert {"kind": "broken_link", "from_seq": expected[3], "to_seq": expected[3]} in broken["problems"]

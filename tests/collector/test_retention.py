"""Issue 17, retention that keeps the proof: compressed-time history ingested through the real API, the
retention job run against it (SQLite and a real PostgreSQL cluster), the chain verified before and after,
the export of the retained range verifying and saying which seqs are skeletons."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from boothguard.collector import booths, db, retention, users
from boothguard.collector.retention_settings import DAY, RetentionSection
from boothguard.collector.schema import audit_log, events, hosts
from boothguard.collector.store import Store
from boothguard.collector.web import reports
from tests.collector.conftest import SECRET
from tests.collector.helpers import Clock, FakeAgent, client, enroll, make_store, post

T0 = 1_800_000_000.0
DAYS = 40
# Compressed: a "day" of a booth is 12 heartbeats, a VPN notice, a clipboard copy and a USB block.
BEATS_PER_DAY = 12
CFG = RetentionSection(housekeeping_days=7, security_days=30, batch_size=50)
PASSWORD = "boss-password-1"


@dataclass
class Seeded:
    store: Store
    clock: Clock
    agent: FakeAgent
    token: str
    received: dict[int, float] = field(default_factory=dict)  # seq -> when the collector got it
    types: dict[int, str] = field(default_factory=dict)
    gap: tuple[int, int] = (0, 0)  # the seqs the agent declared lost (spool.gap)

    def expected_skeletons(self, now: float, cfg: RetentionSection = CFG) -> set[int]:
        out = set()
        for seq, got in self.received.items():
            typ = self.types[seq]
            severity = "info" if typ in ("agent.heartbeat", "network.vpn_up", "session.started") else "low"
            klass = cfg.klass(typ, severity)
            if klass is not None and got < now - cfg.days(klass) * DAY:
                out.add(seq)
        return out


def _day(agent: FakeAgent, d: int) -> list[dict[str, Any]]:
    evs = [agent.emit("session.started", data={"session": f"s{d}"})]
    for i in range(BEATS_PER_DAY):
        evs.append(
            agent.emit("agent.heartbeat", data={"interval_seconds": 60, "last_seq": agent.seq + 1, "i": i})
        )
    evs.append(agent.emit("network.vpn_up", data={"iface": "tun0"}))
    copy = agent.emit("clipboard.copy", "low", data={"pii": {"phone": 1}, "chars": 12})
    evs.append(copy)
    evs.append(agent.emit("usb.device.blocked", "high", data={"vendor_id": "0781", "product_id": "5567"}))
    return evs


def seed(db_url: str, secret_file: Path, c_holder: list[TestClient], start: float = T0) -> Seeded:
    """Forty compressed days ingested through the API, each day's batch received on its day."""
    clock = Clock(start)
    store = make_store(db_url, clock)
    c = client(store, secret_file).__enter__()
    c_holder.append(c)
    token = enroll(c, SECRET, "m-ret-1", "booth-ret")
    s = Seeded(store, clock, FakeAgent("m-ret-1", "booth-ret"), token)
    for d in range(DAYS):
        clock.now = start + d * DAY
        batch = _day(s.agent, d)
        if d == 12:  # the spool lost three events and says so
            lo = s.agent.seq + 1
            s.agent.seq += 3
            s.gap = (lo, lo + 2)
            batch.append(
                s.agent.emit("spool.gap", "medium", data={"from_seq": lo, "to_seq": lo + 2, "count": 3})
            )
        r = post(c, token, batch)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == len(batch), r.text
        for ev in batch:
            s.received[ev["seq"]], s.types[ev["seq"]] = clock.now, ev["type"]
    clock.now = start + DAYS * DAY
    return s


@pytest.fixture
def seeded(db_url: str, secret_file: Path) -> Any:
    holder: list[TestClient] = []
    s = seed(db_url, secret_file, holder)
    users.add_user(s.store.engine, "boss", "admin", PASSWORD, now=time.time())
    try:
        yield s, holder[0]
    finally:
        holder[0].__exit__(None, None, None)
        s.store.engine.dispose()


def _verify(s: Seeded) -> reports.ChainReport:
    [rep] = reports.verify_hosts(s.store.engine, {s.agent.host_id: (1, s.agent.seq)})
    return rep


def _rows(s: Seeded) -> dict[int, Any]:
    with db.read(s.store.engine) as conn:
        q = sa.select(events).where(events.c.host_id == s.agent.host_id)
        return {int(r.seq): r for r in conn.execute(q)}


def _audits(s: Seeded) -> list[Any]:
    with db.read(s.store.engine) as conn:
        q = sa.select(audit_log).where(audit_log.c.action == retention.ACTION).order_by(audit_log.c.id)
        return list(conn.execute(q))


def _login(c: TestClient) -> None:
    c.get("/login")
    r = c.post(
        "/login",
        data={"csrf": c.cookies.get("bg_login_csrf"), "username": "boss", "password": PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def test_retention_keeps_the_proof(seeded: tuple[Seeded, TestClient]) -> None:
    s, c = seeded
    before = _verify(s)
    assert before.ok, before
    assert before.skeletons == []
    expected = s.expected_skeletons(s.clock.now)
    assert 300 < len(expected) < len(s.received)  # old heartbeats and VPN notices, and the oldest security

    report = retention.run(s.store.engine, CFG, s.clock.now)
    assert report.finished
    assert not report.locked_out
    assert report.total == len(expected)
    assert report.compacted["security"] == sum(
        1 for q in expected if s.types[q] in ("clipboard.copy", "usb.device.blocked", "session.started")
    )

    rows = _rows(s)
    skeletons = {seq for seq, r in rows.items() if r.compacted is not None}
    assert skeletons == expected
    for seq in skeletons:
        r = rows[seq]
        assert r.raw is None
        assert r.data is None
        assert r.user is None
        assert len(r.hash) == 64
        assert len(r.prev_hash) == 64
        assert r.type == s.types[seq]
        assert r.id
    whole = set(rows) - skeletons
    assert all(rows[q].raw for q in whole)
    assert max(rows) in whole  # the recent past is whole
    gap_seq = next(q for q, t in s.types.items() if t == "spool.gap")
    assert gap_seq in whole  # its declaration is chain evidence, kept whole

    # The chain still verifies across the skeletons, and says where they are.
    after = _verify(s)
    assert after.ok, after
    assert after.events_checked == len(rows)
    assert [q for lo, hi in after.skeletons for q in range(lo, hi + 1)] == sorted(expected)

    # Every purge is in the audit log, with counts and seq spans.
    [entry] = _audits(s)
    assert entry.actor == "retention"
    assert entry.detail["compacted"] == len(expected)
    assert entry.detail["by_class"] == report.compacted
    span = entry.detail["hosts"][s.agent.host_id]
    assert (span["from_seq"], span["to_seq"], span["count"]) == (min(expected), max(expected), len(expected))

    # The incident export of the retained range: verified, skeleton seqs marked; the timeline has the whole.
    _login(c)
    r = c.get("/export", params={"format": "json", "host": s.agent.host_id})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["chain_verification"]["ok"] is True
    [host] = doc["chain_verification"]["hosts"]
    assert [tuple(x) for x in host["skeleton_seqs"]] == after.skeletons
    assert sorted(e["seq"] for e in doc["events"]) == sorted(whole)
    csv_text = c.get("/export", params={"format": "csv", "host": s.agent.host_id}).text
    runs = ";".join(f"{lo}-{hi}" for lo, hi in after.skeletons)
    assert f"ok=true problems=declared_gap:{s.gap[0]}-{s.gap[1]} skeletons={runs}\n" in csv_text
    page = c.get("/export", params={"format": "html", "host": s.agent.host_id}).text
    assert 'class="skeletons"' in page
    assert f"{after.skeletons[0][0]}\u2013{after.skeletons[0][1]}" in page

    # Listings and searches show only whole events; the API's event list derives data from raw.
    auth = {"Authorization": "Basic " + base64.b64encode(f"boss:{PASSWORD}".encode()).decode()}
    listed: dict[int, Any] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {
            "host": s.agent.host_id,
            "limit": 500,
            **({"cursor": cursor} if cursor else {}),
        }
        r = c.get("/v1/events", params=params, headers=auth)
        assert r.status_code == 200, r.text
        listed.update({e["seq"]: e for e in r.json()["events"]})
        if not (cursor := r.json().get("next_cursor")):
            break
    assert set(listed) == whole
    assert listed[max(whole)]["data"] == json.loads(rows[max(whole)].raw)["data"]

    # The booth goes on: the chain walk (ingest and background) finds nothing wrong across the skeletons.
    more = [s.agent.emit("agent.heartbeat", data={"last_seq": s.agent.seq + 1}) for _ in range(3)]
    r = post(c, s.token, more)
    assert r.json()["accepted"] == 3
    old = json.loads(json.dumps(next(e for e in s.agent.events if e["seq"] == min(expected))))
    r = post(c, s.token, [old])  # a re-sent event that is a skeleton now: a duplicate, not a forgery
    assert (r.json()["duplicates"], r.json()["rejected"]) == (1, []), r.text
    assert s.store.settle_chains() == []
    with db.read(s.store.engine) as conn:
        h = conn.execute(sa.select(hosts).where(hosts.c.id == s.agent.host_id)).one()
    assert (h.chain_status, h.chain_seq) == ("ok", s.agent.seq)
    assert _verify(s).ok

    # A second run has nothing to do and writes no audit entry.
    again = retention.run(s.store.engine, CFG, s.clock.now)
    assert again.total == 0
    assert len(_audits(s)) == 1


def test_the_export_still_catches_tampering_around_skeletons(seeded: tuple[Seeded, TestClient]) -> None:
    s, _c = seeded
    retention.run(s.store.engine, CFG, s.clock.now)
    expected = sorted(s.expected_skeletons(s.clock.now))
    victim = expected[len(expected) // 2]
    engine = s.store.engine
    with db.write(engine) as conn:  # a skeleton's hash rewritten: its successor no longer links to it
        conn.execute(
            sa.update(events)
            .where(events.c.host_id == s.agent.host_id, events.c.seq == victim)
            .values(hash="f" * 64)
        )
    rep = _verify(s)
    assert not rep.ok
    assert ("broken_link", victim + 1, victim + 1) in {(p.kind, p.from_seq, p.to_seq) for p in rep.problems}
    # Content deleted without retention (no `compacted`): unreadable, not a skeleton.
    whole = max(_rows(s))
    with db.write(engine) as conn:
        conn.execute(
            sa.update(events)
            .where(events.c.host_id == s.agent.host_id, events.c.seq == whole)
            .values(raw=sa.null())
        )
    rep = _verify(s)
    assert whole in rep.unparsable
    assert not rep.ok
    # A whole security event made into a "skeleton" by hand: no audited run accounts for it.
    hidden = next(q for q in sorted(_rows(s), reverse=True) if s.types[q] == "usb.device.blocked")
    with db.write(engine) as conn:
        conn.execute(
            sa.update(events)
            .where(events.c.host_id == s.agent.host_id, events.c.seq == hidden)
            .values(raw=sa.null(), compacted=s.clock.now)
        )
    rep = _verify(s)
    assert hidden in rep.unparsable
    assert hidden not in {q for lo, hi in rep.skeletons for q in range(lo, hi + 1)}


def test_bounded_batches_resume_where_they_stopped(seeded: tuple[Seeded, TestClient]) -> None:
    s, _c = seeded
    cfg = CFG.model_copy(update={"batch_size": 10, "max_batches_per_run": 3})
    expected = s.expected_skeletons(s.clock.now)
    total, runs = 0, 0
    while True:
        report = retention.run(s.store.engine, cfg, s.clock.now)
        runs += 1
        assert report.batches <= 3
        assert report.examined <= 30
        total += report.total
        if report.finished:
            break
        assert runs < 200
    assert runs > 10
    assert total == len(expected)
    partial = [a.detail for a in _audits(s) if not a.detail["finished"]]
    assert partial, "a run that stopped at max_batches_per_run says so in its audit entry"
    assert all(d["batches"] == 3 for d in partial)
    assert {q for q, r in _rows(s).items() if r.compacted is not None} == expected
    audits = _audits(s)
    assert sum(a.detail["compacted"] for a in audits) == len(expected)
    assert _verify(s).ok


def test_class_rules_change_restarts_the_walk(seeded: tuple[Seeded, TestClient]) -> None:
    s, _c = seeded
    engine, now = s.store.engine, s.clock.now
    first = retention.run(engine, CFG, now).total
    assert first == len(s.expected_skeletons(now))
    vpn_whole = [q for q, r in _rows(s).items() if r.type == "network.vpn_up" and r.compacted is None]
    # VPN notices made security: nothing more to compact (the walk starts over and finds nothing).
    wider = CFG.model_copy(update={"security_types": (*CFG.security_types, "network.*")})
    assert retention.run(engine, wider, now).total == 0
    # session.* left out of security: their old rows, passed over by the housekeeping walk before, are
    # housekeeping now; the changed rules make that walk start over, so they are compacted too.
    narrower = CFG.model_copy(update={"security_types": ("usb.*", "clipboard.*", "spool.*")})
    report = retention.run(engine, narrower, now)
    started = {q for q, t in s.types.items() if t == "session.started" and s.received[q] < now - 7 * DAY}
    assert report.compacted == {"housekeeping": len(started - s.expected_skeletons(now)), "security": 0}
    assert report.total > 0
    assert vpn_whole == [q for q, r in _rows(s).items() if r.type == "network.vpn_up" and r.compacted is None]
    assert _verify(s).ok


def test_store_once_new_rows_keep_raw_only(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    agent = FakeAgent("m-once", "booth-once")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, agent.host_id, agent.name)
        evs = [agent.emit("agent.started", data={"usb_mode": "enforce"}), *agent.many(3)]
        assert post(c, token, evs).json()["accepted"] == 4
    with db.read(store.engine) as conn:
        rows = list(conn.execute(sa.select(events.c.data, events.c.raw, events.c.compacted)))
    assert len(rows) == 4
    for data, raw, compacted in rows:
        assert data is None
        assert compacted is None
        assert json.loads(raw)["data"] is not None
    # What used `data` derives it from raw: the board's USB mode, the export's chain.
    board = booths.one(store.engine, agent.host_id, time.time(), store.threshold)  # from the host row now
    assert board is not None
    assert board["usb_mode"] == "enforce"
    [rep] = reports.verify_hosts(store.engine, {agent.host_id: (1, 4)})
    assert rep.ok
    assert rep.events_checked == 4


def test_a_range_compacted_whole_is_still_verified_in_the_export(db_url: str, secret_file: Path) -> None:
    clock = Clock(T0)
    store = make_store(db_url, clock)
    users.add_user(store.engine, "boss", "admin", PASSWORD, now=time.time())
    agent = FakeAgent("m-all-gone", "booth-gone")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, agent.host_id, agent.name)
        assert post(c, token, agent.many(20, "agent.heartbeat")).json()["accepted"] == 20
        clock.now = T0 + 8 * DAY
        assert retention.run(store.engine, CFG, clock.now).total == 20
        _login(c)
        doc = c.get("/export", params={"format": "json", "host": agent.host_id}).json()
    assert doc["events"] == []  # nothing left to show...
    [chain] = doc["chain_verification"]["hosts"]  # ...but the chain over it is still checked
    assert chain["ok"] is True
    assert chain["events_checked"] == 20
    assert chain["skeleton_seqs"] == [[1, 20]]
    store.engine.dispose()

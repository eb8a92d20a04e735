"""Chain checks through the real ingest path: gaps, forgeries, declared gaps and restarts become alerts."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boothguard.collector import db
from boothguard.collector.chain import ChainState, Link, advance
from boothguard.collector.ingest import parse_lines
from boothguard.collector.schema import alerts, hosts
from boothguard.events import ZERO_HASH, Event, verify_chain
from tests.collector.conftest import SECRET
from tests.collector.helpers import Clock, FakeAgent, client, enroll, make_store, ndjson, post


def alert_rows(store: Any) -> list[dict[str, Any]]:
    with db.read(store.engine) as conn:
        return [dict(r) for r in conn.execute(sa.select(alerts).order_by(alerts.c.id)).mappings()]


def host_row(store: Any) -> dict[str, Any]:
    with db.read(store.engine) as conn:
        return dict(conn.execute(sa.select(hosts)).mappings().one())


def test_gap_is_an_alert_with_its_seq_range(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    agent = FakeAgent("m-1")
    evs = agent.many(10)
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        post(c, token, evs[:3])
        assert post(c, token, evs[7:]).json()["accepted"] == 3  # 4..7 never arrive
    [alert] = alert_rows(store)
    assert (alert["rule"], alert["event_type"], alert["seq_from"], alert["seq_to"]) == (
        "chain-tampering",
        "collector.chain.gap",
        4,
        7,
    )
    assert alert["severity"] == "critical"
    row = host_row(store)
    assert (row["chain_status"], row["chain_seq"]) == ("gap", 10)


def test_reordered_batches_within_grace_are_not_a_gap(db_url: str, secret_file: Path) -> None:
    clock = Clock()
    store = make_store(db_url, clock=clock, chain_gap_grace_seconds=60)
    agent = FakeAgent("m-1")
    evs = agent.many(30)
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        post(c, token, evs[20:])  # a second collector process stored the later batch first
        assert host_row(store)["chain_status"] == "pending"
        clock.now += 10
        post(c, token, evs[10:20])
        clock.now += 10
        post(c, token, evs[:10])
    assert alert_rows(store) == []
    row = host_row(store)
    assert (row["chain_status"], row["chain_seq"], row["chain_hash"]) == ("ok", 30, evs[-1]["hash"])
    assert store.settle_chains() == []


def test_a_hole_outliving_the_grace_is_reported_by_the_sweep(db_url: str, secret_file: Path) -> None:
    clock = Clock()
    store = make_store(db_url, clock=clock, chain_gap_grace_seconds=60)
    agent = FakeAgent("m-1")
    evs = agent.many(8)
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        post(c, token, evs[:2] + evs[5:])
    clock.now += 30
    store.settle_chains()
    assert alert_rows(store) == []
    clock.now += 31
    store.settle_chains()
    [alert] = alert_rows(store)
    assert (alert["event_type"], alert["seq_from"], alert["seq_to"]) == ("collector.chain.gap", 3, 5)


def test_forged_and_conflicting_events(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    agent = FakeAgent("m-1")
    evs = agent.many(5)
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        post(c, token, evs)
        # Another event claiming seq 3 (a rewritten history): refused, alert.
        forger = FakeAgent("m-1", seq=2, head=evs[1]["hash"])
        forged = forger.emit(data={"rewritten": True})
        answer = post(c, token, [forged]).json()
        assert answer["accepted"] == 0
        assert "forged/conflicting" in answer["rejected"][0]["error"]
        # A new event whose prev_hash does not link to seq 5.
        agent.head = "ab" * 32
        broken = agent.emit()
        assert post(c, token, [broken]).json()["accepted"] == 1
    kinds = [(a["event_type"], a["seq_from"], a["seq_to"]) for a in alert_rows(store)]
    assert kinds == [("collector.chain.backwards", 3, 3), ("collector.chain.broken_link", 6, 6)]
    assert host_row(store)["chain_status"] == "broken_link"


def test_declared_gap_and_restart_are_reported_not_tampering(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    agent = FakeAgent("m-1")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        first = agent.many(3)
        agent.seq = 6  # 4..6 lost in the spool
        gap = agent.emit(
            "spool.gap", "medium", {"from_seq": 4, "to_seq": 6, "count": 3, "reason": "queue_full"}
        )
        tail = agent.many(2)
        assert post(c, token, [*first, gap, *tail]).json()["accepted"] == 6
        # The spool was corrupt: the agent restarts the chain with a zero prev_hash.
        agent.seq = 20
        restart = agent.emit(
            "spool.gap",
            "high",
            {"from_seq": 10, "to_seq": 20, "count": 11, "reason": "corrupt", "chain_restart": True},
            prev_hash=ZERO_HASH,
        )
        more = agent.many(2)
        assert post(c, token, [restart, *more]).json()["accepted"] == 3
    rows = alert_rows(store)
    assert {a["rule"] for a in rows} == {"chain-declared-gap", "spool-gap"}
    assert all(a["event_type"] != "collector.chain.gap" for a in rows)
    row = host_row(store)
    assert (row["chain_status"], row["chain_seq"]) == ("ok", 23)
    problems = verify_chain(Event.model_validate(e) for e in agent.events)
    assert {p.kind for p in problems} == {"declared_gap"}


def test_bad_hash_is_rejected_and_alerted(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    agent = FakeAgent("m-1")
    ev = dict(agent.emit())
    ev["user"] = "mallory"
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        answer = post(c, token, [ev]).json()
    assert answer["accepted"] == 0
    assert [a["event_type"] for a in alert_rows(store)] == ["collector.chain.bad_hash"]


def test_walk_matches_verify_chain_on_in_order_streams() -> None:
    agent = FakeAgent("m")
    evs = agent.many(4)
    agent.seq = 9
    evs += agent.many(2)
    links = [Link(e["seq"], e["type"], e["prev_hash"], e["hash"]) for e in evs]
    walk = advance(ChainState(), links, list, now=0, grace=0)
    assert [(f.kind, f.seq_from, f.seq_to) for f in walk.findings] == [
        (p.kind, p.from_seq, p.to_seq) for p in verify_chain(Event.model_validate(e) for e in evs)
    ]
    assert walk.state.seq == 11


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(st.sampled_from(["ok", "ok", "ok", "broken", "skip", "restart"]), min_size=1, max_size=30),
    cuts=st.sets(st.integers(1, 29), max_size=5),
)
def test_batched_ingest_walks_like_one_walk_over_the_stream(
    tmp_path: Path, steps: list[str], cuts: set[int]
) -> None:
    """However a stream is cut into batches, the store finds what one walk over all of it finds."""
    store = make_store(f"sqlite:///{tmp_path / f'w{len(list(tmp_path.iterdir()))}.db'}")
    store.enroll("m-1", "booth-1")
    agent = FakeAgent("m-1")
    for step in steps:
        if step == "broken":
            agent.emit(prev_hash="cd" * 32)
        elif step == "skip":
            agent.emit(seq=agent.seq + 3)
        elif step == "restart":
            agent.emit("spool.gap", "high", {"reason": "corrupt"}, prev_hash=ZERO_HASH)
        else:
            agent.emit()
    found = []
    bounds = [0, *sorted(c for c in cuts if c < len(agent.events)), len(agent.events)]
    for lo, hi in itertools.pairwise(bounds):
        lines, rejected = parse_lines(ndjson(agent.events[lo:hi]), max_event_bytes=65536, max_events=100)
        result = store.ingest("m-1", lines, rejected)
        assert result.accepted == hi - lo
        found += [(f.kind, f.seq_from, f.seq_to) for f in result.findings if f.kind != "declared_gap"]
    links = [Link(e["seq"], e["type"], e["prev_hash"], e["hash"]) for e in agent.events]
    whole = advance(ChainState(), links, list, now=0, grace=0)
    assert found == [(f.kind, f.seq_from, f.seq_to) for f in whole.findings]
    row = host_row(store)
    assert (row["chain_seq"], row["chain_hash"]) == (whole.state.seq, whole.state.hash)
    store.engine.dispose()

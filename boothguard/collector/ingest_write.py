"""The ingest write path: a host's batch stored, its chain walked, host row and commands updated.

Every write that concerns one host first locks that host's row (SELECT … FOR UPDATE on PostgreSQL; the
SQLite write transaction is already exclusive), so several collector processes sharing one database see
each host's chain state change one batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, RowMapping

from boothguard.collector import db
from boothguard.collector.alert_store import observe
from boothguard.collector.alerts.model import Alert
from boothguard.collector.chain import Finding
from boothguard.collector.chain_walk import declared_findings, walk_chain
from boothguard.collector.command_store import acks, deliver
from boothguard.collector.host_state import host_values
from boothguard.collector.ingest import Line, Rejection
from boothguard.collector.schema import events, hosts
from boothguard.collector.store_parts import StoreParts

# Statements of every ingest, built once.
_HOST_FOR_UPDATE = sa.select(hosts).where(hosts.c.id == sa.bindparam("host_id")).with_for_update()
_INSERT_EVENTS = sa.insert(events)


class UnknownHost(Exception):
    pass


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]
    commands: list[dict[str, Any]]
    notify: list[Alert] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def answer(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "commands": self.commands,
        }


def ingest(store: StoreParts, host_id: str, lines: list[Line], rejections: list[Rejection]) -> IngestResult:
    rejected = [r.answer() for r in rejections]
    findings = [
        Finding("bad_hash", r.bad_hash_seq, r.bad_hash_seq, {"index": r.index})
        for r in rejections
        if r.bad_hash_seq is not None
    ]
    with db.write(store.engine) as conn:
        now = store.clock()
        host = conn.execute(_HOST_FOR_UPDATE, {"host_id": host_id}).mappings().first()
        if host is None:
            raise UnknownHost(host_id)
        new, duplicates = _classify(conn, host, lines, rejected, findings)
        new.sort(key=_seq)
        if new:
            _insert(conn, host_id, new, now)
        findings += declared_findings(new)
        walk = walk_chain(conn, host, new, now, grace=store.settings.chain_gap_grace_seconds)
        findings += walk.findings
        values = host_values(host, new, walk, findings, now)
        conn.execute(sa.update(hosts).where(hosts.c.id == host_id).values(**values))
        acks(conn, host_id, new, now)
        pending = deliver(conn, host_id, now)
        notify = observe(
            store.alert_book,
            conn,
            host_id=host_id,
            host_name=str(values.get("name", host["name"])),
            new=new,
            findings=findings,
            now=now,
        )
    rejected.sort(key=lambda r: r["index"])
    return IngestResult(len(new), duplicates, rejected, pending, notify, findings)


def _classify(
    conn: Connection,
    host: RowMapping,
    lines: list[Line],
    rejected: list[dict[str, Any]],
    findings: list[Finding],
) -> tuple[list[Line], int]:
    """Split a batch into new events and duplicates; a seq already holding another event is refused."""
    max_seq = host["max_seq"]
    seqs = {line.event["seq"] for line in lines}
    if len(seqs) == len(lines) and (not seqs or min(seqs) > max_seq):
        return list(lines), 0  # the common case: only seqs never seen, each once
    stored: dict[int, tuple[str, str]] = {}
    maybe_stored = sorted(seq for seq in seqs if seq <= max_seq)
    for chunk in _chunks(maybe_stored, 500):
        q = sa.select(events.c.seq, events.c.id, events.c.hash).where(
            events.c.host_id == host["id"], events.c.seq.in_(chunk)
        )
        for seq, event_id, event_hash in conn.execute(q):
            stored[int(seq)] = (event_id, event_hash)
    new: list[Line] = []
    duplicates = 0
    for line in lines:
        ev = line.event
        seq, mine = ev["seq"], (ev["id"], ev["hash"])
        prior = stored.get(seq)
        if prior is None:
            stored[seq] = mine
            new.append(line)
        elif prior == mine:
            duplicates += 1
        else:
            rejected.append(
                {
                    "index": line.index,
                    "error": f"seq {seq} already holds another event (forged/conflicting)",
                }
            )
            findings.append(
                Finding(
                    "backwards",
                    seq,
                    seq,
                    {"reason": "forged/conflicting", "stored_id": prior[0], "id": ev["id"]},
                )
            )
    return new, duplicates


COLUMNS = ("host_id", "seq", "id", "time", "type", "severity", "user", "prev_hash", "hash", "raw", "received")
# SQLite: the driver's executemany of plain tuples. SQLAlchemy's executemany builds and processes a
# parameter dict per row (a third of a raw insert's time); for these column types it changes nothing.
SQLITE_INSERT = str(
    sa.insert(events).values({c: sa.bindparam(c) for c in COLUMNS}).compile(dialect=sqlite.dialect())
)


def _insert(conn: Connection, host_id: str, new: list[Line], now: float) -> None:
    if conn.dialect.name != "sqlite":
        conn.execute(_INSERT_EVENTS, [row(host_id, line, now) for line in new])
        return
    params = [values(host_id, line, now) for line in new]
    conn.exec_driver_sql(SQLITE_INSERT, params)


def values(host_id: str, line: Line, now: float) -> tuple[Any, ...]:
    """A stored event's column values, in COLUMNS order. `raw` is the one copy: `data` is derived from it
    (schema v5, store once)."""
    ev = line.event
    return (
        host_id, ev["seq"], ev["id"], ev["time"], ev["type"], ev["severity"], ev.get("user"),
        ev["prev_hash"], ev["hash"], line.raw, now,
    )  # fmt: skip


def row(host_id: str, line: Line, now: float) -> dict[str, Any]:
    return dict(zip(COLUMNS, values(host_id, line, now), strict=True))


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _seq(line: Line) -> int:
    return line.event["seq"]

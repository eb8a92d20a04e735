"""The retention job: events past their class's retention become chain skeletons, in bounded batches.

Each class (housekeeping, security) has a cursor on `events.pk`: rows at or below it were looked at. A
batch is one short write transaction: it reads the next `batch_size` rows after the cursor, compacts those
of its class received before the cutoff, moves the cursor, and records the run's counts in the audit log,
all together, so a crash leaves nothing compacted and unaudited. The walk stops at the first row received
after the cutoff (pks follow arrival, so what comes after is newer), leaving it for a later run.

Several collectors: on PostgreSQL a session advisory lock lets one run at a time (the others skip); on
SQLite each batch holds the write lock and reads the cursor inside it, so runs can only take turns.
Ingest is never blocked for long: a batch touches only old rows, and each commits at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from boothguard import log
from boothguard.collector import db
from boothguard.collector.retention_settings import CLASSES, DAY, Klass, RetentionSection
from boothguard.collector.retention_skeleton import PURGE_ACTION, compacted_values
from boothguard.collector.schema import audit_log, events, retention_cursors

_log = log.get("collector.retention")
_LOCK_ID = 0x6267_7274  # "bgrt"
ACTOR = "retention"
ACTION = PURGE_ACTION
AUDIT_HOSTS_MAX = 5000  # hosts detailed in one audit entry; the count of the rest is kept
_SCAN = sa.select(
    events.c.pk, events.c.host_id, events.c.seq, events.c.type, events.c.severity, events.c.received,
    events.c.compacted,
)  # fmt: skip


@dataclass
class HostSpan:
    from_seq: int
    to_seq: int
    count: int

    def add(self, seq: int) -> None:
        self.from_seq, self.to_seq, self.count = (
            min(self.from_seq, seq),
            max(self.to_seq, seq),
            self.count + 1,
        )


@dataclass
class RunReport:
    """One run: what it compacted per class and per host (seq span and count), and how it ended."""

    started: float
    locked_out: bool = False
    finished: bool = True  # False: max_batches_per_run reached with work left
    batches: int = 0
    examined: int = 0
    compacted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    hosts: dict[str, HostSpan] = field(default_factory=dict)
    audit_id: int | None = None
    batch_seconds: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.compacted.values())

    def audit_detail(self, cfg: RetentionSection) -> dict[str, Any]:
        shown = sorted(self.hosts)[:AUDIT_HOSTS_MAX]
        return {
            "compacted": self.total,
            "by_class": dict(self.compacted),
            "cutoffs": {k: self.started - cfg.days(k) * DAY for k in CLASSES},
            "hosts": {
                h: {"from_seq": s.from_seq, "to_seq": s.to_seq, "count": s.count}
                for h in shown
                for s in (self.hosts[h],)
            },
            "hosts_not_listed": len(self.hosts) - len(shown),
            "batches": self.batches,
            "finished": self.finished,
        }


def run(
    engine: Engine,
    cfg: RetentionSection,
    now: float,
    *,
    monotonic: Callable[[], float] = time.monotonic,
) -> RunReport:
    """One retention run (at most `cfg.max_batches_per_run` batches over all classes)."""
    report = RunReport(started=now)
    with _run_lock(engine) as got:
        if not got:
            report.locked_out = True
            return report
        for klass in CLASSES:
            cutoff = now - cfg.days(klass) * DAY
            done = False
            while not done:
                if report.batches >= cfg.max_batches_per_run:
                    report.finished = False
                    break
                began = monotonic()
                done = _batch(engine, cfg, klass, cutoff, report)
                report.batch_seconds.append(monotonic() - began)
        if report.audit_id is not None:  # the entry's final word: batches, and whether work is left
            with db.write(engine) as conn:
                _audit(conn, cfg, report)
    if report.total:
        _log.info(
            "retention_compacted",
            compacted=report.total,
            by_class=report.compacted,
            hosts=len(report.hosts),
            batches=report.batches,
            finished=report.finished,
        )
    return report


@contextmanager
def _run_lock(engine: Engine) -> Iterator[bool]:
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": _LOCK_ID}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                conn.commit()


def _batch(engine: Engine, cfg: RetentionSection, klass: Klass, cutoff: float, report: RunReport) -> bool:
    """One transaction; True when this class has nothing more to do for now."""
    rules = cfg.fingerprint()
    with db.write(engine) as conn:
        after = _cursor(conn, klass, rules)
        rows = conn.execute(
            _SCAN.where(events.c.pk > after).order_by(events.c.pk).limit(cfg.batch_size)
        ).all()
        done = len(rows) < cfg.batch_size
        last = after
        picked: list[int] = []
        for pk, host_id, seq, type_, severity, received, compacted in rows:
            if received >= cutoff:
                done = True
                break
            last = int(pk)
            if compacted is None and cfg.klass(type_, severity) == klass:
                picked.append(last)
                report.hosts.setdefault(host_id, HostSpan(int(seq), int(seq), 0)).add(int(seq))
        for i in range(0, len(picked), 500):
            chunk = picked[i : i + 500]
            conn.execute(
                sa.update(events).where(events.c.pk.in_(chunk)).values(**compacted_values(report.started))
            )
        if last != after:
            conn.execute(
                sa.update(retention_cursors).where(retention_cursors.c.name == klass).values(after_pk=last)
            )
        report.batches += 1
        report.examined += len(rows)
        if picked:
            report.compacted[klass] += len(picked)
            _audit(conn, cfg, report)
    return done


def _cursor(conn: Connection, klass: Klass, rules: str) -> int:
    q = sa.select(retention_cursors.c.after_pk, retention_cursors.c.rules).where(
        retention_cursors.c.name == klass
    )
    row = conn.execute(q.with_for_update()).first()
    if row is None:
        conn.execute(sa.insert(retention_cursors).values(name=klass, after_pk=0, rules=rules))
        return 0
    if row.rules != rules:
        # Class membership changed: rows this class passed over may now be its own. Start over.
        conn.execute(
            sa.update(retention_cursors)
            .where(retention_cursors.c.name == klass)
            .values(after_pk=0, rules=rules)
        )
        _log.info("retention_rules_changed", klass=klass)
        return 0
    return int(row.after_pk)


def _audit(conn: Connection, cfg: RetentionSection, report: RunReport) -> None:
    """The run's audit entry, written with the batch that first compacts and brought up to date with each
    later one: it always says exactly what has been committed."""
    detail = report.audit_detail(cfg)
    if report.audit_id is None:
        result = conn.execute(
            sa.insert(audit_log).values(
                time=report.started, actor=ACTOR, action=ACTION, target=None, detail=detail
            )
        )
        key = result.inserted_primary_key
        report.audit_id = int(key[0]) if key is not None else None
    else:
        conn.execute(sa.update(audit_log).where(audit_log.c.id == report.audit_id).values(detail=detail))

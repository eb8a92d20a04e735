"""The dashboard's reports: an export's hash chains re-verified, and the aggregations behind the charts."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from boothguard.collector import db
from boothguard.collector.retention_skeleton import (
    CHAIN_COLUMNS,
    audited_purges,
    is_whole,
    ranges,
    stored_chain,
    stored_data,
)
from boothguard.collector.schema import alerts, events, hosts
from boothguard.collector.web.queries import EXPORT_LIMIT
from boothguard.events import SEVERITIES, ChainProblem, format_time, verify_chain

CHART_LIMIT = 200_000  # rows a chart query looks at


# --- chain verification for exports ---------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    host_id: str
    seq_from: int
    seq_to: int
    events_checked: int
    problems: list[ChainProblem]
    unparsable: list[int]  # seqs whose stored raw JSON no longer parses as an event
    stored_status: str
    stored_detail: str | None
    skeletons: list[tuple[int, int]] = field(default_factory=list)  # seq runs retention compacted

    @property
    def ok(self) -> bool:
        bad = [p for p in self.problems if p.kind != "declared_gap"]
        return not bad and not self.unparsable

    def as_json(self) -> dict[str, Any]:
        return {
            "host_id": self.host_id,
            "seq_from": self.seq_from,
            "seq_to": self.seq_to,
            "events_checked": self.events_checked,
            "ok": self.ok,
            "problems": [{"kind": p.kind, "from_seq": p.from_seq, "to_seq": p.to_seq} for p in self.problems],
            "unparsable_seqs": self.unparsable,
            "collector_chain_status": self.stored_status,
            "collector_chain_detail": self.stored_detail,
            # Compacted by retention: the link (prev_hash, hash) was checked, the content is gone.
            "skeleton_seqs": [list(r) for r in self.skeletons],
        }


def verify_hosts(
    engine: Engine, spans: dict[str, tuple[int, int]], *, limit: int = EXPORT_LIMIT
) -> list[ChainReport]:
    """Re-verify each host's stored chain over the exported seqs, from seq 1 when that fits in `limit`.

    Starting at seq 1 proves the exported events descend from the host's first event; for long histories
    the check starts at the event just before the export, so the first exported event's link is checked.
    """
    reports = []
    for host_id, (lo, hi) in sorted(spans.items()):
        start = 1 if hi <= limit else max(1, lo - 1)
        q = (
            sa.select(*CHAIN_COLUMNS)
            .where(events.c.host_id == host_id, events.c.seq >= start, events.c.seq <= hi)
            .order_by(events.c.seq)
            .limit(limit + 1)
        )
        with db.read(engine) as conn:
            rows = conn.execute(q).all()
            head = conn.execute(
                sa.select(hosts.c.chain_status, hosts.c.chain_detail, hosts.c.max_seq).where(
                    hosts.c.id == host_id
                )
            ).first()
            tail = _tail_problem(conn, host_id, int(head[2]) if head else 0)
            purges = audited_purges(conn, host_id)
        chain = stored_chain(rows, purges)
        parsed = chain.links
        problems = verify_chain(parsed)
        if tail is not None:
            problems.append(tail)
        if parsed and start == 1 and parsed[0].seq != 1:
            problems.insert(0, ChainProblem("gap", 1, parsed[0].seq - 1))
        reports.append(
            ChainReport(
                host_id=host_id,
                seq_from=start,
                seq_to=hi,
                events_checked=len(parsed),
                problems=problems,
                unparsable=chain.unparsable,
                stored_status=str(head[0]) if head else "unknown",
                stored_detail=head[1] if head else None,
                skeletons=ranges(chain.skeletons),
            )
        )
    return reports


def _tail_problem(conn: Connection, host_id: str, recorded_max: int) -> ChainProblem | None:
    """Deleted newest rows leave no hole to find: the host row recorded the highest seq ingested, and the
    newest heartbeat says how far the agent's spool was; fewer stored rows than that is a missing tail."""
    stored_max = conn.execute(
        sa.select(sa.func.max(events.c.seq)).where(events.c.host_id == host_id)
    ).scalar()
    stored = int(stored_max or 0)
    beat = stored_data(
        conn.execute(
            sa.select(events.c.raw)
            .where(events.c.host_id == host_id, events.c.type == "agent.heartbeat", is_whole())
            .order_by(events.c.seq.desc())
            .limit(1)
        ).scalar()
    )
    said = beat.get("last_seq") if isinstance(beat, dict) else None
    expected = max(recorded_max, said if isinstance(said, int) and not isinstance(said, bool) else 0)
    return ChainProblem("gap", stored + 1, expected) if expected > stored else None  # the missing tail


# --- charts ---------------------------------------------------------------------------------------


def category(event_type: str) -> str:
    return event_type.split(".", 1)[0]


def per_hour_query(since: str) -> sa.Select[Any]:
    """Counts per hour and type since `since`: an index-only range scan of (time, type) on PostgreSQL."""
    hour_col = sa.func.substr(events.c.time, 1, 13)
    return (
        sa.select(hour_col, events.c.type, sa.func.count())
        .where(events.c.time >= since)
        .group_by(hour_col, events.c.type)
        .limit(CHART_LIMIT)
    )


def events_per_hour(
    engine: Engine, now: float, hours: int, zone: tzinfo
) -> tuple[list[datetime], dict[str, list[int]]]:
    """Event counts per local hour and type category for the last `hours` hours (oldest first)."""
    end = datetime.fromtimestamp(now, zone).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    with db.read(engine) as conn:
        rows = conn.execute(per_hour_query(format_time(start.timestamp()))).all()
    slots = [start + timedelta(hours=i) for i in range(hours)]
    index = {s.astimezone(UTC).strftime("%Y-%m-%dT%H"): i for i, s in enumerate(slots)}
    series: dict[str, list[int]] = defaultdict(lambda: [0] * hours)
    for hour, etype, n in rows:
        i = index.get(str(hour))
        if i is not None:
            series[category(str(etype))][i] += int(n)
    return slots, dict(series)


def alerts_per_day(
    engine: Engine, now: float, days: int, zone: tzinfo
) -> tuple[list[datetime], dict[str, list[int]]]:
    """Alerts opened per local day and severity for the last `days` days (oldest first)."""
    today = datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days - 1)
    q = (
        sa.select(alerts.c.first_seen, alerts.c.severity)
        .where(alerts.c.first_seen >= start.timestamp())
        .limit(CHART_LIMIT)
    )
    with db.read(engine) as conn:
        rows = conn.execute(q).all()
    slots = [(start + timedelta(days=i)) for i in range(days)]
    counts: Counter[tuple[str, str]] = Counter()
    for first_seen, severity in rows:
        counts[(datetime.fromtimestamp(float(first_seen), zone).date().isoformat(), str(severity))] += 1
    series: dict[str, list[int]] = {}
    for sev in SEVERITIES:
        values = [counts[(s.date().isoformat(), sev)] for s in slots]
        if any(values):
            series[sev] = values
    return slots, series

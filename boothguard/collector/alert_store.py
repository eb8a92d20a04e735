"""Alerts on the write side: observations raised by an ingest, and the operator's ack / resolve."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from boothguard.collector import db
from boothguard.collector.alerting import AlertBook
from boothguard.collector.alerts.model import Alert, Observation
from boothguard.collector.audit import audit
from boothguard.collector.chain import FINDING_SEVERITY, Finding
from boothguard.collector.ingest import Line
from boothguard.collector.schema import alerts
from boothguard.collector.store_parts import StoreParts


def observe(
    book: AlertBook | None,
    conn: Connection,
    *,
    host_id: str,
    host_name: str,
    new: list[Line],
    findings: list[Finding],
    now: float,
) -> list[Alert]:
    if book is None:
        return []
    may_match = book.may_match
    observations = [
        Observation(
            type=ev["type"],
            severity=ev["severity"],
            host_id=host_id,
            host_name=ev["host"]["name"],
            data=ev["data"],
            user=ev.get("user"),
            seq_from=ev["seq"],
            seq_to=ev["seq"],
            event_id=ev["id"],
        )
        for ev in (line.event for line in new)
        if may_match(ev["type"])
    ]
    observations += [finding_observation(f, host_id, host_name) for f in findings]
    return book.process(conn, observations, now)


def finding_observation(f: Finding, host_id: str, host_name: str) -> Observation:
    return Observation(
        type=f"collector.chain.{f.kind}",
        severity=FINDING_SEVERITY[f.kind],
        host_id=host_id,
        host_name=host_name,
        data={**f.data, "from_seq": f.seq_from, "to_seq": f.seq_to},
        seq_from=f.seq_from,
        seq_to=f.seq_to,
    )


def set_alert_state(store: StoreParts, alert_id: int, state: str, actor: str) -> dict[str, Any] | None:
    """ack: open → acked; resolve: any unresolved → resolved (a repeat then opens a new alert)."""
    allowed = ("open",) if state == "acked" else ("open", "acked")
    with db.write(store.engine) as conn:
        now = store.clock()
        row = (
            conn.execute(sa.select(alerts).where(alerts.c.id == alert_id).with_for_update())
            .mappings()
            .first()
        )
        if row is None:
            return None
        if row["state"] in allowed:
            who = "acked" if state == "acked" else "resolved"
            conn.execute(
                sa.update(alerts)
                .where(alerts.c.id == alert_id)
                .values(state=state, **{f"{who}_by": actor, f"{who}_at": now})
            )
            audit(
                conn,
                actor,
                f"alert.{'ack' if state == 'acked' else 'resolve'}",
                str(alert_id),
                {},
                now=now,
            )
        out = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).mappings().one()
    return dict(out)

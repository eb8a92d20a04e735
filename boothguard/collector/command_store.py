"""Remote commands on the write side: queued by operators, delivered with ingest answers, acked by events."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from boothguard.collector import db
from boothguard.collector.audit import audit
from boothguard.collector.ingest import Line
from boothguard.collector.schema import commands, hosts
from boothguard.collector.store_parts import StoreParts

ACK_STATUSES = ("done", "failed", "unknown")
_PENDING_COMMANDS = (
    sa.select(commands.c.id, commands.c.type, commands.c.body, commands.c.expires_at)
    .where(commands.c.host_id == sa.bindparam("host_id"), commands.c.status == "pending")
    .order_by(commands.c.created_at)
)


def acks(conn: Connection, host_id: str, new: list[Line], now: float) -> None:
    for line in new:
        ev = line.event
        if ev["type"] != "agent.command_ack":
            continue
        cid, status = ev["data"].get("command_id"), ev["data"].get("status")
        if not isinstance(cid, str) or status not in ACK_STATUSES:
            continue
        conn.execute(
            sa.update(commands)
            .where(commands.c.id == cid, commands.c.host_id == host_id, commands.c.acked_at.is_(None))
            .values(acked_at=now, status=status)
        )


def deliver(conn: Connection, host_id: str, now: float) -> list[dict[str, Any]]:
    """Pending commands go out in every answer until acknowledged or expired."""
    pending = conn.execute(_PENDING_COMMANDS, {"host_id": host_id}).all()
    if not pending:
        return []
    mine = sa.and_(commands.c.host_id == host_id, commands.c.status == "pending")
    expired = [r.id for r in pending if r.expires_at <= now]
    if expired:
        conn.execute(sa.update(commands).where(mine, commands.c.id.in_(expired)).values(status="expired"))
    rows = [r for r in pending if r.expires_at > now]
    if not rows:
        return []
    conn.execute(
        sa.update(commands)
        .where(commands.c.id.in_([r.id for r in rows]))
        .values(delivered_count=commands.c.delivered_count + 1, last_delivered=now)
    )
    return [{**(r.body or {}), "id": r.id, "type": r.type} for r in rows]


def add_command(
    store: StoreParts, host_id: str, ctype: str, body: dict[str, Any], actor: str
) -> dict[str, Any] | None:
    with db.write(store.engine) as conn:
        now = store.clock()
        if conn.execute(sa.select(hosts.c.id).where(hosts.c.id == host_id)).first() is None:
            return None
        cid = str(uuid.uuid4())
        conn.execute(
            sa.insert(commands).values(
                id=cid,
                host_id=host_id,
                type=ctype,
                body=body,
                created_at=now,
                created_by=actor,
                expires_at=now + store.settings.command_ttl_seconds,
            )
        )
        audit(conn, actor, "command.create", host_id, {"command_id": cid, "type": ctype, **body}, now=now)
    return {**body, "id": cid, "type": ctype}

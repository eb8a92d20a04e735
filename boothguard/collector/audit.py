"""The audit trail of who did what on the collector, and how tokens are stored (hashed)."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from boothguard.collector.schema import audit_log


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def audit(
    conn: Connection, actor: str, action: str, target: str | None, detail: dict[str, Any], *, now: float
) -> None:
    conn.execute(
        sa.insert(audit_log).values(time=now, actor=actor, action=action, target=target, detail=detail)
    )

"""The incident export's view of skeletons: the seq span they take in its scope, so a range that retention
compacted whole is still chain-verified (and listed as skeletons) instead of silently left out."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from boothguard.collector import db
from boothguard.collector.queries import normalize_time
from boothguard.collector.schema import events


def skeleton_spans(
    engine: Engine, *, host: str | None, user: str | None, since: str | None, until: str | None
) -> dict[str, tuple[int, int]]:
    """Per host, the lowest and highest skeleton seq in the scope; none for a user's export (a skeleton
    has no user left to match)."""
    if user:
        return {}
    q = sa.select(events.c.host_id, sa.func.min(events.c.seq), sa.func.max(events.c.seq)).where(
        events.c.compacted.is_not(None)
    )
    if host:
        q = q.where(events.c.host_id == host)
    if since:
        q = q.where(events.c.time >= normalize_time(since))
    if until:
        q = q.where(events.c.time < normalize_time(until))
    with db.read(engine) as conn:
        return {str(h): (int(lo), int(hi)) for h, lo, hi in conn.execute(q.group_by(events.c.host_id))}

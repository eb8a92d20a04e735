"""v6: fill the host row's new columns (watcher, USB mode, latest event time) from the events already
stored, once; from then on ingest keeps them current."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from boothguard.collector.host_state import WATCHER_STATES, apply_state
from boothguard.collector.retention_skeleton import stored_data
from boothguard.collector.schema import tables

_T = tables(6).tables
_events = _T["events"]
_hosts = _T["hosts"]


def backfill(conn: Connection) -> int:
    """Returns the number of host rows updated."""
    values: dict[str, dict[str, Any]] = {}
    for types in (tuple(WATCHER_STATES), ("agent.started",)):
        for ev in _latest_of(conn, types):
            apply_state(values.setdefault(str(ev["host_id"]), {}), ev)
    last = sa.select(_events.c.host_id, _events.c.time).join(
        _hosts, sa.and_(_hosts.c.id == _events.c.host_id, _hosts.c.max_seq == _events.c.seq)
    )
    for host_id, time in conn.execute(last):
        values.setdefault(str(host_id), {})["last_time"] = time
    for host_id, row in values.items():
        conn.execute(sa.update(_hosts).where(_hosts.c.id == host_id).values(**row))
    return len(values)


def _latest_of(conn: Connection, types: tuple[str, ...]) -> list[dict[str, Any]]:
    newest = (
        sa.select(_events.c.host_id, sa.func.max(_events.c.seq).label("seq"))
        .where(_events.c.type.in_(types))
        .group_by(_events.c.host_id)
        .subquery()
    )
    q = sa.select(_events.c.host_id, _events.c.type, _events.c.time, _events.c.raw).join(
        newest, sa.and_(_events.c.host_id == newest.c.host_id, _events.c.seq == newest.c.seq)
    )
    # v5 stores each line once: `data` is derived from `raw` (None for a skeleton)
    return [{**r, "data": stored_data(r["raw"]) or {}} for r in conn.execute(q).mappings()]

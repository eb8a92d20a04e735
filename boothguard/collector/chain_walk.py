"""Walking each host's stored chain forward from its verified head; settling holes that outwaited grace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from boothguard.collector import db
from boothguard.collector.alert_store import observe
from boothguard.collector.alerts.model import Alert
from boothguard.collector.chain import ChainState, Finding, Link, Walk, advance, declared_range
from boothguard.collector.host_state import host_values
from boothguard.collector.ingest import Line
from boothguard.collector.retention_skeleton import stored_data
from boothguard.collector.schema import events, hosts
from boothguard.collector.store_parts import StoreParts
from boothguard.events import ZERO_HASH

WALK_LIMIT = 20000  # stored events one chain walk looks at; the rest waits for the next ingest or sweep


def declared_findings(new: list[Line]) -> list[Finding]:
    out: list[Finding] = []
    for line in new:
        ev = line.event
        if ev["type"] != "spool.gap":
            continue
        restart = ev["prev_hash"] == ZERO_HASH
        data, seq = ev["data"], ev["seq"]
        lo, hi = declared_range(data) or (seq, seq)
        detail: dict[str, Any] = {k: data.get(k) for k in ("reason", "count") if k in data}
        out.append(Finding("declared_gap", lo, hi, {**detail, "restart": restart, "declared_by": seq}))
    return out


def walk_chain(conn: Connection, host: RowMapping, new: list[Line], now: float, *, grace: float) -> Walk:
    """`new`: this batch's stored events, ascending by seq."""
    state = ChainState(int(host["chain_seq"]), str(host["chain_hash"]), host["hole_since"])
    if host["max_seq"] <= host["chain_seq"]:
        # Nothing was waiting beyond the chain head: what follows it is exactly this batch. Its
        # leading run of events that each link to the one before moves the head without findings;
        # `advance` walks whatever follows that run.
        evs = [line.event for line in new if line.event["seq"] > state.seq]
        if not evs:
            return Walk(state, [])
        seq, head, i = state.seq, state.hash, 0
        for ev in evs:
            if ev["seq"] != seq + 1 or ev["prev_hash"] != head:
                break
            seq, head, i = seq + 1, ev["hash"], i + 1
        if i == len(evs):
            return Walk(ChainState(seq, head, None), [])
        state = ChainState(seq, head, state.hole_since)
        following = [Link(ev["seq"], ev["type"], ev["prev_hash"], ev["hash"]) for ev in evs[i:]]
    else:
        q = (
            sa.select(events.c.seq, events.c.type, events.c.prev_hash, events.c.hash)
            .where(events.c.host_id == host["id"], events.c.seq > state.seq)
            .order_by(events.c.seq)
            .limit(WALK_LIMIT)
        )
        following = [Link(int(seq), typ, prev, h) for seq, typ, prev, h in conn.execute(q)]
    if not following:
        return Walk(state, [])
    return advance(
        state,
        following,
        lambda: declared_ranges(conn, str(host["id"])),
        now=now,
        grace=grace,
    )


def declared_ranges(conn: Connection, host_id: str) -> list[tuple[int, int]]:
    q = sa.select(events.c.raw).where(events.c.host_id == host_id, events.c.type == "spool.gap")
    return [rng for (raw,) in conn.execute(q) if (rng := declared_range(stored_data(raw)))]


def settle_chains(store: StoreParts, on_finding: Callable[[str], None] | None = None) -> list[Alert]:
    """Report holes that outwaited the grace period even if the host sends nothing more; `on_finding`
    counts each finding by kind (the metrics count these as they count ingest's)."""
    now = store.clock()
    cutoff = now - store.settings.chain_gap_grace_seconds
    with db.read(store.engine) as conn:
        ids = [r[0] for r in conn.execute(sa.select(hosts.c.id).where(hosts.c.hole_since <= cutoff))]
    notify: list[Alert] = []
    for host_id in ids:
        with db.write(store.engine) as conn:
            q = sa.select(hosts).where(hosts.c.id == host_id).with_for_update()
            host = conn.execute(q).mappings().first()
            if host is None or host["hole_since"] is None:
                continue
            walk = walk_chain(conn, host, [], now, grace=store.settings.chain_gap_grace_seconds)
            if on_finding is not None:
                for finding in walk.findings:
                    on_finding(finding.kind)
            values = host_values(host, [], walk, walk.findings, now)
            for key in ("last_seen", "state", "silent_reason"):
                values.pop(key)
            conn.execute(sa.update(hosts).where(hosts.c.id == host_id).values(**values))
            notify += observe(
                store.alert_book,
                conn,
                host_id=host_id,
                host_name=host["name"],
                new=[],
                findings=walk.findings,
                now=now,
            )
    return notify

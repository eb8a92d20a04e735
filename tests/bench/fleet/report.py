"""What the database holds after a run, checked against what the booths were told was stored."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from boothguard.collector import db
from tests.bench.fleet.booths import Booth

# Schema v6 partitions `events` by month on PostgreSQL: the parent holds nothing, its partitions hold it all.
EVENTS_SIZE = "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('events')"


def storage_bytes(url: str) -> int:
    """Bytes the events take: the events table with its indexes and TOAST (PostgreSQL), the file (SQLite)."""
    engine = db.create(url)
    try:
        if db.is_sqlite(engine):
            with engine.connect() as conn:  # what the WAL holds counts once it is in the file
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            path = Path(str(sa.make_url(db.normalize_url(url)).database))
            return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(EVENTS_SIZE).scalar_one())
    finally:
        engine.dispose()


def exactly_once(url: str, fleet: list[Booth]) -> dict[str, Any]:
    """Every event a booth had acknowledged is stored once, byte for byte; nothing else is stored."""
    by_host = {b.host.id: b for b in fleet}
    stored: dict[str, dict[int, str]] = defaultdict(dict)
    duplicates = unexpected = altered = 0
    engine = db.create(url)
    try:
        with engine.connect() as conn:
            for host_id, seq, raw in conn.exec_driver_sql("SELECT host_id, seq, raw FROM events"):
                seen = stored[host_id]
                if seq in seen:
                    duplicates += 1
                seen[seq] = raw
    finally:
        engine.dispose()
    missing = 0
    for host_id, seqs in stored.items():
        booth = by_host.get(host_id)
        if booth is None:
            unexpected += len(seqs)
            continue
        for seq, raw in seqs.items():
            sent = booth.acked.get(seq)
            if sent is None:
                # stored but never acknowledged: only an answer lost in flight may do that
                unexpected += 1
            elif sent.decode() != raw:
                altered += 1
    for b in fleet:
        held = stored.get(b.host.id, {})
        missing += sum(1 for seq in b.acked if seq not in held)
    return {
        "acked": sum(len(b.acked) for b in fleet),
        "stored": sum(len(s) for s in stored.values()),
        "missing": missing,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "altered": altered,
    }


def alerts_and_hosts(url: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    engine = db.create(url)
    try:
        with engine.connect() as conn:
            alerts = [
                dict(r)
                for r in conn.exec_driver_sql(
                    "SELECT host_id, event_type, rule, first_seen, count FROM alerts"
                ).mappings()
            ]
            hosts = {
                r["id"]: dict(r)
                for r in conn.exec_driver_sql(
                    "SELECT id, last_seen, state, chain_status, heartbeat_seconds FROM hosts"
                ).mappings()
            }
    finally:
        engine.dispose()
    return alerts, hosts


def silence(
    alerts: list[dict[str, Any]], hosts: dict[str, dict[str, Any]], fleet: list[Booth], threshold: float
) -> dict[str, Any]:
    """A stopped booth must be alerted; no other one may be. Latency: alert - (last heard + threshold)."""
    silent = {a["host_id"]: a for a in alerts if a["event_type"] == "collector.host.silent"}
    stopped = {b.host.id for b in fleet if b.role == "stops"}
    roles = {b.host.id: b.role for b in fleet}
    late = sorted(
        silent[h]["first_seen"] - hosts[h]["last_seen"] - threshold
        for h in stopped
        if h in silent and hosts[h]["last_seen"] is not None
    )
    return {
        "stopped": len(stopped),
        "alerted_true": len(stopped & silent.keys()),
        "not_alerted": sorted(stopped - silent.keys())[:10],
        "false_silences": len(silent.keys() - stopped),
        "false_silence_roles": dict(Counter(roles.get(h, "?") for h in silent.keys() - stopped)),
        "latency_after_threshold_s": {
            "min": round(late[0], 1) if late else None,
            "p50": round(late[len(late) // 2], 1) if late else None,
            "max": round(late[-1], 1) if late else None,
        },
    }


def chain(alerts: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    chain_alerts = [a for a in alerts if a["event_type"].startswith("collector.chain.")]
    return {
        "chain_alerts": len(chain_alerts),
        "chain_alert_kinds": sorted({a["event_type"] for a in chain_alerts}),
        "hosts_chain_not_ok": sum(1 for h in hosts.values() if h["chain_status"] != "ok"),
    }


def by_class(url: str) -> dict[str, Any] | None:
    """PostgreSQL: bytes per heartbeat and per other event (row bytes, plus the table's per-row share of
    indexes and overhead), and what a heartbeat would take as a chain skeleton (seq, id, time, type,
    prev_hash, hash under its (host, seq) key), measured on a copy of this run's heartbeats."""
    engine = db.create(url)
    try:
        if db.is_sqlite(engine):
            return None
        with engine.connect() as conn:
            total = int(conn.exec_driver_sql(EVENTS_SIZE).scalar_one())
            rows = {
                bool(hb): (int(n), float(size))
                for hb, n, size in conn.exec_driver_sql(
                    "SELECT type = 'agent.heartbeat', count(*), sum(pg_column_size(e.*)) "
                    "FROM events e GROUP BY 1"
                )
            }
            n_all = sum(n for n, _ in rows.values())
            if n_all == 0 or len(rows) < 2:
                return None
            overhead = (total - sum(size for _, size in rows.values())) / n_all
            conn.exec_driver_sql(
                "CREATE TEMP TABLE skeleton AS SELECT host_id, seq, id, time, type, prev_hash, hash "
                "FROM events WHERE type = 'agent.heartbeat'"
            )
            conn.exec_driver_sql("CREATE UNIQUE INDEX ON skeleton (host_id, seq)")
            conn.exec_driver_sql("ANALYZE skeleton")
            skeleton = int(conn.exec_driver_sql("SELECT pg_total_relation_size('skeleton')").scalar_one())
            conn.rollback()
    finally:
        engine.dispose()
    return {
        "heartbeat": round(rows[True][1] / rows[True][0] + overhead),
        "security_event": round(rows[False][1] / rows[False][0] + overhead),
        "heartbeat_as_skeleton": round(skeleton / rows[True][0]),
    }

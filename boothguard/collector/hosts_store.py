"""Hosts on the write side: enrollment and token checks, and marking hosts silent past their threshold."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from boothguard import log
from boothguard.collector import db, policy_directory, token_cache
from boothguard.collector.alerts.model import Alert, Observation
from boothguard.collector.audit import audit, token_hash
from boothguard.collector.schema import hosts
from boothguard.collector.settings import CollectorSection
from boothguard.collector.store_parts import StoreParts

_log = log.get("collector.store")


def enroll(store: StoreParts, host_id: str, name: str, labels: list[str]) -> str:
    """Create the host or rotate its token (the old token stops working at once); the labels it enrolls
    with replace the ones it had."""
    token = secrets.token_urlsafe(32)
    labels = sorted(set(labels))
    for attempt in range(3):
        try:
            with db.write(store.engine) as conn:
                now = store.clock()
                q = sa.select(hosts.c.id).where(hosts.c.id == host_id).with_for_update()
                known = conn.execute(q).first() is not None
                if known:
                    conn.execute(
                        sa.update(hosts)
                        .where(hosts.c.id == host_id)
                        .values(token_hash=token_hash(token), name=name, labels=labels)
                    )
                else:
                    conn.execute(
                        sa.insert(hosts).values(
                            id=host_id,
                            name=name,
                            token_hash=token_hash(token),
                            enrolled_at=now,
                            labels=labels,
                        )
                    )
                audit(
                    conn,
                    f"host:{host_id}",
                    "host.enroll",
                    host_id,
                    {"name": name, "rotated": known, "labels": labels},
                    now=now,
                )
            # After the commit: the old token stops working here now, and the booth's new name and labels
            # choose its policy group from the next ingest on.
            token_cache.host_enrolled(store.engine, host_id)
            policy_directory.host_changed(store.engine, host_id)
            _log.info("host_enrolled", host=host_id, rotated=known)
            return token
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def cached_host(store: StoreParts, token: str) -> str | None:
    """The host of a token verified within the cache's ttl, without the database (None: ask it)."""
    return token_cache.for_engine(store.engine).get(token_hash(token))


def authenticate(store: StoreParts, token: str) -> str | None:
    cache = token_cache.for_engine(store.engine)
    digest = token_hash(token)
    found = cache.get(digest)
    if found is not None:
        return found
    epoch = cache.epoch
    with db.read(store.engine) as conn:
        row = conn.execute(sa.select(hosts.c.id).where(hosts.c.token_hash == digest)).first()
    if row is None:
        return None
    cache.put(digest, str(row[0]), epoch)
    return str(row[0])


def silence_reason(last_type: str | None, last_reason: str | None) -> str:
    if last_type == "agent.stopping":
        return "host_shutdown" if last_reason == "shutdown" else "clean_stop"
    return "killed_or_network_lost"


def threshold(settings: CollectorSection, row: RowMapping) -> float:
    beat = row["heartbeat_seconds"]
    if beat:
        return float(beat) * settings.silence_heartbeats
    return settings.silence_default_seconds


def check_silence(store: StoreParts) -> list[Alert]:
    """Mark hosts silent past their threshold (once, across processes) and raise the observation."""
    now = store.clock()
    with db.read(store.engine) as conn:
        rows = (
            conn.execute(sa.select(hosts).where(hosts.c.state == "online", hosts.c.last_seen.is_not(None)))
            .mappings()
            .all()
        )
    overdue = [(row, threshold(store.settings, row)) for row in rows]
    overdue = [(row, limit) for row, limit in overdue if now - row["last_seen"] > limit]
    if not overdue:
        return []
    with db.write(store.engine) as conn:
        observations: list[Observation] = []
        for row, limit in overdue:
            reason = silence_reason(row["last_type"], row["last_reason"])
            claimed = conn.execute(
                sa.update(hosts)
                .where(
                    hosts.c.id == row["id"],
                    hosts.c.state == "online",
                    hosts.c.last_seen == row["last_seen"],
                )
                .values(state="silent", silent_reason=reason)
            ).rowcount
            if claimed != 1:
                continue  # heard from meanwhile, or another process got there first
            _log.warning("host_silent", host=row["id"], reason=reason)
            observations.append(
                Observation(
                    type="collector.host.silent",
                    severity="high",
                    host_id=row["id"],
                    host_name=row["name"],
                    data={
                        "reason": reason,
                        "last_type": row["last_type"],
                        "last_seen": _rfc3339(row["last_seen"]),
                        "threshold_seconds": limit,
                    },
                    seq_from=int(row["max_seq"]) or None,
                    seq_to=int(row["max_seq"]) or None,
                )
            )
        if store.alert_book is None:
            return []
        return store.alert_book.process(conn, observations, now)


def _rfc3339(unix: float) -> str:
    from boothguard.events import format_time

    return format_time(unix)

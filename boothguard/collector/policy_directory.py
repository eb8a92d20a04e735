"""Which policy each booth should run, held in memory for a few seconds (issue 17: the ingest answer asked the
database three times per request, even for a booth in no group).

A snapshot holds every group's way in, each group's latest published policy and, when any policy exists
at all, each booth's explicit group, name and labels (up to `max_hosts` of them; a booth past that, or one
enrolled since, is looked up by itself and kept while there is room). It is reloaded after `ttl` seconds.
This process's own policy writes (groups, assignments, publications, enrollments) drop it at once; another
collector on the same database sees them at most `ttl` seconds late.
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from boothguard.collector import db
from boothguard.collector.per_engine import PerEngine
from boothguard.collector.schema import group_members, host_groups, hosts, policies

TTL_SECONDS = 10.0
MAX_HOSTS = 100_000  # the bench's limit is 50,000 booths; each entry is a name, labels and a group

_Host = tuple[str | None, str, tuple[str, ...]]  # explicit group, name, labels


class Matcher:
    """Every group's way in (label, name pattern, priority), to find a booth's group without a query each."""

    def __init__(self, rows: Iterable[Any]) -> None:
        self.groups = [
            (
                (-int(g["priority"]), str(g["name"])),
                g["label"],
                None if g["name_pattern"] is None else re.compile(fnmatch.translate(str(g["name_pattern"]))),
            )
            for g in rows
        ]

    def group(self, explicit: str | None, name: str, labels: Iterable[str] | None) -> str | None:
        if explicit is not None:
            return str(explicit)
        have = set(labels or [])
        # Explicit assignment above; then the highest priority; at equal priority a label match (chosen at
        # enrollment) before a name pattern; then the group's name, so the answer never depends on row order.
        best: tuple[int, int, str] | None = None
        for (neg_priority, group), label, pattern in self.groups:
            by_label = label is not None and label in have
            if by_label or (pattern is not None and pattern.match(name)):
                key = (neg_priority, 0 if by_label else 1, group)
                best = key if best is None or key < best else best
        return None if best is None else best[2]


@dataclass
class _Snapshot:
    loaded_at: float
    matcher: Matcher
    latest: dict[str, dict[str, Any]]  # group -> the policy it publishes now
    hosts: dict[str, _Host] = field(default_factory=dict)


class PolicyDirectory:
    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = TTL_SECONDS,
        max_hosts: int = MAX_HOSTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.max_hosts = max_hosts
        self.clock = clock
        self.loads = 0  # full reloads, for tests and the bench
        self._snap: _Snapshot | None = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """A policy write in this process: the next lookup reloads."""
        with self._lock:
            self._snap = None

    def host_changed(self, host_id: str) -> None:
        """Enrollment renamed or relabelled one booth: look it up again, keep the rest."""
        with self._lock:
            if self._snap is not None:
                self._snap.hosts.pop(host_id, None)

    def cached_hosts(self) -> int:
        snap = self._snap
        return 0 if snap is None else len(snap.hosts)

    def for_host(self, host_id: str) -> dict[str, Any] | None:
        """The policy the booth should run (a fresh copy of its body), or None when its group has none."""
        snap = self._fresh()
        if not snap.latest:
            return None  # no group publishes a policy: nothing to find out about the booth
        entry = snap.hosts.get(host_id)
        if entry is None:
            with db.read(self.engine) as conn:
                entry = _one_host(conn, host_id)
            if entry is None:
                return None
            with self._lock:
                if len(snap.hosts) < self.max_hosts:
                    snap.hosts[host_id] = entry
        explicit, name, labels = entry
        group = snap.matcher.group(explicit, name, labels)
        policy = None if group is None else snap.latest.get(group)
        if policy is None:
            return None
        return {**policy, "body": dict(policy["body"])}

    def _fresh(self) -> _Snapshot:
        with self._lock:
            snap = self._snap
            now = self.clock()
            # `now < loaded_at`: a clock that went back must not stretch the staleness bound
            if snap is not None and snap.loaded_at <= now < snap.loaded_at + self.ttl:
                return snap
            snap = self._load(now)
            self._snap = snap
            self.loads += 1
            return snap

    def _load(self, now: float) -> _Snapshot:
        with db.read(self.engine) as conn:
            matcher = Matcher(conn.execute(sa.select(host_groups)).mappings())
            latest = _latest_policies(conn)
            snap = _Snapshot(now, matcher, latest)
            if latest:
                q = (
                    sa.select(hosts.c.id, hosts.c.name, hosts.c.labels, group_members.c.group_name)
                    .select_from(hosts.outerjoin(group_members, group_members.c.host_id == hosts.c.id))
                    .limit(self.max_hosts)
                )
                for row in conn.execute(q):
                    snap.hosts[str(row.id)] = _entry(row.group_name, row.name, row.labels)
        return snap


def _entry(explicit: Any, name: Any, labels: Any) -> _Host:
    return (None if explicit is None else str(explicit), str(name), tuple(str(x) for x in labels or ()))


def _one_host(conn: Connection, host_id: str) -> _Host | None:
    q = (
        sa.select(hosts.c.name, hosts.c.labels, group_members.c.group_name)
        .select_from(hosts.outerjoin(group_members, group_members.c.host_id == hosts.c.id))
        .where(hosts.c.id == host_id)
    )
    row = conn.execute(q).first()
    return None if row is None else _entry(row.group_name, row.name, row.labels)


def _latest_policies(conn: Connection) -> dict[str, dict[str, Any]]:
    """Each group's latest published policy, in one query."""
    newest = (
        sa.select(policies.c.group_name, sa.func.max(policies.c.version).label("version"))
        .where(policies.c.published.is_(True))
        .group_by(policies.c.group_name)
        .subquery()
    )
    q = sa.select(policies.c.group_name, policies.c.version, policies.c.hash, policies.c.body).join(
        newest,
        sa.and_(policies.c.group_name == newest.c.group_name, policies.c.version == newest.c.version),
    )
    return {
        str(r.group_name): {
            "group": str(r.group_name),
            "version": int(r.version),
            "hash": r.hash,
            "body": dict(r.body),
        }
        for r in conn.execute(q)
    }


_DIRECTORIES: PerEngine[PolicyDirectory] = PerEngine(PolicyDirectory)


def for_engine(engine: Engine) -> PolicyDirectory:
    """The one directory of this engine (the process's collector), made on first use."""
    return _DIRECTORIES.get(engine)


def install(directory: PolicyDirectory) -> PolicyDirectory:
    """Use this directory for its engine (tests: a short ttl, a small bound)."""
    return _DIRECTORIES.install(directory.engine, directory)


def changed(engine: Engine) -> None:
    found = _DIRECTORIES.existing(engine)
    if found is not None:
        found.invalidate()


def host_changed(engine: Engine, host_id: str) -> None:
    found = _DIRECTORIES.existing(engine)
    if found is not None:
        found.host_changed(host_id)

"""The collector's writes: enrollment, ingest with chain checks, remote commands, silence, alert states.

Every write that concerns one host first locks that host's row (SELECT … FOR UPDATE on PostgreSQL; the
SQLite write transaction is already exclusive), so several collector processes sharing one database see
each host's chain state change one batch at a time.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from boothguard import log
from boothguard.collector import db
from boothguard.collector.alerting import AlertBook
from boothguard.collector.alerts.model import Alert, Observation
from boothguard.collector.chain import (
    FINDING_SEVERITY,
    ChainState,
    Finding,
    Link,
    Walk,
    advance,
    declared_range,
)
from boothguard.collector.ingest import EventBody, Line, Rejection
from boothguard.collector.schema import alerts, audit_log, commands, events, hosts
from boothguard.collector.settings import CollectorSection
from boothguard.events import ZERO_HASH

_log = log.get("collector.store")
WALK_LIMIT = 20000  # stored events one chain walk looks at; the rest waits for the next ingest or sweep
ACK_STATUSES = ("done", "failed", "unknown")
TAMPER_KINDS = ("gap", "backwards", "broken_link", "bad_hash")
BACKLOG_KEYS = ("spool_backlog", "spool_depth", "backlog")


# Statements of every ingest, built once.
_HOST_FOR_UPDATE = sa.select(hosts).where(hosts.c.id == sa.bindparam("host_id")).with_for_update()
_INSERT_EVENTS = sa.insert(events)
_PENDING_COMMANDS = (
    sa.select(commands.c.id, commands.c.type, commands.c.body, commands.c.expires_at)
    .where(commands.c.host_id == sa.bindparam("host_id"), commands.c.status == "pending")
    .order_by(commands.c.created_at)
)


class UnknownHost(Exception):
    pass


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def audit(
    conn: Connection, actor: str, action: str, target: str | None, detail: dict[str, Any], *, now: float
) -> None:
    conn.execute(
        sa.insert(audit_log).values(time=now, actor=actor, action=action, target=target, detail=detail)
    )


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]
    commands: list[dict[str, Any]]
    notify: list[Alert] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def answer(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "commands": self.commands,
        }


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def silence_reason(last_type: str | None, last_reason: str | None) -> str:
    if last_type == "agent.stopping":
        return "host_shutdown" if last_reason == "shutdown" else "clean_stop"
    return "killed_or_network_lost"


class Store:
    def __init__(
        self,
        engine: Engine,
        settings: CollectorSection,
        alert_book: AlertBook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.alert_book = alert_book
        self.clock = clock

    # --- enrollment and tokens -------------------------------------------------------------------

    def enroll(self, host_id: str, name: str) -> str:
        """Create the host or rotate its token; the old token stops working at once."""
        token = secrets.token_urlsafe(32)
        for attempt in range(3):
            try:
                with db.write(self.engine) as conn:
                    now = self.clock()
                    q = sa.select(hosts.c.id).where(hosts.c.id == host_id).with_for_update()
                    known = conn.execute(q).first() is not None
                    if known:
                        conn.execute(
                            sa.update(hosts)
                            .where(hosts.c.id == host_id)
                            .values(token_hash=token_hash(token), name=name)
                        )
                    else:
                        conn.execute(
                            sa.insert(hosts).values(
                                id=host_id, name=name, token_hash=token_hash(token), enrolled_at=now
                            )
                        )
                    audit(
                        conn,
                        f"host:{host_id}",
                        "host.enroll",
                        host_id,
                        {"name": name, "rotated": known},
                        now=now,
                    )
                _log.info("host_enrolled", host=host_id, rotated=known)
                return token
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def authenticate(self, token: str) -> str | None:
        with db.read(self.engine) as conn:
            row = conn.execute(sa.select(hosts.c.id).where(hosts.c.token_hash == token_hash(token))).first()
        return None if row is None else str(row[0])

    # --- ingest ----------------------------------------------------------------------------------

    def ingest(self, host_id: str, lines: list[Line], rejections: list[Rejection]) -> IngestResult:
        rejected = [r.answer() for r in rejections]
        findings = [
            Finding("bad_hash", r.bad_hash_seq, r.bad_hash_seq, {"index": r.index})
            for r in rejections
            if r.bad_hash_seq is not None
        ]
        with db.write(self.engine) as conn:
            now = self.clock()
            host = conn.execute(_HOST_FOR_UPDATE, {"host_id": host_id}).mappings().first()
            if host is None:
                raise UnknownHost(host_id)
            new, duplicates = self._classify(conn, host, lines, rejected, findings)
            new.sort(key=_seq)
            if new:
                conn.execute(_INSERT_EVENTS, [self._row(host_id, line, now) for line in new])
            findings += self._declared_findings(new)
            walk = self._walk(conn, host, new, now)
            findings += walk.findings
            values = self._host_values(host, new, walk, findings, now)
            conn.execute(sa.update(hosts).where(hosts.c.id == host_id).values(**values))
            self._acks(conn, host_id, new, now)
            pending = self._deliver(conn, host_id, now)
            notify = self._observe(
                conn,
                host_id=host_id,
                host_name=str(values.get("name", host["name"])),
                new=new,
                findings=findings,
                now=now,
            )
        rejected.sort(key=lambda r: r["index"])
        return IngestResult(len(new), duplicates, rejected, pending, notify, findings)

    def _classify(
        self,
        conn: Connection,
        host: RowMapping,
        lines: list[Line],
        rejected: list[dict[str, Any]],
        findings: list[Finding],
    ) -> tuple[list[Line], int]:
        """Split a batch into new events and duplicates; a seq already holding another event is refused."""
        max_seq = host["max_seq"]
        seqs = {line.event["seq"] for line in lines}
        if len(seqs) == len(lines) and (not seqs or min(seqs) > max_seq):
            return list(lines), 0  # the common case: only seqs never seen, each once
        stored: dict[int, tuple[str, str]] = {}
        maybe_stored = sorted(seq for seq in seqs if seq <= max_seq)
        for chunk in _chunks(maybe_stored, 500):
            q = sa.select(events.c.seq, events.c.id, events.c.hash).where(
                events.c.host_id == host["id"], events.c.seq.in_(chunk)
            )
            for seq, event_id, event_hash in conn.execute(q):
                stored[int(seq)] = (event_id, event_hash)
        new: list[Line] = []
        duplicates = 0
        for line in lines:
            ev = line.event
            seq, mine = ev["seq"], (ev["id"], ev["hash"])
            prior = stored.get(seq)
            if prior is None:
                stored[seq] = mine
                new.append(line)
            elif prior == mine:
                duplicates += 1
            else:
                rejected.append(
                    {
                        "index": line.index,
                        "error": f"seq {seq} already holds another event (forged/conflicting)",
                    }
                )
                findings.append(
                    Finding(
                        "backwards",
                        seq,
                        seq,
                        {"reason": "forged/conflicting", "stored_id": prior[0], "id": ev["id"]},
                    )
                )
        return new, duplicates

    @staticmethod
    def _row(host_id: str, line: Line, now: float) -> dict[str, Any]:
        ev = line.event
        return {
            "host_id": host_id,
            "seq": ev["seq"],
            "id": ev["id"],
            "time": ev["time"],
            "type": ev["type"],
            "severity": ev["severity"],
            "user": ev.get("user"),
            "prev_hash": ev["prev_hash"],
            "hash": ev["hash"],
            "data": ev["data"],
            "raw": line.raw,
            "received": now,
        }

    @staticmethod
    def _declared_findings(new: list[Line]) -> list[Finding]:
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

    def _walk(self, conn: Connection, host: RowMapping, new: list[Line], now: float) -> Walk:
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
            lambda: self._declared_ranges(conn, str(host["id"])),
            now=now,
            grace=self.settings.chain_gap_grace_seconds,
        )

    @staticmethod
    def _declared_ranges(conn: Connection, host_id: str) -> list[tuple[int, int]]:
        q = sa.select(events.c.data).where(events.c.host_id == host_id, events.c.type == "spool.gap")
        return [rng for (data,) in conn.execute(q) if (rng := declared_range(data))]

    @staticmethod
    def _host_values(
        host: RowMapping, new: list[Line], walk: Walk, findings: list[Finding], now: float
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            "last_seen": now,
            "state": "online",
            "silent_reason": None,
            "chain_seq": walk.state.seq,
            "chain_hash": walk.state.hash,
            "hole_since": walk.state.hole_since,
        }
        tamper = [f for f in findings if f.kind in TAMPER_KINDS]
        if tamper:
            last = tamper[-1]
            values["chain_status"] = last.kind
            values["chain_detail"] = f"seq {last.seq_from}-{last.seq_to}"
        elif walk.state.hole_since is not None and host["chain_status"] == "ok":
            values["chain_status"] = "pending"
            values["chain_detail"] = f"waiting for seq {walk.state.seq + 1}"
        elif walk.state.hole_since is None and host["chain_status"] == "pending":
            values["chain_status"] = "ok"
            values["chain_detail"] = None
        # `new` ascends by seq; a late event (not beyond max_seq) does not describe the host's current state.
        max_seq = host["max_seq"]
        for line in new:
            ev = line.event
            if ev["type"] in _STATE_TYPES and ev["seq"] > max_seq:
                _apply_state(values, ev)
        latest = new[-1].event if new else None
        if latest is not None and latest["seq"] > max_seq:
            values["max_seq"] = latest["seq"]
            values["name"] = latest["host"]["name"]
            values["last_type"] = latest["type"]
            reason = latest["data"].get("reason")
            values["last_reason"] = reason[:255] if isinstance(reason, str) else None
        return values

    @staticmethod
    def _acks(conn: Connection, host_id: str, new: list[Line], now: float) -> None:
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

    @staticmethod
    def _deliver(conn: Connection, host_id: str, now: float) -> list[dict[str, Any]]:
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

    def _observe(
        self,
        conn: Connection,
        *,
        host_id: str,
        host_name: str,
        new: list[Line],
        findings: list[Finding],
        now: float,
    ) -> list[Alert]:
        book = self.alert_book
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

    # --- background checks -----------------------------------------------------------------------

    def check_silence(self) -> list[Alert]:
        """Mark hosts silent past their threshold (once, across processes) and raise the observation."""
        now = self.clock()
        with db.read(self.engine) as conn:
            rows = (
                conn.execute(
                    sa.select(hosts).where(hosts.c.state == "online", hosts.c.last_seen.is_not(None))
                )
                .mappings()
                .all()
            )
        overdue = [(row, self.threshold(row)) for row in rows]
        overdue = [(row, limit) for row, limit in overdue if now - row["last_seen"] > limit]
        if not overdue:
            return []
        with db.write(self.engine) as conn:
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
            if self.alert_book is None:
                return []
            return self.alert_book.process(conn, observations, now)

    def threshold(self, row: RowMapping) -> float:
        beat = row["heartbeat_seconds"]
        if beat:
            return float(beat) * self.settings.silence_heartbeats
        return self.settings.silence_default_seconds

    def settle_chains(self) -> list[Alert]:
        """Report holes that outwaited the grace period even if the host sends nothing more."""
        now = self.clock()
        cutoff = now - self.settings.chain_gap_grace_seconds
        with db.read(self.engine) as conn:
            ids = [r[0] for r in conn.execute(sa.select(hosts.c.id).where(hosts.c.hole_since <= cutoff))]
        notify: list[Alert] = []
        for host_id in ids:
            with db.write(self.engine) as conn:
                q = sa.select(hosts).where(hosts.c.id == host_id).with_for_update()
                host = conn.execute(q).mappings().first()
                if host is None or host["hole_since"] is None:
                    continue
                walk = self._walk(conn, host, [], now)
                values = self._host_values(host, [], walk, walk.findings, now)
                for key in ("last_seen", "state", "silent_reason"):
                    values.pop(key)
                conn.execute(sa.update(hosts).where(hosts.c.id == host_id).values(**values))
                notify += self._observe(
                    conn, host_id=host_id, host_name=host["name"], new=[], findings=walk.findings, now=now
                )
        return notify

    # --- operator actions ------------------------------------------------------------------------

    def add_command(
        self, host_id: str, ctype: str, body: dict[str, Any], actor: str
    ) -> dict[str, Any] | None:
        with db.write(self.engine) as conn:
            now = self.clock()
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
                    expires_at=now + self.settings.command_ttl_seconds,
                )
            )
            audit(conn, actor, "command.create", host_id, {"command_id": cid, "type": ctype, **body}, now=now)
        return {**body, "id": cid, "type": ctype}

    def set_alert_state(self, alert_id: int, state: str, actor: str) -> dict[str, Any] | None:
        """ack: open → acked; resolve: any unresolved → resolved (a repeat then opens a new alert)."""
        allowed = ("open",) if state == "acked" else ("open", "acked")
        with db.write(self.engine) as conn:
            now = self.clock()
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


def _seq(line: Line) -> int:
    return line.event["seq"]


def _rfc3339(unix: float) -> str:
    from boothguard.events import format_time

    return format_time(unix)


# The event types `_apply_state` looks at.
_STATE_TYPES = frozenset(
    {"agent.heartbeat", "away.started", "away.ended", "screen.locked", "screen.unlocked"}
)


def _apply_state(values: dict[str, Any], ev: EventBody) -> None:
    """The host's current state as its latest events describe it."""
    kind = ev["type"]
    if kind == "agent.heartbeat":
        data = ev["data"]
        beat = data.get("interval_seconds")
        if isinstance(beat, int | float) and not isinstance(beat, bool) and 0 < beat <= 86400:
            values["heartbeat_seconds"] = float(beat)
        for key in BACKLOG_KEYS:
            backlog = data.get(key)
            if isinstance(backlog, int) and not isinstance(backlog, bool) and 0 <= backlog < 2**62:
                values["spool_backlog"] = backlog
                break
    elif kind == "away.started":
        values["away"] = True
    elif kind == "away.ended":
        values["away"] = False
    elif kind == "screen.locked":
        values["locked"] = True
    elif kind == "screen.unlocked":
        values["locked"] = False


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

"""A host row's new values after an ingest or chain settle: chain status, state its events describe."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import RowMapping

from boothguard.collector.chain import Finding, Walk
from boothguard.collector.ingest import EventBody, Line

TAMPER_KINDS = ("gap", "backwards", "broken_link", "bad_hash")
BACKLOG_KEYS = ("spool_backlog", "spool_depth", "backlog")
# The event types `apply_state` looks at.
WATCHER_STATES = {
    "session.watcher_missing": "missing",
    "session.started": "ok",
    "session.ended": "no_session",
}
STATE_TYPES = frozenset(
    {"agent.heartbeat", "agent.started", "away.started", "away.ended", "screen.locked", "screen.unlocked"}
    | WATCHER_STATES.keys()
)


def host_values(
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
        if ev["type"] in STATE_TYPES and ev["seq"] > max_seq:
            apply_state(values, ev)
    latest = new[-1].event if new else None
    if latest is not None and latest["seq"] > max_seq:
        values["max_seq"] = latest["seq"]
        values["name"] = latest["host"]["name"]
        values["last_type"] = latest["type"]
        values["last_time"] = latest["time"]
        reason = latest["data"].get("reason")
        values["last_reason"] = reason[:255] if isinstance(reason, str) else None
    return values


def apply_state(values: dict[str, Any], ev: EventBody | dict[str, Any]) -> None:
    """The host's current state as its latest events describe it."""
    kind = ev["type"]
    if kind in WATCHER_STATES:  # the booths page reads the watcher's health from the row, not the history
        reason = ev["data"].get("reason") if kind == "session.watcher_missing" else None
        values["watcher_state"] = WATCHER_STATES[kind]
        values["watcher_since"] = ev["time"]
        values["watcher_reason"] = reason[:255] if isinstance(reason, str) else None
        return
    if kind == "agent.started":
        mode = ev["data"].get("usb_mode")
        values["usb_mode"] = mode[:32] if isinstance(mode, str) else None
        return
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

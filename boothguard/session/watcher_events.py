"""What a watcher may report: the `event` op's checks (a known severity, a data object within the size
limit, an event type watchers own unless the peer is root) and the agent's severity cap (the watcher's own
claim stays on record as `watcher_severity`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from boothguard import log
from boothguard.agent import access as trust
from boothguard.agent.control import Peer
from boothguard.errors import EXIT_PERMISSION, EXIT_USAGE
from boothguard.events import SEVERITY_RANK, Draft
from boothguard.session import protocol as p

_log = log.get("sessions")


class Refusal(NamedTuple):
    error: str
    code: int = EXIT_USAGE


def event_draft(peer: Peer, session_id: str, req: Mapping[str, Any]) -> Draft | Refusal:
    """The event a watcher's request asks for, as the agent stores it, or why it is refused."""
    etype, severity, data = req.get("type"), req.get("severity", "info"), req.get("data", {})
    if not isinstance(etype, str) or not isinstance(data, dict) or severity not in SEVERITY_RANK:
        return Refusal("event needs type, severity and a data object")
    if not peer.is_root and etype not in trust.WATCHER_EVENTS:
        owner = "agent-owned" if etype in trust.AGENT_EVENTS else "not a watcher event type"
        _log.warning("watcher_event_refused", session=session_id, type=etype, uid=peer.uid)
        return Refusal(
            f"{etype} is {owner}; a watcher may send {', '.join(trust.WATCHER_EVENTS)}", EXIT_PERMISSION
        )
    if len(json.dumps(data)) > p.MAX_EVENT_DATA_BYTES:
        return Refusal("event data too large")
    data = {k: v for k, v in data.items() if k not in ("session_id", "watcher_severity")}
    if etype in trust.WATCHER_EVENTS:
        stored = trust.capped_severity(etype, severity)
        if stored != severity:  # the agent decides severity; the watcher's claim stays on record
            data["watcher_severity"] = severity
            severity = stored
    try:
        return Draft(etype, severity, {**data, "session_id": session_id}, user=peer.user)
    except ValueError as exc:
        return Refusal(str(exc))

"""What the agent knows of one session's watcher: who registered it, its connection and liveness, what its
last heartbeat said, and how the agent's status shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from boothguard.agent.control import Connection

State = Literal["alive", "missing", "ended"]


@dataclass
class WatcherRecord:
    session_id: str
    uid: int
    user: str
    pid: int
    display: str
    capabilities: list[str]
    missing: dict[str, str]
    conn: Connection | None
    last_heartbeat: float
    registered_at: float
    state: State = "alive"
    idle_seconds: float | None = None
    screensaver_active: bool | None = None
    dropped: int = 0
    events: int = 0
    said_goodbye: bool = False
    missing_since: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def watched_elsewhere(self, conn: Connection) -> bool:
        """A live watcher on another, still open, connection holds the session (a second one is refused)."""
        other = self.conn
        return self.state == "alive" and other is not None and other is not conn and not other.closed.is_set()

    def summary(self, now: float) -> dict[str, Any]:
        """The watcher as the agent's status shows it."""
        return {
            "session_id": self.session_id,
            "user": self.user,
            "display": self.display,
            "state": self.state,
            "alive": self.state == "alive",
            "pid": self.pid,
            "idle_seconds": self.idle_seconds,
            "screensaver_active": self.screensaver_active,
            "last_heartbeat_age_s": round(now - self.last_heartbeat, 1),
            "capabilities": self.capabilities,
            "missing_capabilities": self.missing,
            "events": self.events,
            "dropped": self.dropped,
            "logind_bound": self.extra.get("bound", False),
        }

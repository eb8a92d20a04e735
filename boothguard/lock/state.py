"""The away state of each session, persisted so an away booth is still away after an agent restart."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from boothguard import log
from boothguard.events import format_time

AwayPhase = Literal["locking", "locked", "lock_failed", "unlocked"]
_log = log.get("lock.state")


@dataclass
class AwayRecord:
    session: str
    user: str | None
    source: str
    reason: str
    since: float  # wall clock
    phase: AwayPhase = "locking"
    method: str | None = None

    def summary(self) -> dict[str, Any]:
        """The record as the agent's status shows it."""
        return {
            "session": self.session,
            "user": self.user,
            "source": self.source,
            "reason": self.reason,
            "since": format_time(self.since),
            "phase": self.phase,
            "method": self.method,
        }


class StateStore:
    """One small JSON file, replaced atomically (write, fsync, rename): the away records and the sessions
    whose watcher is missing (an unlock there is answered with a lock, after an agent restart too)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # saves run on worker threads; one writer at a time
        self.watcher_missing: set[str] = set()  # as of the last load

    def load(self) -> dict[str, AwayRecord]:
        self.watcher_missing = set()
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # A corrupt file must not keep the agent down; the loss is logged (fail closed is re-locking,
            # which the next away signal does).
            _log.error("lock_state_unreadable", path=str(self.path), error=str(exc))
            return {}
        missing = raw.get("watcher_missing", []) if isinstance(raw, dict) else []
        self.watcher_missing = (
            {m for m in missing if isinstance(m, str)} if isinstance(missing, list) else set()
        )
        records: dict[str, AwayRecord] = {}
        for item in raw.get("away", []) if isinstance(raw, dict) else []:
            with contextlib.suppress(TypeError, KeyError, ValueError):
                rec = AwayRecord(
                    session=str(item["session"]),
                    user=item.get("user"),
                    source=str(item["source"]),
                    reason=str(item.get("reason", "")),
                    since=float(item["since"]),
                    phase=item.get("phase", "locking"),
                    method=item.get("method"),
                )
                records[rec.session] = rec
        return records

    def save(self, records: dict[str, AwayRecord], watcher_missing: frozenset[str] = frozenset()) -> None:
        with self._lock:
            self._save(records, watcher_missing)

    def _save(self, records: dict[str, AwayRecord], watcher_missing: frozenset[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body = {
            "version": 1,
            "away": [asdict(r) for r in records.values()],
            "watcher_missing": sorted(watcher_missing),
        }
        data = json.dumps(body, sort_keys=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

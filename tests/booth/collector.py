"""Host side of a booth's collector: a real `boothguard collector` process on 127.0.0.1 (SQLite), which the
booth reaches through QEMU's user-mode network as 10.0.2.2 (slirp maps that address to the host's loopback).

The booth enrolls with the secret it reads from the 9p work share; the test reads what was stored straight
from the collector's own database file (read-only), the same rows its API serves.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.collector.proc import CollectorProcess

GUEST_HOST = "10.0.2.2"  # the host's 127.0.0.1 as the slirp guest sees it


@dataclass(frozen=True)
class Stored:
    """What the collector holds for one event type: its ids with their seqs, and the host's chain alerts."""

    ids: Counter[str]
    seq_of: dict[str, int]
    seqs: list[int]
    types: Counter[str]
    chain_alerts: list[dict[str, Any]]


class BoothCollector:
    def __init__(self, work: Path) -> None:
        self.dir = work / "collector"
        self.dir.mkdir()
        self.db = self.dir / "events.db"
        # In the work share so the booth can read it; 0644 because the guest reads it as root over 9p anyway.
        self.secret_file = work / "enroll.secret"
        self.secret_file.write_text(secrets.token_urlsafe(32) + "\n")
        self.proc = CollectorProcess(
            self.dir,
            f"sqlite:///{self.db}",
            self.secret_file,
            log_level="warning",
            silence_check_seconds=3600,
        )

    @property
    def guest_url(self) -> str:
        return f"http://{GUEST_HOST}:{self.proc.port}"

    def start(self) -> BoothCollector:
        self.proc.start(timeout=60)
        return self

    def stop(self) -> int:
        return self.proc.stop()

    def _query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        # Read-only: the collector is the only writer; WAL lets this read beside its commits.
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def host_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT id FROM hosts ORDER BY id")]

    def count(self, event_type: str) -> int:
        return int(self._query("SELECT count(*) FROM events WHERE type = ?", event_type)[0][0])

    def stored(self, event_type: str) -> Stored:
        rows = self._query("SELECT id, seq FROM events WHERE type = ?", event_type)
        every = self._query("SELECT seq, type FROM events ORDER BY seq")
        alerts = self._query(
            "SELECT event_type, title, seq_from, seq_to, data FROM alerts"
            " WHERE event_type LIKE 'collector.chain.%'"
        )
        return Stored(
            ids=Counter(r[0] for r in rows),
            seq_of={r[0]: int(r[1]) for r in rows},
            seqs=[int(r[0]) for r in every],
            types=Counter(r[1] for r in every),
            chain_alerts=[
                {"type": a[0], "title": a[1], "seq_from": a[2], "seq_to": a[3], "data": a[4]} for a in alerts
            ],
        )

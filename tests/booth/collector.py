"""Host side of a booth's collector: a real `boothguard collector` process on 127.0.0.1 (SQLite), which the
booth reaches through QEMU's user-mode network as 10.0.2.2 (slirp maps that address to the host's loopback).

The booth enrolls with the secret it reads from the 9p work share (tests/booth/enroll.py). The scenarios read
what was stored as a user would, through the API (GET /v1/events, /v1/alerts with an admin's session); the
power-cut count reads the collector's own database file (read-only), the same rows, in bulk.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from boothguard.collector import db, users
from tests.collector.proc import CollectorProcess

GUEST_HOST = "10.0.2.2"  # the host's 127.0.0.1 as the slirp guest sees it
ADMIN = ("booth-admin", secrets.token_urlsafe(16))


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
        # The admin a security team would log in as; a session token so each query skips the password hash.
        users.add_user(db.create(f"sqlite:///{self.db}"), *ADMIN[:1], "admin", ADMIN[1], now=time.time())
        r = httpx.post(self.proc.url + "/v1/sessions", auth=ADMIN, timeout=30)
        assert r.status_code == 200, r.text
        self.api = httpx.Client(
            base_url=self.proc.url, headers={"Authorization": f"Bearer {r.json()['token']}"}, timeout=30
        )
        return self

    def _pages(self, path: str, key: str, params: dict[str, str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            r = self.api.get(
                path, params={**params, "limit": "1000", **({"cursor": cursor} if cursor else {})}
            )
            assert r.status_code == 200, r.text
            page = r.json()
            out += page[key]
            if not (cursor := page["next_cursor"]):
                return out

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The stored events (GET /v1/events, all pages), oldest first: exactly the lines the agent sealed."""
        evs = self._pages("/v1/events", "events", {"type": event_type} if event_type else {})
        return sorted(evs, key=lambda e: int(e["seq"]))

    def alerts(self) -> list[dict[str, Any]]:
        """The stored alerts (GET /v1/alerts), newest first."""
        return self._pages("/v1/alerts", "alerts", {})

    def pause(self) -> None:
        """The collector process goes away (a booth's outage); resume() brings it back on the same port."""
        self.proc.stop()

    def resume(self) -> None:
        self.proc.start(timeout=60)

    def stop(self) -> int:
        if hasattr(self, "api"):
            self.api.close()
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

"""Producing real sealed events, and building a collector app against a real database."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from boothguard.collector import db, migrations
from boothguard.collector.alerting import AlertBook
from boothguard.collector.alerts.dispatch import Dispatcher
from boothguard.collector.alerts.rules import AlertRules
from boothguard.collector.alerts.settings import AlertsSection
from boothguard.collector.alerts.throttle import should_notify
from boothguard.collector.app import Services, create_app
from boothguard.collector.settings import CollectorSection
from boothguard.collector.store import Store
from boothguard.events import ZERO_HASH, AgentRef, Draft, HostRef, seal


@dataclass
class FakeAgent:
    """A host's event source: sealed, chained events exactly as the agent's spool makes them."""

    host_id: str
    name: str = "booth-1"
    seq: int = 0
    head: str = ZERO_HASH
    events: list[dict[str, Any]] = field(default_factory=list)

    def emit(self, type_: str = "custom.test", severity: str = "info", data: dict[str, Any] | None = None,
             *, prev_hash: str | None = None, seq: int | None = None,
             user: str | None = None) -> dict[str, Any]:  # fmt: skip
        self.seq = self.seq + 1 if seq is None else seq
        body = seal(
            Draft(type_, severity, data or {}, user),  # type: ignore[arg-type]
            seq=self.seq,
            prev_hash=self.head if prev_hash is None else prev_hash,
            host=HostRef(id=self.host_id, name=self.name),
            agent=AgentRef(version="test"),
            unix=time.time(),
        )
        self.head = body["hash"]
        self.events.append(body)
        return body

    def many(self, n: int, type_: str = "custom.test") -> list[dict[str, Any]]:
        return [self.emit(type_, data={"i": i}) for i in range(n)]


def ndjson(events: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, 1)


class Clock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def settings(**kw: Any) -> CollectorSection:
    base: dict[str, Any] = {"chain_gap_grace_seconds": 0, "database_url": "sqlite://"}
    base.update(kw)
    return CollectorSection(**base)


def make_store(url: str, clock: Clock | None = None, alerts: AlertsSection | None = None, **kw: Any) -> Store:
    engine = db.create(url)
    migrations.migrate(engine)
    section = alerts or AlertsSection()
    book = AlertBook(AlertRules(section), should_notify, section)
    return Store(engine, settings(database_url=url, **kw), book, clock=clock or time.time)


@contextmanager
def client(
    store: Store, secret_file: Path | None = None, alerts: AlertsSection | None = None
) -> Iterator[TestClient]:
    s = store.settings
    if secret_file is not None:
        s = s.model_copy(update={"enroll_secret_file": secret_file})
        store.settings = s
    svc = Services(
        store=store, settings=s, dispatcher=Dispatcher(alerts or AlertsSection()), background=False
    )
    with TestClient(create_app(svc)) as c:
        c.svc = svc  # type: ignore[attr-defined]
        yield c


def enroll(c: TestClient, secret: str, host_id: str, name: str = "booth-1") -> str:
    r = c.post(
        "/v1/enroll",
        json={"host": {"id": host_id, "name": name}},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def post(c: TestClient, token: str, events: Sequence[dict[str, Any]], *, gzipped: bool = True) -> Any:
    body = ndjson(events)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    if gzipped:
        body = gz(body)
        headers["Content-Encoding"] = "gzip"
    return c.post("/v1/events", content=body, headers=headers)

"""The collector's writes, behind one object: enrollment, ingest with chain checks, commands, silence, alerts.

Each job lives in its own module (`hosts_store`, `ingest_write`, `chain_walk`, `command_store`,
`alert_store`); `Store` holds what they share (engine, settings, alert book, clock) and hands itself to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine, RowMapping

from boothguard.collector import alert_store, chain_walk, command_store, hosts_store, ingest_write
from boothguard.collector.alert_store import finding_observation
from boothguard.collector.alerting import AlertBook
from boothguard.collector.alerts.model import Alert
from boothguard.collector.audit import audit, token_hash
from boothguard.collector.chain_walk import WALK_LIMIT
from boothguard.collector.command_store import ACK_STATUSES
from boothguard.collector.host_state import BACKLOG_KEYS, TAMPER_KINDS
from boothguard.collector.hosts_store import silence_reason
from boothguard.collector.ingest import Line, Rejection
from boothguard.collector.ingest_write import IngestResult, UnknownHost
from boothguard.collector.settings import CollectorSection

__all__ = [
    "ACK_STATUSES",
    "BACKLOG_KEYS",
    "TAMPER_KINDS",
    "WALK_LIMIT",
    "IngestResult",
    "Store",
    "UnknownHost",
    "audit",
    "finding_observation",
    "silence_reason",
    "token_hash",
]


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

    _row = staticmethod(ingest_write.row)

    def enroll(self, host_id: str, name: str, labels: list[str] | None = None) -> str:
        """Create the host or rotate its token; the old token stops working at once."""
        return hosts_store.enroll(self, host_id, name, labels or [])

    def authenticate(self, token: str) -> str | None:
        return hosts_store.authenticate(self, token)

    def ingest(self, host_id: str, lines: list[Line], rejections: list[Rejection]) -> IngestResult:
        return ingest_write.ingest(self, host_id, lines, rejections)

    def check_silence(self) -> list[Alert]:
        """Mark hosts silent past their threshold (once, across processes) and raise the observation."""
        return hosts_store.check_silence(self)

    def threshold(self, row: RowMapping) -> float:
        return hosts_store.threshold(self.settings, row)

    def settle_chains(self, on_finding: Callable[[str], None] | None = None) -> list[Alert]:
        """Report holes that outwaited the grace period even if the host sends nothing more."""
        return chain_walk.settle_chains(self, on_finding)

    def add_command(
        self, host_id: str, ctype: str, body: dict[str, Any], actor: str
    ) -> dict[str, Any] | None:
        return command_store.add_command(self, host_id, ctype, body, actor)

    def set_alert_state(self, alert_id: int, state: str, actor: str) -> dict[str, Any] | None:
        """ack: open → acked; resolve: any unresolved → resolved (a repeat then opens a new alert)."""
        return alert_store.set_alert_state(self, alert_id, state, actor)

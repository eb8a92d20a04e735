"""The seam between the collector's ingest/storage and alerting (rules, throttling, channels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from boothguard.events import Severity

AlertState = Literal["open", "acked", "resolved"]


@dataclass(frozen=True)
class Observation:
    """Something alert rules look at: a stored agent event, or a finding of the collector itself.

    Collector findings use types under `collector.`: `collector.chain.gap`, `collector.chain.backwards`,
    `collector.chain.broken_link`, `collector.chain.bad_hash`, `collector.chain.declared_gap`,
    `collector.host.silent` (data: reason, last_type, last_seen, threshold_seconds).
    """

    type: str
    severity: Severity
    host_id: str
    host_name: str
    data: dict[str, Any] = field(default_factory=dict)
    user: str | None = None
    seq_from: int | None = None
    seq_to: int | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class AlertDraft:
    """What a rule produced; the store groups drafts with an open alert of the same group_key."""

    rule: str
    severity: Severity
    title: str
    group_key: str
    channels: tuple[str, ...]
    observation: Observation


@dataclass(frozen=True)
class Alert:
    """An alert as stored (after grouping), handed to the dispatcher to notify channels."""

    id: int
    rule: str
    severity: Severity
    title: str
    group_key: str
    channels: tuple[str, ...]
    host_id: str
    host_name: str
    event_type: str
    state: AlertState
    count: int
    first_seen: str  # RFC 3339
    last_seen: str
    data: dict[str, Any]
    seq_from: int | None = None
    seq_to: int | None = None
    last_notified: str | None = None

"""Shared builders for alert tests."""

from __future__ import annotations

from typing import Any

from boothguard.collector.alerts.model import Alert, Observation
from boothguard.events import Severity


def obs(type_: str, severity: Severity = "info", **kw: Any) -> Observation:
    base: dict[str, Any] = {"host_id": "mid-1", "host_name": "booth-07", "user": "alice"}
    base.update(kw)
    return Observation(type=type_, severity=severity, **base)


def alert(
    id_: int = 1,
    *,
    channels: tuple[str, ...] = (),
    severity: Severity = "high",
    count: int = 1,
    last_notified: str | None = None,
    **kw: Any,
) -> Alert:
    fields: dict[str, Any] = {
        "rule": "usb-blocked",
        "title": "USB device blocked on booth-07",
        "group_key": "host=mid-1|rule=usb-blocked",
        "host_id": "mid-1",
        "host_name": "booth-07",
        "event_type": "usb.device.blocked",
        "state": "open",
        "first_seen": "2024-05-01T09:00:00.000Z",
        "last_seen": "2024-05-01T09:05:00.000Z",
        "data": {"vendor_id": "0781", "product_id": "5581"},
    }
    fields.update(kw)
    return Alert(
        id=id_,
        severity=severity,
        channels=channels,
        count=count,
        last_notified=last_notified,
        **fields,
    )

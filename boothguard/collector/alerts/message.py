"""What a notification says, shared by every channel: one line of text plus structured fields."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from boothguard.collector.alerts.model import Alert


def repeats(alert: Alert) -> int:
    return max(alert.count - 1, 0)


def summary(alert: Alert) -> str:
    """One line: severity, title, and the repeat count when the group fired more than once."""
    text = f"[{alert.severity.upper()}] {alert.title}"
    if (n := repeats(alert)) > 0:
        text += f" ({n} repeat{'s' if n != 1 else ''} since {alert.first_seen})"
    return text


def seq_range(alert: Alert) -> str | None:
    if alert.seq_from is None and alert.seq_to is None:
        return None
    return f"{alert.seq_from}-{alert.seq_to}"


def fields(alert: Alert) -> dict[str, Any]:
    """The structured fields of a notification (also the JSON payload of syslog and webhook)."""
    return {
        "alert_id": alert.id,
        "rule": alert.rule,
        "severity": alert.severity,
        "title": alert.title,
        "state": alert.state,
        "host_id": alert.host_id,
        "host_name": alert.host_name,
        "event_type": alert.event_type,
        "count": alert.count,
        "repeats": repeats(alert),
        "first_seen": alert.first_seen,
        "last_seen": alert.last_seen,
        "seq_from": alert.seq_from,
        "seq_to": alert.seq_to,
        "group_key": alert.group_key,
        "data": alert.data,
    }


def dashboard_link(base_url: str, alert: Alert) -> str | None:
    """The dashboard's alerts inbox filtered to this alert's host and type, scrolled to its row."""
    if not base_url:
        return None
    query = urlencode({"host": alert.host_id, "type": alert.event_type, "state": "all"})
    return f"{base_url.rstrip('/')}/?{query}#alert-{alert.id}"

"""Throttling: the first occurrence of a group notifies; repeats at most once per throttle window."""

from __future__ import annotations

from datetime import UTC, datetime

from boothguard.collector.alerts.model import Alert
from boothguard.collector.alerts.settings import AlertsSection


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def throttle_for(alert: Alert, section: AlertsSection) -> float:
    for rule in section.rules:
        if rule.id == alert.rule and rule.throttle_seconds is not None:
            return rule.throttle_seconds
    return section.throttle_seconds


def should_notify(alert: Alert, now: datetime, section: AlertsSection) -> bool:
    """Whether the collector should submit this (stored, grouped) alert to the dispatcher now.

    The collector records `last_notified = now` on the alert when this returns True and it submitted it.
    """
    if not section.enabled or alert.state == "resolved":
        return False
    if alert.last_notified is None:
        return True
    if alert.state == "acked" and not section.notify_acked_repeats:
        return False
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    elapsed = (now - parse_time(alert.last_notified)).total_seconds()
    return elapsed >= throttle_for(alert, section)

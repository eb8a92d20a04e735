"""Observations → alert rules → grouped, stored alerts → the dispatcher (when throttling allows).

The rules, the throttle and the dispatcher belong to `boothguard.collector.alerts`; this module only
stores what they decide. Grouping runs inside the caller's transaction, so an alert exists exactly when
the events that raised it were stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from boothguard.collector.alerts.conditions import type_matches
from boothguard.collector.alerts.model import Alert, AlertDraft, Observation
from boothguard.collector.alerts.rules import effective_rules
from boothguard.collector.schema import alerts
from boothguard.collector.settings import AlertsSection
from boothguard.events import SEVERITY_RANK, format_time


class Rules(Protocol):
    def match(self, obs: Observation) -> list[AlertDraft]: ...


ShouldNotify = Callable[[Alert, datetime, AlertsSection], bool]


def to_alert(row: Mapping[str, Any] | RowMapping) -> Alert:
    return Alert(
        id=int(row["id"]),
        rule=row["rule"],
        severity=row["severity"],
        title=row["title"],
        group_key=row["group_key"],
        channels=tuple(row["channels"] or ()),
        host_id=row["host_id"],
        host_name=row["host_name"],
        event_type=row["event_type"],
        state=row["state"],
        count=int(row["count"]),
        first_seen=format_time(row["first_seen"]),
        last_seen=format_time(row["last_seen"]),
        data=dict(row["data"] or {}),
        seq_from=row["seq_from"],
        seq_to=row["seq_to"],
        last_notified=format_time(row["last_notified"]) if row["last_notified"] is not None else None,
    )


def _active(conn: Connection, group_key: str) -> RowMapping | None:
    q = (
        sa.select(alerts)
        .where(alerts.c.group_key == group_key, alerts.c.state != "resolved")
        .with_for_update()
    )
    return conn.execute(q).mappings().first()


def _bump(conn: Connection, row: RowMapping, draft: AlertDraft, now: float) -> None:
    obs = draft.observation
    values: dict[str, Any] = {"count": alerts.c.count + 1, "last_seen": now, "data": dict(obs.data)}
    if SEVERITY_RANK[draft.severity] > SEVERITY_RANK[row["severity"]]:
        values["severity"] = draft.severity
    if obs.seq_from is not None and (row["seq_from"] is None or obs.seq_from < row["seq_from"]):
        values["seq_from"] = obs.seq_from
    if obs.seq_to is not None and (row["seq_to"] is None or obs.seq_to > row["seq_to"]):
        values["seq_to"] = obs.seq_to
    conn.execute(sa.update(alerts).where(alerts.c.id == row["id"]).values(**values))


def store_draft(conn: Connection, draft: AlertDraft, now: float) -> int:
    """Group `draft` into the unresolved alert with its group_key, or open a new one; returns its id."""
    obs = draft.observation
    for _attempt in range(3):
        row = _active(conn, draft.group_key)
        if row is not None:
            _bump(conn, row, draft, now)
            return int(row["id"])
        try:
            with conn.begin_nested():
                result = conn.execute(
                    sa.insert(alerts).values(
                        rule=draft.rule,
                        severity=draft.severity,
                        title=draft.title[:512],
                        group_key=draft.group_key[:512],
                        channels=list(draft.channels),
                        host_id=obs.host_id,
                        host_name=obs.host_name,
                        event_type=obs.type,
                        state="open",
                        count=1,
                        first_seen=now,
                        last_seen=now,
                        data=dict(obs.data),
                        user=obs.user,
                        seq_from=obs.seq_from,
                        seq_to=obs.seq_to,
                    )
                )
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])
        except IntegrityError:
            continue  # another process opened it first: group into theirs
    raise RuntimeError(f"cannot store alert group {draft.group_key!r}")


class AlertBook:
    """Stores what the rules make of observations and picks the alerts to notify now."""

    def __init__(self, rules: Rules, should_notify: ShouldNotify, section: AlertsSection) -> None:
        self.rules = rules
        self.should_notify = should_notify
        self.section = section
        # Most events match no rule's type patterns: remember per type (bounded) and skip those.
        self._patterns = [spec.types for spec in effective_rules(section) if spec.enabled]
        self._type_hits: dict[str, bool] = {}

    def may_match(self, event_type: str) -> bool:
        """False when no enabled rule's type patterns take this type (its observation can be skipped)."""
        hit = self._type_hits.get(event_type)
        if hit is None:
            hit = any(type_matches(event_type, patterns) for patterns in self._patterns)
            if len(self._type_hits) < 4096:
                self._type_hits[event_type] = hit
        return hit

    def process(self, conn: Connection, observations: list[Observation], now: float) -> list[Alert]:
        notify: list[Alert] = []
        ids: list[int] = []
        for obs in observations:
            if not self.may_match(obs.type):
                continue
            for draft in self.rules.match(obs):
                ids.append(store_draft(conn, draft, now))
        when = datetime.fromtimestamp(now, UTC)
        for alert_id in dict.fromkeys(ids):
            row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).mappings().one()
            alert = to_alert(row)
            if self.should_notify(alert, when, self.section):
                conn.execute(sa.update(alerts).where(alerts.c.id == alert_id).values(last_notified=now))
                notify.append(to_alert({**dict(row), "last_notified": now}))
        return notify

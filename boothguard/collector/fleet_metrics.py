"""Metrics read at scrape time: open alerts by severity, booths by state, spool backlog (from the host
rows the heartbeats update) and per-channel alert delivery counters (the dispatcher's own counts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from boothguard.collector import db
from boothguard.collector.alerts.dispatch import COUNTERS
from boothguard.collector.schema import alerts, hosts
from boothguard.events import SEVERITY_RANK

ChannelStats = Callable[[], Mapping[str, Mapping[str, int]]]


class FleetCollector(Collector):
    def __init__(self, engine: sa.Engine, channel_stats: ChannelStats | None) -> None:
        self._engine = engine
        self._channel_stats = channel_stats

    def collect(self) -> Iterator[Metric]:
        yield from self._from_database()
        yield from self._deliveries()

    def _from_database(self) -> Iterator[Metric]:
        with db.read(self._engine) as conn:
            open_rows = conn.execute(
                sa.select(alerts.c.severity, sa.func.count())
                .where(alerts.c.state != "resolved")
                .group_by(alerts.c.severity)
            ).all()
            state_rows = conn.execute(sa.select(hosts.c.state, sa.func.count()).group_by(hosts.c.state)).all()
            backlog_sum, backlog_max = conn.execute(
                sa.select(sa.func.sum(hosts.c.spool_backlog), sa.func.max(hosts.c.spool_backlog))
            ).one()
        open_alerts = GaugeMetricFamily(
            "boothguard_collector_alerts_open", "Alerts not resolved, by severity", labels=["severity"]
        )
        counts = dict.fromkeys(SEVERITY_RANK, 0) | {str(s): int(n) for s, n in open_rows}
        for severity, n in counts.items():
            open_alerts.add_metric([severity], n)
        yield open_alerts
        by_state = {str(s): int(n) for s, n in state_rows}
        booths = GaugeMetricFamily(
            "boothguard_collector_hosts", "Enrolled booths, by state", labels=["state"]
        )
        for state in sorted({"new", "online", "silent"} | set(by_state)):
            booths.add_metric([state], by_state.get(state, 0))
        yield booths
        yield GaugeMetricFamily(
            "boothguard_collector_hosts_silent",
            "Booths past their silence threshold",
            value=by_state.get("silent", 0),
        )
        yield GaugeMetricFamily(
            "boothguard_collector_spool_backlog_events",
            "Events waiting in the booths' spools, summed over their last heartbeats",
            value=int(backlog_sum or 0),
        )
        yield GaugeMetricFamily(
            "boothguard_collector_spool_backlog_max_events",
            "The largest spool backlog any booth last reported",
            value=int(backlog_max or 0),
        )

    def _deliveries(self) -> Iterator[Metric]:
        stats = self._channel_stats() if self._channel_stats is not None else {}
        sent = CounterMetricFamily(
            "boothguard_collector_alert_deliveries",
            "Alert deliveries per channel, by outcome",
            labels=["channel", "outcome"],
        )
        queued = GaugeMetricFamily(
            "boothguard_collector_alert_queue", "Alerts queued per channel", labels=["channel"]
        )
        for channel, counts in sorted(stats.items()):
            for outcome in COUNTERS:  # the counts that only grow; "queued" is a depth
                sent.add_metric([channel, outcome], counts.get(outcome, 0))
            queued.add_metric([channel], counts.get("queued", 0))
        yield sent
        yield queued

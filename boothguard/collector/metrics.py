"""Prometheus metrics of one collector process (its own registry, so tests can build several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "boothguard_collector_events", "Events received, by outcome", ["outcome"], registry=r
        )
        self.requests = Counter(
            "boothguard_collector_ingest_requests", "Ingest requests, by HTTP status", ["status"], registry=r
        )
        self.ingest_seconds = Histogram(
            "boothguard_collector_ingest_seconds", "Time to store one ingest batch", registry=r
        )
        self.in_flight = Gauge("boothguard_collector_ingests_in_flight", "Ingests in progress", registry=r)
        self.findings = Counter(
            "boothguard_collector_chain_findings", "Chain findings, by kind", ["kind"], registry=r
        )
        self.alerts_submitted = Counter(
            "boothguard_collector_alerts_submitted", "Alerts handed to the dispatcher", registry=r
        )
        self.alerts_dropped = Counter(
            "boothguard_collector_alerts_dropped", "Alerts the dispatcher had no room for", registry=r
        )
        self.background_errors = Counter(
            "boothguard_collector_background_errors", "Failed background checks", ["task"], registry=r
        )
        # Retention (retention.py): events compacted to skeletons, runs by outcome, time per batch.
        self.retention_compacted = Counter(
            "boothguard_collector_retention_compacted",
            "Events compacted to chain skeletons",
            ["klass"],
            registry=r,
        )
        self.retention_runs = Counter(
            "boothguard_collector_retention_runs", "Retention runs, by outcome", ["outcome"], registry=r
        )
        self.retention_batch_seconds = Histogram(
            "boothguard_collector_retention_batch_seconds",
            "Time of one retention batch transaction",
            registry=r,
        )

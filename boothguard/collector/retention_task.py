"""Retention in the collector's background: a run every `interval_seconds`, in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
from sqlalchemy.engine import Engine

from boothguard import log
from boothguard.collector import retention
from boothguard.collector.metrics import Metrics
from boothguard.collector.retention_settings import RetentionSection

_log = log.get("collector.retention")


def record(metrics: Metrics, report: retention.RunReport) -> None:
    if report.locked_out:
        metrics.retention_runs.labels("locked_out").inc()  # another collector is running it
        return
    metrics.retention_runs.labels("finished" if report.finished else "partial").inc()
    for klass, n in report.compacted.items():
        if n:
            metrics.retention_compacted.labels(klass).inc(n)
    for seconds in report.batch_seconds:
        metrics.retention_batch_seconds.observe(seconds)


async def run_forever(
    engine: Engine, settings: Callable[[], RetentionSection], clock: Callable[[], float], metrics: Metrics
) -> None:
    """`settings` is read before each run, so a SIGHUP reload applies to the next one."""
    while True:
        cfg = settings()
        await asyncio.sleep(cfg.interval_seconds)
        cfg = settings()
        if not cfg.enabled:
            continue
        try:
            report = await anyio.to_thread.run_sync(retention.run, engine, cfg, clock())
        except Exception as exc:
            metrics.background_errors.labels("retention").inc()
            metrics.retention_runs.labels("error").inc()
            _log.error("background_check_failed", task="retention", error=f"{type(exc).__name__}: {exc}")
            continue
        record(metrics, report)

"""Collector ingest rate vs a raw insert of the same rows into the same schema (SQLite and PostgreSQL).

    python tests/bench/bench_ingest.py [--events N]

For each database: the ingest path (NDJSON parse + validation + hash check + duplicate check + chain walk
+ host state + alert rules + commands, one transaction per batch of 500) against a plain executemany
INSERT of the rows that path stores, in one transaction per batch, measured in the same run. Prints JSON;
the ratio is ingest ÷ raw (target >= 0.5; target >= 20,000 events/s on SQLite).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from boothguard.collector import db, migrations
from boothguard.collector.ingest import parse_lines
from boothguard.collector.schema import events
from boothguard.collector.store import Store
from tests.collector import pg
from tests.collector.helpers import FakeAgent, make_store, ndjson

BATCH = 500


def make_batches(n: int) -> list[bytes]:
    agent = FakeAgent("bench-host", "bench")
    kinds = ["usb.device.allowed", "clipboard.copy", "agent.heartbeat", "away.started", "screen.locked"]
    evs = [
        agent.emit(kinds[i % len(kinds)], data={"i": i, "formats": ["text/plain"], "length": 42})
        for i in range(n)
    ]
    return [ndjson(evs[i : i + BATCH]) for i in range(0, n, BATCH)]


def ingest_rate(store: Store, batches: list[bytes]) -> float:
    store.enroll("bench-host", "bench")
    start = time.perf_counter()
    total = 0
    for body in batches:
        lines, rejected = parse_lines(body, max_event_bytes=65536, max_events=5000)
        result = store.ingest("bench-host", lines, rejected)
        assert result.accepted == len(lines)
        assert not result.rejected
        total += result.accepted
    return total / (time.perf_counter() - start)


def raw_rate(url: str, batches: list[bytes]) -> float:
    engine = db.create(url)
    migrations.migrate(engine)
    rows_per_batch: list[list[dict[str, Any]]] = []
    for body in batches:
        lines, _ = parse_lines(body, max_event_bytes=65536, max_events=5000)
        rows_per_batch.append([Store._row("bench-host", line, 0.0) for line in lines])
    start = time.perf_counter()
    total = 0
    for rows in rows_per_batch:
        with db.write(engine) as conn:
            conn.execute(events.insert(), rows)
        total += len(rows)
    rate = total / (time.perf_counter() - start)
    engine.dispose()
    return rate


def measure(name: str, url_for: Any, batches: list[bytes], n: int) -> dict[str, Any]:
    raw = raw_rate(url_for(), batches)
    store = make_store(url_for())
    rate = ingest_rate(store, batches)
    store.engine.dispose()
    return {
        "database": name,
        "events": n,
        "batch": BATCH,
        "ingest_events_per_s": round(rate),
        "raw_insert_events_per_s": round(raw),
        "ratio": round(rate / raw, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    batches = make_batches(args.events)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(1000))
        results.append(
            measure("sqlite", lambda: f"sqlite:///{tmp}/bench-{next(counter)}.db", batches, args.events)
        )
    why = pg.available()
    if why is None:
        cluster = pg.PgCluster().start()
        try:
            results.append(measure("postgresql", cluster.new_database, batches, args.events))
        finally:
            cluster.stop()
    else:
        results.append({"database": "postgresql", "skipped": why})
    print(json.dumps({"bench": "collector_ingest", "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

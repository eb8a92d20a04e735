"""Collector ingest rate vs a raw insert of the same rows into the same schema (SQLite and PostgreSQL).

    python tests/bench/bench_ingest.py [--events N]

For each database: the ingest path (NDJSON parse + validation + hash check + duplicate check + chain walk
+ host state + alert rules + commands, one transaction per batch of 500) against a raw insert of the rows
that path stores, one transaction per batch, measured in the same run. The raw insert is the driver's own
executemany of plain tuples (sqlite3; on PostgreSQL, Core's executemany, which psycopg batches); SQLite also
reports SQLAlchemy Core's executemany of row dicts (`ratio_to_core`), the floor of runs before ingest stored
through the driver itself. Prints JSON; `ratio` is ingest ÷ raw (target >= 0.5; target >= 20,000 events/s
on SQLite). Every path opens its database through `collector.db.create`, so the floors run with the
collector's own PRAGMAs (WAL, synchronous=FULL: one WAL fsync per committed batch); the run checks they
match and prints them.

The process is set up as `boothguard collector` runs: once startup is done its heap is frozen
(`collector.server.settle_heap`), so garbage collections triggered during the run walk only what the run
allocates. The raw path's rows are built untimed, batch by batch (holding all of them would only give every
collection more to walk).

Lines are what the real agent sends: each event's canonical JSON with its hash (the spool stores it so).
SQLite is measured a second time with json.dumps' spaced lines ("lines": "spaced"), the form a client that
re-serializes events would send: those cannot be recognised by comparing bytes, so their keys are counted.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from boothguard.collector import db, migrations
from boothguard.collector.ingest import parse_lines
from boothguard.collector.ingest_write import COLUMNS, SQLITE_INSERT
from boothguard.collector.schema import events
from boothguard.collector.server import settle_heap
from boothguard.collector.store import Store
from boothguard.events import canonical_json
from tests.collector import pg
from tests.collector.helpers import FakeAgent, make_store, ndjson

BATCH = 500


def make_batches(n: int, *, sealed: bool = True) -> list[bytes]:
    """Lines as the agent sends them (each event's canonical JSON, hash included), or, with
    `sealed=False`, as a client that re-serializes them would (json.dumps' spaced form, keys unsorted)."""
    agent = FakeAgent("bench-host", "bench")
    kinds = ["usb.device.allowed", "clipboard.copy", "agent.heartbeat", "away.started", "screen.locked"]
    evs = [
        agent.emit(kinds[i % len(kinds)], data={"i": i, "formats": ["text/plain"], "length": 42})
        for i in range(n)
    ]
    if not sealed:
        return [ndjson(evs[i : i + BATCH]) for i in range(0, n, BATCH)]
    lines = [canonical_json(ev) + b"\n" for ev in evs]
    return [b"".join(lines[i : i + BATCH]) for i in range(0, n, BATCH)]


def pragmas(engine: Any) -> dict[str, Any]:
    if not db.is_sqlite(engine):
        return {}
    with engine.connect() as conn:
        return {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys")
        }


def measure(name: str, url_for: Any, batches: list[bytes], n: int, wire: str = "sealed") -> dict[str, Any]:
    """Batches alternate between the paths, so drift on a busy machine hits each alike.

    Two floors, each in its own database opened like the collector's: the driver's own executemany of plain
    tuples (the raw insert: on SQLite, what ingest itself now calls) and SQLAlchemy Core's executemany of
    row dicts (the floor of earlier runs, kept for comparison). `ratio` is against the raw insert."""
    raw_engine, core_engine = db.create(url_for()), db.create(url_for())
    for engine in (raw_engine, core_engine):
        migrations.migrate(engine)
    store = make_store(url_for())
    same = pragmas(raw_engine)
    assert same == pragmas(store.engine) == pragmas(core_engine), "floors must run with ingest's PRAGMAs"
    store.enroll("bench-host", "bench")
    settle_heap()
    sqlite = db.is_sqlite(raw_engine)
    t_raw = t_core = t_ingest = 0.0
    for body in batches:
        parsed, _ = parse_lines(body, max_event_bytes=65536, max_events=5000)
        rows = [Store._row("bench-host", line, 0.0) for line in parsed]
        tuples = [tuple(r[c] for c in COLUMNS) for r in rows]
        del parsed
        start = time.perf_counter()
        with db.write(raw_engine) as conn:
            if sqlite:
                conn.exec_driver_sql(SQLITE_INSERT, tuples)
            else:
                conn.execute(events.insert(), rows)  # psycopg gets its batched form through Core
        t_raw += time.perf_counter() - start
        start = time.perf_counter()
        with db.write(core_engine) as conn:
            conn.execute(events.insert(), rows)
        t_core += time.perf_counter() - start
        del rows, tuples
        start = time.perf_counter()
        lines, rejected = parse_lines(body, max_event_bytes=65536, max_events=5000)
        result = store.ingest("bench-host", lines, rejected)
        t_ingest += time.perf_counter() - start
        assert result.accepted == len(lines)
        assert not result.rejected
    for engine in (raw_engine, core_engine, store.engine):
        engine.dispose()
    gc.unfreeze()
    return {
        "database": name,
        "lines": wire,
        "events": n,
        "batch": BATCH,
        "ingest_events_per_s": round(n / t_ingest),
        "raw_insert_events_per_s": round(n / t_raw),
        "ratio": round(t_raw / t_ingest, 3),
        **(
            {"core_insert_events_per_s": round(n / t_core), "ratio_to_core": round(t_core / t_ingest, 3)}
            if sqlite
            else {}
        ),
        **({"pragmas": same} if same else {}),
    }


def notify_latency(rounds: int) -> dict[str, Any]:
    """A `high` event POSTed to a real collector process → its webhook channel → a local receiver."""
    import httpx

    from tests.alerts.servers import WebhookReceiver
    from tests.collector.proc import CollectorProcess

    with tempfile.TemporaryDirectory() as tmp, WebhookReceiver() as hook:
        secret = Path(tmp) / "enroll.secret"
        secret.write_text("bench-secret")
        coll = CollectorProcess(Path(tmp), f"sqlite:///{tmp}/n.db", secret, log_level="warning")
        coll.config.write_text(
            coll.config.read_text()
            + "\n[alerts]\nthrottle_seconds = 0\n"
            + f'[alerts.channels.hook]\nkind = "webhook"\nurl = "{hook.url}"\n'
        )
        with coll, httpx.Client(timeout=10) as http:
            token = http.post(
                coll.url + "/v1/enroll",
                json={"host": {"id": "bench-host", "name": "bench"}},
                headers={"Authorization": "Bearer bench-secret"},
            ).json()["token"]
            agent = FakeAgent("bench-host", "bench")
            notify, answer = [], []
            for i in range(rounds):
                body = ndjson(
                    [agent.emit("usb.device.blocked", "high", {"vendor_id": "0781", "product_id": "5567"})]
                )
                t0 = time.perf_counter()
                r = http.post(
                    coll.url + "/v1/events", content=body, headers={"Authorization": f"Bearer {token}"}
                )
                answer.append(time.perf_counter() - t0)
                assert r.json()["accepted"] == 1
                got = hook.wait_for(i + 1, timeout=10)
                notify.append(got[i].at - t0)

    def pct(xs: list[float], q: float) -> float:
        return round(sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1000, 2)

    return {
        "notify_rounds": rounds,
        "ingest_answer_ms": {"p50": pct(answer, 0.5), "p99": pct(answer, 0.99)},
        "ingest_to_webhook_ms": {"p50": pct(notify, 0.5), "p99": pct(notify, 0.99)},
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--notify-rounds", type=int, default=200)
    args = parser.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    batches = make_batches(args.events)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(1000))

        def sqlite_url() -> str:
            return f"sqlite:///{tmp}/bench-{next(counter)}.db"

        results.append(measure("sqlite", sqlite_url, batches, args.events))
        spaced = make_batches(args.events, sealed=False)
        results.append(measure("sqlite", sqlite_url, spaced, args.events, wire="spaced"))
    why = pg.available()
    if why is None:
        cluster = pg.PgCluster().start()
        try:
            results.append(measure("postgresql", cluster.new_database, batches, args.events))
        finally:
            cluster.stop()
    else:
        results.append({"database": "postgresql", "skipped": why})
    latency = notify_latency(args.notify_rounds)
    print(json.dumps({"bench": "collector_ingest", "results": results, "notify": latency}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

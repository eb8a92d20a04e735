"""The booths page, the events search and the timeline on a real PostgreSQL with a big fleet.

    python tests/bench/bench_pg_queries.py [--hosts 10000] [--events 50] [--days 90] [--repeat 15]

Starts a throwaway PostgreSQL cluster, migrates it (v6: `events` partitioned by month), seeds `--hosts`
booths and `--events` million events with generate_series (round-robin over the booths, spread over
`--days`; see tests/collector/pg_seed.py), builds the indexes after the load, VACUUM ANALYZE, then times
each query through the collector's own functions (the ones the dashboard routes and the API call), warm,
`--repeat` times. Prints JSON: per query the median and p95 in ms, the ratio to the floor (a bare
`SELECT 1` round trip through the same engine), whether it is under the 1 s target, and the plan's first
line and the indexes it uses (EXPLAIN).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from boothguard.collector import booths, db, migrations, partitions
from boothguard.collector import queries as api_queries
from boothguard.collector.schema import events, tables
from boothguard.collector.web import queries, reports
from boothguard.collector.web.queries import EventFilter
from boothguard.events import format_time
from tests.collector import pg, pg_seed

TARGET_MS = 1000.0
CHUNK = 1_000_000


def _log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def seed(engine: Engine, n_hosts: int, n_events: int, step: float, now: float) -> dict[str, float]:
    took: dict[str, float] = {}
    with db.write(engine) as conn:
        for month in pg_seed.months_for(n_events, step):
            partitions.create(conn, month)
        for index in events.indexes:  # built once after the load, as a restore would
            conn.execute(sa.text(f"DROP INDEX {index.name}"))
        conn.execute(sa.text("DROP INDEX ix_events_host_seq"))
        pg_seed.seed_hosts(conn, n_hosts, now)
    t0 = time.perf_counter()
    for start in range(1, n_events + 1, CHUNK):
        with db.write(engine) as conn:
            pg_seed.seed_events(conn, n_hosts, min(n_events, start + CHUNK - 1), step=step, start=start)
        _log(f"seeded {min(n_events, start + CHUNK - 1):,} events")
    took["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with db.write(engine) as conn:
        conn.execute(sa.text("SET maintenance_work_mem = '512MB'"))
        conn.execute(sa.text("CREATE INDEX ix_events_host_seq ON events (host_id, seq)"))
        for index in tables().tables["events"].indexes:
            index.create(conn)
            _log(f"index {index.name}")
    took["index_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE events"))
        conn.execute(sa.text("VACUUM ANALYZE hosts"))
    took["vacuum_analyze_s"] = time.perf_counter() - t0
    return took


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    fn()  # warm: plan cache, buffers
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))], 2),
        "max_ms": round(samples[-1], 2),
    }


def index_parents(engine: Engine) -> dict[str, str]:
    """A partition's index → the partitioned index it belongs to (what the plan really uses)."""
    q = sa.text(
        "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relkind = 'I'"
    )
    with db.read(engine) as conn:
        return {str(a): str(b) for a, b in conn.execute(q)}


def plan(engine: Engine, q: sa.Select[Any], parents: dict[str, str]) -> dict[str, Any]:
    sql = str(q.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with db.read(engine) as conn:
        lines = [str(r[0]) for r in conn.execute(sa.text("EXPLAIN " + sql.replace(":", "\\:")))]
    used = set()
    for line in lines:
        words = line.split()
        for i, w in enumerate(words[:-1]):  # "Index [Only] Scan using X", "Bitmap Index Scan on X"
            if w == "using" or (w == "on" and "Bitmap Index Scan" in line):
                used.add(parents.get(words[i + 1], words[i + 1]))
    # A sequential scan of an empty partition (the default one) costs nothing; count the others.
    seq = [x.split(" on ")[-1].split()[0] for x in lines if "Seq Scan on" in x]
    return {"plan": lines[0].strip()[:120], "indexes": sorted(used), "seq_scans": seq}


def cases(
    engine: Engine, now: float, n_hosts: int
) -> list[tuple[str, Callable[[], Any], sa.Select[Any] | None]]:
    silence = booths.Silence(3, 180)

    def board(f: booths.BoothFilter, after: str | None = None) -> Callable[[], Any]:
        return lambda: booths.page(engine, f, now, silence, lambda _r: 180.0, after=after)

    mid = booths.encode_cursor("Floor 3 booth 5000", pg_seed.host_id(5000))
    host = pg_seed.host_id(min(n_hosts, 4242))
    first = queries.search_events(engine, EventFilter())[1]
    since = format_time(now - 7 * 86400)
    out: list[tuple[str, Callable[[], Any], sa.Select[Any] | None]] = []
    boards = {
        "booths_page_first": (booths.BoothFilter(), None),
        "booths_page_deep": (booths.BoothFilter(), mid),
        "booths_search_name": (booths.BoothFilter(q="booth 4242"), None),
        "booths_search_id": (booths.BoothFilter(q=host), None),
        "booths_state_silent": (booths.BoothFilter(state="silent"), None),
        "booths_state_away": (booths.BoothFilter(state="away"), None),
        "booths_state_chain": (booths.BoothFilter(state="chain"), None),
    }
    for name, (bf, after) in boards.items():
        out.append((name, board(bf, after), booths.page_query(bf, now, silence, after=after)))
    searches = {
        "events_search_newest": EventFilter(),
        "events_search_host": EventFilter(host=host),
        "events_search_type_rare": EventFilter(type="usb.blocked"),
        "events_search_type_prefix": EventFilter(type="usb.*"),
        "events_search_user": EventFilter(user="user42"),
        "events_search_host_week": EventFilter(host=host, since=since),
        "events_search_high_severity": EventFilter(severity="high"),
        "events_search_text": EventFilter(text="file-4242.txt"),
    }
    for name, f in searches.items():
        out.append((name, lambda f=f: _search(engine, f), queries.search_query(f)))
    out.append(("events_search_page2", lambda: queries.search_events(engine, EventFilter(), before=first),
                queries.search_query(EventFilter(), before=first)))  # fmt: skip
    for name, f in {
        "timeline_host": EventFilter(host=host),
        "timeline_user": EventFilter(user="user42"),
    }.items():
        tl = queries._event_where(sa.select(events.c.raw), f).order_by(
            events.c.time, events.c.host_id, events.c.seq
        )
        out.append((name, lambda f=f: queries.timeline(engine, f, limit=2000), tl.limit(2001)))
    out.append(("api_events_host", lambda: api_queries.list_events(engine, host=host), None))
    out.append(("api_events_type", lambda: api_queries.list_events(engine, type_="usb.blocked"), None))
    out.append(("events_chart_24h", lambda: reports.events_per_hour(engine, now, 24, UTC), None))
    return out


def _search(engine: Engine, f: EventFilter) -> Any:
    try:
        return queries.search_events(engine, f)
    except api_queries.BadQuery as exc:  # the text search's timeout: counted, shown as such
        return str(exc)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--events", type=float, default=50, help="millions")
    ap.add_argument("--days", type=float, default=90)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--shared-buffers", default="1GB")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()
    # The collector's log lines go to stderr: stdout is the JSON result.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    n_events = int(args.events * 1_000_000)
    step = args.days * 86400 / n_events
    now = pg_seed.BASE + n_events * step
    cluster = pg.PgCluster().start()
    try:
        url = cluster.url()
        admin = db.create(url)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f"ALTER SYSTEM SET shared_buffers = '{args.shared_buffers}'"))
        admin.dispose()
        cluster._as_postgres(
            pg._bin("pg_ctl"),
            "-D",
            str(cluster.data),
            "-l",
            str(cluster.dir / "log"),
            "-w",
            "-t",
            "60",
            "restart",
        )
        engine = db.create(url)
        migrations.migrate(engine)
        t0 = time.perf_counter()
        took = seed(engine, args.hosts, n_events, step, now)
        _log(f"seeded in {time.perf_counter() - t0:.0f}s")
        with db.read(engine) as conn:
            size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
            parts = partitions.existing(conn)

        def floor_q() -> None:
            with db.read(engine) as conn:
                conn.execute(sa.text("SELECT 1")).scalar()

        floor = timed(floor_q, args.repeat * 4)
        results = {}
        parents = index_parents(engine)
        for name, fn, q in cases(engine, now, args.hosts):
            r = timed(fn, args.repeat)
            r["ratio_to_floor"] = round(r["median_ms"] / floor["median_ms"], 1)
            r["under_1s"] = r["p95_ms"] < TARGET_MS
            if q is not None:
                r |= plan(engine, q, parents)
            results[name] = r
            _log(f"{name}: {r['median_ms']} ms")
        result = json.dumps(
            {
                "hosts": args.hosts,
                "events": n_events,
                "days": args.days,
                "partitions": len(parts),
                "database_bytes": int(size or 0),
                "shared_buffers": args.shared_buffers,
                "seed": {k: round(v, 1) for k, v in took.items()},
                "floor_select_1": floor,
                "queries": results,
            },
            indent=2,
        )
        print(result)
        if args.out:
            args.out.write_text(result + "\n")
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

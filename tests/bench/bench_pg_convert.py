"""How long the v6 migration takes to partition an existing populated PostgreSQL database in place.

    python tests/bench/bench_pg_convert.py [--hosts 10000] [--events 2] [--days 45]

Seeds a v4 database (plain `events`, its v4 indexes) with `--events` million events by generate_series,
then times `migrations.migrate` (v5 placeholder + v6: new table partitioned by month, rows copied, indexes
built, the host rows backfilled). Prints JSON with events/s and the database size before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlalchemy as sa
import structlog

from boothguard.collector import db, migrations, partitions
from tests.collector import pg, pg_seed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--events", type=float, default=2, help="millions")
    ap.add_argument("--days", type=float, default=45)
    args = ap.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    n = int(args.events * 1_000_000)
    step = args.days * 86400 / n
    cluster = pg.PgCluster().start()
    try:
        engine = db.create(cluster.url())
        migrations.migrate(engine, target=4)
        with db.write(engine) as conn:
            pg_seed.seed_hosts(conn, args.hosts, pg_seed.BASE + n * step, v4=True)
            pg_seed.seed_events(conn, args.hosts, n, step=step)
        size = "SELECT pg_database_size(current_database())"
        with db.read(engine) as conn:
            before = int(conn.execute(sa.text(size)).scalar() or 0)
        t0 = time.perf_counter()
        migrations.migrate(engine)
        took = time.perf_counter() - t0
        with db.read(engine) as conn:
            after = int(conn.execute(sa.text(size)).scalar() or 0)
            parts = partitions.existing(conn)
            rows = int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar() or 0)
        assert rows == n, (rows, n)
        out = {
            "events": n,
            "hosts": args.hosts,
            "migrate_s": round(took, 1),
            "events_per_s": round(n / took),
            "partitions": sorted(parts),
            "bytes_before": before,
            "bytes_after": after,
        }
        print(json.dumps(out, indent=2))
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

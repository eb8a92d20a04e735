"""EXPLAIN on a real PostgreSQL: the booths page, the events search and the timelines use the v6 indexes
(and no sequential scan of a partition that holds rows). Seeded with generate_series, small N."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from boothguard.collector import booths, db, migrations, partitions
from boothguard.collector.schema import events
from boothguard.collector.web import queries
from boothguard.collector.web.queries import EventFilter
from tests.collector import pg, pg_seed

HOSTS = 2000
EVENTS = 120_000
STEP = 20.0  # seconds between events: the whole set spans about a month
RARE = "usb.storage.detected"


@pytest.fixture(scope="module")
def engine(pg_cluster: pg.PgCluster) -> Iterator[Engine]:
    eng = db.create(pg_cluster.new_database())
    migrations.migrate(eng)
    now = pg_seed.BASE + EVENTS * STEP
    with db.write(eng) as conn:
        for month in pg_seed.months_for(EVENTS, STEP):
            partitions.create(conn, month)
        pg_seed.seed_hosts(conn, HOSTS, now)
        pg_seed.seed_events(conn, HOSTS, EVENTS, step=STEP)
        conn.execute(  # a rare type, 40 events: a search for it must not walk the whole time index
            sa.text("UPDATE events SET type = :t WHERE pk IN (SELECT pk FROM events ORDER BY pk LIMIT 40)"),
            {"t": RARE},
        )
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE events"))
        conn.execute(sa.text("VACUUM ANALYZE hosts"))
    yield eng
    eng.dispose()


def _plan(engine: Engine, q: sa.Select[object]) -> tuple[set[str], list[str]]:
    """The indexes a plan uses (a partition's index named by its partitioned parent) and the partitions
    it reads sequentially."""
    sql = str(q.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with db.read(engine) as conn:
        lines = [str(r[0]) for r in conn.execute(sa.text("EXPLAIN " + sql.replace(":", "\\:")))]
        parents = dict(
            conn.execute(
                sa.text(
                    "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relkind = 'I'"
                )
            ).all()
        )
        empty = {
            name
            for name in partitions.existing(conn)
            if not conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {name})")).scalar()
        }
    used = set()
    for line in lines:
        words = line.split()
        for i, w in enumerate(words[:-1]):  # "Index [Only] Scan using X", "Bitmap Index Scan on X"
            if w == "using" or (w == "on" and "Bitmap Index Scan" in line):
                used.add(parents.get(words[i + 1], words[i + 1]))
    seq = [x.split(" on ")[-1].split()[0] for x in lines if "Seq Scan on" in x]
    return used, [s for s in seq if s not in empty]


def _timeline(f: EventFilter) -> sa.Select[object]:
    q = sa.select(events.c.raw).order_by(events.c.time, events.c.host_id, events.c.seq)
    return queries._event_where(q, f).limit(2001)  # the query queries.timeline runs


@pytest.mark.parametrize(
    ("f", "index"),
    [
        (EventFilter(host=pg_seed.host_id(77)), "ix_events_host_time"),
        (EventFilter(user="user42"), "ix_events_user_time"),
        (EventFilter(type=RARE), "ix_events_type_time"),
        (EventFilter(host=pg_seed.host_id(77), since="2026-01-10T00:00:00.000Z"), "ix_events_host_time"),
    ],
)
def test_events_search_uses_the_index_for_its_filter(engine: Engine, f: EventFilter, index: str) -> None:
    used, seq = _plan(engine, queries.search_query(f))
    assert index in used
    assert seq == []
    rows, _ = queries.search_events(engine, f)
    assert rows  # and it finds something
    times = [r["time"] for r in rows]
    assert times == sorted(times, reverse=True)


def test_events_search_pages_by_time_then_pk(engine: Engine) -> None:
    first, cursor = queries.search_events(engine, EventFilter(host=pg_seed.host_id(5)), limit=25)
    assert cursor is not None
    second, _ = queries.search_events(engine, EventFilter(host=pg_seed.host_id(5)), limit=25, before=cursor)
    assert first[-1]["time"] > second[0]["time"]
    assert not {r["seq"] for r in first} & {r["seq"] for r in second}
    used, seq = _plan(engine, queries.search_query(EventFilter(), before=cursor))
    assert "ix_events_time_type" in used
    assert seq == []


@pytest.mark.parametrize(
    ("f", "index"),
    [
        (EventFilter(host=pg_seed.host_id(9)), "ix_events_host_time"),
        (EventFilter(user="user7"), "ix_events_user_time"),
    ],
)
def test_timeline_uses_the_index(engine: Engine, f: EventFilter, index: str) -> None:
    used, seq = _plan(engine, _timeline(f))
    assert index in used
    assert seq == []


def test_booths_page_reads_hosts_in_name_order_by_index(engine: Engine) -> None:
    silence = booths.Silence(3, 180)
    now = pg_seed.BASE + EVENTS * STEP
    used, seq = _plan(engine, booths.page_query(booths.BoothFilter(), now, silence))
    assert used == {"ix_hosts_name_id"}
    assert seq == []
    cursor = booths.encode_cursor("Floor 3 booth 1000", pg_seed.host_id(1000))
    used, seq = _plan(engine, booths.page_query(booths.BoothFilter(), now, silence, after=cursor))
    assert used == {"ix_hosts_name_id"}
    assert seq == []


def test_events_chart_is_an_index_only_scan(engine: Engine) -> None:
    from boothguard.collector.web import reports

    q = reports.per_hour_query("2026-01-20T00:00:00.000Z")
    sql = str(q.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with db.read(engine) as conn:
        lines = [str(r[0]) for r in conn.execute(sa.text("EXPLAIN " + sql.replace(":", "\\:")))]
    # the default partition is empty here: its Seq Scan reads nothing
    scans = [x for x in lines if "Scan on events_y" in x or "Scan using" in x]
    assert scans
    assert all("Index Only Scan" in x for x in scans), "\n".join(lines)

"""The booths page and the events search in headless Chromium, against a real collector process on a real
PostgreSQL holding a fleet (seeded with generate_series) plus real booths posting sealed events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from boothguard.collector import db
from boothguard.events import Draft
from tests.collector import pg, pg_seed
from tests.dashboard.harness import Agent, Collector, run_collector
from tests.dashboard.test_dashboard import login, shot

pw = pytest.importorskip("playwright.sync_api")
expect = pw.expect
FLEET = 1200  # seeded booths: 24 silent, 60 away, 12 with a chain problem (see pg_seed.seed_hosts)


@pytest.fixture(scope="module")
def pg_collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Collector, str]]:
    why = pg.available()
    if why:
        pytest.skip(f"PostgreSQL cannot run here: {why}")
    cluster = pg.PgCluster().start()
    try:
        url = cluster.new_database()
        with run_collector(tmp_path_factory.mktemp("pgcol"), database_url=url) as col:
            engine = db.create(url)
            with db.write(engine) as conn:
                pg_seed.seed_hosts(conn, FLEET, time.time())
            engine.dispose()
            yield col, url
    finally:
        cluster.stop()


def _ids(page: Any) -> list[str]:
    rows = page.locator("table.hosts tbody tr[data-host-id]")
    return [str(rows.nth(i).get_attribute("data-host-id")) for i in range(rows.count())]


def test_booths_page_pages_searches_and_filters_a_fleet(
    browser: Any, pg_collector: tuple[Collector, str], artifacts: Path
) -> None:
    col, _url = pg_collector
    real = Agent(col.base, "host-real-1", "Zeta booth real").enroll()
    real.send(
        Draft("agent.started", "info", {"usb_mode": "enforce", "version": "0.1.0"}),
        Draft("session.started", "info", {"session": "c1"}, "operator09"),
        Draft("session.watcher_missing", "high", {"session": "c1", "reason": "watcher process gone"}),
        Draft("agent.heartbeat", "info", {"interval_seconds": 60, "spool_depth": 9}),
    )
    away = Agent(col.base, "host-real-2", "Zeta booth away").enroll()
    away.send(Draft("away.started", "info", {"session": "c1"}, "operator10"))
    page = login(browser, col, "vic", locale="en-US")
    page.goto(f"{col.base}/hosts")
    expect(page.locator("#booth-matched")).to_have_text(f"{FLEET + 2} of {FLEET + 2} booths")
    first = _ids(page)
    assert len(first) == 50
    page.click("#booths-next")
    expect(page.locator("#booths-top")).to_be_visible()
    second = _ids(page)
    assert len(second) == 50
    assert not set(first) & set(second)
    assert "after=" in page.url
    shot(page, artifacts, "20-booths-page2")

    # search by name: the real booth, its row filled by ingest (heartbeat, session events)
    page.goto(f"{col.base}/hosts")
    page.fill("#booth-filters input[name=q]", "zeta booth real")
    page.click("#booth-filters button[type=submit]")
    expect(page.locator("#booth-matched")).to_have_text(f"1 of {FLEET + 2} booths")
    row = page.locator("tr[data-host-id='host-real-1']")
    expect(row.locator(".watcher-missing")).to_be_visible()
    expect(row).to_contain_text("watcher process gone")
    expect(row.locator("td.num")).to_have_text("9")  # spool backlog from the heartbeat
    expect(row.locator(".usb-enforce")).to_be_visible()
    # by id
    page.goto(f"{col.base}/hosts?q=booth-00777")
    assert _ids(page) == ["booth-00777"]

    # state filters: counts on the tabs, every row shown in that state
    page.goto(f"{col.base}/hosts")
    expect(page.locator("#booth-states .state-away")).to_have_text("Away (61)")
    page.click("#booth-states .state-away")
    expect(page.locator("#booth-matched")).to_have_text(f"61 of {FLEET + 2} booths")
    ids = _ids(page)
    assert "host-real-2" in ids or len(ids) == 50
    page.click("#booth-states .state-silent")
    expect(page.locator("#booth-matched")).to_have_text(f"24 of {FLEET + 2} booths")
    assert page.locator("table.hosts tbody tr.row-silent").count() == 24
    page.click("#booth-states .state-chain")
    expect(page.locator("#booth-matched")).to_have_text(f"12 of {FLEET + 2} booths")
    assert page.locator("table.hosts tbody .chain-gap").count() == 12
    shot(page, artifacts, "21-booths-chain")
    # a search and a state together
    page.goto(f"{col.base}/hosts?q=Floor+0&state=away")
    assert _ids(page)
    assert all(int(i.split("-")[1]) % 20 == 0 and int(i.split("-")[1]) % 7 == 0 for i in _ids(page))

    # a forged cursor is a clear error page, not a 500
    r = page.goto(f"{col.base}/hosts?after=not-a-cursor")
    assert r.status == 400
    expect(page.locator("main")).to_contain_text("bad cursor")

    # events search: the booth typed by name; newest first; the next page continues by (time, pk)
    page.goto(f"{col.base}/events?host=Zeta+booth+real")
    rows = page.locator("table.events tbody tr[data-event-type]")
    expect(rows).to_have_count(4)
    assert rows.first.get_attribute("data-event-type") == "agent.heartbeat"
    assert page.goto(f"{col.base}/events?before=123").status == 400  # the old pk-only cursor


def test_events_pages_follow_the_cursor(browser: Any, pg_collector: tuple[Collector, str]) -> None:
    col, url = pg_collector
    agent = Agent(col.base, "host-many", "Many events").enroll()
    for _ in range(3):
        agent.send(*[Draft("custom.test", "info", {"i": i}) for i in range(90)])
    page = login(browser, col, "vic", locale="en-US")
    page.goto(f"{col.base}/events?host=host-many")
    rows = page.locator("table.events tbody tr[data-event-type]")
    seqs: list[str] = []
    for _ in range(5):
        expect(rows.first).to_be_visible()
        seqs += [rows.nth(i).locator("td.num").inner_text() for i in range(rows.count())]
        more = page.locator("a.button", has_text="Older events")
        if more.count() == 0:
            break
        more.click()
    assert sorted(seqs, key=int) == [str(i) for i in range(1, 271)]  # every event once
    engine = db.create(url)
    with db.read(engine) as conn:  # stored in a month partition the collector created at startup
        parts = {r[0] for r in conn.execute(sa.text("SELECT DISTINCT tableoid::regclass::text FROM events"))}
    engine.dispose()
    assert parts
    assert "events_default" not in parts

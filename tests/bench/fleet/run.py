"""One fleet run: database, collectors, enrollment, the fleet at its real rate, capacity, floor."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.bench.fleet import cluster, report
from tests.bench.fleet.booths import Booth, host_id, make_fleet, plan, plan_burst
from tests.bench.fleet.load import Load, Stats
from tests.collector import pg
from tests.collector.proc import CollectorProcess

# A real booth: a heartbeat a minute and about one security event a minute.
REAL_EVENTS_PER_DAY = 2 * 86400 / 60


class BadOptions(ValueError):
    pass


@dataclass(frozen=True)
class Options:
    booths: int = 1000
    collectors: int = 1
    db: str = "pg"  # "pg" | "sqlite"
    seconds: float = 300.0
    beat: float = 60.0  # heartbeat interval (60 s is real time; smaller compresses the run)
    stop_fraction: float = 0.01
    reconnect_fraction: float = 0.01
    backlog: int = 200  # extra events a reconnecting booth made while its network was out
    capacity_seconds: float = 10.0
    capacity_booths: int = 6  # per collector: under max_concurrent_ingests (8), so capacity is not 503s
    max_concurrent_ingests: int | None = None  # None: the collector's default
    seed: int = 1

    @property
    def threshold(self) -> float:
        return 3 * self.beat  # silence_heartbeats = 3 x the interval the heartbeats report

    @property
    def check(self) -> float:
        return min(15.0, max(0.5, self.beat / 4))

    @property
    def min_seconds(self) -> float:
        # stopped booths stop within [beat, 1.25 beat], then are due an alert a threshold and a check later
        return 1.5 * self.beat + self.threshold + 2 * self.check

    def validate(self) -> None:
        if self.db not in ("pg", "sqlite"):
            raise BadOptions(f"--db must be pg or sqlite, not {self.db!r}")
        if not 1 <= self.booths <= 50_000:
            raise BadOptions("--booths must be within 1..50000")
        if not 1 <= self.collectors <= 4:
            raise BadOptions("--collectors must be within 1..4")
        if self.db == "sqlite" and self.collectors > 1:
            raise BadOptions("several collectors share PostgreSQL only (--db pg)")
        if not 0.5 <= self.beat <= 600:
            raise BadOptions("--beat must be within 0.5..600 s")
        if not self.min_seconds <= self.seconds <= 3600:
            raise BadOptions(
                f"--seconds must be within {self.min_seconds:g}..3600: a booth stopped at 1.25 x beat "
                f"must be alerted silent (threshold {self.threshold:g} s, every {self.check:g} s) in the run"
            )


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 1)


def _latency(s: Stats) -> dict[str, Any]:
    return {k: _pct(s.latencies, q) for k, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))}


def _http(s: Stats, seconds: float) -> dict[str, Any]:
    return {
        "requests": s.requests,
        "requests_per_s": round(s.requests / seconds, 1),
        "latency_ms": _latency(s),
        "statuses": {str(k): v for k, v in sorted(s.statuses.items())},
        "http_5xx": sum(v for k, v in s.statuses.items() if k >= 500),
        "transport_errors": dict(s.transport_errors),
        "problems": dict(s.problems),
        "max_in_flight": s.max_in_flight,
        "largest_batch_events": s.largest_batch,
    }


def _assign(fleet: list[Booth], o: Options, rng: random.Random) -> None:
    for b in fleet:
        if b.role == "stops":
            b.stop_at = rng.uniform(o.beat, 1.25 * o.beat)
        elif b.role == "reconnects":
            outage = 1.5 * o.beat  # under the threshold: the booth must not be called silent
            lo = 0.5 * o.beat
            t = rng.uniform(lo, max(lo, o.seconds - outage - o.beat))
            b.away = (t, t + outage)


def _burst_fleet(o: Options, first: int, rng: random.Random) -> list[Booth]:
    fleet = make_fleet(
        o.capacity_booths * o.collectors,
        collectors=o.collectors,
        stop_fraction=0,
        reconnect_fraction=0,
        rng=rng,
    )
    for b in fleet:  # ids after the fleet's
        b.index += first
        b.host = b.host.model_copy(update={"id": host_id(b.index), "name": f"burst-{b.index:05d}"})
    return fleet


def run(o: Options, tmp: Path) -> dict[str, Any]:
    o.validate()
    rng = random.Random(o.seed)
    cluster_pg: cluster.DurablePg | None = None
    if o.db == "pg":
        why = pg.available()
        if why is not None:
            raise BadOptions(f"PostgreSQL cannot run here: {why}")
        cluster_pg = cluster.DurablePg().start()
        url = cluster_pg.new_database()
    else:
        url = f"sqlite:///{tmp}/fleet.db"
    try:
        colls = cluster.start_collectors(
            tmp, url, o.collectors, threshold=o.threshold, check=o.check, grace=min(60.0, o.beat),
            max_concurrent_ingests=o.max_concurrent_ingests,
        )  # fmt: skip
        try:
            return _run(o, url, colls, cluster_pg, rng)
        finally:
            for c in colls:
                c.stop()
    finally:
        if cluster_pg is not None:
            cluster_pg.stop()


def _run(
    o: Options,
    url: str,
    colls: list[CollectorProcess],
    cluster_pg: cluster.DurablePg | None,
    rng: random.Random,
) -> dict[str, Any]:
    fleet = make_fleet(o.booths, collectors=o.collectors, stop_fraction=o.stop_fraction,
                       reconnect_fraction=o.reconnect_fraction, rng=rng)  # fmt: skip
    burst = _burst_fleet(o, o.booths, rng)
    t_enroll = time.monotonic()
    asyncio.run(cluster.enroll(fleet + burst, [c.url for c in colls]))
    enroll_s = time.monotonic() - t_enroll
    _assign(fleet, o, rng)
    start = time.time() + 1.0
    for b in fleet:
        plan(b, start=start, seconds=o.seconds, beat=o.beat, backlog=o.backlog, rng=rng)
    base_bytes = report.storage_bytes(url)
    coll_procs = [psutil.Process(c.proc.pid) for c in colls if c.proc is not None]
    pg_procs = cluster_pg.processes() if cluster_pg else []
    me = psutil.Process()
    load_before = os.getloadavg()
    cpu0 = (cluster.cpu_seconds(coll_procs), cluster.cpu_seconds(pg_procs), cluster.cpu_seconds([me]))
    time.sleep(max(0.0, start - time.time()))
    load = Load([c.port for c in colls], seconds=o.seconds, drain_seconds=min(60.0, o.beat), rng=rng)
    t_load = time.monotonic()
    stats = asyncio.run(load.run(fleet))
    elapsed = time.monotonic() - t_load
    pg_procs = cluster_pg.processes() if cluster_pg else []  # backends come and go
    cpu1 = (cluster.cpu_seconds(coll_procs), cluster.cpu_seconds(pg_procs), cluster.cpu_seconds([me]))
    load_after = os.getloadavg()
    alerts, hosts = report.alerts_and_hosts(url)  # before the fleet's own silence after the run
    # The capacity burst's CPU per request: on a shared machine the figure that survives other load.
    pg_procs = cluster_pg.processes() if cluster_pg else []
    cap0 = (cluster.cpu_seconds(coll_procs), cluster.cpu_seconds(pg_procs))
    capacity = _closed_loop([c.port for c in colls], burst, o, rng)
    cap1 = (cluster.cpu_seconds(coll_procs), cluster.cpu_seconds(pg_procs))
    per_request = [
        round((b - a) / max(1, capacity.requests) * 1000, 2) for a, b in zip(cap0, cap1, strict=True)
    ]
    floor_fleet = _burst_fleet(o, o.booths, rng)
    for b in floor_fleet:
        b.collector = 0
    with cluster.FloorServer() as floor:
        floor_stats = _closed_loop([floor.port], floor_fleet, o, rng, plan_first=True)
    stored = report.exactly_once(url, fleet + burst)
    end_bytes = report.storage_bytes(url)
    try:
        classes = report.by_class(url)
    except Exception as exc:  # a figure, not a check: report what went wrong and keep the run's results
        classes = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    per_event = (end_bytes - base_bytes) / max(1, stored["stored"])
    thousands = o.booths / 1000
    coll_cpu, pg_cpu, gen_cpu = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    return {
        "bench": "fleet",
        "booths": o.booths,
        "collectors": o.collectors,
        "max_concurrent_ingests": o.max_concurrent_ingests,
        "database": "postgresql" if o.db == "pg" else "sqlite",
        "seconds": o.seconds,
        "beat_seconds": o.beat,
        "silence_threshold_seconds": o.threshold,
        "enroll_seconds": round(enroll_s, 1),
        "loadavg": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "offered_requests_per_s": round(o.booths * 2 / o.beat, 1),
        "fleet": _http(stats, elapsed),
        "silence": report.silence(alerts, hosts, fleet, o.threshold),
        "chain": report.chain(alerts, hosts),
        "exactly_once": stored,
        "cpu": {
            "collector_cores": round(coll_cpu / elapsed, 3),
            "collector_cores_per_1000_booths": round(coll_cpu / elapsed / thousands, 3),
            "postgresql_cores": round(pg_cpu / elapsed, 3) if cluster_pg else None,
            "simulator_cores": round(gen_cpu / elapsed, 3),
        },
        "storage": {
            "bytes_per_event": round(per_event),
            "bytes_per_booth_per_day": round(per_event * REAL_EVENTS_PER_DAY),
            "bytes_per_booth_year_no_retention": round(per_event * REAL_EVENTS_PER_DAY * 365),
            "bytes_per_event_by_class": classes,
            **(
                {"bytes_per_booth_year_heartbeats_skeleton_after_7_days": _year(classes)}
                if classes and "error" not in classes
                else {}
            ),
        },
        "capacity": {
            **_http(capacity, o.capacity_seconds),
            "floor_requests_per_s": round(floor_stats.requests / o.capacity_seconds, 1),
            "ratio": round(capacity.requests / max(1, floor_stats.requests), 3),
            "booths_held_at_2_requests_per_min": round(capacity.requests / o.capacity_seconds * 30),
            "collector_cpu_ms_per_request": per_request[0],
            "postgresql_cpu_ms_per_request": per_request[1] if cluster_pg else None,
            # a core's worth of booths at 2 requests a minute, collector (and PostgreSQL) CPU only
            "booths_per_core": round(60_000 / 2 / max(0.01, per_request[0] + per_request[1])),
        },
    }


def _year(b: dict[str, Any]) -> int:
    """A booth-year if heartbeats were compacted to skeletons after 7 days and security events kept."""
    per_day = REAL_EVENTS_PER_DAY / 2  # of each class
    return round(
        per_day * (365 * b["security_event"] + 7 * b["heartbeat"] + 358 * b["heartbeat_as_skeleton"])
    )


def _closed_loop(
    ports: list[int], fleet: list[Booth], o: Options, rng: random.Random, *, plan_first: bool = True
) -> Stats:
    """As many one-event requests as the server answers, one in flight per booth, for capacity_seconds."""
    for b in fleet:
        if plan_first and not b.planned:
            plan_burst(b, 2000, start=time.time())
    load = Load(ports, seconds=o.capacity_seconds, drain_seconds=0.0, batch_max=1, rng=rng)
    return asyncio.run(load.run(fleet))


def temp_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="bg-fleet-")

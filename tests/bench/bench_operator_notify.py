"""Showing one operator notification against dbusmock's notification_daemon on a private session bus.

- floor: a bare jeepney round trip (GetServerInformation) on a connection opened for the call, as the
  presenter does (one short-lived connection per notification);
- presenter: catalog render + Notify through `Presenter.present` (what the watcher does per push);
- grouping: `Grouper.add` + `due` for a burst of 20 items (pure CPU).

    .venv/bin/python -m tests.bench.bench_operator_notify [--rounds N]

Rounds alternate floor and presenter so machine drift hits both alike. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time

import structlog
from jeepney import DBusAddress, new_method_call
from jeepney.io.asyncio import open_dbus_router

from boothguard.notify.grouping import Grouper
from boothguard.notify.presenter import Presenter
from tests.notify.bus import SessionBus


async def floor(address: str) -> float:
    t0 = time.perf_counter()
    msg = new_method_call(
        DBusAddress(
            "/org/freedesktop/Notifications",
            bus_name="org.freedesktop.Notifications",
            interface="org.freedesktop.Notifications",
        ),
        "GetServerInformation",
    )
    async with open_dbus_router(bus=address) as router:
        await router.send_and_get_reply(msg)
    return time.perf_counter() - t0


async def present(p: Presenter) -> float:
    t0 = time.perf_counter()
    answer = await p.present("usb_blocked", {"device": "Cruzer Blade", "rule": "block-mass-storage"})
    assert answer["shown"] is True
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    bus = SessionBus()
    try:
        p = Presenter({"DBUS_SESSION_BUS_ADDRESS": bus.address, "LANG": "ja_JP.UTF-8"})

        async def run() -> tuple[list[float], list[float]]:
            f, s = [], []
            for _ in range(args.rounds):
                f.append(await floor(bus.address))
                s.append(await present(p))
            return f, s

        f, s = asyncio.run(run())
    finally:
        bus.close()
    g = Grouper()
    t0 = time.perf_counter()
    n = 2000
    for i in range(n):
        for j in range(20):
            g.add("usb_blocked", None, {"device": "x"}, i * 100.0 + j * 0.01)
        assert g.due(i * 100.0 + 50)[0].count == 20
    group_us = (time.perf_counter() - t0) / n * 1e6
    out = {
        "rounds": args.rounds,
        "floor_ms": {"p50": pct(f, 0.5), "p99": pct(f, 0.99)},
        "presenter_ms": {"p50": pct(s, 0.5), "p99": pct(s, 0.99)},
        "presenter_over_floor_p50": round(statistics.median(s) / statistics.median(f), 2),
        "group_burst_of_20_us": round(group_us, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Away → lock latency against dbusmock's logind on a private system bus, p50/p99, in one run:

- floor: a bare D-Bus round trip (Peer.Ping to org.freedesktop.login1) from a separate jeepney connection;
- away → LockSession: the `away` request written to the real control socket → the session's `Lock` signal
  (emitted by logind's LockSession handler) seen by an independent bus subscriber. This contains the
  control-socket hop, the agent's work and one D-Bus call, so it is compared with the floor;
- in-agent signal → LockSession sent (from the event's own timings);
- LockedHint observed → `screen.locked` committed to the real spool (SQLite, durable).

    .venv/bin/python -m tests.bench.bench_lock [--rounds N]

Rounds alternate floor and away measurements so machine drift hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
from jeepney import DBusAddress, MatchRule, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.asyncio import DBusRouter, open_dbus_connection

from boothguard.agent.control import ControlServer
from boothguard.agent.plugin import AgentContext
from boothguard.config import AgentConfig
from boothguard.events import AgentRef, Draft, HostRef
from boothguard.lock.plugin import LockPlugin
from boothguard.spool.spool import Spool
from boothguard.spool.writer import SpoolWriter
from tests.lock.mocklogind import MockLogind


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in seconds]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 0.5), 3), "p99_ms": round(percentile(ms, 0.99), 3)}


class SpoolEmitter:
    def __init__(self, writer: SpoolWriter) -> None:
        self.writer = writer
        self.ended = asyncio.Event()

    async def emit(self, draft: Draft) -> None:
        await self.writer.emit(draft)
        if draft.type == "away.ended":
            self.ended.set()

    def try_emit(self, draft: Draft) -> bool:
        return self.writer.try_emit(draft)


async def run(rounds: int) -> dict[str, Any]:
    mock = MockLogind()
    tmp = Path(tempfile.mkdtemp(prefix="bench-lock-"))
    try:
        mock.add_session("c1")
        config = AgentConfig(
            agent={"state_dir": tmp / "state", "runtime_dir": tmp / "run"},
            lock={"bus_address": mock.address, "verify_seconds": 2, "refresh_seconds": 60},
        )
        spool = Spool(
            tmp / "spool.db",
            host=HostRef(id="bench", name="bench"),
            agent=AgentRef(version="0"),
            max_bytes=1 << 28,
        )
        writer = SpoolWriter(spool)
        await writer.start()
        emitter = SpoolEmitter(writer)
        control = ControlServer(config.socket_path, "boothguard")
        await control.start()
        ctx = AgentContext(config, emitter, control, time.time, time.monotonic)
        plugin = LockPlugin(config)
        await plugin.start(ctx)
        assert plugin.controller is not None

        # an independent observer on the same bus: logind's Lock signals, and the Ping floor
        conn = await open_dbus_connection(mock.address)
        router = DBusRouter(conn)
        rule = MatchRule(type="signal", interface="org.freedesktop.login1.Session", member="Lock")
        await router.send_and_get_reply(message_bus.AddMatch(rule))
        locks: asyncio.Queue[float] = asyncio.Queue()
        handle = router.filter(rule, queue=asyncio.Queue(1000))
        ping = new_method_call(
            DBusAddress("/org/freedesktop/login1", "org.freedesktop.login1", "org.freedesktop.DBus.Peer"),
            "Ping",
        )

        async def watch() -> None:
            while True:
                await handle.queue.get()
                await locks.put(time.perf_counter())

        watcher = asyncio.create_task(watch())
        reader, wr = await asyncio.open_unix_connection(str(config.socket_path))

        floor: list[float] = []
        away: list[float] = []
        in_agent: list[float] = []
        commit: list[float] = []
        for i in range(rounds + 10):
            t = time.perf_counter()
            await router.send_and_get_reply(ping)
            rt = time.perf_counter() - t

            emitter.ended.clear()
            t0 = time.perf_counter()
            wr.write(json.dumps({"op": "away", "session": "c1", "reason": "bench"}).encode() + b"\n")
            await wr.drain()
            t_lock = await asyncio.wait_for(locks.get(), 5)
            reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
            assert reply["ok"], reply
            last = plugin.controller.last_verified_emit
            assert last is not None
            rows = await writer.call(spool.stats)
            assert rows.head_seq > 0
            # unlock for the next round (the operator returns)
            await asyncio.to_thread(mock.set_locked, "c1", False)
            await asyncio.wait_for(emitter.ended.wait(), 5)
            if i < 10:
                continue  # warm-up
            floor.append(rt)
            away.append(t_lock - t0)
            commit.append(last[1] - last[0])
            timing = plugin.controller.last_attempt_timings
            in_agent.append((timing or 0.0) / 1000)

        watcher.cancel()
        handle.close()
        wr.close()
        await plugin.stop()
        await control.stop()
        await writer.stop()
        await router.__aexit__(None, None, None)
        await conn.close()
        f, a = summary(floor), summary(away)
        return {
            "bench": "lock",
            "rounds": rounds,
            "floor_dbus_roundtrip": f,
            "away_to_locksession": a,
            "in_agent_signal_to_request": summary(in_agent),
            "lockedhint_to_screen_locked_committed": summary(commit),
            "ratio_p99": round(a["p99_ms"] / f["p99_ms"], 2),
            "ratio_p50": round(a["p50_ms"] / f["p50_ms"], 2),
            "targets": {"ratio_p99_max": 5.0, "away_p99_ms_max": 20.0},
            "pass": a["p99_ms"] / f["p99_ms"] <= 5.0 and a["p99_ms"] <= 20.0,
        }
    finally:
        mock.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(json.dumps(asyncio.run(run(args.rounds)), indent=2))


if __name__ == "__main__":
    main()

"""Decision latency of the USB guard: uevent -> `authorized` written, in the umockdev harness, divided by the
latency of a bare pyudev callback listening to the same uevents in the same run.

    umockdev-wrapper .venv/bin/python tests/bench/bench_usb.py [N]   (re-executes itself under the wrapper)

Both listeners (the real agent daemon, and a bare pyudev monitor driven by asyncio the same way) run as
subprocesses and receive the same uevents; times are CLOCK_MONOTONIC, shared by all processes. The
agent's time is taken right after its `authorized` write (its `mono` log field). Prints JSON.
Targets: median ratio <= 3, agent p99 <= 2 ms.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BARE = """
import asyncio, time, pyudev
ctx = pyudev.Context()
mon = pyudev.Monitor.from_netlink(ctx, source="udev")
mon.filter_by("usb")
mon.filter_by("block")
mon.start()
loop = asyncio.new_event_loop()
def ready():
    while (d := mon.poll(timeout=0)) is not None:
        if d.action == "add" and d.device_type == "usb_device":
            print(d.sys_name, time.monotonic(), flush=True)
loop.add_reader(mon.fileno(), ready)
print("ready", flush=True)
loop.run_forever()
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(n: int) -> dict[str, object]:
    sys.path.insert(0, str(REPO))
    from tests.usb import descbuild as d
    from tests.usb import umock

    bed = umock.Bed()
    bus = bed.add_bus(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-usb-"))
    agent = umock.Agent(bed, tmp)
    agent.start()
    env = dict(os.environ, UMOCKDEV_DIR=str(bed.root))
    bare = subprocess.Popen([sys.executable, "-c", BARE], stdout=subprocess.PIPE, text=True, env=env)
    assert bare.stdout is not None
    bare_times: dict[str, float] = {}
    bare_ready = threading.Event()

    def read_bare() -> None:
        assert bare.stdout is not None
        for line in bare.stdout:
            if line.strip() == "ready":
                bare_ready.set()
                continue
            name, t = line.split()
            bare_times[name] = float(t)

    threading.Thread(target=read_bare, daemon=True).start()
    bare_ready.wait(10)
    agent_ms: list[float] = []
    bare_ms: list[float] = []
    try:
        for i in range(n):
            port = f"1-{i % 8 + 1}.{i // 8 + 1}"
            classes = [d.KEYBOARD] if i % 2 == 0 else [d.STORAGE]
            seen = len(agent.lines)
            path = bed.plug(bus, port, 0x046D, 0xC31C + i % 2, classes, emit=False)
            t0 = time.monotonic()
            bed.tb.uevent(path, "add")
            deadline = time.monotonic() + 10
            mono = None
            while time.monotonic() < deadline and (mono is None or port not in bare_times):
                for line in agent.lines[seen:]:
                    if f'"port": "{port}"' in line and '"mono"' in line:
                        mono = json.loads(line)["mono"]
                time.sleep(0.0005)
            if mono is None or port not in bare_times:
                raise RuntimeError(f"no decision for {port}")
            agent_ms.append((mono - t0) * 1000)
            bare_ms.append((bare_times[port] - t0) * 1000)
            bed.unplug(path)
            time.sleep(0.02)  # let the previous event's spool commit finish: isolated insertions
    finally:
        bare.terminate()
        bare.wait(5)
        agent.stop()
    ratio = statistics.median(agent_ms) / statistics.median(bare_ms)
    return {
        "benchmark": "usb_decision_latency",
        "n": n,
        "agent_ms": {
            "median": round(statistics.median(agent_ms), 3),
            "p95": round(pct(agent_ms, 0.95), 3),
            "p99": round(pct(agent_ms, 0.99), 3),
            "max": round(max(agent_ms), 3),
        },
        "bare_pyudev_ms": {
            "median": round(statistics.median(bare_ms), 3),
            "p95": round(pct(bare_ms, 0.95), 3),
            "p99": round(pct(bare_ms, 0.99), 3),
        },
        "ratio_median": round(ratio, 2),
        "ratio_p99": round(pct(agent_ms, 0.99) / pct(bare_ms, 0.99), 2),
        "targets": {"ratio_median_max": 3.0, "agent_p99_ms_max": 2.0},
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "ok": ratio <= 3.0 and pct(agent_ms, 0.99) <= 2.0,
    }


if __name__ == "__main__":
    if "umockdev" not in os.environ.get("LD_PRELOAD", ""):
        os.execvp("umockdev-wrapper", ["umockdev-wrapper", sys.executable, *sys.argv])
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300), indent=2))

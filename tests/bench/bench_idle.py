"""Idle agent: RSS and CPU share of one core over a window (targets: RSS ≤ 48 MB, CPU ≤ 0.2 %).

    .venv/bin/python -m tests.bench.bench_idle [--seconds 60] [--python /path/to/runtime-venv/bin/python]

`--python` runs the agent and both floors on another interpreter, e.g. a venv with only the runtime
dependencies (`pip install -e .`, no test extras): this checkout's test venv has rich (schemathesis
needs it), which `import structlog` then loads (about 4.5 MB), and an installed agent does not have.

The agent ships to a real HTTP receiver on loopback (an idle booth still sends heartbeats). Two floors in
the same run: a bare `python -c "import time; time.sleep(…)"` process, and the *library floor* — a process
that loads only the libraries the agent runs on (asyncio, sqlite3 with the spool's WAL file, pydantic with a
pydantic-settings model validated, h11, ISA-L, jeepney, structlog, ctypes) and no boothguard code at all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.helpers.agent import AgentProcess
from tests.helpers.receiver import Receiver

LIBRARY_FLOOR = """
import asyncio, ctypes, sqlite3, sys, tempfile, time
import h11, isal.igzip, jeepney, structlog
from pydantic import BaseModel
from pydantic_settings import BaseSettings

class Section(BaseModel):
    name: str = "x"
    seconds: float = 1.0

class Settings(BaseSettings):
    section: Section = Section()

Settings(section={"name": "booth"})
db = sqlite3.connect(tempfile.mktemp())
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, body BLOB)")
db.commit()
asyncio.run(asyncio.sleep(float(sys.argv[1])))
"""


def sample(proc: psutil.Process, seconds: float) -> tuple[float, float]:
    cpu0 = proc.cpu_times()
    time.sleep(seconds)
    cpu1 = proc.cpu_times()
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return proc.memory_info().rss / 1e6, 100 * used / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--python", default=sys.executable, help="interpreter for the agent and the floors")
    args = ap.parse_args()
    bare = subprocess.Popen([args.python, "-c", f"import time; time.sleep({args.seconds + 30})"])
    libraries = subprocess.Popen([args.python, "-c", LIBRARY_FLOOR, str(args.seconds + 30)])
    receiver = Receiver().start()
    tmp = Path(tempfile.mkdtemp(prefix="bg-idle-"))
    token = tmp / "token"
    token.write_text(receiver.token)
    sections = {
        "agent": {"heartbeat_seconds": 60},
        "ship": {"collector_url": receiver.url, "token_file": str(token)},
    }
    agent = AgentProcess(tmp, sections)
    agent.python = args.python
    agent.start()
    assert agent.proc is not None
    time.sleep(2)  # let start-up settle
    rss, cpu = sample(psutil.Process(agent.proc.pid), args.seconds)
    bare_rss = psutil.Process(bare.pid).memory_info().rss / 1e6
    floor_rss = psutil.Process(libraries.pid).memory_info().rss / 1e6
    agent.stop()
    receiver.stop()
    bare.kill()
    libraries.kill()
    print(
        json.dumps(
            {
                "benchmark": "agent_idle",
                "seconds": args.seconds,
                "python": args.python,
                "rss_mb": round(rss, 1),
                "cpu_percent_of_core": round(cpu, 3),
                "bare_python_rss_mb": round(bare_rss, 1),
                "rss_ratio_to_bare_python": round(rss / bare_rss, 2),
                "library_floor_rss_mb": round(floor_rss, 1),
                "rss_ratio_to_library_floor": round(rss / floor_rss, 2),
                "boothguard_over_library_floor_mb": round(rss - floor_rss, 1),
                "targets": {"rss_mb": 48, "cpu_percent": 0.2},
                "shipped_events": len(receiver.stored),
                "note": "usb.mode=off, shipping to a receiver: the pipeline and the default plugins",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

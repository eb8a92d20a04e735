"""Runs inside the booth (started by booth-driver.service, from the host's 9p share): a lock-step protocol
with the host harness over /dev/ttyS1, and the raw-netlink oracle running for the whole boot.

Host → guest: "SH <json argv-or-shell>", "CHECK <kind>", "EVENTS", "DONE". Guest → host: "READY <json>",
"RESULT <json>", "BYE". Standard library only (the booth's own python3), plus tests/qemu/guest.py copied in.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import tty
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import qguest

SPOOL = Path("/var/lib/boothguard/spool.db")
# QEMU's usb-mtp (the host's "phone" plug): CHECK phone waits for it, then as for a stick (nothing may bind).
qguest.IDS.setdefault("phone", ("46f4", "0004"))


class InstalledAgent:
    """The agent the .deb runs under the shipped unit: its events are its spool's."""

    def events(self) -> list[dict[str, Any]]:
        if not SPOOL.exists():
            return []
        con = sqlite3.connect(f"file:{SPOOL}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("SELECT seq, body FROM events ORDER BY seq").fetchall()
            return [{**json.loads(body), "_seq": seq} for seq, body in rows]
        finally:
            con.close()


def sh(script: str, timeout: float) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", script],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/mnt/work",
        )
    except subprocess.TimeoutExpired as exc:
        return {"rc": None, "out": str(exc)}
    return {"rc": proc.returncode, "out": (proc.stdout + proc.stderr)[-6000:]}


def main(work: Path) -> int:
    ctl = open("/dev/ttyS1", "r+b", buffering=0)  # noqa: SIM115 - the control channel for the whole run
    tty.setraw(ctl.fileno())

    def send(line: str) -> None:
        ctl.write(line.encode() + b"\n")

    oracle = qguest.Oracle()
    oracle.start()
    known: set[str] = set()
    agent = InstalledAgent()
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    send("READY " + json.dumps({"uptime": uptime}))
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = ctl.read(1)
            if not chunk:
                return 1
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        text = line.decode().strip()
        if not text:
            continue
        verb, _, arg = text.partition(" ")
        since = time.monotonic()
        try:
            if verb == "SH":
                req = json.loads(arg)
                result = sh(req["script"], req.get("timeout", 300))
            elif verb == "CHECK":
                # No agent: its spool drops what the collector acknowledged, so the host asserts the agent's
                # decisions on the collector's stored events; this reports the kernel's side only.
                result = qguest.check(arg, oracle, known, None, since)
            elif verb == "EVENTS":
                result = {"events": agent.events()}
            elif verb == "ORACLE":
                result = {"block_adds": oracle.block_adds(), "count": len(oracle.seen)}
            elif verb == "DONE":
                (work / "oracle.json").write_text(json.dumps(oracle.seen))
                send("BYE")
                return 0
            else:
                result = {"error": f"unknown verb {verb}"}
        except Exception as exc:  # reported to the host, which fails the test with it
            result = {"error": repr(exc)}
        send("RESULT " + json.dumps(result))


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))

"""Runs inside the booth during the power-cut loop (a transient systemd unit, from the host's 9p share): a
steady emitter on the installed agent's control socket, the same `emit` op `boothguard emit` uses.

Each event is recorded in the ack log only AFTER the agent answered ok, i.e. after it is committed to the
spool: a line in the log is an acknowledged event. The log is on the 9p share, so a line whose write()
returned is in the host's file and survives the guest's power cut (a cut may still fall between the ack
and the write: that event is then stored but unrecorded, which the host counts, never as loss).

    python3 powercut_driver.py ACK_LOG BOOT INTERVAL_S

Standard library only (the booth's own python3).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

SOCK = "/run/boothguard/agent.sock"


def connect() -> socket.socket:
    while True:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(60)
            sock.connect(SOCK)
            return sock
        except OSError:
            sock.close()
            time.sleep(0.1)  # the agent is (re)starting


def main(log: Path, boot: int, interval: float) -> int:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sock = connect()
    n = 0
    buf = b""
    while True:
        req = {"op": "emit", "id": n, "type": "custom.powercut", "data": {"boot": boot, "n": n}}
        try:
            sock.sendall(json.dumps(req).encode() + b"\n")
            while b"\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("agent closed the socket")
                buf += chunk
        except OSError:
            # Not acknowledged (it may still be committed): a new n, so each n names one attempt.
            sock.close()
            sock = connect()
            buf = b""
            n += 1
            continue
        line, buf = buf.split(b"\n", 1)
        reply = json.loads(line)
        if reply.get("ok") and reply.get("id") == n:
            rec = {"boot": boot, "n": n, "seq": reply["seq"], "id": reply["event_id"]}
            os.write(fd, (json.dumps(rec) + "\n").encode())
            n += 1
        else:
            os.write(fd, (json.dumps({"boot": boot, "n": n, "refused": reply}) + "\n").encode())
            return 1
        time.sleep(interval)


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))

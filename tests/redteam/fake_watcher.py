"""A fake session watcher, as an operator would write one: registers for a session and answers the agent's
pushes with whatever it is told to (`python -m tests.redteam.fake_watcher SOCKET SESSION '{"push": answer}'`).

It waits for one line on stdin before connecting (so the test can put its pid into the logind session first),
heartbeats, and prints `registered {...}` / `refused {...}` and `push NAME` lines.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from typing import Any


def main(argv: list[str]) -> int:
    path, session = argv[1], argv[2]
    answers: dict[str, dict[str, Any]] = json.loads(argv[3]) if len(argv) > 3 else {}
    sys.stdin.readline()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    lock = threading.Lock()

    def send(msg: dict[str, Any]) -> None:
        with lock:
            sock.sendall(json.dumps(msg).encode() + b"\n")

    def heartbeat() -> None:
        n = 100
        while True:
            time.sleep(0.4)
            n += 1
            send({"op": "watcher.heartbeat", "idle_seconds": 0, "screensaver_active": True, "id": n})

    send({"op": "watcher.register", "session_id": session, "display": ":0", "id": 1})
    for line in sock.makefile("rb"):
        msg = json.loads(line)
        if "push" in msg:
            name = msg["push"]
            print("push", name, flush=True)
            if name in answers:
                send({"op": "watcher.reply", "rid": msg["rid"], **answers[name]})
        elif msg.get("id") == 1:
            print("registered" if msg.get("ok") else "refused", json.dumps(msg), flush=True)
            if not msg.get("ok"):
                return 1
            threading.Thread(target=heartbeat, daemon=True).start()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""A real HTTP receiver on loopback speaking the collector's ingest protocol, with scripted misbehaviour."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from boothguard.events import Event, verify_chain


@dataclass
class Behaviour:
    kind: str  # ok | status | reset_after_store | reject_index
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    index: int = 0


class Receiver:
    def __init__(
        self,
        token: str = "t0k3n",
        *,
        tls: ssl.SSLContext | None = None,
        keep_alive: bool = False,
        idle_timeout: float | None = None,
    ) -> None:
        self.tls = tls
        self.keep_alive = keep_alive  # HTTP/1.1 keep-alive as uvicorn; else HTTP/1.0, one request each
        self.idle_timeout = idle_timeout  # close a kept-alive connection idle this long
        self.connections = 0
        self.token = token
        self.lock = threading.Lock()
        self.stored: dict[int, dict[str, Any]] = {}
        self.arrivals: list[int] = []
        self.duplicates = 0
        self.requests = 0
        self.script: deque[Behaviour] = deque()
        self.max_events: int | None = None
        # A batch holding an event this says yes to is answered 503 + Retry-After, stored nothing (a
        # collector that fails on one event and takes the whole batch down with it).
        self.poison: Callable[[dict[str, Any]], bool] | None = None
        self.poisoned = 0
        self.commands: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[Event]:
        with self.lock:
            return [Event.model_validate(self.stored[s]) for s in sorted(self.stored)]

    def chain_problems(self) -> list[Any]:
        return [p for p in verify_chain(self.events()) if p.kind != "declared_gap"]

    def _store(self, lines: list[dict[str, Any]], skip: int | None = None) -> tuple[int, int]:
        accepted = dup = 0
        with self.lock:
            for i, ev in enumerate(lines):
                if i == skip:
                    continue
                if ev["seq"] in self.stored:
                    assert self.stored[ev["seq"]]["id"] == ev["id"], "same seq, different event"
                    dup += 1
                    self.duplicates += 1
                else:
                    self.stored[ev["seq"]] = ev
                    accepted += 1
                self.arrivals.append(ev["seq"])
        return accepted, dup

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"
            timeout = receiver.idle_timeout

            def setup(self) -> None:
                super().setup()
                with receiver.lock:
                    receiver.connections += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {"Content-Type": "application/json"}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests += 1
                    behaviour = receiver.script.popleft() if receiver.script else Behaviour("ok")
                if self.headers.get("Authorization") != f"Bearer {receiver.token}":
                    self.reply(401, b'{"detail":"bad token"}')
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
                if receiver.max_events is not None and len(lines) > receiver.max_events:
                    self.reply(413, b'{"detail":"too large"}')
                    return
                if behaviour.kind == "status":
                    self.reply(behaviour.status, behaviour.body, behaviour.headers or None)
                    return
                if receiver.poison is not None and any(map(receiver.poison, lines)):
                    with receiver.lock:
                        receiver.poisoned += 1
                    self.reply(503, b'{"detail":"database error"}', {"Retry-After": "2"})
                    return
                skip = behaviour.index if behaviour.kind == "reject_index" else None
                accepted, dup = receiver._store(lines, skip)
                if behaviour.kind == "reset_after_store":
                    # Stored, but the agent never hears about it: it must resend (duplicates, no loss).
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    return
                rejected = [{"index": skip, "error": "invalid event"}] if skip is not None else []
                with receiver.lock:
                    commands, receiver.commands = receiver.commands, []
                answer = {"accepted": accepted, "duplicates": dup, "rejected": rejected, "commands": commands}
                self.reply(200, json.dumps(answer).encode())

        return Handler

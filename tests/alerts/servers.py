"""Real servers on 127.0.0.1 for channel tests: an HTTP webhook receiver, a silent (hanging) TCP server,
rsyslog with plain TCP and TLS listeners, aiosmtpd with STARTTLS and AUTH, and a throwaway certificate."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path


def make_cert(directory: Path) -> Cert:
    """A self-signed certificate for 127.0.0.1/localhost; clients trust it as their CA file."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return Cert(cert, key)


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes = b""


class WebhookReceiver:
    """Records JSON POSTs; `status` scripts the answer (e.g. 503 then 200)."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []  # consumed first, then 200
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.requests = 0
        self.on_post: Callable[[Received], None] | None = None  # called in the server thread
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"webhook got {len(self.received)} of {n} posts in {timeout}s")
                self.arrived.wait(left)
            return list(self.received)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests += 1
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    item = Received(
                        time.perf_counter(), self.path, dict(self.headers), json.loads(body), body
                    )
                    with receiver.arrived:
                        receiver.received.append(item)
                        receiver.arrived.notify_all()
                    if receiver.on_post is not None:
                        receiver.on_post(item)
                self.send_response(status)
                if status in (429, 503):
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        return Handler


class HangingServer:
    """Accepts TCP connections and never says a word (a wedged SMTP/HTTP/syslog peer)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = self.sock.accept()
                self.conns.append(conn)

    def __enter__(self) -> HangingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.conns:
            conn.close()
        self.sock.close()


class Rsyslog:
    """A real rsyslogd: imtcp on a plain and a TLS (gtls, anon) loopback port, every message written as
    rsyslog's parsed JSON (`%jsonmesg%`) to one file."""

    def __init__(self, directory: Path, cert: Cert) -> None:
        self.dir = directory
        self.cert = cert
        self.out = directory / "messages.json"
        self.tcp_port = free_port()
        self.tls_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        d, c = self.dir, self.cert
        return f"""
global(workDirectory="{d / "work"}" defaultNetstreamDriverCAFile="{c.cert}"
       defaultNetstreamDriverCertFile="{c.cert}" defaultNetstreamDriverKeyFile="{c.key}")
module(load="imtcp" maxSessions="100")
template(name="parsed" type="string" string="%jsonmesg%\\n")
ruleset(name="alerts") {{ action(type="omfile" file="{self.out}" template="parsed") }}
input(type="imtcp" name="plain" address="127.0.0.1" port="{self.tcp_port}" ruleset="alerts")
input(type="imtcp" name="tls" address="127.0.0.1" port="{self.tls_port}" ruleset="alerts"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
"""

    def start(self) -> Rsyslog:
        (self.dir / "work").mkdir(exist_ok=True)
        conf = self.dir / "rsyslog.conf"
        conf.write_text(self.config())
        exe = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        self.proc = subprocess.Popen(
            [exe, "-n", "-f", str(conf), "-i", str(self.dir / "rsyslog.pid")],
            stdout=(self.dir / "rsyslog.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: port_open(self.tcp_port) and port_open(self.tls_port), 15, "rsyslog listening")
        except AssertionError:
            self.stop()
            raise AssertionError((self.dir / "rsyslog.log").read_text()) from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def messages(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.messages()) >= n, timeout, f"{n} syslog messages")
        return self.messages()


@contextlib.contextmanager
def rsyslog(directory: Path, cert: Cert) -> Iterator[Rsyslog]:
    if not shutil.which("rsyslogd") and not os.path.exists("/usr/sbin/rsyslogd"):
        import pytest

        pytest.skip("rsyslogd is not installed (apt: rsyslog rsyslog-gnutls)")
    server = Rsyslog(directory, cert).start()
    try:
        yield server
    finally:
        server.stop()


def client_tls(cert: Cert) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert.cert))


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    login: str | None


class SmtpSink:
    """aiosmtpd requiring STARTTLS, with AUTH (only after TLS) checked against one login/password."""

    def __init__(self, cert: Cert, login: str = "alerts", password: str = "s3cret pw") -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mails: list[Mail] = []
        self.auth_attempts = 0
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                with sink.lock:
                    sink.mails.append(
                        Mail(
                            envelope.mail_from,
                            list(envelope.rcpt_tos),
                            bytes(envelope.original_content or envelope.content),
                            session.ssl is not None,
                            session.auth_data.login.decode() if session.authenticated else None,
                        )
                    )
                return "250 OK"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
            with sink.lock:
                sink.auth_attempts += 1
            ok = auth_data.login == login.encode() and auth_data.password == password.encode()
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(str(cert.cert), str(cert.key))
        self.port = free_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=tls,
            require_starttls=True,
            authenticator=authenticator,
            auth_require_tls=True,
        )

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Mail]:
        wait_until(lambda: len(self.mails) >= n, timeout, f"{n} mails")
        with self.lock:
            return list(self.mails)

"""`python -m boothguard collector --config X` as a real subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.collector.pg import free_port
from tests.helpers.agent import write_config


class CollectorProcess:
    def __init__(
        self,
        tmp: Path,
        database_url: str,
        secret_file: Path,
        *,
        prefix: list[str] | None = None,
        **collector: Any,
    ) -> None:
        self.prefix = prefix or []  # e.g. strace: the command the collector runs under
        self.port = free_port()
        self.tmp = tmp
        self.tls = "tls_cert" in collector
        values = {
            "listen": f"127.0.0.1:{self.port}",
            "database_url": database_url,
            "enroll_secret_file": str(secret_file),
            **collector,
        }
        self.config = write_config(tmp / f"collector-{self.port}.toml", {"collector": values})
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> CollectorProcess:
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "boothguard", "collector", "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # Its own process group, signalled whole at stop: under a prefix (strace) a SIGTERM to the
            # first process only detached strace and left the collector running after the test.
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"collector exited {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1, verify=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"collector not up in {timeout}s: {self.output()}")

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines[-40:])

    def stop(self, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.proc.pid, sig)

    def __enter__(self) -> CollectorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

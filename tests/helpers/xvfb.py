"""A real Xvfb on a free display number (it picks one and reports it through -displayfd)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest


def start_xvfb(extra: Sequence[str] = (), screen: str = "1024x768x24") -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb; returns the process and its display name (":N")."""
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-nolisten", "tcp", "-screen", "0", screen, "-noreset", *extra],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    data = b""
    deadline = time.monotonic() + 15
    while not data.endswith(b"\n") and time.monotonic() < deadline:
        chunk = os.read(r, 16)
        if not chunk:
            break
        data += chunk
    os.close(r)
    if not data.strip():
        proc.kill()
        raise RuntimeError("Xvfb did not report a display number")
    return proc, f":{data.decode().strip()}"


@contextmanager
def xvfb(extra: Sequence[str] = (), screen: str = "1024x768x24") -> Iterator[str]:
    """An Xvfb for the duration of the block; skips the test where Xvfb is not installed."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt: xvfb)")
    proc, name = start_xvfb(extra, screen)
    try:
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()

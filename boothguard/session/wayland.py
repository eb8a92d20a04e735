"""Wayland clipboard through `wl-paste --watch` (compositors with a data-control protocol).

wl-paste runs a small shell pipeline per change that base64-encodes at most the read bound onto one line;
the text is decoded, scanned and dropped here like on X11. Wayland does not say which client owns the
selection, so `app` and `pid` stay null (`pid_source: "none"`).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

from boothguard import log
from boothguard.session import pii
from boothguard.session.fingerprint import fingerprint
from boothguard.session.x11_clipboard import ClipboardCopy

_log = log.get("wayland")


def copy_from_line(line: bytes, limit: int, key: bytes, observed: float) -> ClipboardCopy:
    data = base64.b64decode(line.strip() or b"", validate=False)
    truncated = len(data) > limit
    text = data[:limit].decode("utf-8", errors="replace")
    counts = pii.scan(text) if text else {}
    fp = fingerprint(key, text) if text else None
    return ClipboardCopy(
        selection="CLIPBOARD",
        app=None,
        pid=None,
        pid_source="none",
        owner_exited=False,
        formats=["text/plain"] if text else [],
        kind="text" if text else "other",
        size=len(data[:limit]),
        truncated=truncated,
        pii=counts,
        fingerprint=fp,
        observed_at=observed,
        read_ms=0.0,
    )


async def watch_wayland_clipboard(
    limit: int, key: Callable[[], bytes], on_copy: Callable[[Any], None]
) -> None:
    script = f"head -c {limit + 1} | base64 -w0; echo"
    proc = await asyncio.create_subprocess_exec(
        "wl-paste",
        "--no-newline",
        "--watch",
        "sh",
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        limit=4 * limit + 1024,
    )
    assert proc.stdout is not None
    try:
        while line := await proc.stdout.readline():
            on_copy(copy_from_line(line, limit, key(), time.monotonic()))
    finally:
        if proc.returncode is None:
            proc.kill()
        _log.warning("wl_paste_exited", rc=await proc.wait())

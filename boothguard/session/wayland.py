"""Wayland clipboard through `wl-paste --watch` (compositors with a data-control protocol).

wl-paste runs a small shell pipeline per change that prints one line: the offered MIME types and at most
the read bound of the content, each base64-encoded, separated by a space. The types are listed by a second
`wl-paste --list-types` of the same selection (a copy replaced within those milliseconds is attributed the
newer types). Text is decoded, scanned and dropped here like on X11; other content is only sized. Wayland
does not say which client owns the selection, so `app` and `pid` stay null (`pid_source: "none"`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable
from typing import Any

from boothguard import log
from boothguard.session import pii
from boothguard.session.fingerprint import fingerprint
from boothguard.session.x11_clipboard import ClipboardCopy

_log = log.get("wayland")
MAX_TYPES = 64
_TEXT_TYPES = frozenset({"UTF8_STRING", "STRING", "TEXT", "COMPOUND_TEXT"})


def _b64(raw: bytes) -> bytes:
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return b""


def kind_of(formats: list[str]) -> str:
    """What wl-paste hands us: text when any text type is offered (it prefers those), else the first."""
    if not formats:
        return "none"
    if any(f.startswith("text/") or f in _TEXT_TYPES for f in formats):
        return "text"
    return "image" if formats[0].startswith("image/") else "other"


def copy_from_line(line: bytes, limit: int, key: bytes, observed: float) -> ClipboardCopy:
    types_b64, _, data_b64 = line.strip().rpartition(b" ")
    formats = [t for t in _b64(types_b64).decode("utf-8", errors="replace").splitlines() if t][:MAX_TYPES]
    data = _b64(data_b64)
    kind = kind_of(formats) if formats else ("text" if data else "none")
    truncated = len(data) > limit
    text = data[:limit].decode("utf-8", errors="replace") if kind == "text" else ""
    return ClipboardCopy(
        selection="CLIPBOARD",
        app=None,
        pid=None,
        pid_source="none",
        owner_exited=False,
        formats=formats,
        kind=kind,
        size=len(data[:limit]),
        truncated=truncated,
        pii=pii.scan(text) if text else {},
        fingerprint=fingerprint(key, text) if text else None,
        observed_at=observed,
        read_ms=0.0,
    )


async def watch_wayland_clipboard(
    limit: int, key: Callable[[], bytes], on_copy: Callable[[Any], None]
) -> int:
    """Report every clipboard change until wl-paste exits; returns its exit status."""
    script = (
        'printf "%s " "$(wl-paste --list-types 2>/dev/null | head -c 65536 | base64 -w0)"; '
        f"head -c {limit + 1} | base64 -w0; echo"
    )
    proc = await asyncio.create_subprocess_exec(
        "wl-paste",
        "--no-newline",
        "--watch",
        "sh",
        "-c",
        script,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        limit=4 * limit + 2 * 65536,
    )
    assert proc.stdout is not None
    _log.info("wl_paste_watching", pid=proc.pid)
    try:
        while line := await proc.stdout.readline():
            on_copy(copy_from_line(line, limit, key(), time.monotonic()))
    finally:
        if proc.returncode is None:
            proc.kill()
    rc = await proc.wait()
    _log.warning("wl_paste_exited", rc=rc)
    return rc

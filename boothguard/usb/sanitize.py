"""Strings from a USB device are attacker-controlled: bound them, drop control and format characters."""

from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 128
# Categories never shown: controls, format (bidi overrides, zero-width), surrogates, private use, unassigned.
_DROP = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
# Terminal escape sequences (CSI "ESC [ … letter", OSC "ESC ] … BEL/ST", two-char "ESC x") go whole.
_ESCAPES = re.compile(r"\x1b(\[[0-9;?<=>!]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")


def clean(raw: bytes | str | None, limit: int = MAX_CHARS) -> str | None:
    if raw is None:
        return None
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    text = _ESCAPES.sub("", text[: limit * 4])
    text = "".join(
        " " if ch in "\t\n\r" else ch
        for ch in text
        if ch in "\t\n\r" or unicodedata.category(ch) not in _DROP
    )
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text or None

"""Xauthority file contents for the tests' cookie-protected X servers."""

from __future__ import annotations

import struct


def xauth_entry(cookie: bytes) -> bytes:
    """One Xauthority entry for any address and display (FamilyWild, empty number)."""
    out = struct.pack(">H", 0xFFFF)
    for field in (b"", b"", b"MIT-MAGIC-COOKIE-1", cookie):
        out += struct.pack(">H", len(field)) + field
    return out

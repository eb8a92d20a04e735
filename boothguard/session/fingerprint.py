"""Keyed fingerprints of clipboard text, for correlating copies without being able to reverse them.

A plain hash of a card number is reversible by enumeration (there are only ~10^9 candidates per issuer
prefix), so SPEC §4 asks for HMAC with a per-host secret. The agent keeps the secret (`clipboard.key`, 0600,
root) in its state dir and hands it to the watchers that register over the control socket; the watcher
runs as the operator, who has seen the text anyway. Events carry only the fingerprint, so whoever reads
the events at the collector cannot test guesses without the host's key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from boothguard.session.pii import normalize

KEY_BYTES = 32
FINGERPRINT_HEX = 32  # 128 bits: plenty for correlation, shorter in every event


def load_or_create_key(path: Path) -> bytes:
    """Read the host's fingerprint key, creating it (0600) on first use."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    if len(data) == KEY_BYTES:
        return data
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return key


def fingerprint(key: bytes, text: str) -> str:
    """HMAC-SHA256 over the NFKC-normalized text, so a full-width copy matches its half-width twin."""
    return hmac.new(key, normalize(text).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[
        :FINGERPRINT_HEX
    ]


def fingerprint_bytes(key: bytes, data: bytes) -> str:
    """For non-text clipboard data (images): HMAC over the raw bytes."""
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:FINGERPRINT_HEX]

"""What an event envelope may carry, shared by the agent (refuses at `emit`/seal) and the collector (rejects
that one event). One module, so the two can never disagree on a limit."""

from __future__ import annotations

import math
from typing import Any

# The collector's default `max_event_bytes`; the agent refuses a bigger event before it takes a seq.
MAX_EVENT_BYTES = 64 * 1024
# Signed 64-bit: what PostgreSQL's BIGINT and SQLite's INTEGER hold.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_DEPTH = 32


def envelope_problem(value: Any, *, where: str = "event") -> str | None:
    """Why `value` (decoded JSON) cannot be stored and hashed the same on both backends, or None."""
    return _walk(value, where, 0)


def _walk(value: Any, where: str, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"{where}: nested deeper than {MAX_DEPTH}"
    if isinstance(value, dict):
        return _walk_dict(value, where, depth)
    if isinstance(value, (list, tuple)):
        found = (_walk(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        return next((p for p in found if p), None)
    return _scalar_problem(value, where)


def _walk_dict(value: dict[Any, Any], where: str, depth: int) -> str | None:
    for key, item in value.items():
        if not isinstance(key, str) or "\x00" in key:
            return f"{where}: key with a NUL character or not a string"
        problem = _walk(item, f"{where}.{key}", depth + 1)
        if problem:
            return problem
    return None


def _scalar_problem(value: Any, where: str) -> str | None:
    problem: str | None = None
    if isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        problem = None if INT_MIN <= value <= INT_MAX else "integer outside the signed 64-bit range"
    elif isinstance(value, float):
        problem = None if math.isfinite(value) else "non-finite number"
    elif isinstance(value, str):
        problem = "NUL character" if "\x00" in value else None
    else:
        problem = f"{type(value).__name__} is not JSON"
    return f"{where}: {problem}" if problem else None

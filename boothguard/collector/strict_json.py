"""JSON as the collector accepts it from outside: one meaning per document, storable on both backends.

Python's `json` takes `NaN`, `Infinity` and `1e400` (as inf), keeps the last of duplicate keys, and lets a
lone surrogate (`"\\ud800"`) through; none of them survives canonical hashing, PostgreSQL or a JSON export
alike. Here they are refused, as are what `envelope_limits` forbids (NUL, integers beyond signed 64-bit).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from boothguard.envelope_limits import INT_MAX, INT_MIN, MAX_DEPTH, envelope_problem


class StrictJsonError(ValueError):
    """The text is not JSON the collector stores; the message says why (safe to return to the client)."""


def _constant(name: str) -> Any:
    raise StrictJsonError(f"non-finite number {name}")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJsonError(f"number out of range: {text[:40]}")
    return value


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise StrictJsonError(f"duplicate key {dup[:64]!r}")
    return out


def _int(text: str) -> int:
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise StrictJsonError("integer outside the signed 64-bit range")
    return value


_decoder = json.JSONDecoder(
    parse_float=_float, parse_int=_int, parse_constant=_constant, object_pairs_hook=_pairs
)


def _may_need_walk(text: str) -> bool:
    """Whether `envelope_problem` could object to what the hooks let through: a NUL (in JSON text only
    ever the escape `\\u0000`) or nesting deeper than its limit. Walking every document costs twice the
    parse, so only these do."""
    return "\\u0000" in text or text.count("{") + text.count("[") > MAX_DEPTH


def loads(data: bytes | str, *, where: str = "body") -> Any:
    """Decode `data` (UTF-8) as strict JSON; raise `StrictJsonError` with the reason."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = _decoder.decode(text)
    except StrictJsonError:
        raise
    except UnicodeDecodeError:
        raise StrictJsonError("not UTF-8") from None
    except RecursionError:
        raise StrictJsonError("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int() beyond Python's digit limit
        raise StrictJsonError(f"not JSON: {str(exc)[:120]}") from None
    # The hooks enforce envelope_limits' number rules while parsing; the rest is walked when it may apply.
    problem = envelope_problem(value, where=where) if _may_need_walk(text) else None
    if problem:
        raise StrictJsonError(problem)
    if _SURROGATE.search(text) and _unencodable(value):
        raise StrictJsonError(f"{where}: string with a lone surrogate (not valid Unicode)")
    return value


# A surrogate escape: in a pair it is fine, alone it has no UTF-8 form to hash or store.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _unencodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False

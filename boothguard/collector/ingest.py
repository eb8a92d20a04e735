"""An ingest body's NDJSON lines, each validated as a sealed event (the body is read by `ingest_body`)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, NotRequired, cast

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from boothguard.collector import strict_json
from boothguard.collector.ingest_body import BodyError
from boothguard.envelope_limits import INT_MAX, INT_MIN, MAX_DEPTH
from boothguard.events import TYPE_PATTERN, Event, Severity

_UUID7 = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


# The envelope of `boothguard.events.Event` as plain dicts: the same fields and constraints, validated
# by pydantic-core without building model instances (about 2.5x faster). tests/collector/test_hashing.py
# checks that its JSON schema equals Event's, and a line it refuses is re-validated by Event itself, so
# rejections and their texts are Event's own.
@with_config(ConfigDict(extra="forbid"))
class HostBody(TypedDict):
    id: Annotated[str, Field(min_length=1, max_length=128)]
    name: Annotated[str, Field(min_length=1, max_length=255)]


@with_config(ConfigDict(extra="forbid"))
class AgentBody(TypedDict):
    version: Annotated[str, Field(min_length=1, max_length=64)]


@with_config(ConfigDict(extra="forbid"))
class EventBody(TypedDict):
    id: Annotated[str, Field(pattern=_UUID7)]
    seq: Annotated[int, Field(ge=1)]
    time: Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")]
    host: HostBody
    agent: AgentBody
    type: Annotated[str, Field(pattern=TYPE_PATTERN, max_length=128)]
    severity: Severity
    user: NotRequired[Annotated[str | None, Field(max_length=256)]]
    data: dict[str, Any]
    prev_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


EVENT_BODY = TypeAdapter(EventBody)
_validate_json = EVENT_BODY.validator.validate_json

# The envelope's fields, in the sorted order canonical JSON puts them; the fast hash below assumes them.
_FIELDS = ("agent", "data", "hash", "host", "id", "prev_hash", "seq", "severity", "time", "type", "user")
_FAST = tuple(sorted(Event.model_fields)) == _FIELDS
_esc = json.encoder.encode_basestring  # the C string escaper json.dumps uses
_data_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
# The C encoder json.dumps builds on each call, built once (no circular-reference markers: parsed JSON
# cannot be circular). Same arguments as `_data_json`, hence the same text.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_data = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, json.JSONEncoder().default, _esc, None, ":", ",", True, False, True)
)


def data_json(data: dict[str, Any]) -> str:
    """`data` as canonical JSON (sorted keys, no spaces, UTF-8), as `canonical_json` writes it."""
    if _c_data is None:
        return _data_json(data)
    return "".join(_c_data(data, 0))


# Each canonical text comes in two parts, split where the hash sits in the sealed line (sorted keys put
# "hash" between "data" and "host"), so a line sent exactly as the agent seals it is recognised by
# comparing bytes (`_sealed_as_canonical`).
def _canonical_escaped(b: EventBody) -> tuple[str, str]:
    host, user = b["host"], b.get("user")
    return (
        f'{{"agent":{{"version":{_esc(b["agent"]["version"])}}},"data":{data_json(b["data"])}',
        f',"host":{{"id":{_esc(host["id"])},"name":{_esc(host["name"])}}},"id":{_esc(b["id"])},'
        f'"prev_hash":{_esc(b["prev_hash"])},"seq":{b["seq"]},"severity":{_esc(b["severity"])},'
        f'"time":{_esc(b["time"])},"type":{_esc(b["type"])},'
        f'"user":{"null" if user is None else _esc(user)}}}',
    )


def _canonical_plain(b: EventBody) -> tuple[str, str]:
    """As `_canonical_escaped`, quoting id, prev_hash, severity, time and type as they are: their patterns
    (or literals) admit no character JSON escapes."""
    host, user = b["host"], b.get("user")
    return (
        f'{{"agent":{{"version":{_esc(b["agent"]["version"])}}},"data":{data_json(b["data"])}',
        f',"host":{{"id":{_esc(host["id"])},"name":{_esc(host["name"])}}},"id":"{b["id"]}",'
        f'"prev_hash":"{b["prev_hash"]}","seq":{b["seq"]},"severity":"{b["severity"]}",'
        f'"time":"{b["time"]}","type":"{b["type"]}","user":{"null" if user is None else _esc(user)}}}',
    )


def _patterns_are_whole_text() -> bool:
    """Whether the validator's `$` ends the text (Rust regex), not also before a final newline (Python re)."""
    sample = {
        "id": "01890a5d-ac96-774b-bcce-b302099a8057",
        "seq": 1,
        "time": "2026-01-01T00:00:00.000Z",
        "host": {"id": "h", "name": "h"},
        "agent": {"version": "1"},
        "type": "a.b",
        "severity": "info",
        "data": {},
        "prev_hash": "0" * 64,
        "hash": "0" * 64,
    }
    EVENT_BODY.validate_python(sample, strict=True)  # the sample itself is valid
    for key in ("id", "time", "type", "prev_hash"):
        try:
            EVENT_BODY.validate_python({**sample, key: f"{sample[key]}\n"}, strict=True)
        except ValidationError:
            continue
        return False
    return True


_canonical = _canonical_plain if _patterns_are_whole_text() else _canonical_escaped


def fast_canonical(ev: Event | EventBody) -> str:
    """The canonical JSON of `ev` without its hash (what the chain hashes), built field by field."""
    head, tail = _canonical(ev if isinstance(ev, dict) else _as_body(ev))
    return head + tail


def hash_ok(ev: Event | EventBody) -> bool:
    """`Event.hash_ok()`, several times as fast: only `data` goes through the generic sorted-key encoder.

    Produces the same bytes as `boothguard.events.canonical_json`; a mismatch is re-checked the slow way, so
    a change to the envelope can cost speed, never correctness.
    """
    body = ev if isinstance(ev, dict) else _as_body(ev)
    if _FAST and _sha256(fast_canonical(body).encode()).hexdigest() == body["hash"]:
        return True
    return (ev if isinstance(ev, Event) else Event.model_validate(ev)).hash_ok()


def _as_body(ev: Event) -> EventBody:
    return cast(EventBody, ev.model_dump())


_sha256 = hashlib.sha256


@dataclass(slots=True)
class Line:
    """An accepted line: its index in the request, the validated event, the line as received."""

    index: int
    event: EventBody
    raw: str


@dataclass(frozen=True)
class Rejection:
    index: int
    error: str
    # A line that parsed as an event but whose hash does not match: also a chain finding.
    bad_hash_seq: int | None = None

    def answer(self) -> dict[str, Any]:
        return {"index": self.index, "error": self.error}


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "event"
    return f"{where}: {err['msg']}"[:300]


_DATES_OK: set[str] = set()  # dates seen valid (a day's events share one), bounded below


def time_problem(text: str) -> str | None:
    """Why an event time that matches the pattern is still no instant (month 13, Feb 30), or None."""
    date = text[:10]
    if not text.isascii():  # the pattern's \d (Rust regex) also takes other scripts' digits
        return f"time: digits other than 0-9: {text[:24]!r}"
    if date not in _DATES_OK:
        try:
            datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]))
        except ValueError:
            return f"time: not a real date: {text[:24]!r}"
        if len(_DATES_OK) > 10_000:
            _DATES_OK.clear()
        _DATES_OK.add(date)
    # The pattern admits only digits here; two-digit strings compare as their numbers.
    if text[11:13] > "23" or text[14:16] > "59" or text[17:19] > "59":
        return f"time: not a real time of day: {text[:24]!r}"
    return None


# A key's closing quote and its colon. Every key matches once; text inside strings can only add matches,
# so as many matches as parsed keys proves that no key was given twice.
_KEY_SEP = re.compile(rb'"[ \t\n\r]*:')
_isfinite = math.isfinite


def _lean(value: dict[str, Any] | list[Any], depth: int) -> int:
    """The number of keys in the container `value`, or -1 if anything in it may break envelope_limits'
    rules (an integer beyond 64 bits, a non-finite float, deep nesting). The strict path then decides:
    this only has to be fast and never miss, where `envelope_problem` also says where. NULs are looked
    for in the line itself (`_fast_event`). Scalars are checked inline: a call per value cost 3x."""
    if depth >= MAX_DEPTH:
        return -1
    if type(value) is dict:
        n = len(value)
        values: Any = value.values()
    else:
        n = 0
        values = value
    for v in values:
        kind = type(v)
        if kind is str or kind is bool or v is None:
            continue
        if kind is int:
            if INT_MIN <= v <= INT_MAX:
                continue
            return -1
        if kind is float:
            if _isfinite(v):
                continue
            return -1
        if kind is dict or kind is list:
            c = _lean(v, depth + 1)
            if c < 0:
                return -1
            n += c
            continue
        return -1
    return n


def _fast_event(part: bytes) -> tuple[EventBody, int] | None:
    """The common line, parsed by pydantic at full speed, and the number of keys in its data; None sends
    the line to the strict path, which decides (pydantic's parser, like Python's default one, takes NaN,
    1e400 as inf and duplicate keys). Whether each key was given once is for the caller to prove."""
    # A raw control character in a string is invalid JSON (the parser refuses it), so a NUL anywhere in
    # the event (keys, free text, data) can only be the escape; its one spelling is looked for once here.
    if b"\\u0000" in part:
        return None
    try:
        event: EventBody = _validate_json(part, strict=True)
    except ValidationError:
        return None
    data_keys = _lean(event["data"], 1)
    if data_keys < 0 or event["seq"] > INT_MAX:
        return None
    return event, data_keys


def _sealed_as_canonical(part: bytes, head: bytes, tail: bytes, event_hash: str) -> bool:
    """Whether the line is byte for byte the canonical JSON of the event it parsed to, hash included, as
    the agent seals and sends it. Canonical JSON holds each key once, so then no key was given twice."""
    n = len(head)
    return (
        len(part) == n + 74 + len(tail)  # ,"hash":"<64 hex>"
        and part.startswith(head)
        and part.endswith(tail)
        and part[n : n + 74] == b',"hash":"' + event_hash.encode() + b'"'
    )


def _keys_once(part: bytes, event: EventBody, data_keys: int) -> bool:
    """For a line not in canonical form: as many key separators as parsed keys proves no key was given
    twice (text inside strings can only add separators)."""
    keys = len(event) + 3 + data_keys  # host's two keys, agent's one
    # Without a quote followed by whitespace, every key is `"…":`; counting that is 10x a regex.
    spaced = b'" ' in part or b'"\t' in part or b'"\r' in part
    seps = len(_KEY_SEP.findall(part)) if spaced else part.count(b'":')
    return seps == keys


def _strict_event(part: bytes) -> EventBody | str:
    """The line as strict JSON decides it, or why it is refused."""
    try:
        # Strict JSON decides what the line means; once it has, pydantic's parser reads the same.
        strict_json.loads(part, where="event")
        event: EventBody = _validate_json(part, strict=True)
    except strict_json.StrictJsonError as exc:
        return str(exc)[:300]
    except ValidationError:
        # The rejection and its text are Event's own (and should they ever differ, Event decides).
        try:
            event = _as_body(Event.model_validate_json(part, strict=True))
        except ValidationError as exc:
            return _first_error(exc)
    return event


def _canonical_bytes(event: EventBody) -> tuple[bytes, bytes] | None:
    """The canonical text's two parts as UTF-8, or None for a lone surrogate escape (no UTF-8 form)."""
    head, tail = _canonical(event)
    try:
        return head.encode(), tail.encode()
    except UnicodeEncodeError:
        return None


_SURROGATE = "string with a lone surrogate (not valid Unicode)"


def _read(part: bytes) -> tuple[EventBody, bytes] | str:
    """One NDJSON line as a validated event and its canonical bytes (what the chain hashes), or why it is
    refused."""
    fast = _fast_event(part)
    halves = None
    if fast is not None:
        event, data_keys = fast
        halves = _canonical_bytes(event)
        canonical = halves is not None and _sealed_as_canonical(part, *halves, event["hash"])
        if not canonical and not _keys_once(part, event, data_keys):
            fast = halves = None
    if fast is None:
        strict = _strict_event(part)
        if isinstance(strict, str):
            return strict
        event = strict
    if problem := time_problem(event["time"]):
        return problem
    if halves is None and (halves := _canonical_bytes(event)) is None:
        return _SURROGATE
    return event, halves[0] + halves[1]


def parse_lines(body: bytes, *, max_event_bytes: int, max_events: int) -> tuple[list[Line], list[Rejection]]:
    """Validate each NDJSON line as a sealed event; bad lines become per-event rejections.

    Nothing a line carries can fail the batch: whatever one event holds, only that event is refused.
    """
    parts = body.split(b"\n")
    if parts and not parts[-1].strip():
        parts.pop()
    if len(parts) > max_events:
        raise BodyError(413, f"more than {max_events} events in one request")
    lines: list[Line] = []
    rejected: list[Rejection] = []
    for index, part in enumerate(parts):
        if len(part) > max_event_bytes:
            rejected.append(Rejection(index, f"event larger than {max_event_bytes} bytes"))
            continue
        got = _read(part)
        if isinstance(got, str):
            rejected.append(Rejection(index, got))
            continue
        event, text = got
        sealed = _FAST and _sha256(text).hexdigest() == event["hash"]
        if not sealed and not Event.model_validate(event).hash_ok():  # the slow way decides a mismatch
            rejected.append(Rejection(index, "hash does not match the event", bad_hash_seq=event["seq"]))
            continue
        try:
            raw = part.decode()
        except UnicodeDecodeError:
            rejected.append(Rejection(index, "not UTF-8"))
            continue
        lines.append(Line(index, event, raw))
    return lines, rejected

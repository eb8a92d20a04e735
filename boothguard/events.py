"""The event envelope of SPEC §4: typed models, UUIDv7 ids, canonical JSON and the hash chain."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

from boothguard.envelope_limits import MAX_EVENT_BYTES, envelope_problem

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}
ZERO_HASH = "0" * 64
TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$"
_TYPE_RE = re.compile(TYPE_PATTERN)
TYPE_MAX = 128
USER_MAX = 256


class HostRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=255)


class AgentRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    version: str = Field(min_length=1, max_length=64)


class Event(BaseModel):
    """A sealed event as stored, shipped and verified."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # the agent never validates one

    id: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    seq: int = Field(ge=1)
    time: str = Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    host: HostRef
    agent: AgentRef
    type: str = Field(pattern=TYPE_PATTERN, max_length=TYPE_MAX)
    severity: Severity
    user: str | None = Field(default=None, max_length=USER_MAX)
    data: dict[str, Any]
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    def computed_hash(self) -> str:
        return event_hash(self.model_dump(mode="json"))

    def hash_ok(self) -> bool:
        return self.computed_hash() == self.hash


@dataclass(frozen=True)
class Draft:
    """What a source produces; the spool seals it with seq, id, time and the chain."""

    type: str
    severity: Severity = "info"
    data: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = None

    def __post_init__(self) -> None:
        if len(self.type) > TYPE_MAX or not _TYPE_RE.match(self.type):
            raise ValueError(f"bad event type {self.type!r}")
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"bad severity {self.severity!r}")


@dataclass(frozen=True)
class RefusedDraft(Draft):
    """Sealed in place of `original`, which the collector would refuse (see `seal_many`)."""

    original: Draft | None = None


class Unsealable(ValueError):
    """`drafts[index]` of a `seal_many` call cannot become an event the collector stores (envelope_limits)."""

    def __init__(self, index: int, problem: str, size: int | None = None) -> None:
        super().__init__(problem)
        self.index, self.problem, self.size = index, problem, size


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes the chain hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(body: Mapping[str, Any]) -> str:
    without = {k: v for k, v in body.items() if k != "hash"}
    return hashlib.sha256(canonical_json(without)).hexdigest()


# UUIDv7 ids need uniqueness, not secrecy: a fast PRNG seeded from os.urandom suffices.
_rng = random.SystemRandom() if os.environ.get("BOOTHGUARD_STRONG_IDS") else random.Random()  # noqa: S311


def format_time(unix: float) -> str:
    dt = datetime.fromtimestamp(unix, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def seal(
    draft: Draft, *, seq: int, prev_hash: str, host: HostRef, agent: AgentRef, unix: float
) -> dict[str, Any]:
    """Build the JSON body of an event (one-off use: tests, tools). The spool uses `seal_many`."""
    [raw], _ = seal_many([draft], first_seq=seq, prev_hash=prev_hash, host=host, agent=agent, unix=unix)
    body: dict[str, Any] = json.loads(raw)
    return body


_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
# The C encoder called directly: JSONEncoder.encode builds one per call, 40 % of the cost for a small dict.
# No cycle check (markers=None): event data comes from our own sources and is a tree.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_encode = (
    _c_make_encoder(
        None, json.JSONEncoder().default, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )  # allow_nan=False: NaN and Infinity are refused for free (ValueError)
    if _c_make_encoder is not None
    else None
)


@functools.lru_cache(maxsize=8)
def _fixed_json(host: HostRef, agent: AgentRef) -> tuple[str, str]:
    return _dumps({"version": agent.version}), _dumps({"id": host.id, "name": host.name})


# What may hide an envelope problem in the encoded data: an escaped NUL, or 19 digits in a row (an integer
# outside signed 64 bits has at least that many). Cheap scans in C (digits mapped to "0", then one search);
# only a hit pays for the exact walk (`envelope_problem`). Nesting deeper than the limit is checked exactly at
# `emit`; from a plugin, the collector's per-event rejection is dead-lettered and declared.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
_LONG_NUMBER = b"0" * 19
_NUL = "\\u0000"  # str searches are several times as fast as bytes ones here


def _data_problem(data: Mapping[str, Any]) -> str | None:
    return envelope_problem(data if type(data) is dict else dict(data), where="data")


def _user_problem(user: str) -> str | None:
    if len(user) > USER_MAX:
        return f"user longer than {USER_MAX} characters"
    return "user: NUL character" if "\x00" in user else None


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_ID_GROUPS = re.compile(r"(.{3})(.)(.{3})(.{12}).")  # 20 hex digits: rand_a, variant, rand_b


class Sealed(NamedTuple):
    """A committed event: its draft, seq and canonical JSON; the dict only for whoever asks."""

    draft: Draft
    seq: int
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.raw)
        return body


class SealedBatch:
    """The consecutive events of one commit, as parallel lists; a `Sealed` is made only when asked for."""

    __slots__ = ("drafts", "first_seq", "raws")

    def __init__(self, drafts: list[Draft], first_seq: int, raws: list[bytes]) -> None:
        self.drafts, self.first_seq, self.raws = drafts, first_seq, raws

    def __len__(self) -> int:
        return len(self.raws)

    def __getitem__(self, index: int) -> Sealed:
        index = range(len(self.raws))[index]  # negative indexes, IndexError
        return Sealed(self.drafts[index], self.first_seq + index, self.raws[index])

    def __iter__(self) -> Iterator[Sealed]:
        for index in range(len(self.raws)):
            yield self[index]


def seal_many(
    drafts: Sequence[Draft],
    *,
    first_seq: int,
    prev_hash: str,
    host: HostRef,
    agent: AgentRef,
    unix: float,
) -> tuple[list[bytes], str]:
    """Seal consecutive drafts (seq first_seq, first_seq+1, …) sharing one timestamp: their canonical
    JSON bytes (with `hash`) and the last hash. The spool's hot path.

    Only `data` and `user` need a JSON encoder; every other field is either fixed per host or matches a
    pattern without characters JSON would escape, so the canonical text (keys sorted: agent, data,
    hash, host, id, prev_hash, seq, severity, time, type, user) is assembled directly.
    tests/unit/test_events.py checks it equals canonical_json byte for byte.

    Raises `Unsealable` for the first draft the collector would refuse (envelope_limits: non-finite
    numbers, NUL, integers outside 64 bits, larger than MAX_EVENT_BYTES once sealed, not JSON, lone
    surrogates).
    """
    stamp = format_time(unix)
    stamp_hex = f"{int(unix * 1000) & 0xFFFFFFFFFFFF:012x}"
    id_head = f"{stamp_hex[:8]}-{stamp_hex[8:]}-7"
    # UUIDv7's 74 random bits for the whole batch in one draw, cut into the id's groups in C.
    rand = _ID_GROUPS.findall(_rng.randbytes(10 * len(drafts)).hex())
    agent_json, host_json = _fixed_json(host, agent)
    head_start = f'{{"agent":{agent_json},"data":'
    tail_start = f'"host":{host_json},"id":"{id_head}'
    sha256, variant, c_encode = hashlib.sha256, _VARIANT, _c_encode
    nul, digits_as_zero, long_number, translate = _NUL, _DIGITS_AS_ZERO, _LONG_NUMBER, bytes.translate
    out: list[bytes] = []
    seq = first_seq
    for draft, (rand_a, var, rand_b, rand_c) in zip(drafts, rand, strict=True):
        data = draft.data
        try:
            data_json = "".join(c_encode(data, 0)) if c_encode and type(data) is dict else _dumps(dict(data))
        except (ValueError, TypeError, RecursionError) as exc:  # NaN/Infinity, or not JSON at all
            raise Unsealable(seq - first_seq, f"data: {exc}") from None
        try:
            head = f"{head_start}{data_json}".encode()
        except UnicodeEncodeError:  # a lone surrogate (a file name decoded with surrogateescape)
            raise Unsealable(seq - first_seq, "data: text that is not valid Unicode") from None
        suspect = nul in data_json or translate(head, digits_as_zero).find(long_number) >= 0
        problem = _data_problem(data) if suspect else None
        if draft.user is None:
            user = "null"
        else:
            user = _dumps(draft.user)
            problem = problem or _user_problem(draft.user)
        if problem is not None:
            raise Unsealable(seq - first_seq, problem)
        try:
            tail = (
                f'{tail_start}{rand_a}-{variant[var]}{rand_b}-{rand_c}","prev_hash":"{prev_hash}",'
                f'"seq":{seq},"severity":"{draft.severity}","time":"{stamp}","type":"{draft.type}",'
                f'"user":{user}}}'
            ).encode()
        except UnicodeEncodeError:
            raise Unsealable(seq - first_seq, "user: text that is not valid Unicode") from None
        digest = sha256(head + b"," + tail).hexdigest()
        raw = b"".join((head, b',"hash":"', digest.encode(), b'",', tail))
        if len(raw) > MAX_EVENT_BYTES:
            size = len(raw)
            raise Unsealable(seq - first_seq, f"{size} bytes once sealed (limit {MAX_EVENT_BYTES})", size)
        out.append(raw)
        prev_hash = digest
        seq += 1
    return out, prev_hash


@dataclass(frozen=True)
class ChainProblem:
    kind: Literal["gap", "backwards", "broken_link", "bad_hash", "declared_gap"]
    from_seq: int
    to_seq: int


class Chained(Protocol):
    """What the chain check needs of an event: an `Event`, or a skeleton of one (collector retention)."""

    @property
    def seq(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...
    @property
    def data(self) -> Mapping[str, Any]: ...
    def hash_ok(self) -> bool: ...


def declared_gap_range(event: Chained) -> tuple[int, int] | None:
    if event.type != "spool.gap":
        return None
    lo, hi = event.data.get("from_seq"), event.data.get("to_seq")
    if isinstance(lo, int) and isinstance(hi, int) and lo <= hi:
        return lo, hi
    return None


def verify_chain(events: Iterable[Chained]) -> list[ChainProblem]:
    """Check one host's events in arrival order; a `spool.gap` explains the seqs it declares.

    The declaration has a higher seq than the events it covers, so ranges are collected first.
    """
    evs = list(events)
    declared = [rng for ev in evs if (rng := declared_gap_range(ev))]
    problems = [ChainProblem("declared_gap", lo, hi) for lo, hi in declared]
    covered = merge_ranges(declared)
    last: Chained | None = None
    for ev in evs:
        if not ev.hash_ok():
            problems.append(ChainProblem("bad_hash", ev.seq, ev.seq))
        restart = ev.type == "spool.gap" and ev.prev_hash == ZERO_HASH
        if last is not None:
            if ev.seq <= last.seq:
                problems.append(ChainProblem("backwards", ev.seq, last.seq))
            elif ev.seq > last.seq + 1:
                lo, hi = last.seq + 1, ev.seq - 1
                if not any(a <= lo and hi <= b for a, b in covered):
                    problems.append(ChainProblem("gap", lo, hi))
            elif ev.prev_hash != last.hash and not restart:
                problems.append(ChainProblem("broken_link", ev.seq, ev.seq))
        elif ev.seq == 1 and ev.prev_hash != ZERO_HASH:
            problems.append(ChainProblem("broken_link", 1, 1))
        if last is None or ev.seq > last.seq:
            last = ev
    return problems


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of inclusive seq ranges; adjacent ranges join (several small drops make one hole)."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def event_schema() -> dict[str, Any]:
    return Event.model_json_schema()

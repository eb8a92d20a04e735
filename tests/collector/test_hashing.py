"""The ingest's fast paths are the envelope's own rules: its validator accepts exactly what `Event` accepts,
and its hash check is byte-for-byte the envelope's canonical JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from boothguard.collector import ingest, strict_json
from boothguard.events import Event, Unsealable, canonical_json
from tests.collector.helpers import FakeAgent

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(st.text(max_size=8), values, max_size=5),
    user=st.none() | st.text(),
    name=st.text(min_size=1, max_size=30),
)
def test_fast_canonical_equals_canonical_json(data: dict[str, Any], user: str | None, name: str) -> None:
    agent = FakeAgent('m-é"\\', name=name)
    try:
        body = agent.emit("custom.x", "low", data)
    except Unsealable:
        return  # the agent refuses what the envelope forbids (big ints, NUL, lone surrogates)
    body["user"] = user
    body["hash"] = "0" * 64
    try:
        ev = Event.model_validate_json(json.dumps(body), strict=True)
    except ValueError:
        return
    without = {k: v for k, v in ev.model_dump(mode="json").items() if k != "hash"}
    assert ingest.fast_canonical(ev).encode() == canonical_json(without)


def test_a_wrong_hash_is_still_wrong() -> None:
    body = FakeAgent("m").emit()
    ev = Event.model_validate({**body, "user": "x"})
    assert not ingest.hash_ok(ev)
    assert ingest.hash_ok(Event.model_validate(body))


def _normalized(schema: dict[str, Any]) -> str:
    text = json.dumps(schema, sort_keys=True)
    for fast, model in (("EventBody", "Event"), ("HostBody", "HostRef"), ("AgentBody", "AgentRef")):
        text = text.replace(f'"{fast}"', f'"{model}"').replace(f"/{fast}", f"/{model}")
    out = json.loads(text)
    out.pop("description", None)
    out["properties"]["user"].pop("default", None)
    return json.dumps(out, sort_keys=True)


def test_fast_validator_has_the_envelopes_fields_and_constraints() -> None:
    assert _normalized(ingest.EVENT_BODY.json_schema()) == _normalized(Event.model_json_schema())


def test_fast_hash_check_on_validated_dicts() -> None:
    body = FakeAgent("m").emit("clipboard.copy", data={"é": [1, 2.5, None], "a": {"z": "\n", "b": True}})
    line = json.dumps(body).encode()
    ev = ingest.EVENT_BODY.validate_json(line, strict=True)
    assert ingest.hash_ok(ev)
    assert not ingest.hash_ok({**ev, "data": {**ev["data"], "a": 1}})
    assert not ingest.hash_ok({**ev, "user": "x"})
    assert ingest.fast_canonical(ev) == ingest.fast_canonical(Event.model_validate(body))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_BASE = FakeAgent("m-1").emit("usb.device.allowed", data={"vendor_id": "0781"})
_SPECIAL = st.sampled_from(
    ["", "x" * 257, "0" * 64, "g" * 64, "usb.Device", "a.b\n", "info", "bogus", 0, -1, 1.0, True, "1", 2**64]
)


def _mutated() -> st.SearchStrategy[bytes]:
    keys = st.sampled_from([*_BASE.keys(), "extra"])
    nested = st.fixed_dictionaries(
        {}, optional={"id": _SPECIAL | json_values, "name": _SPECIAL, "version": _SPECIAL, "x": st.none()}
    )
    near = st.one_of(  # one field around the envelope's limits: often still valid
        *(
            st.fixed_dictionaries({key: values})
            for key, values in {
                "user": st.none() | st.text(min_size=250, max_size=260) | st.text(max_size=3),
                "data": st.dictionaries(st.text(max_size=4), json_values, max_size=3),
                "seq": st.integers(-1, 2) | st.integers(2**62, 2**66),
                "severity": st.sampled_from(["info", "low", "high", "critical", "High", "crit"]),
                "type": st.from_regex(r"[a-z_0-9.A]{1,6}\.[a-z]{1,4}", fullmatch=True) | st.text(max_size=3),
                "host": st.fixed_dictionaries({"id": st.text(max_size=130), "name": st.text(max_size=258)}),
                "agent": st.fixed_dictionaries({"version": st.text(max_size=66)}),
                "time": st.sampled_from(["2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00Z", "2026-1-01"]),
                "prev_hash": st.text("0123456789abcdefA", min_size=63, max_size=65),
            }.items()
        )
    )
    change = st.dictionaries(keys, _SPECIAL | json_values | nested, min_size=1, max_size=3) | near
    drop = st.sets(st.sampled_from(list(_BASE.keys())), min_size=1, max_size=2)

    def build(changes: dict[str, Any], dropped: set[str], form: str) -> bytes:
        body = {k: v for k, v in {**_BASE, **changes}.items() if k not in dropped}
        if form == "canonical":  # as the agent seals and sends it: the byte-compare fast path
            return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return json.dumps(body).encode() if form == "spaced" else json.dumps([body])[:-1].encode()

    forms = st.sampled_from(["spaced"] * 5 + ["canonical"] * 4 + ["cut"])
    return st.builds(build, change, drop | st.just(set()), forms)


@settings(max_examples=600, deadline=None)
@given(line=_mutated() | st.binary(max_size=40) | st.sampled_from([b"", b"{}", b"[]", b"null", b"{"]))
def test_fast_validator_accepts_and_refuses_exactly_like_event(line: bytes) -> None:
    """…and a line that strict JSON refuses (NaN, 1e400, a duplicate key, 2**64) is refused for that."""
    try:
        strict_json.loads(line, where="event")
        strict: str | None = None
    except strict_json.StrictJsonError as exc:
        strict = str(exc)[:300]
    try:
        model: Event | None = Event.model_validate_json(line, strict=True)
    except ValidationError as exc:
        model, error = None, ingest._first_error(exc)
    try:
        fast: dict[str, Any] | None = dict(ingest.EVENT_BODY.validate_json(line, strict=True))
    except ValidationError:
        fast = None
    if model is None:
        assert fast is None
        if b"\n" not in line:  # one NDJSON line: refused with Event's own words (a blank one is skipped)
            lines, rejected = ingest.parse_lines(line, max_event_bytes=65536, max_events=10)
            assert not lines
            assert [r.error for r in rejected] == ([strict or error] if line.strip() else [])
    else:
        assert fast is not None
        # Compared as JSON text: a NaN in data (refused later, by strict JSON) is never == itself.
        same = json.dumps({"user": None, **fast}, sort_keys=True) == json.dumps(
            model.model_dump(), sort_keys=True
        )
        assert same, (fast, model)
        if strict is not None:
            lines, rejected = ingest.parse_lines(line, max_event_bytes=65536, max_events=10)
            assert not lines
            assert [r.error for r in rejected] == [strict]


def test_pattern_fields_need_no_escaping() -> None:
    """The validator's patterns take the whole text, so the fast hash quotes those fields as they are."""
    assert ingest._canonical is ingest._canonical_plain
    body = FakeAgent('h"\\', name="n\n").emit("usb.device.blocked", "high", {"k": "\u2028\x01"})
    for key, bad in (("type", "usb.device.blocked\n"), ("id", body["id"] + "\n"), ("time", "x\n")):
        line = json.dumps({**body, key: bad}).encode()
        lines, rejected = ingest.parse_lines(line, max_event_bytes=65536, max_events=10)
        assert not lines
        assert rejected[0].error.startswith(f"{key}: String should match pattern")
    ev = ingest.EVENT_BODY.validate_json(json.dumps(body), strict=True)
    assert ingest._canonical_plain(ev) == ingest._canonical_escaped(ev)
    assert ingest.parse_lines(json.dumps(body).encode(), max_event_bytes=65536, max_events=1)[0]


def _sealed_line(data: dict[str, Any]) -> bytes:
    return canonical_json(FakeAgent("m").emit("clipboard.copy", data=data))


def test_a_line_sent_as_the_agent_seals_it_is_read_by_comparing_bytes(monkeypatch: Any) -> None:
    """The real agent sends canonical JSON: it is recognised without counting keys or the strict parser."""
    line = _sealed_line({"é": [1, 2.5, None], "k": '\u2028"', "host": 1})
    checked: list[bytes] = []
    monkeypatch.setattr(ingest, "_keys_once", lambda part, *a: checked.append(part) or False)
    monkeypatch.setattr(ingest, "_strict_event", lambda part: checked.append(part) or "strict")
    lines, rejected = ingest.parse_lines(line, max_event_bytes=65536, max_events=1)
    assert (len(lines), rejected, checked) == (1, [], [])
    assert lines[0].raw == line.decode()


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        # A key given twice: not the canonical text of what it parses to, so the keys are counted.
        (lambda s: s.replace(b'"data":{', b'"data":{"a":2,', 1), "duplicate key"),
        (lambda s: s.replace(b'"a":1', b'"a":"\\u0000"'), "NUL"),
        (lambda s: s.replace(b'"a":1', b'"a":NaN'), "NaN"),
        (lambda s: s.replace(b'"a":1', b'"a":18446744073709551616'), "64-bit"),
    ],
)
def test_a_canonical_looking_line_that_breaks_the_envelopes_rules_is_refused(edit: Any, error: str) -> None:
    line = edit(_sealed_line({"a": 1}))
    lines, rejected = ingest.parse_lines(line, max_event_bytes=65536, max_events=1)
    assert not lines
    assert error in rejected[0].error, rejected

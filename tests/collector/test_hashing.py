"""The ingest's fast hash check is byte-for-byte the envelope's canonical JSON."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from boothguard.collector import ingest
from boothguard.events import Event, canonical_json
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
    except UnicodeEncodeError:
        return  # lone surrogates cannot be sealed (nor parsed by the collector)
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

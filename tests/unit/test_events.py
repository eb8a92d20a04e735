import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boothguard.envelope_limits import INT_MAX, INT_MIN, MAX_EVENT_BYTES, envelope_problem
from boothguard.events import (
    ZERO_HASH,
    AgentRef,
    Draft,
    Event,
    HostRef,
    Unsealable,
    canonical_json,
    seal,
    seal_many,
    verify_chain,
)
from boothguard.spool.refusal import draft_problem

HOST = HostRef(id="m1", name="booth-1")
AGENT = AgentRef(version="0.1.0")


def chain(n: int) -> list[Event]:
    out, prev = [], ZERO_HASH
    for seq in range(1, n + 1):
        body = seal(
            Draft("custom.test", data={"i": seq}),
            seq=seq,
            prev_hash=prev,
            host=HOST,
            agent=AGENT,
            unix=1_700_000_000 + seq,
        )
        prev = body["hash"]
        out.append(Event.model_validate(body))
    return out


def test_ids_are_uuid7_unique_and_time_ordered() -> None:
    def ids(unix: float) -> list[str]:
        raws, _ = seal_many(
            [Draft("custom.x")] * 500, first_seq=1, prev_hash=ZERO_HASH, host=HOST, agent=AGENT, unix=unix
        )
        return [Event.model_validate_json(raw).id for raw in raws]

    early, late = ids(1_700_000_000.001), ids(1_700_000_000.002)
    assert all(i[14] == "7" and i[19] in "89ab" for i in early + late)
    assert len(set(early + late)) == 1000
    assert max(early) < min(late)


def test_canonical_json_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": "離席"}) == '{"a":"離席","b":1}'.encode()


def test_chain_verifies_and_detects_tampering() -> None:
    evs = chain(5)
    assert verify_chain(evs) == []
    forged = evs[2].model_copy(update={"data": {"i": 99}})
    problems = verify_chain([*evs[:2], forged, *evs[3:]])
    assert [p.kind for p in problems] == ["bad_hash"]


def test_gap_and_backwards_and_broken_link() -> None:
    evs = chain(6)
    kinds = {p.kind for p in verify_chain([evs[0], evs[1], evs[4], evs[5]])}
    assert kinds == {"gap"}
    assert "backwards" in {p.kind for p in verify_chain([evs[0], evs[1], evs[0]])}
    other = chain(3)
    relinked = seal(Draft("custom.x"), seq=3, prev_hash="1" * 64, host=HOST, agent=AGENT, unix=1.0)
    assert "broken_link" in {p.kind for p in verify_chain([*other[:2], Event.model_validate(relinked)])}


def test_declared_gap_is_not_tampering() -> None:
    evs = chain(4)
    gap = seal(
        Draft("spool.gap", "medium", {"from_seq": 2, "to_seq": 3, "count": 2, "reason": "full"}),
        seq=5,
        prev_hash=evs[3].hash,
        host=HOST,
        agent=AGENT,
        unix=2.0,
    )
    problems = verify_chain([evs[0], evs[3], Event.model_validate(gap)])
    assert [p.kind for p in problems] == ["declared_gap"]


# What an event may carry (envelope_limits): no NUL, integers within signed 64 bits, finite numbers.
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
json_values = st.recursive(
    st.one_of(
        texts,
        st.integers(min_value=INT_MIN, max_value=INT_MAX),
        st.booleans(),
        st.none(),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(texts.filter(lambda t: len(t) <= 5), inner, max_size=3)
    ),
    max_leaves=8,
)
# Anything JSON-like, the forbidden included: seal must refuse exactly what envelope_problem names.
any_values = st.recursive(
    st.one_of(
        st.text(alphabet=st.sampled_from('a0\x00\\u"')),
        st.integers(),
        st.sampled_from([10**18, 10**19, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 1234567890123456789012]),
        st.floats(),
        st.booleans(),
        st.none(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(alphabet="ab\x00", max_size=3), inner, max_size=3),
    ),
    max_leaves=8,
)


@given(
    data=st.dictionaries(texts.filter(lambda t: len(t) <= 8), json_values, max_size=5),
    user=st.one_of(st.none(), texts.filter(lambda t: len(t) <= 12)),
    severity=st.sampled_from(["info", "low", "medium", "high", "critical"]),
    name=st.text(min_size=1, max_size=10),
    n=st.integers(min_value=1, max_value=3),
)
def test_fast_serializer_is_byte_identical_to_canonical_json(
    data: dict[str, object], user: str | None, severity: str, name: str, n: int
) -> None:
    host = HostRef(id="m-1", name=name)
    drafts = [Draft("usb.device.blocked", severity, data, user=user) for _ in range(n)]  # type: ignore[arg-type]
    raws, last = seal_many(
        drafts, first_seq=3, prev_hash="a" * 64, host=host, agent=AGENT, unix=1_700_000_000.5
    )
    events = [Event.model_validate_json(raw) for raw in raws]
    for raw, ev in zip(raws, events, strict=True):
        assert raw == canonical_json(ev.model_dump(mode="json"))
        assert ev.hash_ok()
    assert [ev.seq for ev in events] == list(range(3, 3 + n))
    assert events[0].prev_hash == "a" * 64
    assert last == events[-1].hash
    assert verify_chain(events) == []
    assert len({ev.id for ev in events}) == n


@given(data=st.dictionaries(st.text(alphabet="ab\x00", max_size=3), any_values, max_size=4))
def test_seal_refuses_exactly_what_the_envelope_forbids(data: dict[str, object]) -> None:
    """The cheap scans in seal_many miss nothing envelope_problem finds (and refuse nothing else)."""
    expected = envelope_problem(data, where="data")
    drafts = [Draft("custom.x", data=data)]
    if expected is None:
        seal_many(drafts, first_seq=1, prev_hash=ZERO_HASH, host=HOST, agent=AGENT, unix=1.0)
    else:
        with pytest.raises(Unsealable) as caught:
            seal_many(drafts, first_seq=1, prev_hash=ZERO_HASH, host=HOST, agent=AGENT, unix=1.0)
        assert caught.value.index == 0


@pytest.mark.parametrize(
    ("data", "user", "why"),
    [
        ({"v": math.nan}, None, "Out of range float"),
        ({"v": 1e400}, None, "Out of range float"),
        ({"v": 2**63}, None, "64-bit"),
        ({"v": "a\x00"}, None, "NUL"),
        ({"v": b"bytes"}, None, "not JSON serializable"),
        ({"v": "x" * MAX_EVENT_BYTES}, None, "once sealed"),
        ({}, "a\x00", "NUL"),
        ({"v": "\ud800"}, None, "not valid Unicode"),
        ({"\udcff": 1}, None, "not valid Unicode"),
        ({}, "\udcff", "not valid Unicode"),
        ({}, "u" * 257, "longer than 256"),
    ],
)
def test_seal_names_the_draft_it_refuses(data: dict[str, object], user: str | None, why: str) -> None:
    drafts = [Draft("custom.ok"), Draft("custom.bad", data=data, user=user)]
    with pytest.raises(Unsealable) as caught:
        seal_many(drafts, first_seq=1, prev_hash=ZERO_HASH, host=HOST, agent=AGENT, unix=1.0)
    assert caught.value.index == 1
    assert why in caught.value.problem


def test_an_event_just_within_the_size_limit_is_sealed() -> None:
    [raw], _ = seal_many(
        [Draft("custom.x", data={"v": ""})],
        first_seq=1,
        prev_hash=ZERO_HASH,
        host=HOST,
        agent=AGENT,
        unix=1.0,
    )
    room = MAX_EVENT_BYTES - len(raw)
    [raw], _ = seal_many(
        [Draft("custom.x", data={"v": "x" * room})],
        first_seq=1,
        prev_hash=ZERO_HASH,
        host=HOST,
        agent=AGENT,
        unix=1.0,
    )
    assert len(raw) == MAX_EVENT_BYTES


def test_type_longer_than_the_envelope_allows_is_refused_at_draft() -> None:
    with pytest.raises(ValueError, match="bad event type"):
        Draft("custom." + "a" * 122)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"v": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}, "nested deeper than 32"),
        ({"v": math.inf}, "non-finite"),
        ({"v": "x" * MAX_EVENT_BYTES}, "once sealed"),
    ],
)
def test_emit_checks_everything_exactly(data: dict[str, object], why: str) -> None:
    """What `emit` refuses before a seq is taken: all of envelope_limits, depth included (seal skips it)."""
    problem = draft_problem(Draft("custom.x", data=data), HOST, AGENT)
    assert problem is not None
    assert why in problem
    assert draft_problem(Draft("custom.x", data={"n": INT_MAX, "s": "日本"}), HOST, AGENT) is None

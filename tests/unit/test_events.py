from hypothesis import given
from hypothesis import strategies as st

from boothguard.events import (
    ZERO_HASH,
    AgentRef,
    Draft,
    Event,
    HostRef,
    canonical_json,
    seal,
    seal_many,
    verify_chain,
)

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


json_values = st.recursive(
    st.one_of(
        st.text(), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    data=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    user=st.one_of(st.none(), st.text(max_size=12)),
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

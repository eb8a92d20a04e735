"""Issue 19: what one event carries can only get that event refused, never the batch, on both backends."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from boothguard.collector import db, users
from boothguard.collector.schema import events
from tests.collector.conftest import SECRET
from tests.collector.helpers import FakeAgent, client, enroll, make_store

_T = "2026-03-01T10:00:00.000Z"


def _line(body: dict[str, Any], **changes: Any) -> str:
    return json.dumps({**body, **changes})


def _poison(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(line, what its rejection says) for one event's seq: each must be refused alone."""
    plain = json.dumps(body)
    data = json.dumps(body["data"])
    host = body["host"]
    return [
        (plain.replace(data, '{"v": NaN}'), "non-finite number NaN"),
        (plain.replace(data, '{"v": Infinity}'), "non-finite number Infinity"),
        (plain.replace(data, '{"v": [-Infinity]}'), "non-finite number -Infinity"),
        (plain.replace(data, '{"v": 1e400}'), "number out of range"),
        (plain.replace(data, '{"v": 18446744073709551616}'), "signed 64-bit"),
        (plain.replace(data, '{"v": "a\\u0000b"}'), "NUL character"),
        (plain.replace(data, '{"a\\u0000": 1}'), "NUL character"),
        (plain.replace(data, '{"v": "\\ud800"}'), "lone surrogate"),
        (plain.replace(data, '{"v": 1, "v": 2}'), "duplicate key 'v'"),
        (plain.replace(data, '{"o": {"k": 1, "k": 1}}'), "duplicate key 'k'"),
        (plain.replace(data, "[" * 40 + "]" * 40), "nested deeper"),
        (plain.replace(data, '{"v": ' + "[" * 40 + "]" * 40 + "}"), "nested deeper"),
        (plain[:-1] + ', "seq": 2}', "duplicate key 'seq'"),
        (_line(body, user="ana\x00"), "NUL character"),
        (_line(body, host={**host, "name": "b\x007"}), "NUL character"),
        (_line(body, seq=2**63), "signed 64-bit"),
        (_line(body, seq=2**64 + 1), "signed 64-bit"),
        (_line(body, time="2026-13-01T10:00:00.000Z"), "not a real date"),
        (_line(body, time="2026-02-30T10:00:00.000Z"), "not a real date"),
        (_line(body, time="2026-02-28T24:00:00.000Z"), "not a real time"),
        (_line(body, time="2026-02-28T23:60:00.000Z"), "not a real time"),
        (_line(body, time="٢٠٢٦-02-28T23:00:00.000Z"), "digits other than 0-9"),
        (plain.encode("utf-16").decode("latin-1"), "not JSON"),
    ]


def test_a_poison_event_is_refused_alone_and_the_rest_is_stored(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    agent = FakeAgent("m-poison", name="booth-7")
    good = agent.many(3)
    cases = _poison(good[1])
    lines = [json.dumps(good[0]), *(line for line, _ in cases), json.dumps(good[1]), json.dumps(good[2])]
    body = "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-poison", "booth-7")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
        r = c.post("/v1/events", content=body, headers=headers)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["accepted"] == 3
        got = {x["index"]: x["error"] for x in answer["rejected"]}
        assert sorted(got) == list(range(1, len(cases) + 1))
        for i, (_line_text, why) in enumerate(cases, start=1):
            assert why in got[i], (i, got[i])
        # and again, one by one: each alone is a 200 with one rejection, never a 5xx
        for line, why in cases:
            r = c.post("/v1/events", content=line.encode("utf-8", "surrogatepass") + b"\n", headers=headers)
            assert r.status_code == 200, r.text
            assert why in r.json()["rejected"][0]["error"]
    with db.read(store.engine) as conn:
        seqs = conn.execute(sa.select(events.c.seq).where(events.c.host_id == "m-poison")).scalars().all()
    assert sorted(seqs) == [1, 2, 3]


@pytest.mark.parametrize(
    "body",
    [
        '{"type": "lock", "x": NaN}',
        '{"type": "lock", "x": 1e400}',
        '{"type": "lock", "type": "lock"}',
        '{"type": "lock", "x": "\\u0000"}',
        '{"type": "lock", "x": 9223372036854775808}',
    ],
)
def test_a_command_body_that_cannot_be_stored_is_a_400(db_url: str, secret_file: Path, body: str) -> None:
    store = make_store(db_url)
    users.add_user(store.engine, "boss", "admin", "admin-pass-1", now=time.time())
    with client(store, secret_file) as c:
        enroll(c, SECRET, "m-1")
        r = c.post(
            "/v1/hosts/m-1/commands",
            content=body,
            headers={"Content-Type": "application/json"},
            auth=("boss", "admin-pass-1"),
        )
        assert r.status_code == 400, r.text

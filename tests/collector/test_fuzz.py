"""Schema-driven fuzzing of the OpenAPI surface: no 5xx, and nothing stored from garbage."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boothguard.collector import db, users
from boothguard.collector.schema import alerts, events, hosts
from tests.collector.conftest import SECRET
from tests.collector.helpers import FakeAgent, client, enroll, make_store, ndjson

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
texts = st.text(max_size=40) | st.sampled_from(
    ["", "-1", "0", "99999999999999999999", "usb.*", "high", "%", "../"]
)


def _event_like(agent: FakeAgent) -> st.SearchStrategy[bytes]:
    base = agent.emit()  # a valid event for the right host, never sent as is

    def mutate(changes: dict[str, Any]) -> bytes:
        return json.dumps({**base, **changes}).encode()

    keys = st.sampled_from([*base.keys(), "extra"])
    return st.dictionaries(keys, json_values, min_size=1, max_size=3).map(mutate)


def test_fuzz_openapi_surface(tmp_path: Path, secret_file: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 'f.db'}")
    users.add_user(store.engine, "adm", "admin", "adm-password", now=time.time())
    agent = FakeAgent("m-1", "booth-1")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        session = c.post("/v1/sessions", auth=("adm", "adm-password")).json()["token"]
        spec = c.get("/openapi.json").json()
        operations = [
            (method.upper(), path, op)
            for path, item in spec["paths"].items()
            for method, op in item.items()
            if path not in ("/v1/sessions",)
        ]
        auths = st.sampled_from(
            [
                None,
                f"Bearer {token}",
                f"Bearer {session}",
                f"Bearer {SECRET}",
                "Bearer x",
                "Basic Og==",
                "Digest a",
            ]
        )
        bodies = st.one_of(
            st.binary(max_size=300),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.lists(_event_like(agent), min_size=1, max_size=4).map(b"\n".join),
        )

        @st.composite
        def request(draw: st.DrawFn) -> tuple[str, str, dict[str, str], dict[str, str], bytes]:
            method, path, op = draw(st.sampled_from(operations))
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    value = quote(draw(texts.filter(lambda t: t not in ("", ".", ".."))), safe="")
                    path = path.replace("{" + param["name"] + "}", value)
            query = {
                p["name"]: draw(texts)
                for p in op.get("parameters", [])
                if p["in"] == "query" and draw(st.booleans())
            }
            headers = {}
            if (auth := draw(auths)) is not None:
                headers["Authorization"] = auth
            body = draw(bodies)
            if draw(st.booleans()):
                headers["Content-Encoding"] = draw(st.sampled_from(["gzip", "br", "identity"]))
                if headers["Content-Encoding"] == "gzip" and draw(st.booleans()):
                    body = gzip.compress(body)
            return method, path, query, headers, body

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(request())
        def hit(req: tuple[str, str, dict[str, str], dict[str, str], bytes]) -> None:
            method, path, query, headers, body = req
            r = c.request(
                method, path, params=query, headers=headers, content=body if method == "POST" else None
            )
            assert r.status_code < 500, (req, r.status_code, r.text)

        hit()
    with db.read(store.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 0
        assert conn.execute(sa.select(hosts.c.id)).scalars().all() == ["m-1"]
        assert conn.execute(sa.select(sa.func.count()).select_from(alerts)).scalar() == 0


def test_valid_events_after_fuzzing_still_chain(tmp_path: Path, secret_file: Path) -> None:
    """The same collector still accepts the real thing: the fuzz target was not simply refusing all."""
    store = make_store(f"sqlite:///{tmp_path / 'f.db'}")
    agent = FakeAgent("m-1")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        r = c.post("/v1/events", content=ndjson(agent.many(3)), headers={"Authorization": f"Bearer {token}"})
        assert r.json()["accepted"] == 3

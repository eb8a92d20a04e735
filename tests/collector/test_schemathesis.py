"""Issue 19: schemathesis over the whole /openapi.json against a real collector process, on SQLite and a
real PostgreSQL, authenticated (a real admin session, a real host token, the enrollment secret), with a
real NDJSON serializer so `POST /v1/events` is fuzzed too: not one 5xx."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from boothguard.collector import db, users
from tests.collector.conftest import SECRET
from tests.collector.proc import CollectorProcess

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (test extra)")
from schemathesis.checks import not_a_server_error  # noqa: E402

EXAMPLES = 25  # per operation: the whole run stays within a few minutes on a loaded 2-core machine


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_ctx: Any, value: Any) -> bytes:
    """Each generated event as one JSON line, as an agent ships them."""
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item, ensure_ascii=False).encode() + b"\n" for item in items)


def _fuzz(op: Any, base_url: str, headers: dict[str, str], server_errors: list[str]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        if response.status_code >= 500:
            server_errors.append(f"{case.method} {case.formatted_path}: {response.status_code}")
        case.validate_response(response, checks=[not_a_server_error])

    run()


def test_no_5xx_anywhere_in_the_api(db_url: str, tmp_path: Path, secret_file: Path) -> None:
    with CollectorProcess(tmp_path, db_url, secret_file, log_level="warning") as coll:
        users.add_user(db.create(db_url), "boss", "admin", "admin-pass-123", now=time.time())
        session = httpx.post(coll.url + "/v1/sessions", auth=("boss", "admin-pass-123"), timeout=30)
        assert session.status_code == 200, session.text
        user_auth = {"Authorization": f"Bearer {session.json()['token']}"}
        enrolled = httpx.post(
            coll.url + "/v1/enroll",
            json={"host": {"id": "m-fuzz", "name": "fuzz"}},
            headers={"Authorization": f"Bearer {SECRET}"},
            timeout=30,
        )
        assert enrolled.status_code == 200, enrolled.text
        host_auth = {"Authorization": f"Bearer {enrolled.json()['token']}"}
        schema = schemathesis.openapi.from_url(coll.url + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 9
        server_errors: list[str] = []
        for op in operations:
            path = op.path
            headers = (
                {"Authorization": f"Bearer {SECRET}"}
                if path == "/v1/enroll"
                else host_auth
                if (path, op.method.upper()) == ("/v1/events", "POST")
                else user_auth
            )

            _fuzz(op, coll.url, headers, server_errors)
        assert server_errors == []
        assert "Traceback" not in coll.output()

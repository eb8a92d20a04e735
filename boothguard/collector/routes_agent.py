"""The agents' API routes: enrollment with the shared secret, and batches of sealed events (SPEC §5)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import DBAPIError, OperationalError

from boothguard import log
from boothguard.collector import hosts_store, policy_directory, policy_store
from boothguard.collector.api_io import inline_defs, json_error, openapi_json_body, small_json
from boothguard.collector.auth import bearer
from boothguard.collector.host_ids import HOST_ID_PATTERN, HOST_NAME_MAX, host_name_problem
from boothguard.collector.ingest import EVENT_BODY, parse_lines
from boothguard.collector.ingest_body import BodyError, read_body
from boothguard.collector.ingest_write import IngestResult
from boothguard.collector.settings import CollectorSection
from boothguard.ship.settings import LABEL_PATTERN, MAX_LABELS

if TYPE_CHECKING:
    # app.py imports this module; Services is only an annotation here.
    from boothguard.collector.app import Services
    from boothguard.collector.store import Store

_log = log.get("collector.routes_agent")


class EnrollHost(BaseModel):
    """The envelope's `HostRef`, narrowed to what a new host may be called (issue 19)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=HOST_ID_PATTERN, max_length=128)
    name: str = Field(min_length=1, max_length=HOST_NAME_MAX)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = host_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class EnrollBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: EnrollHost
    labels: list[Annotated[str, Field(pattern=LABEL_PATTERN)]] = Field(
        default_factory=list, max_length=MAX_LABELS
    )


_NDJSON_SCHEMA = {"type": "array", "items": inline_defs(EVENT_BODY.json_schema())}


def mount(app: FastAPI, svc: Services) -> None:
    store = svc.store
    run = anyio.to_thread.run_sync

    @app.post(
        "/v1/enroll",
        openapi_extra=openapi_json_body(EnrollBody.model_json_schema()),
        responses={401: {}, 403: {}},
    )
    async def enroll(request: Request) -> JSONResponse:
        secret = await run(_read_secret, svc.settings)
        if not secret:
            return json_error(403, "enrollment is disabled: no enroll secret configured")
        given = bearer(request)
        if given is None or not hmac.compare_digest(given.encode(), secret.encode()):
            return json_error(401, "bad enrollment secret", {"WWW-Authenticate": "Bearer"})
        try:
            body = EnrollBody.model_validate(await small_json(request))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            return json_error(400, f"bad enrollment request: {where}: {err['msg']}"[:300])
        token = await run(store.enroll, body.host.id, body.host.name, body.labels)
        return JSONResponse({"host_id": body.host.id, "token": token})

    @app.post(
        "/v1/events",
        openapi_extra={
            # NDJSON: one sealed event (the envelope's schema) per line; a fuzzer serializes the array so
            "requestBody": {"content": {"application/x-ndjson": {"schema": _NDJSON_SCHEMA}}},
        },
        responses={400: {}, 401: {}, 403: {}, 413: {}, 429: {}, 503: {}},
    )
    async def post_events(request: Request) -> JSONResponse:
        limits = svc.settings
        retry = {"Retry-After": str(limits.retry_after_seconds)}
        if not await svc.gate.enter(limits.max_concurrent_ingests):
            svc.metrics.requests.labels("503").inc()
            return json_error(503, "collector busy", retry)
        svc.metrics.in_flight.inc()
        try:
            response = await _ingest(svc, request, retry)
        finally:
            svc.gate.leave()
            svc.metrics.in_flight.dec()
        svc.metrics.requests.labels(str(response.status_code)).inc()
        return response


async def _ingest(svc: Services, request: Request, retry: dict[str, str]) -> JSONResponse:
    store = svc.store
    limits = svc.settings
    token = bearer(request)
    # A token verified within the cache's ttl is answered here, without a query or a thread hop.
    host_id = None if token is None else hosts_store.cached_host(store, token)
    if host_id is None and token is not None:
        host_id = await anyio.to_thread.run_sync(store.authenticate, token)
    if host_id is None:
        return json_error(401, "bad or missing host token", {"WWW-Authenticate": "Bearer"})
    if svc.per_host.get(host_id, 0) >= limits.max_ingests_per_host:
        return json_error(429, "too many concurrent batches from this host", retry)
    svc.per_host[host_id] = svc.per_host.get(host_id, 0) + 1
    try:
        body = await read_body(
            request.stream(),
            encoding=request.headers.get("content-encoding"),
            content_length=request.headers.get("content-length"),
            max_body=limits.max_body_bytes,
            max_decompressed=limits.max_decompressed_bytes,
        )
        # One thread hop for the whole write: parse, store, policy (each hop is a wake-up of the loop).
        step = await anyio.to_thread.run_sync(_write, svc, host_id, body)
    except BodyError as exc:
        return json_error(exc.status, exc.reason)
    except (OperationalError, DBAPIError) as exc:
        _log.error("ingest_db_error", host=host_id, error=str(exc.orig)[:300])
        return json_error(503, "database unavailable", retry)
    finally:
        svc.per_host[host_id] -= 1
        if not svc.per_host[host_id]:
            del svc.per_host[host_id]
    if isinstance(step, _Foreign):
        return json_error(403, f"event {step.index} belongs to another host; nothing stored")
    result, policy = step
    svc.metrics.events.labels("accepted").inc(result.accepted)
    svc.metrics.events.labels("duplicate").inc(result.duplicates)
    svc.metrics.events.labels("rejected").inc(len(result.rejected))
    for finding in result.findings:
        svc.metrics.findings.labels(finding.kind).inc()
        _log.warning(
            "chain_finding",
            host=host_id,
            kind=finding.kind,
            seq_from=finding.seq_from,
            seq_to=finding.seq_to,
        )
    svc.notify(result.notify)
    answer = result.answer()
    if policy is not None:  # absent, not null: the answer stays as before for booths without one
        answer["policy"] = policy
    return JSONResponse(answer)


@dataclass(frozen=True)
class _Foreign:
    index: int


def _write(svc: Services, host_id: str, body: bytes) -> _Foreign | tuple[IngestResult, dict[str, Any] | None]:
    """In a worker thread: parse the batch, store it, and find the policy its answer carries."""
    limits = svc.settings
    lines, rejections = parse_lines(
        body, max_event_bytes=limits.max_event_bytes, max_events=limits.max_events_per_request
    )
    foreign = next((line for line in lines if line.event["host"]["id"] != host_id), None)
    if foreign is not None:
        return _Foreign(foreign.index)
    with svc.metrics.ingest_seconds.time():
        result = svc.store.ingest(host_id, lines, rejections)
    # Central policy rides the answer, like commands; the booth's reports update its applied version.
    reports = [dict(ln.event) for ln in lines if ln.event.get("type") in _POLICY_REPORTS]
    return result, _policy_step(svc.store, host_id, reports)


_POLICY_REPORTS = ("agent.policy_applied", "agent.config_rejected")


def _policy_step(store: Store, host_id: str, reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    for event in reports:
        policy_store.record_report(store.engine, host_id, event, now=store.clock())
    return policy_directory.for_engine(store.engine).for_host(host_id)


def _read_secret(settings: CollectorSection) -> str:
    try:
        return settings.enroll_secret_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""

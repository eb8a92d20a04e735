"""The collector's HTTP API (SPEC §5) as a FastAPI app; storage and alerting are passed in."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

import anyio
import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError

from boothguard import log
from boothguard.collector import queries, usb_allow, users
from boothguard.collector.alerts.model import Alert
from boothguard.collector.ingest import BodyError, parse_lines, read_body
from boothguard.collector.metrics import Metrics
from boothguard.collector.settings import CollectorSection
from boothguard.collector.store import Store
from boothguard.events import HostRef, format_time

_log = log.get("collector.app")
SMALL_BODY = 64 * 1024  # enrollment, commands: tiny JSON documents


class Dispatcher(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def submit(self, alert: Alert) -> bool: ...


@dataclass
class Services:
    store: Store
    settings: CollectorSection
    metrics: Metrics = field(default_factory=Metrics)
    dispatcher: Dispatcher | None = None
    background: bool = True
    # Ingests in progress in this process, in total and per host (touched only on the event loop).
    active: int = 0
    per_host: dict[str, int] = field(default_factory=dict)

    def notify(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            if self.dispatcher is None:
                continue
            if self.dispatcher.submit(alert):
                self.metrics.alerts_submitted.inc()
            else:
                self.metrics.alerts_dropped.inc()
                _log.warning("alert_dropped", alert=alert.id, rule=alert.rule)


class EnrollBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: HostRef


class CommandBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


async def _small_json(request: Request) -> Any:
    body = await read_body(
        request.stream(),
        encoding=request.headers.get("content-encoding"),
        content_length=request.headers.get("content-length"),
        max_body=SMALL_BODY,
        max_decompressed=SMALL_BODY,
    )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BodyError(400, "body is not JSON") from None


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def create_app(svc: Services) -> FastAPI:

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if svc.dispatcher is not None:
            await svc.dispatcher.start()
        task = asyncio.create_task(_background(svc)) if svc.background else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.gather(task, return_exceptions=True)
            if svc.dispatcher is not None:
                await svc.dispatcher.stop()

    app = FastAPI(title="boothguard collector", version="1", lifespan=lifespan)
    app.state.svc = svc
    _handlers(app, svc)
    _agent_routes(app, svc)
    _user_routes(app, svc)
    _ops_routes(app, svc)
    from boothguard.collector.web import mount_dashboard  # the security dashboard at / (issue 7)

    mount_dashboard(app, svc)
    return app


def _handlers(app: FastAPI, svc: Services) -> None:
    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(BodyError)
    async def _body_error(_request: Request, exc: BodyError) -> JSONResponse:
        return _error(exc.status, exc.reason)

    @app.exception_handler(queries.BadQuery)
    async def _bad_query(_request: Request, exc: queries.BadQuery) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(OperationalError)
    async def _db_down(_request: Request, exc: OperationalError) -> JSONResponse:
        _log.error("database_unavailable", error=str(exc.orig)[:300])
        return _error(503, "database unavailable", {"Retry-After": str(svc.settings.retry_after_seconds)})

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def principal(request: Request) -> users.Principal:
    """The API user: HTTP Basic (name, password) or `Bearer <session token>` from POST /v1/sessions."""
    svc: Services = request.app.state.svc
    run = anyio.to_thread.run_sync
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    found: users.Principal | None = None
    if scheme.lower() == "basic":
        try:
            name, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            name, password = "", ""
        if name and password:
            found = await run(users.check_password, svc.store.engine, name, password)
    elif scheme.lower() == "bearer" and value.strip():
        found = await run(users.session_principal, svc.store.engine, value.strip(), svc.store.clock())
    if found is None:
        raise HTTPException(401, "login required", {"WWW-Authenticate": 'Basic realm="boothguard"'})
    return found


def _role(needed: str) -> Callable[[users.Principal], Awaitable[users.Principal]]:
    async def check(who: Annotated[users.Principal, Depends(principal)]) -> users.Principal:
        if not who.allows(needed):
            raise HTTPException(403, f"needs role {needed}")
        return who

    return check


User = Annotated[users.Principal, Depends(principal)]
Viewer = Annotated[users.Principal, Depends(_role("viewer"))]
Analyst = Annotated[users.Principal, Depends(_role("analyst"))]
Admin = Annotated[users.Principal, Depends(_role("admin"))]


def _agent_routes(app: FastAPI, svc: Services) -> None:
    store = svc.store
    run = anyio.to_thread.run_sync

    # --- agents ----------------------------------------------------------------------------------

    @app.post(
        "/v1/enroll",
        openapi_extra=_json_body(EnrollBody.model_json_schema()),
        responses={401: {}, 403: {}},
    )
    async def enroll(request: Request) -> JSONResponse:
        secret = await run(_read_secret, svc.settings)
        if not secret:
            return _error(403, "enrollment is disabled: no enroll secret configured")
        given = _bearer(request)
        if given is None or not hmac.compare_digest(given.encode(), secret.encode()):
            return _error(401, "bad enrollment secret", {"WWW-Authenticate": "Bearer"})
        try:
            body = EnrollBody.model_validate(await _small_json(request))
        except ValidationError as exc:
            return _error(400, f"bad enrollment request: {exc.errors(include_url=False)[0]['msg']}")
        token = await run(store.enroll, body.host.id, body.host.name)
        return JSONResponse({"host_id": body.host.id, "token": token})

    @app.post(
        "/v1/events",
        openapi_extra={
            "requestBody": {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
        },
        responses={400: {}, 401: {}, 403: {}, 413: {}, 429: {}, 503: {}},
    )
    async def post_events(request: Request) -> JSONResponse:
        limits = svc.settings
        retry = {"Retry-After": str(limits.retry_after_seconds)}
        if svc.active >= limits.max_concurrent_ingests:
            svc.metrics.requests.labels("503").inc()
            return _error(503, "collector busy", retry)
        svc.active += 1
        svc.metrics.in_flight.inc()
        try:
            response = await _ingest(svc, request, retry)
        finally:
            svc.active -= 1
            svc.metrics.in_flight.dec()
        svc.metrics.requests.labels(str(response.status_code)).inc()
        return response


def _user_routes(app: FastAPI, svc: Services) -> None:
    store = svc.store
    run = anyio.to_thread.run_sync

    @app.post("/v1/sessions", responses={401: {}})
    async def create_session(who: User) -> dict[str, Any]:
        token, expires = await run(
            users.create_session, store.engine, who, store.clock(), svc.settings.session_ttl_seconds
        )
        return {
            "token": token,
            "user": who.name,
            "role": who.role,
            "expires_at": format_time(expires),
        }

    @app.get("/v1/events", responses={400: {}, 401: {}, 403: {}})
    async def get_events(
        _who: Viewer,
        *,
        host: Annotated[str | None, Query(max_length=128)] = None,
        type: Annotated[str | None, Query(max_length=128)] = None,
        severity: Annotated[str | None, Query(max_length=16)] = None,
        since: Annotated[str | None, Query(max_length=64)] = None,
        until: Annotated[str | None, Query(max_length=64)] = None,
        cursor: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
    ) -> dict[str, Any]:
        return await run(
            lambda: queries.list_events(
                store.engine,
                host=host,
                type_=type,
                severity=severity,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            )
        )

    @app.get("/v1/alerts", responses={400: {}, 401: {}, 403: {}})
    async def get_alerts(
        _who: Viewer,
        *,
        state: Annotated[str | None, Query(max_length=16)] = None,
        host: Annotated[str | None, Query(max_length=128)] = None,
        cursor: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
    ) -> dict[str, Any]:
        return await run(
            lambda: queries.list_alerts(store.engine, state=state, host=host, cursor=cursor, limit=limit)
        )

    async def _alert_state(alert_id: int, state: str, who: users.Principal) -> dict[str, Any]:
        if not 0 < alert_id < 2**62:
            raise HTTPException(404, "no such alert")
        row = await run(store.set_alert_state, alert_id, state, who.name)
        if row is None:
            raise HTTPException(404, "no such alert")
        return queries.alert_json(row)

    @app.post("/v1/alerts/{alert_id}/ack", responses={401: {}, 403: {}, 404: {}})
    async def ack_alert(alert_id: int, who: Analyst) -> dict[str, Any]:
        return await _alert_state(alert_id, "acked", who)

    @app.post("/v1/alerts/{alert_id}/resolve", responses={401: {}, 403: {}, 404: {}})
    async def resolve_alert(alert_id: int, who: Analyst) -> dict[str, Any]:
        return await _alert_state(alert_id, "resolved", who)

    @app.get("/v1/hosts", responses={401: {}, 403: {}})
    async def get_hosts(_who: Viewer) -> dict[str, Any]:
        return await run(queries.list_hosts, store.engine, store.clock(), store.threshold)

    @app.post(
        "/v1/hosts/{host_id}/commands",
        openapi_extra=_json_body(CommandBody.model_json_schema()),
        responses={400: {}, 401: {}, 403: {}, 404: {}},
    )
    async def post_command(host_id: str, request: Request, who: Admin) -> JSONResponse:
        data = await _small_json(request)
        try:
            cmd = CommandBody.model_validate(data)
        except ValidationError as exc:
            return _error(400, f"bad command: {exc.errors(include_url=False)[0]['msg']}")
        extra = dict(cmd.model_extra or {})
        if "id" in extra:
            return _error(400, "bad command: the collector assigns its id")
        if cmd.type == usb_allow.COMMAND:
            checked = usb_allow.check_command(extra)
            if isinstance(checked, list):
                return _error(400, "bad command: " + "; ".join(p.message for p in checked))
            if extra.get("granted_by") not in (None, who.name):
                _log.warning(
                    "usb_allow_granted_by_replaced", user=who.name, given=str(extra["granted_by"])[:64]
                )
            extra |= checked.body(granted_by=who.name)  # who granted it is who is logged in, never the body
        created = await run(store.add_command, host_id, cmd.type, extra, who.name)
        if created is None:
            return _error(404, "no such host")
        return JSONResponse(created, status_code=201)


def _ops_routes(app: FastAPI, svc: Services) -> None:
    store = svc.store
    run = anyio.to_thread.run_sync

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        def ping() -> None:
            with store.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        try:
            await run(ping)
        except DBAPIError:
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _ingest(svc: Services, request: Request, retry: dict[str, str]) -> JSONResponse:
    store = svc.store
    run = anyio.to_thread.run_sync
    limits = svc.settings
    token = _bearer(request)
    host_id = await run(store.authenticate, token) if token else None
    if host_id is None:
        return _error(401, "bad or missing host token", {"WWW-Authenticate": "Bearer"})
    if svc.per_host.get(host_id, 0) >= limits.max_ingests_per_host:
        return _error(429, "too many concurrent batches from this host", retry)
    svc.per_host[host_id] = svc.per_host.get(host_id, 0) + 1
    try:
        body = await read_body(
            request.stream(),
            encoding=request.headers.get("content-encoding"),
            content_length=request.headers.get("content-length"),
            max_body=limits.max_body_bytes,
            max_decompressed=limits.max_decompressed_bytes,
        )
        lines, rejections = await run(
            lambda: parse_lines(
                body, max_event_bytes=limits.max_event_bytes, max_events=limits.max_events_per_request
            )
        )
        foreign = next((line for line in lines if line.event["host"]["id"] != host_id), None)
        if foreign is not None:
            return _error(403, f"event {foreign.index} belongs to another host; nothing stored")
        with svc.metrics.ingest_seconds.time():
            result = await run(store.ingest, host_id, lines, rejections)
    except BodyError as exc:
        return _error(exc.status, exc.reason)
    except (OperationalError, DBAPIError) as exc:
        _log.error("ingest_db_error", host=host_id, error=str(exc.orig)[:300])
        return _error(503, "database unavailable", retry)
    finally:
        svc.per_host[host_id] -= 1
        if not svc.per_host[host_id]:
            del svc.per_host[host_id]
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
    return JSONResponse(result.answer())


def _read_secret(settings: CollectorSection) -> str:
    try:
        return settings.enroll_secret_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


async def _background(svc: Services) -> None:
    """Silence and late chain holes are checked here; a failing check is counted and retried."""
    checks = (("silence", svc.store.check_silence), ("chain", svc.store.settle_chains))
    while True:
        await asyncio.sleep(svc.settings.silence_check_seconds)
        for name, check in checks:
            try:
                svc.notify(await anyio.to_thread.run_sync(check))
            except Exception as exc:
                svc.metrics.background_errors.labels(name).inc()
                _log.error("background_check_failed", task=name, error=f"{type(exc).__name__}: {exc}")

"""The collector's HTTP API (SPEC §5) as a FastAPI app; storage and alerting are passed in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from boothguard import log
from boothguard.collector import (
    partitions,
    queries,
    retention_routes,
    retention_task,
    routes_agent,
    routes_ops,
    routes_policy,
    routes_user,
)
from boothguard.collector.alerts.model import Alert
from boothguard.collector.api_io import RefuseNul, json_error
from boothguard.collector.ingest_body import BodyError
from boothguard.collector.ingest_gate import IngestGate
from boothguard.collector.login_guard import LoginGuard
from boothguard.collector.metrics import Metrics
from boothguard.collector.settings import CollectorSection
from boothguard.collector.store import Store

_log = log.get("collector.app")


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
    # Ingests in progress in this process, in total (with a short bounded wait for a slot) and per host
    # (touched only on the event loop).
    gate: IngestGate = field(default_factory=IngestGate)
    per_host: dict[str, int] = field(default_factory=dict)
    # One failed-login throttle and argon2 bound for the API's Basic auth and the dashboard's /login.
    logins: LoginGuard = field(default_factory=LoginGuard)

    def notify(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            if self.dispatcher is None:
                continue
            if self.dispatcher.submit(alert):
                self.metrics.alerts_submitted.inc()
            else:
                self.metrics.alerts_dropped.inc()
                _log.warning("alert_dropped", alert=alert.id, rule=alert.rule)


def create_app(svc: Services) -> FastAPI:

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if svc.dispatcher is not None:
            await svc.dispatcher.start()
        tasks = [asyncio.create_task(_background(svc)), _retention(svc)] if svc.background else []
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                with anyio.CancelScope(shield=True):
                    await asyncio.gather(*tasks, return_exceptions=True)
            if svc.dispatcher is not None:
                await svc.dispatcher.stop()

    svc.logins.max_checks = svc.settings.max_password_checks
    app = FastAPI(title="boothguard collector", version="1", lifespan=lifespan)
    app.state.svc = svc
    app.add_middleware(RefuseNul)
    _handlers(app, svc)
    routes_agent.mount(app, svc)
    routes_user.mount(app, svc)
    routes_ops.mount(app, svc)
    routes_policy.mount(app, svc)  # central policy (issue 18)
    retention_routes.mount(app, svc)  # a host's chain verified, retention's state (issue 17)
    from boothguard.collector.web import mount_dashboard  # the security dashboard at / (issue 7)

    mount_dashboard(app, svc)
    return app


def _handlers(app: FastAPI, svc: Services) -> None:
    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return json_error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(BodyError)
    async def _body_error(_request: Request, exc: BodyError) -> JSONResponse:
        return json_error(exc.status, exc.reason)

    @app.exception_handler(queries.BadQuery)
    async def _bad_query(_request: Request, exc: queries.BadQuery) -> JSONResponse:
        return json_error(400, str(exc))

    @app.exception_handler(OperationalError)
    async def _db_down(_request: Request, exc: OperationalError) -> JSONResponse:
        _log.error("database_unavailable", error=str(exc.orig)[:300])
        return json_error(503, "database unavailable", {"Retry-After": str(svc.settings.retry_after_seconds)})

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return json_error(exc.status_code, str(exc.detail), dict(exc.headers or {}))


def _retention(svc: Services) -> asyncio.Task[None]:
    """Its own task: a long retention run never delays the silence and chain checks."""
    store = svc.store
    return asyncio.create_task(
        retention_task.run_forever(store.engine, lambda: svc.settings.retention, store.clock, svc.metrics)
    )


async def _background(svc: Services) -> None:
    """Silence and late chain holes are checked here; a failing check is counted and retried."""

    def settle() -> list[Alert]:
        return svc.store.settle_chains(lambda kind: svc.metrics.findings.labels(kind).inc())

    ensured = [float("-inf")]

    def months_ahead() -> list[Alert]:
        # Hourly is plenty: the months exist two ahead; a run when they do is a catalog read.
        if svc.store.clock() - ensured[0] >= 3600:
            partitions.ensure(svc.store.engine, svc.store.clock())
            ensured[0] = svc.store.clock()
        return []

    checks = (("silence", svc.store.check_silence), ("chain", settle), ("partitions", months_ahead))
    while True:
        await asyncio.sleep(svc.settings.silence_check_seconds)
        for name, check in checks:
            try:
                svc.notify(await anyio.to_thread.run_sync(check))
            except Exception as exc:
                svc.metrics.background_errors.labels(name).inc()
                _log.error("background_check_failed", task=name, error=f"{type(exc).__name__}: {exc}")

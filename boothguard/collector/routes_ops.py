"""The operators' routes: a health check that reaches the database, and Prometheus metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DBAPIError

from boothguard.collector.fleet_metrics import FleetCollector

if TYPE_CHECKING:
    # app.py imports this module; Services is only an annotation here.
    from boothguard.collector.app import Services


def mount(app: FastAPI, svc: Services) -> None:
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

    stats = getattr(svc.dispatcher, "stats", None)  # the real dispatcher counts per channel
    svc.metrics.registry.register(FleetCollector(store.engine, stats))

    @app.get("/metrics")
    async def metrics() -> Response:
        # The fleet figures are database reads: off the event loop.
        text = await run(generate_latest, svc.metrics.registry)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

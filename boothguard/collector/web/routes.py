"""The security dashboard at `/`: login, alerts inbox, booths board, events, timelines, incident export.

The route table is assembled here from one module per area; the plumbing lives in `dashboard`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from boothguard.collector.app import Services
from boothguard.collector.web import alert_routes, event_routes, host_routes, login_routes, policy_routes
from boothguard.collector.web.dashboard import _HERE, CSP, SECURITY_HEADERS, Dashboard, Principal, Refused

__all__ = ["CSP", "SECURITY_HEADERS", "Dashboard", "Principal", "Refused", "build_router", "mount"]


def build_router(svc: Services) -> APIRouter:
    d = Dashboard(svc)
    router = APIRouter(include_in_schema=False)
    for area in (login_routes, alert_routes, host_routes, event_routes, policy_routes):
        area.register(router, d)
    return router


def mount(app: FastAPI, svc: Services) -> None:
    """Serve the dashboard from the collector's app: pages at `/…`, assets at `/static/…`."""
    app.include_router(build_router(svc))
    app.mount("/static", _Static(directory=_HERE / "static"), name="dashboard-static")


class _Static(StaticFiles):
    """The dashboard's assets, with the same no-sniffing and framing rules as its pages."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        resp = super().file_response(*args, **kwargs)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-cache"
        return resp

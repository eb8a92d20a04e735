"""Dashboard alerts inbox: list, live rows fragment, ack and resolve."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from boothguard.collector.web import queries
from boothguard.collector.web.dashboard import Dashboard, Refused, _iso, _local, _log, _param
from boothguard.collector.web.queries import AlertFilter


def register(router: APIRouter, d: Dashboard) -> None:
    svc = d.svc
    run = anyio.to_thread.run_sync
    page = d.page

    def alert_filter(request: Request) -> AlertFilter:
        state = _param(request, "state", 16)
        return AlertFilter(
            severity=_param(request, "severity", 16),
            type=_param(request, "type"),
            host=_param(request, "host"),
            state=None if state == "all" else state,
        )

    async def alert_rows(f: AlertFilter) -> dict[str, Any]:
        rows = await run(queries.list_alerts, d.engine, f)
        query = urlencode(f.as_query())
        counts = await run(queries.alert_counts, d.engine)
        return {
            "counts": counts,
            "back": "/?" + query if query else "/",
            "alerts": [dict(a, first_iso=_iso(a["first_seen"]), last_iso=_iso(a["last_seen"])) for a in rows],
        }

    @router.get("/")
    @page
    async def alerts_page(request: Request) -> Response:
        who = await d.require(request)
        f = alert_filter(request)
        ctx = await alert_rows(f)
        types = await run(queries.alert_types, d.engine)
        hosts = await run(queries.host_names, d.engine)
        return d.render(
            request, "alerts.html", who=who, f=f, types=types, hosts=hosts,
            query=urlencode(f.as_query()), **ctx,
        )  # fmt: skip

    @router.get("/alerts/rows")
    @page
    async def alerts_fragment(request: Request) -> Response:
        who = await d.require(request)
        ctx = await alert_rows(alert_filter(request))
        return d.render(request, "alert_rows.html", who=who, **ctx)

    async def alert_action(request: Request, state: str) -> Response:
        who = await d.require(request, "analyst")
        fields = await d.form(request, who)
        alert_id = request.path_params["alert_id"]
        digits = alert_id.isascii() and alert_id.isdigit() and len(alert_id) < 20  # isdigit() takes "¹"
        if not digits or not 0 < int(alert_id) < 2**62:
            raise Refused(404, "error.not_found")
        row = await run(svc.store.set_alert_state, int(alert_id), state, who.name)
        if row is None:
            raise Refused(404, "error.not_found")
        _log.info("dashboard_alert_state", user=who.name, alert=int(alert_id), state=state)
        return d.secure(RedirectResponse(_local(fields.get("next")), status_code=303), request)

    @router.post("/alerts/{alert_id}/ack")
    @page
    async def ack(request: Request) -> Response:
        return await alert_action(request, "acked")

    @router.post("/alerts/{alert_id}/resolve")
    @page
    async def resolve(request: Request) -> Response:
        return await alert_action(request, "resolved")

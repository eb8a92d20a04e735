"""The users' API routes: sessions, event and alert queries, alert states, and commands to hosts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from boothguard import log
from boothguard.collector import booths, queries, usb_allow, users
from boothguard.collector.api_io import json_error, openapi_json_body, small_json
from boothguard.collector.auth import Admin, Analyst, User, Viewer
from boothguard.events import format_time

if TYPE_CHECKING:
    # app.py imports this module; Services is only an annotation here.
    from boothguard.collector.app import Services

_log = log.get("collector.routes_user")


class CommandBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")


def mount(app: FastAPI, svc: Services) -> None:
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

    @app.get("/v1/hosts", responses={400: {}, 401: {}, 403: {}})
    async def get_hosts(
        _who: Viewer,
        *,
        q: Annotated[str | None, Query(max_length=128)] = None,
        state: Annotated[str | None, Query(max_length=16)] = None,
        cursor: Annotated[str | None, Query(max_length=booths.MAX_CURSOR)] = None,
        limit: Annotated[int | None, Query(ge=1, le=booths.MAX_PAGE)] = None,
    ) -> dict[str, Any]:
        if q is None and state is None and cursor is None and limit is None:
            return await run(queries.list_hosts, store.engine, store.clock(), store.threshold)
        # A fleet of thousands: one page in name order, as the booths page reads it.
        s = svc.settings
        silence = booths.Silence(s.silence_heartbeats, s.silence_default_seconds)
        f = booths.BoothFilter(q=q or None, state=state or None)
        return await run(
            lambda: booths.page(
                store.engine,
                f,
                store.clock(),
                silence,
                store.threshold,
                after=cursor,
                limit=limit or booths.PAGE,
            )
        )

    @app.post(
        "/v1/hosts/{host_id:path}/commands",
        openapi_extra=openapi_json_body(CommandBody.model_json_schema()),
        responses={400: {}, 401: {}, 403: {}, 404: {}},
    )
    async def post_command(host_id: str, request: Request, who: Admin) -> JSONResponse:
        data = await small_json(request)
        try:
            cmd = CommandBody.model_validate(data)
        except ValidationError as exc:
            return json_error(400, f"bad command: {exc.errors(include_url=False)[0]['msg']}")
        extra = dict(cmd.model_extra or {})
        if "id" in extra:
            return json_error(400, "bad command: the collector assigns its id")
        if cmd.type == usb_allow.COMMAND:
            checked = usb_allow.check_command(extra)
            if isinstance(checked, list):
                return json_error(400, "bad command: " + "; ".join(p.message for p in checked))
            if extra.get("granted_by") not in (None, who.name):
                _log.warning(
                    "usb_allow_granted_by_replaced", user=who.name, given=str(extra["granted_by"])[:64]
                )
            extra |= checked.body(granted_by=who.name)  # who granted it is who is logged in, never the body
        created = await run(store.add_command, host_id, cmd.type, extra, who.name)
        if created is None:
            return json_error(404, "no such host")
        return JSONResponse(created, status_code=201)

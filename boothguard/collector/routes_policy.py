"""Central policy API (admin writes, viewer reads): groups, policies, assignment, per-booth status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from boothguard.collector import policy_store
from boothguard.collector.api_io import json_error, small_json
from boothguard.collector.auth import Admin, Viewer
from boothguard.ship.settings import LABEL_PATTERN

if TYPE_CHECKING:
    from boothguard.collector.app import Services


class GroupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name_pattern: str | None = Field(default=None, max_length=255)
    label: str | None = Field(default=None, pattern=LABEL_PATTERN)
    priority: int = 0


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group: str | None = Field(max_length=128)


def mount(app: FastAPI, svc: Services) -> None:
    store = svc.store
    run = anyio.to_thread.run_sync

    @app.put("/v1/groups/{name}", responses={400: {}, 401: {}, 403: {}})
    async def put_group(name: str, request: Request, who: Admin) -> JSONResponse:
        try:
            body = GroupBody.model_validate(await small_json(request))
        except ValidationError as exc:
            return json_error(400, f"bad group: {exc.errors(include_url=False)[0]['msg']}")
        out = await run(
            lambda: policy_store.put_group(
                store.engine,
                name[:128],
                name_pattern=body.name_pattern,
                label=body.label,
                priority=body.priority,
                actor=who.name,
                now=store.clock(),
            )
        )
        return JSONResponse(out)

    @app.put("/v1/groups/{name}/policy", responses={400: {}, 401: {}, 403: {}, 404: {}, 422: {}})
    async def put_policy(name: str, request: Request, who: Admin) -> JSONResponse:
        data = await small_json(request)
        out = await run(
            lambda: policy_store.put_policy(store.engine, name, data, actor=who.name, now=store.clock())
        )
        if out is None:
            return json_error(404, "no such group")
        if isinstance(out, list):
            problems = [p.as_dict() for p in out]
            msg = "policy refused: " + "; ".join(f"{p['key']}: {p['reason']}" for p in problems)
            return JSONResponse({"error": msg, "problems": problems}, status_code=422)
        return JSONResponse(out, status_code=201)

    @app.get("/v1/groups/{name}/policy", responses={401: {}, 403: {}, 404: {}})
    async def get_policy(name: str, _who: Viewer) -> JSONResponse:
        out = await run(policy_store.get_policy, store.engine, name)
        return json_error(404, "no such group") if out is None else JSONResponse(out)

    @app.put("/v1/hosts/{host_id}/group", responses={400: {}, 401: {}, 403: {}, 404: {}})
    async def assign(host_id: str, request: Request, who: Admin) -> JSONResponse:
        try:
            body = AssignBody.model_validate(await small_json(request))
        except ValidationError as exc:
            return json_error(400, f"bad assignment: {exc.errors(include_url=False)[0]['msg']}")
        ok = await run(
            lambda: policy_store.assign(store.engine, host_id, body.group, actor=who.name, now=store.clock())
        )
        return (
            JSONResponse({"host_id": host_id, "group": body.group})
            if ok
            else json_error(404, "no such host or group")
        )

    @app.get("/v1/policy/status", responses={401: {}, 403: {}})
    async def status(_who: Viewer) -> dict[str, Any]:
        return {"hosts": await run(policy_store.status, store.engine)}

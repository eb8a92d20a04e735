"""Dashboard booths board and its remote commands: lock, temporary USB exception."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from boothguard.collector import booths, policy_store, usb_allow
from boothguard.collector.web import i18n, queries
from boothguard.collector.web.dashboard import Dashboard, Principal, Refused, _iso, _log, _param


def register(router: APIRouter, d: Dashboard) -> None:  # noqa: PLR0915 - one route table, read top to bottom
    svc = d.svc
    run = anyio.to_thread.run_sync
    page = d.page

    def silence() -> booths.Silence:
        s = svc.store.settings
        return booths.Silence(s.silence_heartbeats, s.silence_default_seconds)

    @router.get("/hosts")
    @page
    async def hosts_page(request: Request) -> Response:
        who = await d.require(request)
        f = booths.BoothFilter(q=_param(request, "q", 128), state=_param(request, "state", 16))
        after = _param(request, "after", booths.MAX_CURSOR)
        found = await run(
            lambda: booths.page(d.engine, f, d.now(), silence(), svc.store.threshold, after=after)
        )
        board = found["hosts"]
        ids = [h["id"] for h in board]
        cmds = await run(queries.last_commands, d.engine, ids)
        policy = {p["host_id"]: p for p in await run(policy_store.status, d.engine, ids)}
        for h in board:
            h["policy"] = policy.get(h["id"])
            c = cmds.get(h["id"])
            h["command"] = (
                {
                    **c,
                    "created_iso": _iso(c["created_at"]),
                    "acked_iso": _iso(c["acked_at"]) if c["acked_at"] else None,
                }
                if c
                else None
            )
        return d.render(
            request, "hosts.html", who=who, hosts=board, sent=request.query_params.get("sent"),
            allowed=request.query_params.get("allowed"), f=f, found=found, states=booths.STATES,
            query=urlencode(f.as_query()), after=after,
        )  # fmt: skip

    async def host_or_404(host_id: str) -> dict[str, Any]:
        host = await run(booths.one, d.engine, host_id, d.now(), svc.store.threshold)
        if host is None:
            raise Refused(404, "error.not_found")
        return host

    @router.get("/hosts/{host_id:path}/lock")
    @page
    async def lock_confirm(request: Request) -> Response:
        who = await d.require(request, "admin")
        host = await host_or_404(request.path_params["host_id"])
        return d.render(request, "lock.html", who=who, host=host)

    @router.post("/hosts/{host_id:path}/lock")
    @page
    async def lock(request: Request) -> Response:
        who = await d.require(request, "admin")
        fields = await d.form(request, who)
        host_id = request.path_params["host_id"]
        if fields.get("confirm") != "yes":
            raise Refused(400, "error.confirm")
        reason = " ".join(fields.get("reason", "").split())[:200]
        body = {"reason": reason} if reason else {}
        created = await run(svc.store.add_command, host_id, "lock", body, who.name)
        if created is None:
            raise Refused(404, "error.not_found")
        _log.info("dashboard_lock", user=who.name, host=host_id, command=created["id"])
        return d.secure(
            RedirectResponse("/hosts?" + urlencode({"q": host_id, "sent": host_id}), status_code=303), request
        )

    # --- temporary USB exception: form, confirmation, command ----------------------------------------

    USB_FIELDS = ("device", "duration", "reason")

    def usb_allow_page(
        request: Request, who: Principal, host: dict[str, Any], values: dict[str, str], *, status: int = 200,
        problems: list[usb_allow.Problem] | None = None,
    ) -> Response:  # fmt: skip
        t = i18n.Translator(d.lang(request))
        errors = {p.field: t(f"usb_allow.err.{p.code}", **p.params) for p in problems or []}
        return d.render(
            request, "usb_allow.html", status, who=who, host=host, values=values, errors=errors,
            max_reason=usb_allow.REASON_MAX,
        )  # fmt: skip

    @router.get("/hosts/{host_id:path}/usb-allow")
    @page
    async def usb_allow_form(request: Request) -> Response:
        who = await d.require(request, "admin")
        host = await host_or_404(request.path_params["host_id"])
        # prefilled when the admin goes back from the review to change something
        values = {k: (request.query_params.get(k) or "")[:256] for k in USB_FIELDS}
        return usb_allow_page(request, who, host, values)

    @router.post("/hosts/{host_id:path}/usb-allow")
    @page
    async def usb_allow_post(request: Request) -> Response:
        who = await d.require(request, "admin")
        fields = await d.form(request, who)
        host = await host_or_404(request.path_params["host_id"])
        values = {k: fields.get(k, "")[:1024] for k in USB_FIELDS}
        checked = usb_allow.check_form(values["device"], values["duration"], values["reason"])
        if isinstance(checked, list):
            _log.info(
                "dashboard_usb_allow_refused",
                user=who.name,
                host=host["id"],
                fields=[p.code for p in checked],
            )
            return usb_allow_page(request, who, host, values, status=400, problems=checked)
        if fields.get("confirm") != "yes":  # first step: show what will happen, ask again
            t = i18n.Translator(d.lang(request))
            span = ("" if t.lang == "ja" else " ").join(
                t(f"unit.{u}", n=n) for u, n in usb_allow.parts(checked.seconds)
            )
            return d.render(
                request, "usb_allow_confirm.html", who=who, host=host, allow=checked, span=span,
                until=_iso(d.now() + checked.seconds), duration=values["duration"].strip(),
                change=urlencode(values),
            )  # fmt: skip
        body = checked.body(granted_by=who.name)  # never from the form
        created = await run(svc.store.add_command, host["id"], usb_allow.COMMAND, body, who.name)
        if created is None:
            raise Refused(404, "error.not_found")
        _log.info(
            "dashboard_usb_allow",
            user=who.name,
            host=host["id"],
            command=created["id"],
            device=checked.device,
        )
        # back to that booth's row, wherever it falls in the fleet's pages
        target = "/hosts?" + urlencode({"q": host["id"], "allowed": host["id"]})
        return d.secure(RedirectResponse(target, status_code=303), request)

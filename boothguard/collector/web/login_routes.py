"""Dashboard login, logout and language choice."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from boothguard.collector import users
from boothguard.collector.web import auth, i18n, queries
from boothguard.collector.web.dashboard import Dashboard, Refused, _local, _log


def register(router: APIRouter, d: Dashboard) -> None:
    svc = d.svc
    run = anyio.to_thread.run_sync
    page = d.page

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        token = auth.new_login_csrf()
        resp = d.render(
            request,
            "login.html",
            login_csrf=token,
            next=_local(request.query_params.get("next")),
            expired=request.query_params.get("expired") == "1",
            error=None,
        )
        d.cookie(resp, request, auth.LOGIN_CSRF_COOKIE, token, 1800)
        return resp

    @router.post("/login")
    async def login(request: Request) -> Response:
        try:
            fields = await d.form(request, None)
        except Refused as exc:
            return d.refused(request, exc)
        expected = request.cookies.get(auth.LOGIN_CSRF_COOKIE, "")
        if not expected or not auth.csrf_ok(expected, fields.get(auth.CSRF_FIELD)):
            return d.refused(request, Refused(403, "error.csrf"))
        name, password = fields.get("username", "")[:128], fields.get("password", "")[:1024]
        nxt = _local(fields.get("next"))
        client = request.client.host if request.client else "?"
        now = d.now()

        def again(error: str, status: int, **kw: object) -> Response:
            token = auth.new_login_csrf()
            t = i18n.Translator(d.lang(request))
            resp = d.render(
                request, "login.html", status, login_csrf=token, next=nxt, expired=False, error=t(error, **kw)
            )
            d.cookie(resp, request, auth.LOGIN_CSRF_COOKIE, token, 1800)
            return resp

        # An empty field guesses nothing: no password check, nothing counted.
        checked = await d.logins.check(d.engine, name, password, client, now) if name and password else None
        if checked is not None and checked.outcome in ("throttled", "busy"):
            if checked.outcome == "throttled":
                await d.audit(name or "?", "login.throttled", name, {"client": client})
            status = 429 if checked.outcome == "throttled" else 503
            resp = again("login.throttled", status, minutes=int(checked.retry_after // 60) + 1)
            resp.headers["Retry-After"] = str(int(checked.retry_after) + 1)
            return resp
        who = checked.principal if checked is not None else None
        if who is None:
            await d.audit(name or "?", "login.failed", name, {"client": client})
            return again("login.bad", 401)
        ttl = svc.settings.session_ttl_seconds
        token, _expires = await run(users.create_session, d.engine, who, now, ttl)
        _log.info("login", user=who.name, role=who.role, client=client)
        resp = d.secure(RedirectResponse(nxt, status_code=303), request)
        d.cookie(resp, request, auth.SESSION_COOKIE, token, ttl)
        resp.delete_cookie(auth.LOGIN_CSRF_COOKIE, path="/")
        return resp

    @router.post("/logout")
    @page
    async def logout(request: Request) -> Response:
        who = await d.require(request)
        await d.form(request, who)
        await run(queries.end_session, d.engine, request.cookies[auth.SESSION_COOKIE], who.name, d.now())
        resp = d.secure(RedirectResponse("/login", status_code=303), request)
        resp.delete_cookie(auth.SESSION_COOKIE, path="/")
        return resp

    @router.get("/lang/{code}")
    async def set_lang(request: Request, code: str) -> Response:
        resp = d.secure(RedirectResponse(_local(request.query_params.get("next")), status_code=303), request)
        if code in i18n.LANGS:
            d.cookie(resp, request, i18n.COOKIE, code, 365 * 86400)
        return resp

"""The security dashboard at `/`: login, alerts inbox, booths board, events, timelines, incident export.

Pages are rendered on the server (Jinja2, autoescaped); one local script adds live updates, local time
formatting and confirmations. Every response carries a strict CSP without inline script.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from boothguard import log
from boothguard.collector import queries as api_queries
from boothguard.collector import usb_allow, users
from boothguard.collector.app import Services
from boothguard.collector.web import auth, charts, export, i18n, queries
from boothguard.collector.web.queries import AlertFilter, EventFilter
from boothguard.events import SEVERITIES, format_time

_log = log.get("collector.web")
_HERE = Path(__file__).parent
MAX_FORM = 16 * 1024
TZ_COOKIE = "bg_tz"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Principal = users.Principal


class Refused(Exception):
    """A request the dashboard turns away with an error page (or a redirect to the login page)."""

    def __init__(self, status: int, key: str, **kw: object) -> None:
        super().__init__(key)
        self.status, self.key, self.kw = status, key, kw


class Dashboard:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.throttle = auth.LoginThrottle()
        self.env = Environment(
            loader=FileSystemLoader(_HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    # --- plumbing -----------------------------------------------------------------------------------

    @property
    def engine(self) -> Any:
        return self.svc.store.engine

    def now(self) -> float:
        return self.svc.store.clock()

    @staticmethod
    def lang(request: Request) -> str:
        return i18n.negotiate(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))

    @staticmethod
    def zone(request: Request) -> tzinfo:
        name = request.cookies.get(TZ_COOKIE, "")
        if name and len(name) < 64 and ".." not in name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                pass
        return UTC

    def render(
        self,
        request: Request,
        template: str,
        status: int = 200,
        who: Principal | None = None,
        **ctx: Any,
    ) -> Response:
        lang = self.lang(request)
        t = i18n.Translator(lang)
        zone = self.zone(request)
        token = request.cookies.get(auth.SESSION_COOKIE)
        page = self.env.get_template(template).render(
            t=t,
            lang=lang,
            who=who,
            csrf=auth.csrf_token(token) if (who and token) else "",
            path=request.url.path,
            here=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
            fmt=lambda v: _fmt_time(v, zone),
            zone_name=str(zone),
            severities=SEVERITIES,
            **ctx,
        )
        return self.secure(HTMLResponse(page, status_code=status), request)

    @staticmethod
    def secure(resp: Response, request: Request) -> Response:
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        if request.url.scheme == "https":
            resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return resp

    @staticmethod
    def cookie(resp: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
        resp.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    async def audit(self, actor: str, action: str, target: str | None, detail: dict[str, Any]) -> None:
        now = self.now()
        await anyio.to_thread.run_sync(
            lambda: queries.record(self.engine, actor, action, target, detail, now=now)
        )

    async def principal(self, request: Request) -> Principal | None:
        token = request.cookies.get(auth.SESSION_COOKIE)
        if not token or len(token) > 256:
            return None
        found: Principal | None = await anyio.to_thread.run_sync(
            users.session_principal, self.engine, token, self.now()
        )
        return found

    async def require(self, request: Request, role: str = "viewer") -> Principal:
        who = await self.principal(request)
        if who is None:
            raise Refused(401, "login")
        if not who.allows(role):
            _log.warning(
                "dashboard_forbidden", user=who.name, role=who.role, needed=role, path=request.url.path
            )
            raise Refused(403, "error.role", role=role)
        return who

    async def form(self, request: Request, who: Principal | None) -> dict[str, str]:
        """The urlencoded body; for a logged-in user the CSRF token must match the session's."""
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise Refused(403, "error.csrf")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise Refused(413, "error.too_large")
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=50)
        fields = {k: v[0] for k, v in parsed.items() if v}
        if who is not None:
            token = request.cookies.get(auth.SESSION_COOKIE, "")
            given = fields.get(auth.CSRF_FIELD) or request.headers.get(auth.CSRF_HEADER)
            if not auth.csrf_ok(auth.csrf_token(token), given):
                _log.warning("dashboard_csrf_refused", user=who.name, path=request.url.path)
                await self.audit(who.name, "dashboard.csrf_refused", request.url.path, {})
                raise Refused(403, "error.csrf")
        return fields

    def refused(self, request: Request, exc: Refused, who: Principal | None = None) -> Response:
        if exc.key == "login":
            if request.headers.get("x-requested-with") == "fetch":
                return self.secure(Response(status_code=401), request)
            expired = auth.SESSION_COOKIE in request.cookies
            target = "/login?" + urlencode(
                {
                    "next": _local(_here(request) if request.method == "GET" else "/"),
                    **({"expired": "1"} if expired else {}),
                }
            )
            resp = RedirectResponse(target, status_code=303)
            if expired:
                resp.delete_cookie(auth.SESSION_COOKIE, path="/")
            return self.secure(resp, request)
        t = i18n.Translator(self.lang(request))
        kw = {k: t(f"role.{v}") if k == "role" else v for k, v in exc.kw.items()}
        return self.render(request, "error.html", exc.status, who, message=t(exc.key, **kw), code=exc.status)


def _here(request: Request) -> str:
    return str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")


def _local(target: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _fmt_time(value: Any, zone: tzinfo) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, int | float):
        dt = datetime.fromtimestamp(float(value), UTC)
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    return dt.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _iso(value: Any) -> str:
    if isinstance(value, int | float):
        return format_time(float(value))
    return str(value or "")


def _local_input(text: str | None, zone: tzinfo) -> str | None:
    """A `datetime-local` form value (viewer's zone) or an RFC 3339 instant → RFC 3339 UTC."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise api_queries.BadQuery(f"not a time: {text[:40]!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    return format_time(dt.timestamp())


def _param(request: Request, name: str, max_len: int = 128) -> str | None:
    value = request.query_params.get(name)
    return value.strip()[:max_len] or None if value else None


def build_router(svc: Services) -> APIRouter:  # noqa: PLR0915 - one route table, read top to bottom
    d = Dashboard(svc)
    run = anyio.to_thread.run_sync
    router = APIRouter(include_in_schema=False)
    Handler = Callable[[Request], Awaitable[Response]]

    def page(fn: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)
            except Refused as exc:
                return d.refused(request, exc, await d.principal(request) if exc.key != "login" else None)
            except api_queries.BadQuery as exc:
                return d.refused(request, Refused(400, "error.bad_query", detail=str(exc)))

        wrapped.__name__ = fn.__name__
        return wrapped

    # --- login / logout / language -------------------------------------------------------------------

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
        wait = d.throttle.retry_after(name, client, now)

        def again(error: str, status: int, **kw: object) -> Response:
            token = auth.new_login_csrf()
            t = i18n.Translator(d.lang(request))
            resp = d.render(
                request, "login.html", status, login_csrf=token, next=nxt, expired=False, error=t(error, **kw)
            )
            d.cookie(resp, request, auth.LOGIN_CSRF_COOKIE, token, 1800)
            return resp

        if wait is not None:
            await d.audit(name or "?", "login.throttled", name, {"client": client})
            _log.warning("login_throttled", user=name, client=client)
            resp = again("login.throttled", 429, minutes=int(wait // 60) + 1)
            resp.headers["Retry-After"] = str(int(wait) + 1)
            return resp
        who = await run(users.check_password, d.engine, name, password) if name and password else None
        if who is None:
            d.throttle.failed(name, client, now)
            await d.audit(name or "?", "login.failed", name, {"client": client})
            _log.warning("login_failed", user=name, client=client)
            return again("login.bad", 401)
        d.throttle.succeeded(name)
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

    # --- alerts ----------------------------------------------------------------------------------------

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
        if not alert_id.isdigit() or not 0 < int(alert_id) < 2**62:
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

    # --- booths ----------------------------------------------------------------------------------------

    @router.get("/hosts")
    @page
    async def hosts_page(request: Request) -> Response:
        who = await d.require(request)
        board = await run(queries.hosts_board, d.engine, d.now(), svc.store.threshold)
        cmds = await run(queries.last_commands, d.engine)
        for h in board:
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
            allowed=request.query_params.get("allowed"),
        )  # fmt: skip

    async def host_or_404(host_id: str) -> dict[str, Any]:
        board = await run(queries.hosts_board, d.engine, d.now(), svc.store.threshold)
        host = next((h for h in board if h["id"] == host_id), None)
        if host is None:
            raise Refused(404, "error.not_found")
        return host

    @router.get("/hosts/{host_id}/lock")
    @page
    async def lock_confirm(request: Request) -> Response:
        who = await d.require(request, "admin")
        host = await host_or_404(request.path_params["host_id"])
        return d.render(request, "lock.html", who=who, host=host)

    @router.post("/hosts/{host_id}/lock")
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
        return d.secure(RedirectResponse("/hosts?" + urlencode({"sent": host_id}), status_code=303), request)

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

    @router.get("/hosts/{host_id}/usb-allow")
    @page
    async def usb_allow_form(request: Request) -> Response:
        who = await d.require(request, "admin")
        host = await host_or_404(request.path_params["host_id"])
        # prefilled when the admin goes back from the review to change something
        values = {k: (request.query_params.get(k) or "")[:256] for k in USB_FIELDS}
        return usb_allow_page(request, who, host, values)

    @router.post("/hosts/{host_id}/usb-allow")
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
        target = "/hosts?" + urlencode({"allowed": host["id"]})
        return d.secure(RedirectResponse(target, status_code=303), request)

    # --- events, timeline, export -------------------------------------------------------------------

    def event_filter(request: Request) -> EventFilter:
        zone = d.zone(request)
        return EventFilter(
            host=_param(request, "host"),
            user=_param(request, "user", 256),
            type=_param(request, "type"),
            severity=_param(request, "severity", 16),
            since=_local_input(_param(request, "since", 64), zone),
            until=_local_input(_param(request, "until", 64), zone),
            text=_param(request, "q", 128),
        )

    def raw_query(request: Request, *names: str) -> str:
        return urlencode({k: v for k in names if (v := request.query_params.get(k))})

    @router.get("/events")
    @page
    async def events_page(request: Request) -> Response:
        who = await d.require(request)
        f = event_filter(request)
        before = request.query_params.get("before")
        cursor = int(before) if before and before.isdigit() and len(before) < 19 else None
        rows, next_cursor = await run(lambda: queries.search_events(d.engine, f, before=cursor))
        t = i18n.Translator(d.lang(request))
        zone = d.zone(request)
        now = d.now()
        slots, per_hour = await run(queries.events_per_hour, d.engine, now, 24, zone)
        days, per_day = await run(queries.alerts_per_day, d.engine, now, 14, zone)
        hour_chart = charts.stacked_bars(
            labels=[s.strftime("%H") for s in slots],
            series=per_hour,
            title=t("chart.events_per_hour"),
            series_labels={k: t.maybe("category", k) for k in per_hour},
            empty_text=t("chart.empty"),
        )
        day_chart = charts.stacked_bars(
            labels=[s.strftime("%m/%d") for s in days],
            series=per_day,
            title=t("chart.alerts_per_day"),
            colours=charts.SEVERITY_COLOURS,
            series_labels={k: t(f"severity.{k}") for k in per_day},
            empty_text=t("chart.empty"),
        )
        hosts = await run(queries.host_names, d.engine)
        raw = {
            k: request.query_params.get(k, "")
            for k in ("host", "user", "type", "severity", "since", "until", "q")
        }
        more = raw_query(request, "host", "user", "type", "severity", "since", "until", "q")
        return d.render(
            request, "events.html", who=who, events=rows, raw=raw, hosts=hosts, hour_chart=hour_chart,
            day_chart=day_chart, next_cursor=next_cursor, more=more,
        )  # fmt: skip

    @router.get("/timeline")
    @page
    async def timeline_page(request: Request) -> Response:
        who = await d.require(request)
        f = event_filter(request)
        if not (f.host or f.user):
            raise Refused(400, "error.need_scope")
        rows, truncated = await run(lambda: queries.timeline(d.engine, f, limit=2000))
        scope = raw_query(request, "host", "user", "since", "until")
        return d.render(
            request, "timeline.html", who=who, f=f, events=rows, truncated=truncated, scope=scope,
            raw={k: request.query_params.get(k, "") for k in ("host", "user", "since", "until")},
        )  # fmt: skip

    @router.get("/export")
    @page
    async def export_page(request: Request) -> Response:
        who = await d.require(request, "analyst")
        fmt = request.query_params.get("format", "html")
        f = event_filter(request)
        if not (f.host or f.user):
            hosts = await run(queries.host_names, d.engine)
            raw = {k: request.query_params.get(k, "") for k in ("host", "user", "since", "until")}
            return d.render(request, "export_form.html", who=who, hosts=hosts, raw=raw)
        if fmt not in ("html", "csv", "json"):
            raise Refused(400, "error.bad_query", detail="format")
        now = d.now()
        incident = await run(lambda: export.build(d.engine, f, actor=who.name, now=now))
        detail = {
            "format": fmt,
            **f.as_query(),
            "events": len(incident.events),
            "chain_ok": incident.chain_ok,
        }
        await d.audit(who.name, "incident.export", f.host or f"user:{f.user}", detail)
        _log.info("dashboard_export", user=who.name, host=f.host, subject=f.user, format=fmt)
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"incident-{_safe(f.host or f.user or 'all')}-{stamp}"
        if fmt == "csv":
            resp = Response(export.to_csv(incident), media_type="text/csv; charset=utf-8")
            resp.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
            return d.secure(resp, request)
        if fmt == "json":
            resp = Response(export.to_json(incident), media_type="application/json")
            resp.headers["Content-Disposition"] = f'attachment; filename="{name}.json"'
            return d.secure(resp, request)
        scope = raw_query(request, "host", "user", "since", "until")
        return d.render(request, "export.html", who=who, inc=incident, scope=scope, iso=_iso)

    return router


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:64]


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

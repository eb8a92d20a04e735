"""The dashboard's plumbing: sessions, roles, CSRF-checked forms, rendering, security headers.

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
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from boothguard import log
from boothguard.collector import queries as api_queries
from boothguard.collector import users
from boothguard.collector.app import Services
from boothguard.collector.web import alert_titles, auth, i18n, queries
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
Handler = Callable[[Request], Awaitable[Response]]


class Refused(Exception):
    """A request the dashboard turns away with an error page (or a redirect to the login page)."""

    def __init__(self, status: int, key: str, **kw: object) -> None:
        super().__init__(key)
        self.status, self.key, self.kw = status, key, kw


class Dashboard:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.logins = svc.logins  # the API's too: one throttle for every way of giving a password
        self.env = Environment(
            loader=FileSystemLoader(_HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # `tojson` still escapes < > & ' (HTML-safe); Japanese in event data stays text, not \uXXXX.
        self.env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}

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
            alert_title=lambda a: alert_titles.localized(a, t),
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

    def page(self, fn: Handler) -> Handler:
        """A route whose refusals and bad queries become error pages (or the login redirect)."""

        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)
            except Refused as exc:
                who = await self.principal(request) if exc.key != "login" else None
                return self.refused(request, exc, who)
            except api_queries.BadQuery as exc:
                return self.refused(request, Refused(400, "error.bad_query", detail=str(exc)))

        wrapped.__name__ = fn.__name__
        return wrapped


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

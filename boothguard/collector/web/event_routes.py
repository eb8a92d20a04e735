"""Dashboard events search with charts, per-host/user timeline, incident export."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from boothguard.collector import booths
from boothguard.collector.web import charts, export, i18n, queries, reports
from boothguard.collector.web.dashboard import Dashboard, Refused, _iso, _local_input, _log, _param
from boothguard.collector.web.queries import EventFilter


def register(router: APIRouter, d: Dashboard) -> None:  # noqa: PLR0915 - one route table, read top to bottom
    run = anyio.to_thread.run_sync
    page = d.page

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
        if f.host:  # typed by name or id
            f = replace(f, host=await run(booths.resolve_host, d.engine, f.host))
        before = _param(request, "before", 64)
        rows, next_cursor = await run(lambda: queries.search_events(d.engine, f, before=before))
        t = i18n.Translator(d.lang(request))
        zone = d.zone(request)
        now = d.now()
        slots, per_hour = await run(reports.events_per_hour, d.engine, now, 24, zone)
        days, per_day = await run(reports.alerts_per_day, d.engine, now, 14, zone)
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
        raw = {
            k: request.query_params.get(k, "")
            for k in ("host", "user", "type", "severity", "since", "until", "q")
        }
        more = raw_query(request, "host", "user", "type", "severity", "since", "until", "q")
        return d.render(
            request, "events.html", who=who, events=rows, raw=raw, hour_chart=hour_chart,
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
        subject = f.host or f.user or "all"
        if fmt == "csv":
            resp = Response(export.to_csv(incident), media_type="text/csv; charset=utf-8")
            resp.headers["Content-Disposition"] = _attachment(f"incident-{subject}-{stamp}.csv")
            return d.secure(resp, request)
        if fmt == "json":
            resp = Response(export.to_json(incident), media_type="application/json")
            resp.headers["Content-Disposition"] = _attachment(f"incident-{subject}-{stamp}.json")
            return d.secure(resp, request)
        scope = raw_query(request, "host", "user", "since", "until")
        return d.render(request, "export.html", who=who, inc=incident, scope=scope, iso=_iso)


def _attachment(name: str) -> str:
    """RFC 6266: an ASCII fallback for old clients and the real name (a Japanese user's) as
    `filename*=UTF-8''…`; a header value is Latin-1, so a raw non-ASCII name was a 500."""
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)[-120:]
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name[-200:], safe='')}"

"""Webhook: one JSON POST per alert. `format = "json"` (default): a shape Slack and Teams incoming webhooks
accept (`text`), plus `attachments`/`fields` for Slack and the full structured alert under `alert` for
everything else; `"slack"` and `"teams"`: those services' own message shapes (webhook_formats.py)."""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx

from boothguard.collector.alerts.channels.base import ChannelError, read_secret
from boothguard.collector.alerts.channels.webhook_formats import slack, teams
from boothguard.collector.alerts.message import dashboard_link, fields, summary
from boothguard.collector.alerts.model import Alert
from boothguard.collector.alerts.settings import WebhookChannelSpec

_COLORS = {"info": "#439FE0", "low": "#2EB67D", "medium": "#ECB22E", "high": "#E01E5A", "critical": "#8B0000"}


def payload(alert: Alert) -> dict[str, Any]:
    shown = [
        ("Host", alert.host_name),
        ("Rule", alert.rule),
        ("Event", alert.event_type),
        ("Severity", alert.severity),
        ("Count", str(alert.count)),
        ("Last seen", alert.last_seen),
    ]
    return {
        "text": summary(alert),
        "attachments": [
            {
                "color": _COLORS.get(alert.severity, "#999999"),
                "title": alert.title,
                "fields": [{"title": k, "value": v, "short": True} for k, v in shown],
            }
        ],
        "alert": fields(alert),
    }


def body(alert: Alert, spec: WebhookChannelSpec) -> bytes:
    """The POST body in the channel's format, as UTF-8 JSON (non-ASCII text stays text)."""
    link = dashboard_link(spec.dashboard_url, alert)
    if spec.format == "slack":
        shaped = slack(alert, link)
    elif spec.format == "teams":
        shaped = teams(alert, link)
    else:
        shaped = payload(alert)
    return json.dumps(shaped, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(float(response.headers.get("retry-after", "")), 0.0)
    except ValueError:
        return None


class WebhookChannel:
    def __init__(
        self, name: str, spec: WebhookChannelSpec, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self.name = name
        self._spec = spec
        verify: ssl.SSLContext | bool = True
        if spec.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(spec.ca_file))
        self._client = client or httpx.AsyncClient(
            timeout=spec.timeout_seconds, verify=verify, follow_redirects=False
        )

    async def send(self, alert: Alert) -> None:
        content = body(alert, self._spec)
        headers = httpx.Headers({"User-Agent": "boothguard-collector", "Content-Type": "application/json"})
        headers.update(self._spec.headers)  # case-insensitive: a configured content-type replaces ours
        if self._spec.bearer_token_file is not None:
            headers["Authorization"] = f"Bearer {read_secret(self._spec.bearer_token_file)}"
        try:
            response = await self._client.post(self._spec.url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise ChannelError(f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        # 408/425/429 and 5xx may pass; any other 4xx means this request will never be accepted.
        retryable = status in (408, 425, 429) or status >= 500
        raise ChannelError(f"HTTP {status}", permanent=not retryable, retry_after=_retry_after(response))

    async def close(self) -> None:
        await self._client.aclose()

"""The channel seam: send one alert or raise ChannelError saying whether a retry can help."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from boothguard.collector.alerts.model import Alert
from boothguard.collector.alerts.settings import (
    ChannelSpec,
    EmailChannelSpec,
    SyslogChannelSpec,
    WebhookChannelSpec,
)


class ChannelError(Exception):
    """A delivery failed. `permanent`: retrying the same alert cannot succeed (e.g. HTTP 400)."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(Protocol):
    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver or raise (ChannelError, OSError, TimeoutError…); the dispatcher retries."""
        ...

    async def close(self) -> None: ...


def read_secret(path: Path | None) -> str:
    """A secret from a file (trailing newline stripped); read at send time so rotation needs no restart."""
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ChannelError(f"cannot read secret file {path}: {exc.strerror}") from None


def build_channel(name: str, spec: ChannelSpec) -> Channel:
    if isinstance(spec, WebhookChannelSpec):
        from boothguard.collector.alerts.channels.webhook import WebhookChannel

        return WebhookChannel(name, spec)
    if isinstance(spec, EmailChannelSpec):
        from boothguard.collector.alerts.channels.email import EmailChannel

        return EmailChannel(name, spec)
    if isinstance(spec, SyslogChannelSpec):
        from boothguard.collector.alerts.channels.syslog import SyslogChannel

        return SyslogChannel(name, spec)
    raise TypeError(f"unknown channel spec {type(spec).__name__}")

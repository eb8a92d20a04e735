"""Syslog: RFC 5424 messages over TCP with octet-counting framing (RFC 6587 §3.4.1), plain or TLS (RFC 5425),
carrying the alert as JSON or as CEF. One connection per channel, reopened after any error."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime

from boothguard import __version__
from boothguard.collector.alerts.channels.base import ChannelError
from boothguard.collector.alerts.message import fields, seq_range
from boothguard.collector.alerts.model import Alert
from boothguard.collector.alerts.settings import SyslogChannelSpec

FACILITIES = {"kern": 0, "user": 1, "auth": 4, "daemon": 3, "authpriv": 10} | {
    f"local{n}": 16 + n for n in range(8)
}
# Alert severity → syslog severity (2 crit, 3 err, 4 warning, 5 notice, 6 info) and CEF severity (0-10).
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
CEF_SEVERITY = {"critical": 10, "high": 8, "medium": 5, "low": 3, "info": 1}
_NONPRINT = re.compile(r"[^!-~]")


def _token(text: str, limit: int) -> str:
    """A header field: printable US-ASCII, no spaces, or NILVALUE."""
    cleaned = _NONPRINT.sub("_", text)[:limit]
    return cleaned or "-"


def sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def cef_header_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def cef_value_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")


def _epoch_ms(rfc3339: str) -> str:
    try:
        moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return str(int(moment.timestamp() * 1000))


def cef(alert: Alert) -> str:
    header = [
        "CEF:0",
        "boothguard",
        "collector",
        __version__,
        alert.rule,
        alert.title,
        str(CEF_SEVERITY.get(alert.severity, 5)),
    ]
    ext: list[tuple[str, str]] = [
        ("rt", _epoch_ms(alert.last_seen)),
        ("start", _epoch_ms(alert.first_seen)),
        ("end", _epoch_ms(alert.last_seen)),
        ("shost", alert.host_name),
        ("deviceExternalId", alert.host_id),
        ("externalId", str(alert.id)),
        ("cat", alert.event_type),
        ("cnt", str(alert.count)),
        ("msg", alert.title),
        ("cs1Label", "rule"),
        ("cs1", alert.rule),
        ("cs2Label", "groupKey"),
        ("cs2", alert.group_key),
        ("cs3Label", "state"),
        ("cs3", alert.state),
    ]
    if (seqs := seq_range(alert)) is not None:
        ext += [("cs4Label", "seqRange"), ("cs4", seqs)]
    head = "|".join(header[:1] + [cef_header_escape(h) for h in header[1:]])
    return head + "|" + " ".join(f"{k}={cef_value_escape(v)}" for k, v in ext if v != "")


def rfc5424(alert: Alert, spec: SyslogChannelSpec, hostname: str, now: datetime) -> bytes:
    pri = FACILITIES[spec.facility] * 8 + SYSLOG_SEVERITY.get(alert.severity, 5)
    stamp = now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    params = {
        "alert_id": str(alert.id),
        "rule": alert.rule,
        "severity": alert.severity,
        "host": alert.host_name,
        "host_id": alert.host_id,
        "event_type": alert.event_type,
        "count": str(alert.count),
        "state": alert.state,
    }
    sd = "[" + spec.sd_id + "".join(f' {k}="{sd_escape(v)}"' for k, v in params.items()) + "]"
    if spec.format == "cef":
        msg = cef(alert)
    else:
        msg = json.dumps(fields(alert), ensure_ascii=False, separators=(",", ":"), default=str)
    head = (
        f"<{pri}>1 {stamp} {_token(hostname, 255)} {_token(spec.app_name, 48)} "
        f"{os.getpid()} {_token(alert.rule, 32)} {sd} "
    )
    return head.encode("utf-8") + msg.encode("utf-8")


def frame(message: bytes) -> bytes:
    """Octet-counting framing: MSG-LEN SP SYSLOG-MSG."""
    return str(len(message)).encode("ascii") + b" " + message


class SyslogChannel:
    def __init__(
        self, name: str, spec: SyslogChannelSpec, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.name = name
        self._spec = spec
        self._now = now
        self._hostname = spec.hostname or socket.gethostname()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tls: ssl.SSLContext | None = None
        if spec.transport == "tls":
            self._tls = ssl.create_default_context(cafile=str(spec.ca_file) if spec.ca_file else None)
            if spec.cert_file is not None:
                self._tls.load_cert_chain(str(spec.cert_file), str(spec.key_file) if spec.key_file else None)

    async def _connection(self) -> asyncio.StreamWriter:
        if self._writer is not None and self._reader is not None:
            if not self._writer.is_closing() and not self._reader.at_eof():
                return self._writer
            await self.close()  # the server closed it: a write would vanish
        self._reader, self._writer = await asyncio.open_connection(
            self._spec.host,
            self._spec.port,
            ssl=self._tls,
            server_hostname=self._spec.host if self._tls else None,
        )
        return self._writer

    async def send(self, alert: Alert) -> None:
        data = frame(rfc5424(alert, self._spec, self._hostname, self._now()))
        try:
            writer = await self._connection()
            writer.write(data)
            await writer.drain()
        except (OSError, ssl.SSLError, EOFError) as exc:
            await self.close()
            raise ChannelError(f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            await self.close()  # cancelled or timed out mid-write: the stream is in an unknown state
            raise

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            async with asyncio.timeout(2):
                await writer.wait_closed()
        except (OSError, ssl.SSLError, TimeoutError):
            pass

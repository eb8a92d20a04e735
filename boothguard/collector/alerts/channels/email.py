"""Email: SMTP with STARTTLS (or implicit TLS), run by smtplib in this channel's own thread so a hanging
server only ever holds this channel."""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from boothguard.collector.alerts.channels.base import ChannelError, read_secret
from boothguard.collector.alerts.message import dashboard_link, fields, summary
from boothguard.collector.alerts.model import Alert
from boothguard.collector.alerts.settings import EmailChannelSpec

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a device string must not forge lines of the mail


def message(alert: Alert, spec: EmailChannelSpec) -> EmailMessage:
    msg = EmailMessage()
    subject = f"{spec.subject_prefix} {summary(alert)}".strip()
    msg["Subject"] = subject.replace("\r", " ").replace("\n", " ")[:250]
    msg["From"] = spec.from_addr
    msg["To"] = ", ".join(spec.to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=spec.from_addr.rsplit("@", 1)[-1])
    msg["X-Boothguard-Alert"] = str(alert.id)
    msg["X-Boothguard-Severity"] = alert.severity
    msg.set_content("\n".join(body_lines(alert, spec.dashboard_url)) + "\n")
    return msg


def _flat(prefix: str, value: Any) -> list[str]:
    """Nested event data as `key.sub: value` lines (text as it is: Japanese stays Japanese)."""
    if isinstance(value, dict) and value:
        return [
            line
            for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
            for line in _flat(f"{prefix}.{k}", v)
        ]
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    else:
        text = "-" if value is None or value == {} else str(value)
    return [f"  {prefix}: {_CONTROL.sub(' ', text)}"]


def body_lines(alert: Alert, dashboard_url: str) -> list[str]:
    """The mail's text: the summary, one `label: value` line per field, the event data as lines."""
    lines = [summary(alert), ""]
    for key, value in fields(alert).items():
        if value is None or key in ("title", "data"):
            continue
        lines.append(f"{key}: {_CONTROL.sub(' ', str(value))}")
    if alert.data:
        lines += ["", "data:"]
        for k, v in sorted(alert.data.items(), key=lambda kv: str(kv[0])):
            lines += _flat(str(k), v)
    if link := dashboard_link(dashboard_url, alert):
        lines += ["", f"dashboard: {link}"]
    return lines


class EmailChannel:
    def __init__(self, name: str, spec: EmailChannelSpec) -> None:
        self.name = name
        self._spec = spec
        self._tls = ssl.create_default_context(cafile=str(spec.ca_file) if spec.ca_file else None)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"alerts-email-{name}")
        self._inflight: asyncio.Future[None] | None = None

    def _send_blocking(self, msg: EmailMessage) -> None:
        spec = self._spec
        smtp: smtplib.SMTP
        if spec.security == "tls":
            smtp = smtplib.SMTP_SSL(spec.host, spec.port, timeout=spec.timeout_seconds, context=self._tls)
        else:
            smtp = smtplib.SMTP(spec.host, spec.port, timeout=spec.timeout_seconds)
        with smtp:
            smtp.ehlo()
            if spec.security == "starttls":
                smtp.starttls(context=self._tls)
                smtp.ehlo()
            if spec.username:
                smtp.login(spec.username, read_secret(spec.password_file))
            smtp.send_message(msg)

    async def send(self, alert: Alert) -> None:
        msg = message(alert, self._spec)
        if self._inflight is not None and not self._inflight.done():
            # A timed-out attempt still holds the SMTP thread (smtplib bounds each step by timeout_seconds):
            # fail this attempt rather than queue another one behind it.
            raise ChannelError("previous SMTP session still running")
        loop = asyncio.get_running_loop()
        self._inflight = loop.run_in_executor(self._thread, self._send_blocking, msg)
        # An attempt abandoned on timeout still finishes in the thread: retrieve its outcome so it is not
        # reported as "exception never retrieved".
        self._inflight.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.shield(self._inflight)
        except smtplib.SMTPRecipientsRefused as exc:
            raise ChannelError(f"recipients refused: {list(exc.recipients)}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            # 5xx is final for this message, except authentication, which a fixed password file can cure.
            permanent = exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPAuthenticationError)
            raise ChannelError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent) from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise ChannelError(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

"""Each channel against the real thing: HTTP receiver, aiosmtpd (STARTTLS, AUTH), rsyslog over TCP and TLS."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from boothguard.collector.alerts.dispatch import Dispatcher
from boothguard.collector.alerts.model import Alert
from boothguard.collector.alerts.settings import AlertsSection
from tests.alerts.helpers import alert
from tests.alerts.servers import Cert, SmtpSink, WebhookReceiver, make_cert, rsyslog, wait_until


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    return make_cert(tmp_path_factory.mktemp("cert"))


def section(**channels: dict[str, Any]) -> AlertsSection:
    return AlertsSection.model_validate(
        {
            "channels": channels,
            "retry_initial_seconds": 0.05,
            "retry_max_seconds": 0.2,
            "retry_max_attempts": 5,
        }
    )


def deliver(sec: AlertsSection, alerts: list[Alert], done: Any, timeout: float = 15.0) -> dict[str, Any]:
    """Start a dispatcher, submit, wait (bounded) until `done()` holds, stop; return the stats."""

    async def run() -> dict[str, Any]:
        dispatcher = Dispatcher(sec)
        await dispatcher.start()
        try:
            assert all(dispatcher.submit(a) for a in alerts)
            await asyncio.to_thread(wait_until, done, timeout, "delivery")
        finally:
            await dispatcher.stop(drain_seconds=1)
        return dispatcher.stats()

    return asyncio.run(run())


# --- webhook ---


def test_webhook_posts_a_slack_compatible_json_with_bearer_and_headers(tmp_path: Path) -> None:
    token = tmp_path / "hook.token"
    token.write_text("tok-123\n")
    with WebhookReceiver() as hook:
        sec = section(
            slack={
                "kind": "webhook",
                "url": hook.url,
                "bearer_token_file": str(token),
                "headers": {"X-Env": "t"},
            }
        )
        a = alert(7, channels=("slack",), count=12, seq_from=4, seq_to=9)
        stats = deliver(sec, [a], lambda: len(hook.received) == 1)
    (got,) = hook.received
    assert got.path == "/hook"
    assert got.headers["Authorization"] == "Bearer tok-123"
    assert got.headers["X-Env"] == "t"
    assert got.headers["Content-Type"] == "application/json"
    body = got.body
    assert body["text"] == "[HIGH] USB device blocked on booth-07 (11 repeats since 2024-05-01T09:00:00.000Z)"
    fields = {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}
    assert fields["Host"] == "booth-07"
    assert fields["Count"] == "12"
    assert body["alert"]["alert_id"] == 7
    assert body["alert"]["repeats"] == 11
    assert (body["alert"]["seq_from"], body["alert"]["seq_to"]) == (4, 9)
    assert body["alert"]["data"] == {"vendor_id": "0781", "product_id": "5581"}
    assert stats["slack"]["sent"] == 1


def test_webhook_retries_5xx_and_429_but_not_400() -> None:
    with WebhookReceiver() as hook:
        hook.statuses = [503, 429]
        sec = section(hook={"kind": "webhook", "url": hook.url})
        stats = deliver(sec, [alert(1, channels=("hook",))], lambda: len(hook.received) == 1)
        assert (stats["hook"]["sent"], stats["hook"]["retries"], hook.requests) == (1, 2, 3)

        hook.statuses = [400]
        stats = deliver(sec, [alert(2, channels=("hook",))], lambda: hook.requests == 4)
        assert (stats["hook"]["failed"], stats["hook"]["retries"], stats["hook"]["sent"]) == (1, 0, 0)


def test_channel_min_severity_filters_without_counting_a_loss() -> None:
    with WebhookReceiver() as hook:
        sec = section(pager={"kind": "webhook", "url": hook.url, "min_severity": "critical"})
        alerts = [
            alert(1, channels=("pager",), severity="high"),
            alert(2, channels=("pager",), severity="critical"),
        ]
        stats = deliver(sec, alerts, lambda: len(hook.received) == 1)
    assert [r.body["alert"]["alert_id"] for r in hook.received] == [2]
    assert (stats["pager"]["filtered"], stats["pager"]["dropped"]) == (1, 0)


# --- email ---


def test_email_over_starttls_with_auth_from_a_password_file(tmp_path: Path, cert: Cert) -> None:
    secret = tmp_path / "smtp.password"
    secret.write_text("s3cret pw\n")
    with SmtpSink(cert) as smtp:
        spec = {
            "kind": "email",
            "host": "127.0.0.1",
            "port": smtp.port,
            "ca_file": str(cert.cert),
            "username": "alerts",
            "password_file": str(secret),
            "from_addr": "boothguard@example.com",
            "to": ["soc@example.com", "it@example.com"],
        }
        a = alert(3, channels=("mail",), severity="critical", count=3, title="Screen lock failed on booth-07")
        a = dataclasses.replace(
            a,
            data={
                "reason": "ロック画面が出ない",
                "pii": {"phone": 2},
                "formats": ["a", "b"],
                "product": "x\nrule: forged",
            },
        )
        spec["dashboard_url"] = "https://collector.example:8443"
        stats = deliver(section(mail=spec), [a], lambda: len(smtp.mails) == 1)
        (mail,) = smtp.mails
        assert mail.tls
        assert mail.login == "alerts"
        assert mail.mail_from == "boothguard@example.com"
        assert mail.rcpt_tos == ["soc@example.com", "it@example.com"]
        msg = email.message_from_bytes(mail.content, policy=email.policy.default)
        assert (
            msg["Subject"] == "[boothguard] [CRITICAL] Screen lock failed on booth-07"
            " (2 repeats since 2024-05-01T09:00:00.000Z)"
        )
        assert msg["X-Boothguard-Alert"] == "3"
        body = msg.get_body().get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
        assert "host_name: booth-07" in body
        assert "rule: usb-blocked" in body
        # the event data as readable lines, not a Python dict; Japanese as text; a link to the alert
        assert "{" not in body, body
        assert "  reason: ロック画面が出ない\n" in body
        assert "  pii.phone: 2\n" in body
        assert "  formats: a, b\n" in body
        assert "\nrule: forged" not in body  # a newline in a device string forges no line
        assert "dashboard: https://collector.example:8443/?host=" in body
        assert body.rstrip().endswith("#alert-3")
        assert stats["mail"]["sent"] == 1

        # A wrong password is retried (someone may fix the file) and then given up, counted.
        secret.write_text("wrong")
        stats = deliver(section(mail=spec), [alert(4, channels=("mail",))], lambda: smtp.auth_attempts >= 6)
        assert len(smtp.mails) == 1
        assert (stats["mail"]["failed"], stats["mail"]["retries"]) == (1, 4)


def test_email_refuses_a_server_certificate_it_cannot_verify(cert: Cert) -> None:
    with SmtpSink(cert) as smtp:
        spec = {
            "kind": "email",
            "host": "127.0.0.1",
            "port": smtp.port,  # no ca_file: the self-signed certificate is not in the system store
            "from_addr": "boothguard@example.com",
            "to": ["soc@example.com"],
        }
        stats = _run_until_failed(section(mail=spec).model_copy(update={"retry_max_attempts": 1}), "mail")
    assert smtp.mails == []
    assert stats["mail"]["failed"] == 1


def _run_until_failed(sec: AlertsSection, name: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        dispatcher = Dispatcher(sec)
        await dispatcher.start()
        dispatcher.submit(alert(1, channels=(name,)))
        await asyncio.to_thread(wait_until, lambda: dispatcher.stats()[name]["failed"] == 1, 15, "failure")
        await dispatcher.stop(drain_seconds=0)
        return dispatcher.stats()

    return asyncio.run(run())


# --- syslog ---


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """An independent CEF reader: header split on unescaped pipes, extension on unescaped `key=`."""
    header: list[str] = []
    cur, i = "", 0
    while len(header) < 7:
        ch = line[i]
        if ch == "\\":
            cur += line[i + 1]
            i += 2
            continue
        if ch == "|":
            header.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    ext_text = line[i:]
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", ext_text))
    ext: dict[str, str] = {}
    for n, m in enumerate(keys):
        # a key is only a key when its "=" is not escaped: the match excludes "\=" by construction
        end = keys[n + 1].start() if n + 1 < len(keys) else len(ext_text)
        raw = ext_text[m.end() : end]
        ext[m.group(1)] = re.sub(r"\\(.)", lambda e: {"n": "\n", "r": "\r"}.get(e.group(1), e.group(1)), raw)
    return header, ext


def test_syslog_rfc5424_json_over_tcp_and_cef_over_tls_parsed_by_rsyslog(tmp_path: Path, cert: Cert) -> None:
    tricky = 'Blocked | "stick" = \\evil\\ ] on booth-07\nsecond line'
    with rsyslog(tmp_path, cert) as rs:
        sec = section(
            siem={"kind": "syslog", "host": "127.0.0.1", "port": rs.tcp_port, "transport": "tcp",
                  "format": "json", "hostname": "collector-1"},
            soc={"kind": "syslog", "host": "127.0.0.1", "port": rs.tls_port, "transport": "tls",
                 "format": "cef", "ca_file": str(cert.cert), "facility": "local4"},
        )  # fmt: skip
        alerts = [
            alert(1, channels=("siem",), severity="high", count=2, seq_from=5, seq_to=8),
            alert(
                2,
                channels=("siem", "soc"),
                severity="critical",
                title=tricky,
                rule="chain-tampering",
                host_name='booth "07" ]x',
            ),
        ]
        stats = deliver(sec, alerts, lambda: len(rs.messages()) == 3)
        messages = rs.wait_for(3)
    assert (stats["siem"]["sent"], stats["soc"]["sent"]) == (2, 1)
    by_input: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        assert m["protocol-version"] == "1"  # parsed as RFC 5424
        assert m["app-name"] == "boothguard"
        by_input.setdefault(m["inputname"], []).append(m)
    first, second = sorted(by_input["plain"], key=lambda m: m["msgid"] != "usb-blocked")
    # Two messages sent on one connection arrive as two: octet-counting framing.
    assert first["hostname"] == "collector-1"
    assert (first["syslogfacility"], first["syslogseverity"]) == ("4", "3")  # auth, err
    assert first["msgid"] == "usb-blocked"
    assert first["structured-data"].startswith(
        '[boothguard@32473 alert_id="1" rule="usb-blocked" severity="high"'
    )
    payload = json.loads(first["msg"])
    assert payload["alert_id"] == 1
    assert payload["count"] == 2
    assert payload["seq_from"] == 5
    assert second["syslogseverity"] == "2"  # crit
    # The raw newline inside the JSON string is escaped by JSON itself, so the payload stays one line.
    assert json.loads(second["msg"])["title"] == tricky

    (tls,) = by_input["tls"]
    assert tls["syslogfacility"] == "20"  # local4
    assert tls["msgid"] == "chain-tampering"
    header, ext = parse_cef(tls["msg"])
    assert header == ["CEF:0", "boothguard", "collector", "0.1.0", "chain-tampering",
                      tricky.replace("\n", " "), "10"]  # fmt: skip
    assert ext["msg"] == tricky
    assert ext["shost"] == 'booth "07" ]x'
    assert ext["externalId"] == "2"
    assert ext["cs1Label"] == "rule"
    assert ext["cs1"] == "chain-tampering"
    assert ext["rt"] == "1714554300000"  # 2024-05-01T09:05:00Z
    # SD-PARAM escaping of '"' and ']': rsyslog parsed the element whole, up to the fields after it.
    assert 'host="booth \\"07\\" \\]x" host_id="mid-1"' in tls["structured-data"]
    assert tls["structured-data"].endswith('state="open"]')

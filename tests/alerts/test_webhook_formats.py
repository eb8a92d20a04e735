"""The webhook channel's Slack and Teams shapes, posted by the real channel to the real local receiver, with a
hostile device string in the title and the event data."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from boothguard.collector.alerts.channels.webhook_formats import markdown_escape, slack_escape, slack_mrkdwn
from boothguard.collector.alerts.settings import AlertsSection
from tests.alerts.helpers import alert
from tests.alerts.servers import Received, WebhookReceiver
from tests.alerts.test_channels import deliver, section

HOSTILE = "<!channel> <http://x|y> & *bold* [x](http://evil) <@U123> <!here>"
DASHBOARD = "https://collector.example:8443"
LINK = f"{DASHBOARD}/?host=mid-1&type=usb.device.blocked&state=all#alert-7"


def post(fmt: str, **kw: Any) -> Received:
    with WebhookReceiver() as hook:
        sec = section(out={"kind": "webhook", "url": hook.url, "format": fmt, "dashboard_url": DASHBOARD})
        a = alert(7, channels=("out",), **kw)
        stats = deliver(sec, [a], lambda: len(hook.received) == 1)
    assert stats["out"]["sent"] == 1
    (got,) = hook.received
    assert got.headers["Content-Type"] == "application/json"
    return got


def hostile() -> dict[str, Any]:
    return {"title": f"USB {HOSTILE} on booth-07", "data": {"product": HOSTILE, "vendor_id": "0781"}}


def texts(node: Any) -> list[str]:
    """Every `text`/`value`/`title` string anywhere in a payload."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("text", "value", "title") and isinstance(v, str)]
        return found + [t for v in node.values() for t in texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in texts(v)]
    return []


def mrkdwn_objects(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        own = [node] if node.get("type") == "mrkdwn" else []
        return own + [o for v in node.values() for o in mrkdwn_objects(v)]
    if isinstance(node, list):
        return [o for v in node for o in mrkdwn_objects(v)]
    return []


# --- Slack ---


def test_slack_payload_has_the_incoming_webhook_shape_and_links_to_the_dashboard() -> None:
    body = post("slack", count=12).body
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("[HIGH] USB device blocked on booth-07 (11 repeats since ")
    header, facts, data, context = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "USB device blocked on booth-07", "emoji": False},
    }
    assert facts["type"] == "section"
    labels = [f["text"] for f in facts["fields"][0::2]]
    values = [f["text"] for f in facts["fields"][1::2]]
    assert labels == ["*Severity*", "*Host*", "*Rule*", "*Event*", "*Count*"]
    assert all(f["type"] == "mrkdwn" for f in facts["fields"][0::2])
    assert all(f["type"] == "plain_text" for f in facts["fields"][1::2])  # untrusted: never rendered
    assert values == ["high", "booth-07", "usb-blocked", "usb.device.blocked", "12"]
    assert len(facts["fields"]) <= 10  # Slack's limit per section
    assert data["text"] == {"type": "plain_text", "text": "vendor_id: 0781\nproduct_id: 5581"}
    assert context["type"] == "context"
    (element,) = context["elements"]
    assert element["type"] == "mrkdwn"
    assert element["text"].endswith(f"<{slack_escape(LINK)}|Open in the dashboard>")
    assert "&amp;type=usb.device.blocked" in element["text"]


def test_slack_escapes_a_hostile_device_string_so_it_cannot_ping_link_or_format() -> None:
    got = post("slack", **hostile())
    raw = got.raw.decode("utf-8")
    for needle in ("<!channel>", "<!here>", "<@U123>", "<http://x|y>"):
        assert needle not in raw
    # The only `<…>` left is our own dashboard link.
    assert re.findall(r"<[^>]*>", raw) == [f"<{slack_escape(LINK)}|Open in the dashboard>"]
    # Untrusted text sits in plain_text objects (never formatted) or, escaped, in mrkdwn.
    mrkdwn = [got.body["text"]] + [
        t["text"] for t in mrkdwn_objects(got.body["blocks"]) if "*bold*" in t["text"]
    ]
    assert not any("*bold*" in s for s in mrkdwn)
    assert "&lt;!channel&gt; &lt;http://x|y&gt; &amp; " in got.body["blocks"][0]["text"]["text"]
    assert "&lt;!channel&gt;" in got.body["text"]
    assert "product: &lt;!channel&gt;" in got.body["blocks"][2]["text"]["text"]
    # mrkdwn (the notification text): the asterisks can no longer pair up into bold.
    assert "*\u200bbold*\u200b" in got.body["text"]


def test_slack_keeps_japanese_text_as_text() -> None:
    got = post("slack", title="ブース07でUSBメモリを遮断しました", data={"製品": "メモリ"})
    assert got.body["blocks"][0]["text"]["text"] == "ブース07でUSBメモリを遮断しました"
    assert "[HIGH] ブース07でUSBメモリを遮断しました" in got.body["text"]
    assert "製品: メモリ" in got.body["blocks"][2]["text"]["text"]
    assert "USBメモリを遮断しました".encode() in got.raw  # UTF-8 on the wire, not \u escapes


# --- Teams ---


def test_teams_payload_is_a_message_with_an_adaptive_card_and_an_open_url_action() -> None:
    body = post("teams", count=3).body
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert [b["type"] for b in card["body"]] == ["TextBlock", "TextBlock", "FactSet"]
    title = card["body"][0]
    assert title["text"] == markdown_escape(
        "[HIGH] USB device blocked on booth-07 (2 repeats since 2024-05-01T09:00:00.000Z)"
    )
    assert (title["weight"], title["color"], title["wrap"]) == ("Bolder", "Attention", True)
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Host"] == "booth-07"  # only markup-forming punctuation is escaped
    assert facts["Count"] == "3"
    assert facts["vendor\\_id"] == "0781"
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open in the dashboard", "url": LINK}]


def test_teams_escapes_hostile_markdown_so_no_link_or_emphasis_renders() -> None:
    card = post("teams", **hostile()).body["attachments"][0]["content"]
    strings = texts(card["body"])
    assert strings, "card has text"
    for s in strings:
        assert "](" not in s  # no [text](url) link can form
        assert re.search(r"(?<!\\)\*", s) is None  # every * is backslashed
        assert re.search(r"(?<!\\)[\[\]<>]", s) is None
    assert r"\[x\]\(http://evil\)" in card["body"][0]["text"]
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["product"].startswith(r"\<!channel\> \<http://x|y\> & \*bold\* \[x\]\(http://evil\)")
    # The only URL a user can click is the dashboard action.
    assert [a["url"] for a in card["actions"]] == [LINK]


def test_teams_keeps_japanese_text_as_text() -> None:
    got = post("teams", title="ブース07で画面キャプチャを検出")
    title = got.body["attachments"][0]["content"]["body"][0]["text"]
    assert title == r"\[HIGH\] ブース07で画面キャプチャを検出"
    assert "画面キャプチャを検出".encode() in got.raw


# --- settings and the default ---


def test_json_stays_the_default_and_no_dashboard_url_means_no_link() -> None:
    body = post("json").body
    assert {"text", "attachments", "alert"} <= set(body)
    with WebhookReceiver() as hook:
        sec = section(t={"kind": "webhook", "url": hook.url, "format": "teams"}, s={
            "kind": "webhook", "url": hook.url, "format": "slack"})  # fmt: skip
        deliver(sec, [alert(1, channels=("t", "s"))], lambda: len(hook.received) == 2)
    by_shape = {r.body.get("type", "slack"): r.body for r in hook.received}
    assert "actions" not in by_shape["message"]["attachments"][0]["content"]
    assert "dashboard" not in json.dumps(by_shape["slack"])


@pytest.mark.parametrize(
    "bad",
    [{"format": "discord"}, {"dashboard_url": "ftp://x"}, {"dashboard_url": "https://x/<!channel>"}],
)
def test_bad_format_or_dashboard_url_is_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        AlertsSection.model_validate({"channels": {"w": {"kind": "webhook", "url": "https://h/", **bad}}})


def test_escapers() -> None:
    assert slack_escape("a & <b> >") == "a &amp; &lt;b&gt; &gt;"
    assert slack_mrkdwn("_x_ ~y~ `z`") == "_\u200bx_\u200b ~\u200by~\u200b `\u200bz`\u200b"
    assert markdown_escape("**b** [l](u) # h v1.2") == r"\*\*b\*\* \[l\]\(u\) # h v1.2"
    assert markdown_escape("# h\n- i\n  + j\n12. k\n> q") == "\\# h\n\\- i\n  \\+ j\n12\\. k\n\\> q"
    assert markdown_escape("`c` ~s~ <http://x> \\") == r"\`c\` \~s\~ \<http://x\> \\"

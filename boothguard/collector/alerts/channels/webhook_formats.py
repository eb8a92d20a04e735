"""Slack and Microsoft Teams bodies for the webhook channel.

Titles and event data carry strings a booth operator controls (device names, window titles…), so every
untrusted string is escaped for the markup it lands in: Slack's `&`, `<`, `>` (the only escapes Slack
documents; with them `<!channel>`, `<@U123>` or `<http://x|y>` cannot ping or link), and Markdown
punctuation for Adaptive Card TextBlocks (so `[x](http://evil)` stays text). Only fixed labels and our own
link use markup.
"""

from __future__ import annotations

import re
from typing import Any

from boothguard.collector.alerts.message import repeats, summary
from boothguard.collector.alerts.model import Alert

# Slack limits: header text 150 characters, section/field text 3000/2000, 10 fields per section.
_SLACK_HEADER_MAX = 150
_SLACK_TEXT_MAX = 2000
_MAX_DATA_ITEMS = 10
_VALUE_MAX = 500
_MRKDWN_MARKS = re.compile(r"([*_~`])")
# Markdown that renders anywhere in a line: emphasis, code, strike, links and images, autolinks.
_MARKDOWN_INLINE = re.compile(r"([\\`*_~\[\]()<>])")
# ...and at the start of a line: headings, quotes, lists ("- x", "+ x", "1. x", "1) x").
_MARKDOWN_LINE_START = re.compile(r"^(\s*)([#>+\-]|\d+[.)])", re.MULTILINE)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_escape(text: str) -> str:
    """Slack's control characters, per its formatting docs: `&`, `<`, `>` as HTML entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_mrkdwn(text: str) -> str:
    """Untrusted text for a mrkdwn field: escaped, and `* _ ~ \\`` followed by a zero-width space so they
    cannot pair up into bold, italics, strike or code (Slack documents no escape for these)."""
    return _MRKDWN_MARKS.sub("\\1\u200b", slack_escape(text))


def markdown_escape(text: str) -> str:
    """Untrusted text for an Adaptive Card TextBlock or fact (a Markdown subset): the punctuation that could
    form emphasis, code, a link or (at a line's start) a heading, quote or list is backslash-escaped."""
    escaped = _MARKDOWN_INLINE.sub(r"\\\1", text)
    return _MARKDOWN_LINE_START.sub(_escape_line_start, escaped)


def _escape_line_start(m: re.Match[str]) -> str:
    indent, mark = m.group(1), m.group(2)
    if mark[-1] in ".)":  # an ordered list marker: escape its dot or parenthesis
        return f"{indent}{mark[:-1]}\\{mark[-1]}"
    return f"{indent}\\{mark}"


def _facts(alert: Alert) -> list[tuple[str, str]]:
    return [
        ("Severity", alert.severity),
        ("Host", alert.host_name),
        ("Rule", alert.rule),
        ("Event", alert.event_type),
        ("Count", str(alert.count)),
        ("Last seen", alert.last_seen),
    ]


def _data(alert: Alert) -> list[tuple[str, str]]:
    items = [(str(k), _clip(str(v), _VALUE_MAX)) for k, v in alert.data.items()]
    return items[:_MAX_DATA_ITEMS]


def _occurrences(alert: Alert) -> str:
    if repeats(alert) > 0:
        return f"Alert #{alert.id}: {alert.count} occurrences since {alert.first_seen}"
    return f"Alert #{alert.id}, state {alert.state}"


def slack(alert: Alert, link: str | None) -> dict[str, Any]:
    """Slack incoming webhook: `text` (the notification line) and Block Kit `blocks`."""
    pairs = _facts(alert)[:5]  # 10 fields per section: label, value
    fields: list[dict[str, Any]] = []
    for label, value in pairs:
        fields.append({"type": "mrkdwn", "text": f"*{label}*"})
        fields.append({"type": "plain_text", "text": _clip(slack_escape(value), _SLACK_TEXT_MAX)})
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _clip(slack_escape(alert.title), _SLACK_HEADER_MAX),
                "emoji": False,
            },
        },
        {"type": "section", "fields": fields},
    ]
    if data := _data(alert):
        lines = "\n".join(f"{k}: {v}" for k, v in data)
        blocks.append(
            {"type": "section", "text": {"type": "plain_text", "text": _clip(slack_escape(lines), 3000)}}
        )
    context = slack_mrkdwn(_occurrences(alert))
    if link is not None:
        context += f" · <{slack_escape(link)}|Open in the dashboard>"  # `&` in the query: `&amp;`
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": _clip(slack_mrkdwn(summary(alert)), 3000), "blocks": blocks}


def teams(alert: Alert, link: str | None) -> dict[str, Any]:
    """Teams (incoming webhook or Workflows): a message with one Adaptive Card 1.4 attachment."""
    facts = [{"title": k, "value": markdown_escape(v)} for k, v in _facts(alert)]
    facts += [{"title": markdown_escape(k), "value": markdown_escape(v)} for k, v in _data(alert)]
    loud = alert.severity in ("high", "critical")
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": markdown_escape(summary(alert)),
                "size": "Medium",
                "weight": "Bolder",
                "color": "Attention" if loud else "Default",
                "wrap": True,
            },
            {
                "type": "TextBlock",
                "text": markdown_escape(_occurrences(alert)),
                "isSubtle": True,
                "wrap": True,
            },
            {"type": "FactSet", "facts": facts},
        ],
    }
    if link is not None:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in the dashboard", "url": link}]
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }

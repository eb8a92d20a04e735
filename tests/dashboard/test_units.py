"""The dashboard's pure parts: language choice, login throttling, CSRF tokens, charts, CSV cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boothguard.collector.web import auth, charts, export, i18n

CATALOGS = Path(i18n.__file__).parent / "i18n"


@pytest.mark.parametrize(
    ("cookie", "header", "want"),
    [
        (None, "ja,en-US;q=0.8", "ja"),
        (None, "en-US,en;q=0.9,ja;q=0.8", "en"),
        (None, "fr-FR,en;q=0.5", "en"),
        (None, "fr-FR", "ja"),  # nothing supported: the default for this team
        (None, None, "ja"),
        (None, "en;q=0.2,ja;q=0.9", "ja"),
        ("en", "ja", "en"),  # the switch (cookie) wins
        ("xx", "en", "en"),  # a bad cookie is ignored
        (None, "en;q=abc,ja;q=0.1", "ja"),
    ],
)
def test_language_negotiation(cookie: str | None, header: str | None, want: str) -> None:
    assert i18n.negotiate(cookie, header) == want


def test_catalogs_have_the_same_keys_and_placeholders() -> None:
    ja = json.loads((CATALOGS / "ja.json").read_text(encoding="utf-8"))
    en = json.loads((CATALOGS / "en.json").read_text(encoding="utf-8"))
    assert set(ja) == set(en)
    for key in en:
        assert sorted(_fields(ja[key])) == sorted(_fields(en[key])), key
    assert (
        i18n.Translator("ja")("login.throttled", minutes=3)
        == "ログイン失敗が多すぎます。3分後に再試行してください。"
    )
    assert i18n.Translator("ja").maybe("type", "custom.thing") == "custom.thing"


def _fields(text: str) -> list[str]:
    import string

    return [f for _, f, _, _ in string.Formatter().parse(text) if f]


def test_throttle_per_user_and_per_client() -> None:
    th = auth.LoginThrottle(auth.ThrottleLimits(per_user=3, per_client=5, window=60))
    for i in range(3):
        assert th.retry_after("alice", "10.0.0.1", 100 + i) is None
        th.failed("alice", "10.0.0.1", 100 + i)
    wait = th.retry_after("alice", "10.0.0.2", 103)
    assert wait == pytest.approx(57)  # the first failure ages out at 160
    assert th.retry_after("bob", "10.0.0.2", 103) is None
    assert th.retry_after("alice", "10.0.0.1", 161) is None  # window passed
    for i in range(5):
        th.failed(f"u{i}", "10.0.0.7", 170)
    assert th.retry_after("carol", "10.0.0.7", 171) is not None  # the client's 5 failures, any names
    assert th.retry_after("carol", "10.0.0.8", 171) is None
    th.failed("dave", "10.0.0.9", 171)
    th.succeeded("dave")
    assert not th._recent("u:dave", 172)


def test_throttle_memory_is_bounded() -> None:
    th = auth.LoginThrottle(auth.ThrottleLimits(max_keys=10))
    for i in range(100):
        th.failed(f"user{i}", "c", float(i))
    assert len(th._fails) <= 10
    assert th.forgotten > 0


def test_csrf_token_is_bound_to_the_session() -> None:
    a, b = auth.csrf_token("session-a"), auth.csrf_token("session-b")
    assert a != b
    assert auth.csrf_ok(a, a)
    assert not auth.csrf_ok(a, b)
    assert not auth.csrf_ok(a, None)
    assert not auth.csrf_ok(a, "")


def test_chart_escapes_labels_and_scales() -> None:
    svg = str(
        charts.stacked_bars(
            labels=["<b>", "2"], series={"usb": [3, 0], "x&y": [1, 7]}, title="t<script>", empty_text="none"
        )
    )
    assert "<script>" not in svg
    assert "t&lt;script&gt;" in svg
    assert "x&amp;y" in svg
    assert svg.count("<rect") == 3 + 2  # three non-zero segments, two legend swatches
    assert "style=" not in svg  # the CSP forbids inline styles
    assert ">8</text>" in svg  # axis top for a total of 7: 4 steps of 2


def test_chart_says_when_empty() -> None:
    svg = str(charts.stacked_bars(labels=["a"], series={}, title="t", empty_text="データなし"))
    assert "データなし" in svg


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("@x", "'@x"),
        ("-2", "'-2"),
        ("運用者", "運用者"),
        ("", ""),
    ],
)
def test_csv_cells_cannot_run_formulas(text: str, want: str) -> None:
    assert export._cell(text) == want


def test_shipped_rule_titles_in_japanese_only_when_the_stored_title_is_the_shipped_one() -> None:
    from boothguard.collector.alerts.defaults import DEFAULT_RULES
    from boothguard.collector.web.alert_titles import localized

    en = json.loads((CATALOGS / "en.json").read_text(encoding="utf-8"))
    for rule in DEFAULT_RULES:  # every shipped rule has a Japanese title; en is the shipped template itself
        assert en[f"alert_title.{rule.id}"] == rule.title
    alert = {
        "rule": "usb-blocked",
        "title": "USB device blocked on booth-1 (usb.device.blocked, 0781:5567)",
        "event_type": "usb.device.blocked",
        "severity": "high",
        "host_id": "h1",
        "host_name": "booth-1",
        "data": {"vendor_id": "0781", "product_id": "5567"},
        "user": None,
    }
    ja, english = i18n.Translator("ja"), i18n.Translator("en")
    assert localized(alert, ja) == "booth-1 で USB デバイスをブロック (usb.device.blocked, 0781:5567)"
    assert localized(alert, english) == alert["title"]
    retitled = {**alert, "title": "Stick on booth-1"}  # the site's own title for the rule: kept as it is
    assert localized(retitled, ja) == "Stick on booth-1"
    assert localized({**alert, "rule": "site-rule"}, ja) == alert["title"]

"""Catalog and grouping: pure logic, fake times."""

from __future__ import annotations

import pytest

from boothguard.notify.catalog import GROUPED, KINDS, SINGLE, language_from_env, render
from boothguard.notify.grouping import Grouper, Policy


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({"LANG": "ja_JP.UTF-8"}, "ja"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "ja_JP.UTF-8"}, "ja"),
        ({"LANG": "ja_JP.UTF-8", "LC_ALL": "en_GB.UTF-8"}, "en"),
        ({"LANG": "de_DE.UTF-8", "LANGUAGE": "fr:ja:en"}, "ja"),
        ({"LANG": "C.UTF-8", "LANGUAGE": "ja"}, "en"),  # gettext ignores LANGUAGE under the C locale
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_language_from_env(env: dict[str, str], want: str) -> None:
    assert language_from_env(env) == want


def test_every_kind_has_both_languages() -> None:
    for lang in ("ja", "en"):
        assert set(SINGLE[lang]) == set(KINDS)  # type: ignore[index]
        assert set(GROUPED[lang]) == set(GROUPED["en"])  # type: ignore[index]


def test_usb_blocked_says_what_and_why() -> None:
    params = {"device": "Cruzer Blade", "rule": "block-mass-storage"}
    ja = render("usb_blocked", params, "ja")
    en = render("usb_blocked", params, "en")
    assert ja is not None
    assert en is not None
    assert ja.summary == "USBデバイスをブロックしました"
    assert "「Cruzer Blade」はこのPCでは使用できません。" in ja.body
    assert "USBメモリなどの記憶装置" in ja.body
    assert en.summary == "USB device blocked"
    assert en.body.startswith('"Cruzer Blade" cannot be used on this PC. USB memory and other storage')
    phone = render("usb_blocked", {"device": "Pixel 7", "rule": "block-mtp"}, "en")
    assert phone is not None
    assert "Phones" in phone.body
    other = render("usb_blocked", {"rule": "implicit"}, "en")
    assert other is not None
    assert other.body.startswith('"USB device" cannot be used')
    assert "not on the list" in other.body


def test_grouped_texts_and_counts() -> None:
    ja = render("usb_blocked", {"device": "x", "count": 20}, "ja")
    en = render("usb_blocked", {"device": "x", "count": 20}, "en")
    assert ja is not None
    assert en is not None
    assert (ja.summary, en.summary) == ("USBデバイス20台をブロックしました", "20 USB devices blocked")
    warn = render("idle_lock_warning", {"seconds": 30}, "ja")
    assert warn is not None
    assert (warn.summary, warn.urgency, warn.timeout_ms) == ("30秒後に画面をロックします", 2, 30000)


def test_hostile_parameters_are_inert() -> None:
    msg = render("usb_blocked", {"device": "<a href='x'>A&B</a>\x1b[2J" + "Z" * 500}, "en")
    assert msg is not None
    assert "<" not in msg.body
    assert "&" not in msg.body
    assert "\x1b" not in msg.body
    assert len(msg.body) < 400
    assert render("no_such_kind", {}, "en") is None
    alias = render("screenshot_blocked", {"app": "scrot"}, "en")
    assert alias is not None
    assert alias.kind == "capture_stopped"
    assert '"scrot" was closed' in alias.body


def test_burst_is_one_batch() -> None:
    g = Grouper({"usb_blocked": Policy(quiet=1.0, max_delay=4.0, cooldown=10.0)})
    for i in range(20):
        g.add("usb_blocked", None, {"device": f"stick {i}"}, 100.0 + i * 0.05)
    assert g.due(100.9) == []
    assert g.next_due() == pytest.approx(101.95)
    (batch,) = g.due(101.95)
    assert (batch.count, batch.params["device"], batch.params["count"]) == (20, "stick 0", 20)
    assert len(batch.samples) == 5
    assert g.due(200) == []


def test_max_delay_cooldown_and_keys() -> None:
    g = Grouper({"usb_blocked": Policy(quiet=1.0, max_delay=3.0, cooldown=10.0)}, max_keys=2)
    t = 0.0
    while t < 3.0:  # a steady trickle never goes quiet: max_delay still shows it
        g.add("usb_blocked", None, {}, t)
        t += 0.5
    (first,) = g.due(3.0)
    assert first.count == 6
    g.add("usb_blocked", None, {}, 3.5)
    assert g.due(5.0) == []  # cooldown: not before 13.0
    assert g.next_due() == 13.0
    assert g.due(13.0)[0].count == 1
    g.add("clipboard_cleared", "c1", {}, 20)
    g.add("clipboard_cleared", "c2", {}, 20)
    assert g.add("clipboard_cleared", "c3", {}, 20) is False
    assert g.lost == 1
    assert {b.session for b in g.due(30)} == {"c1", "c2"}

"""The watcher's presenter against python-dbusmock's notification_daemon on a private session bus."""

from __future__ import annotations

import asyncio

import pytest

from boothguard.notify.presenter import Presenter
from tests.notify.bus import SessionBus

CASES = {
    "ja": [
        (
            "usb_blocked",
            {"device": "Cruzer Blade", "rule": "block-mass-storage"},
            "USBデバイスをブロックしました",
        ),
        ("clipboard_cleared", {}, "コピーした内容を消去しました"),
        ("capture_stopped", {"app": "scrot"}, "画面キャプチャを停止しました"),
        ("idle_lock_warning", {"seconds": 30}, "30秒後に画面をロックします"),
        ("remote_lock", {"reason": "incident 42"}, "セキュリティ担当者が画面をロックしました"),
    ],
    "en": [
        ("usb_blocked", {"device": "Cruzer Blade", "rule": "block-mass-storage"}, "USB device blocked"),
        ("clipboard_cleared", {}, "Copy removed"),
        ("capture_stopped", {"app": "scrot"}, "Screen capture stopped"),
        ("idle_lock_warning", {"seconds": 30}, "Locking in 30 seconds"),
        ("remote_lock", {"reason": "incident 42"}, "Screen locked by security"),
    ],
}


@pytest.mark.parametrize(("lang", "locale"), [("ja", "ja_JP.UTF-8"), ("en", "en_US.UTF-8")])
def test_texts_in_both_languages(notifications: SessionBus, lang: str, locale: str) -> None:
    presenter = Presenter({"DBUS_SESSION_BUS_ADDRESS": notifications.address, "LANG": locale})

    async def show_all() -> list[dict[str, object]]:
        return [await presenter.present(kind, params) for kind, params, _ in CASES[lang]]

    answers = asyncio.run(show_all())
    assert all(a["shown"] is True and a["language"] == lang for a in answers), answers
    calls = notifications.notify_calls()
    assert [c["summary"] for c in calls] == [summary for _, _, summary in CASES[lang]]
    assert {c["app"] for c in calls} == {"boothguard"}
    usb, _clip, capture, idle, remote = calls
    if lang == "ja":
        assert "「Cruzer Blade」はこのPCでは使用できません。" in usb["body"]
        assert "USBメモリなどの記憶装置はブース内では使用できません。" in usb["body"]
        assert "「scrot」を終了しました。" in capture["body"]
        assert "理由: incident 42。" in remote["body"]
    else:
        assert usb["body"].startswith('"Cruzer Blade" cannot be used on this PC. USB memory')
        assert capture["body"].startswith('"scrot" was closed')
        assert "Reason: incident 42." in remote["body"]
    assert (usb["hints"]["urgency"], remote["hints"]["urgency"]) == (1, 2)
    assert idle["timeout"] == 30000


def test_countdown_replaces_its_previous_notification(notifications: SessionBus) -> None:
    presenter = Presenter({"DBUS_SESSION_BUS_ADDRESS": notifications.address, "LANG": "ja_JP.UTF-8"})

    async def twice() -> tuple[dict[str, object], dict[str, object]]:
        return await presenter.present("idle_lock_warning", {"seconds": 30}), await presenter.present(
            "idle_lock_warning", {"seconds": 10}
        )

    first, second = asyncio.run(twice())
    calls = notifications.notify_calls()
    assert [c["replaces_id"] for c in calls] == [0, first["id"]]
    assert second["id"] == first["id"]


def test_no_service_nothing_breaks(bare_bus: SessionBus) -> None:
    presenter = Presenter({"DBUS_SESSION_BUS_ADDRESS": bare_bus.address, "LANG": "ja_JP.UTF-8"})
    answer = asyncio.run(presenter.present("usb_blocked", {"device": "x"}))
    assert answer == {"shown": False, "language": "ja", "reason": "no_service"}


def test_no_bus_nothing_breaks(tmp_path: object) -> None:
    gone = Presenter({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/bus", "LANG": "en_US.UTF-8"})
    assert asyncio.run(gone.present("clipboard_cleared", {}))["reason"] == "bus_unreachable"
    none = Presenter({"LANG": "en_US.UTF-8"})
    assert asyncio.run(none.present("clipboard_cleared", {}))["reason"] == "no_session_bus"
    assert asyncio.run(none.present("what", {}))["reason"] == "unknown_kind"

# ruff: noqa: RUF001 -- Japanese text uses full-width punctuation on purpose
"""The operator-facing texts in Japanese and English, typed and shipped with the code (no .mo build step).

`render(kind, params, language)` gives the summary and body of one notification. Parameters are plain
values chosen by the agent (a device name, a tool name, a number of seconds); nothing here reads events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Language = Literal["ja", "en"]
LANGUAGES: tuple[Language, ...] = ("ja", "en")
DEFAULT_LANGUAGE: Language = "en"
Urgency = Literal[0, 1, 2]  # low, normal, critical (Desktop Notifications spec)
MAX_PARAM = 80


@dataclass(frozen=True)
class Text:
    summary: str
    body: str


@dataclass(frozen=True)
class Message:
    kind: str
    language: Language
    summary: str
    body: str
    urgency: Urgency
    timeout_ms: int  # -1: the server's default


# kind → (urgency, timeout_ms)
KINDS: dict[str, tuple[Urgency, int]] = {
    "usb_blocked": (1, -1),
    "clipboard_cleared": (1, -1),
    "capture_stopped": (2, -1),
    "idle_lock_warning": (2, 0),  # timeout set from the countdown
    "remote_lock": (2, 0),
    "away_lock": (1, -1),
    "idle_lock": (1, -1),
}
ALIASES = {"screenshot_blocked": "capture_stopped"}

# Plain-words reasons for a blocked USB device, by the rule that blocked it.
USB_WHY: dict[Language, dict[str, str]] = {
    "ja": {
        "block-mass-storage": "USBメモリなどの記憶装置はブース内では使用できません。",
        "block-mtp": "スマートフォン・タブレット・音楽プレーヤーは接続できません。",
        "block-still-image": "スマートフォンやカメラは接続できません。",
        "block-tethering": "ネットワークアダプターやスマートフォンのテザリングは使用できません。",
        "invalid-descriptors": "デバイスの情報を確認できなかったため、安全のため使用できません。",
        "*": "このデバイスは許可されたデバイスの一覧にありません。",
    },
    "en": {
        "block-mass-storage": "USB memory and other storage devices are not allowed in the booth.",
        "block-mtp": "Phones, tablets and music players must not be connected.",
        "block-still-image": "Phones and cameras must not be connected.",
        "block-tethering": "Network adapters and phone tethering are not allowed.",
        "invalid-descriptors": "The device could not be checked, so it is not allowed.",
        "*": "This kind of device is not on the list of allowed devices.",
    },
}

SINGLE: dict[Language, dict[str, Text]] = {
    "ja": {
        "usb_blocked": Text(
            "USBデバイスをブロックしました",
            "「{device}」はこのPCでは使用できません。{why}業務で必要な場合はIT担当者に連絡してください。",
        ),
        "clipboard_cleared": Text(
            "コピーした内容を消去しました",
            "コピーした内容に個人情報（カード番号・電話番号など）が含まれていたため、"
            "クリップボードを消去しました。お客様の情報は指定のシステムの外に持ち出せません。",
        ),
        "capture_stopped": Text(
            "画面キャプチャを停止しました",
            "「{app}」を終了しました。ブース内で画面を撮影・保存することは禁止されています。",
        ),
        "idle_lock_warning": Text(
            "{seconds}秒後に画面をロックします",
            "しばらく操作がありません。作業を続ける場合は、マウスかキーボードを操作してください。",
        ),
        "remote_lock": Text(
            "セキュリティ担当者が画面をロックしました",
            "このPCはセキュリティ担当者によって遠隔でロックされました。{reason}管理者の指示に従ってください。",
        ),
        "away_lock": Text("画面をロックしました", "離席のため画面をロックしました。"),
        "idle_lock": Text("画面をロックしました", "一定時間操作がなかったため画面をロックしました。"),
    },
    "en": {
        "usb_blocked": Text(
            "USB device blocked",
            '"{device}" cannot be used on this PC. {why} If you need it for work, contact IT.',
        ),
        "clipboard_cleared": Text(
            "Copy removed",
            "What you copied contained personal data (such as a card or phone number), so the clipboard "
            "was cleared. Customer data must stay inside the designated system.",
        ),
        "capture_stopped": Text(
            "Screen capture stopped",
            '"{app}" was closed: taking or saving pictures of the screen is not allowed in the booth.',
        ),
        "idle_lock_warning": Text(
            "Locking in {seconds} seconds",
            "No activity for a while. Move the mouse or press a key to keep working.",
        ),
        "remote_lock": Text(
            "Screen locked by security",
            "Security locked this PC remotely. {reason}Please follow your supervisor's instructions.",
        ),
        "away_lock": Text("Screen locked", "The screen was locked because you are away."),
        "idle_lock": Text("Screen locked", "The screen was locked after a period of inactivity."),
    },
}

# A burst: one notification with the count.
GROUPED: dict[Language, dict[str, Text]] = {
    "ja": {
        "usb_blocked": Text(
            "USBデバイス{count}台をブロックしました",
            "記憶装置・スマートフォンなど、許可されていないデバイスは使用できません。"
            "業務で必要な場合はIT担当者に連絡してください。",
        ),
        "clipboard_cleared": Text(
            "コピーを{count}回消去しました",
            "コピーした内容に個人情報が含まれていたため、クリップボードを消去しました。",
        ),
        "capture_stopped": Text(
            "画面キャプチャを{count}回停止しました",
            "ブース内で画面を撮影・保存することは禁止されています。",
        ),
    },
    "en": {
        "usb_blocked": Text(
            "{count} USB devices blocked",
            "Storage devices, phones and other devices that are not allowed cannot be used. "
            "If you need one for work, contact IT.",
        ),
        "clipboard_cleared": Text(
            "{count} copies removed",
            "They contained personal data, so the clipboard was cleared each time.",
        ),
        "capture_stopped": Text(
            "{count} screen captures stopped",
            "Taking or saving pictures of the screen is not allowed in the booth.",
        ),
    },
}

FALLBACKS: dict[Language, dict[str, str]] = {
    "ja": {"device": "USBデバイス", "app": "画面キャプチャツール", "reason": ""},
    "en": {"device": "USB device", "app": "A screen capture tool", "reason": ""},
}


def language_from_env(env: Mapping[str, str], default: Language = DEFAULT_LANGUAGE) -> Language:
    """gettext's order: LANGUAGE (a list, unless the locale is C), then LC_ALL, LC_MESSAGES, LANG."""
    locale = next((env[k] for k in ("LC_ALL", "LC_MESSAGES", "LANG") if env.get(k)), "")
    if locale and not _is_c(locale):
        for entry in env.get("LANGUAGE", "").split(":"):
            lang = _supported(entry)
            if lang is not None:
                return lang
    return _supported(locale) or default


def _is_c(locale: str) -> bool:
    return locale.split(".", maxsplit=1)[0] in ("C", "POSIX")


def _supported(locale: str) -> Language | None:
    code = locale.split(".", 1)[0].split("@", 1)[0].split("_", 1)[0].lower()
    for lang in LANGUAGES:
        if code == lang:
            return lang
    return None


def canonical_kind(kind: str) -> str | None:
    kind = ALIASES.get(kind, kind)
    return kind if kind in KINDS else None


_MARKUP = str.maketrans({"<": "‹", ">": "›", "&": "＆"})


def _clean(value: Any) -> str:
    """Printable, short, and inert where the server renders body markup (device strings are hostile)."""
    text = "".join(ch for ch in str(value) if ch.isprintable())
    return text[:MAX_PARAM].translate(_MARKUP)


def render(kind: str, params: Mapping[str, Any], language: Language) -> Message | None:
    """The notification for `kind` (None if unknown); `params["count"] > 1` gives the grouped text."""
    known = canonical_kind(kind)
    if known is None:
        return None
    count = params.get("count", 1)
    count = count if isinstance(count, int) and count > 0 else 1
    grouped = GROUPED[language].get(known) if count > 1 else None
    text = grouped or SINGLE[language][known]
    values = dict(FALLBACKS[language])
    for key, value in params.items():
        if value is not None and value != "":
            values[key] = _clean(value)
    values["count"] = str(count)
    values["why"] = USB_WHY[language].get(str(params.get("rule", "")), USB_WHY[language]["*"])
    if known == "remote_lock" and params.get("reason"):
        values["reason"] = (
            ("理由: " if language == "ja" else "Reason: ")
            + _clean(params["reason"])
            + ("。" if language == "ja" else ". ")
        )
    urgency, timeout_ms = KINDS[known]
    if known == "idle_lock_warning":
        seconds = params.get("seconds")
        timeout_ms = int(seconds * 1000) if isinstance(seconds, int | float) and seconds > 0 else -1
    return Message(
        kind=known,
        language=language,
        summary=text.summary.format_map(_Missing(values)),
        body=text.body.format_map(_Missing(values)),
        urgency=urgency,
        timeout_ms=timeout_ms,
    )


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""

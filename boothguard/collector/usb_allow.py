"""Checking a `usb_allow` command on the collector (dashboard form and API) before it is queued.

The agent checks again when the command arrives (`boothguard.usb.exceptions`); the collector checks first so
that an admin sees a clear error now instead of a `failed` acknowledgement later. The same limits and the
same parsers are used on both sides. `granted_by` is never taken from the request: the caller stamps it
with the logged-in admin's name.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from boothguard.usb.exceptions import (
    MAX_REASON,
    MAX_SECONDS,
    MIN_SECONDS,
    DeviceSpec,
    GrantError,
    clean_text,
    parse_duration,
)

COMMAND = "usb_allow"
REASON_MAX = MAX_REASON  # the form says it
MAX_DEVICE = 160
MAX_DURATION_TEXT = 32
_SHOWN = 40  # characters of a refused value repeated in the error


@dataclass(frozen=True)
class Problem:
    """One refused field: `code` names the catalog text (`usb_allow.err.<code>`), `message` is English."""

    field: str  # "device" | "duration" | "reason"
    code: str
    message: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class UsbAllow:
    device: str  # normalized: `1-2` or `0781:5567[:serial]`
    seconds: int | float
    reason: str

    def body(self, granted_by: str) -> dict[str, Any]:
        """The command body as the agent reads it (`allow_from_command`)."""
        return {
            "device": self.device,
            "for_seconds": self.seconds,
            "reason": self.reason,
            "granted_by": granted_by,
        }


def _shown(text: str) -> str:
    return clean_text(text, _SHOWN)


def check_device(value: Any) -> str | Problem:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return Problem("device", "device_empty", "a device is required")
    if len(text) > MAX_DEVICE or not text.isprintable():
        return Problem("device", "device_bad", f"bad device {_shown(text)!r}", {"value": _shown(text)})
    try:
        spec = DeviceSpec.parse(text)
    except GrantError as exc:
        return Problem("device", "device_bad", str(exc), {"value": _shown(text)})
    return str(spec)


def check_seconds(value: Any) -> int | float | Problem:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return Problem(
            "duration", "duration_bad", "for_seconds must be a number", {"value": _shown(str(value))}
        )
    if not (MIN_SECONDS <= value <= MAX_SECONDS):  # also refuses NaN
        return Problem(
            "duration",
            "duration_range",
            f"duration must be between {MIN_SECONDS:g} s and {MAX_SECONDS / 86400:g} days",
            {"days": int(MAX_SECONDS // 86400)},
        )
    return int(value) if float(value).is_integer() else value


def check_duration_text(value: Any) -> int | float | Problem:
    """A duration as typed: `90`, `90s`, `30m`, `2h`, `1h30m`, `1d`; whole seconds."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return Problem("duration", "duration_empty", "a duration is required")
    try:
        if len(text) > MAX_DURATION_TEXT:
            raise GrantError("too long")
        seconds = parse_duration(text)
    except GrantError:
        return Problem(
            "duration",
            "duration_bad",
            f"bad duration {_shown(text)!r}: use e.g. 90s, 30m, 2h, 1h30m",
            {"value": _shown(text)},
        )
    return check_seconds(round(seconds) if math.isfinite(seconds) else seconds)


def check_reason(value: Any) -> str | Problem:
    words = " ".join(value.split()) if isinstance(value, str) else ""  # newlines, tabs: one space
    text = clean_text(words, len(words) + 1)
    if not text:
        return Problem("reason", "reason_empty", "a reason is required")
    if len(text) > MAX_REASON:
        return Problem(
            "reason", "reason_long", f"the reason is longer than {MAX_REASON} characters", {"max": MAX_REASON}
        )
    return text


def _gather(
    device: str | Problem, seconds: int | float | Problem, reason: str | Problem
) -> UsbAllow | list[Problem]:
    if isinstance(device, Problem) or isinstance(seconds, Problem) or isinstance(reason, Problem):
        return [x for x in (device, seconds, reason) if isinstance(x, Problem)]
    return UsbAllow(device, seconds, reason)


def check_form(device: Any, duration: Any, reason: Any) -> UsbAllow | list[Problem]:
    """The dashboard form: the duration as typed."""
    return _gather(check_device(device), check_duration_text(duration), check_reason(reason))


def check_command(body: dict[str, Any]) -> UsbAllow | list[Problem]:
    """An API command body: `for_seconds` a number."""
    return _gather(
        check_device(body.get("device")),
        check_seconds(body.get("for_seconds")),
        check_reason(body.get("reason")),
    )


def parts(seconds: float) -> list[tuple[str, int]]:
    """3 h 30 min as [("h", 3), ("m", 30)], for a localized display."""
    left = round(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, left = divmod(left, size)
        if n:
            out.append((unit, n))
    return out

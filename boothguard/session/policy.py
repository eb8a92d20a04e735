"""The watcher's copy of `[clipboard]` and `[screenshot]` as the agent hands it over: plain dataclasses.

The agent validates these sections (pydantic models in `boothguard.session.settings`) and sends their
`model_dump()`; the watcher checks each value's type and keeps it here without loading pydantic — one
watcher runs per session, and what it imports stays resident. Names and defaults are the models';
tests/session/test_policy.py keeps them equal.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

DEFAULT_CAPTURE_TOOLS = (
    "scrot",
    "gnome-screenshot",
    "flameshot",
    "spectacle",
    "xfce4-screenshooter",
    "maim",
    "import",
    "xwd",
    "grim",
    "ksnip",
    "shutter",
    "obs",
    "simplescreenrecorder",
    "kazam",
    "peek",
    "vokoscreen",
    "vokoscreenNG",
    "recordmydesktop",
    "gtk-recordmydesktop",
    "wf-recorder",
    "ffmpeg:x11grab",
    "ffmpeg:kmsgrab",
    "gst-launch-1.0:ximagesrc",
)
DEFAULT_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".xwd",
    ".tif",
    ".tiff",
    ".mp4",
    ".mkv",
    ".webm",
    ".avi",
    ".mov",
    ".ogv",
)


@dataclass(frozen=True)
class ClipboardPolicy:
    enabled: bool = True
    policy: Literal["report", "clear"] = "report"
    allow_apps: tuple[str, ...] = ()
    watch_primary: bool = True
    max_read_bytes: int = 4 * 1024 * 1024
    convert_timeout_seconds: float = 2.0
    watcher_heartbeat_seconds: float = 5.0
    watcher_timeout_seconds: float = 15.0
    watcher_queue_max: int = 1000


@dataclass(frozen=True)
class ScreenshotPolicy:
    enabled: bool = True
    policy: Literal["report", "kill", "quarantine", "delete"] = "report"
    allow_apps: tuple[str, ...] = ()
    record: bool = True
    min_pixels: int = 4096
    tools: tuple[str, ...] = DEFAULT_CAPTURE_TOOLS
    process_poll_seconds: float = 1.0
    dirs: tuple[str, ...] = ()
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    dedupe_seconds: float = 2.0
    quarantine_dir: str = ""
    quarantine_max_bytes: int = 512 * 1024 * 1024


class PolicyError(ValueError):
    """A key this watcher does not know, or a value of the wrong type: the watcher keeps what it had."""


P = TypeVar("P", ClipboardPolicy, ScreenshotPolicy)


def from_message(cls: type[P], data: Mapping[str, Any]) -> P:
    """A policy from the agent's section dict; missing keys take the defaults."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in hints:
            raise PolicyError(f"{cls.__name__}: unknown key {key!r}")
        values[key] = _checked(key, hints[key], value)
    return cls(**values)


def _checked(key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value in typing.get_args(hint):
            return value
    elif origin is tuple:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    elif hint is float:
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        ):
            return float(value)
    elif hint is str and isinstance(value, str):
        return value
    raise PolicyError(f"{key}: unexpected value {value!r}"[:200])


def _number(value: Any) -> bool:
    """A finite, non-negative int or float (every number in these sections is one)."""
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )

"""What the session watcher can watch on this display, and what it cannot (reported, never pretended)."""

from __future__ import annotations

import shutil

from boothguard.session.options import WatcherOptions
from boothguard.session.wl_registry import data_control, globals_of


def probe(opts: WatcherOptions) -> tuple[list[str], dict[str, str]]:  # noqa: PLR0912 -- one branch per capability
    """What this session can watch (capabilities) and what it cannot, with why (missing)."""
    caps: list[str] = ["capture.process", "capture.files", "lock_fallback"]
    missing: dict[str, str] = {}
    x_ok = False
    if opts.display:
        try:
            from boothguard.session.xconnect import open_display

            d = open_display(opts.display)
            exts = {e for e in ("XFIXES", "X-Resource", "RECORD", "MIT-SCREEN-SAVER") if d.has_extension(e)}
            d.close()
            x_ok = True
        except Exception as exc:
            missing["x11"] = f"cannot open display {opts.display}: {type(exc).__name__}: {exc}"[:300]
            exts = set()
        if x_ok:
            if opts.wayland_display:
                pass  # the clipboard is watched through Wayland below; X sees only XWayland clients
            elif "XFIXES" in exts:
                caps.append("clipboard.x11")
                if "RECORD" in exts:
                    caps.append("clipboard.paste")
                else:
                    missing["clipboard.paste"] = "RECORD extension missing: pasting apps not seen"
            else:
                missing["clipboard"] = "XFIXES extension missing"
            if "X-Resource" not in exts:
                missing["owner_pid"] = "X-Resource extension missing: owners via _NET_WM_PID only"
            if "RECORD" in exts:
                caps.append("capture.record")
            else:
                missing["capture.record"] = 'RECORD extension missing (Xorg: Load "record")'
            if "MIT-SCREEN-SAVER" in exts:
                caps.append("idle.x11")
            else:
                missing["idle"] = "MIT-SCREEN-SAVER extension missing"
    if opts.wayland_display:
        if (problem := wayland_clipboard_problem(opts)) is None:
            caps.append("clipboard.wayland")
            missing["clipboard.paste"] = "Wayland does not show which application pastes"
        else:
            missing["clipboard"] = problem
        if not x_ok:
            missing["capture.record"] = "Wayland has no capture-request interception"
            missing["idle"] = "no idle source on Wayland without X"
    if not opts.display and not opts.wayland_display:
        missing["display"] = "neither DISPLAY nor WAYLAND_DISPLAY set"
    return caps, missing


def wayland_clipboard_problem(opts: WatcherOptions) -> str | None:
    """Why `wl-paste --watch` cannot watch this compositor's clipboard; None when it can."""
    path = opts.wayland_socket
    if path is None:
        return "WAYLAND_DISPLAY set but XDG_RUNTIME_DIR missing: compositor not found, clipboard not watched"
    try:
        found = globals_of(path, 3.0)
    except (OSError, ValueError) as exc:
        return f"compositor {path} not reachable ({exc}): clipboard not watched"[:200]
    control = data_control(found)
    if control is None:
        return "the compositor offers no data-control protocol (ext/wlr): clipboard not watched"
    if shutil.which("wl-paste") is None:
        return f"{control} offered but wl-paste (wl-clipboard) missing: clipboard not watched"
    return None

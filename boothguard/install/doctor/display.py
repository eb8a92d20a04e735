"""The display server and which session watchers can run on it (mirrors the watcher's own probe)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from boothguard.install.doctor.model import Check, Probe, Status

X_EXTENSIONS = ("XFIXES", "X-Resource", "RECORD", "MIT-SCREEN-SAVER", "MIT-SHM")


def x_displays(probe: Probe) -> list[str]:
    if display := probe.env.get("DISPLAY"):
        return [display]
    sockets = probe.path("/tmp/.X11-unix")  # noqa: S108 -- the X server's fixed socket directory
    try:
        names = sorted(p.name for p in sockets.iterdir() if p.name.startswith("X") and p.name[1:].isdigit())
    except OSError:
        return []
    return [f":{n[1:]}" for n in names]


def wayland_sockets(probe: Probe) -> list[Path]:
    from boothguard.session.wl_registry import socket_path

    if (path := socket_path(probe.env)) is not None:
        return [path]
    try:
        return sorted(probe.path("/run/user").glob("*/wayland-[0-9]*"))
    except OSError:
        return []


def checks(probe: Probe) -> Iterator[Check]:
    xs, ways = x_displays(probe), [p for p in wayland_sockets(probe) if not p.name.endswith(".lock")]
    if not xs and not ways:
        yield Check(
            "display",
            "fail",
            "no display server (no DISPLAY, no /tmp/.X11-unix socket, no Wayland socket): "
            "the session watcher (clipboard, captures, idle) cannot run",
            "run doctor on a booth PC with its desktop running, or inside the operator's session",
        )
        return
    for way in ways:
        yield from _wayland(probe, way)
    for name in xs:
        yield from _x11(probe, name, under_wayland=bool(ways))


def _x11(probe: Probe, name: str, under_wayland: bool) -> Iterator[Check]:
    try:
        from boothguard.session.xconnect import open_display

        d = open_display(name)
        try:
            exts = {e for e in X_EXTENSIONS if d.has_extension(e)}
            vendor = d.get_display_name()
        finally:
            d.close()
    except Exception as exc:  # python-xlib raises many types for auth and connection failures
        yield Check(
            "display",
            "warn",
            f"X11 {name} present but not reachable from here: {type(exc).__name__}: {exc}"[:300],
            "run `boothguard doctor` inside the operator's session (needs its XAUTHORITY)",
        )
        return
    facts = {"display": name, "extensions": sorted(exts)}
    yield Check("display", "ok", f"X11 {vendor}: extensions {', '.join(sorted(exts)) or 'none'}", "", facts)
    if under_wayland:
        yield Check("watch clipboard", "ok", "clipboard is watched through Wayland (X sees XWayland only)")
    elif "XFIXES" in exts:
        owner = "owner PIDs via X-Resource" if "X-Resource" in exts else "owners via _NET_WM_PID only"
        status: Status = "ok" if "X-Resource" in exts else "warn"
        yield Check(
            "watch clipboard",
            status,
            f"X11 clipboard (XFIXES); {owner}",
            "" if status == "ok" else "enable the X-Resource extension in the X server",
        )
    else:
        yield Check(
            "watch clipboard", "fail", "XFIXES missing: clipboard copies not seen", "use Xorg with XFIXES"
        )
    if "RECORD" in exts:
        yield Check(
            "watch captures", "ok", "capture requests seen as they happen (RECORD), plus processes and files"
        )
    else:
        yield Check(
            "watch captures",
            "warn",
            "RECORD missing: captures seen only by capture-tool processes and new image files",
            'add Section "Module" Load "record" to xorg.conf',
        )
    if "MIT-SCREEN-SAVER" in exts:
        yield Check("watch idle", "ok", "idle time from MIT-SCREEN-SAVER")
    else:
        yield Check("watch idle", "warn", "MIT-SCREEN-SAVER missing: no idle-time lock", "")


def _wayland(probe: Probe, path: Path) -> Iterator[Check]:
    from boothguard.session.wl_registry import data_control, globals_of

    try:
        found = globals_of(path, probe.timeout)
    except (OSError, ValueError) as exc:
        yield Check(
            "display", "warn", f"Wayland {path} not reachable from here: {exc}", "run doctor in the session"
        )
        return
    control = data_control(found)
    yield Check("display", "ok", f"Wayland {path}: {len(found)} globals", "", {"globals": sorted(found)})
    if not control:
        yield Check(
            "watch clipboard",
            "fail",
            "the compositor offers no data-control protocol: clipboard copies not seen",
            "use a compositor with ext/wlr data-control (KDE Plasma, sway, labwc) or an X11 session",
        )
    elif shutil.which("wl-paste") is None:
        yield Check(
            "watch clipboard",
            "fail",
            f"{control} offered but wl-paste missing",
            "apt install wl-clipboard",
        )
    else:
        yield Check("watch clipboard", "ok", f"clipboard via {control} (wl-paste)")
    yield Check(
        "watch captures",
        "warn",
        "Wayland: captures seen only by capture-tool processes and new image files",
        "",
    )
    if not probe.env.get("DISPLAY"):
        yield Check(
            "watch idle", "warn", "Wayland without X: the watcher has no idle source (no idle-time lock)", ""
        )

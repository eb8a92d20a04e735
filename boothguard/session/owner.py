"""Which process is an X client: XRes first, `_NET_WM_PID` second, the dead owner's process group third."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import psutil

try:  # python-xlib's XRes module; absent only on very old versions
    from Xlib.ext import res as _res

    PID_MASK: int = _res.LocalClientPIDMask
except ImportError:  # pragma: no cover
    PID_MASK = 2


@dataclass(frozen=True)
class ProcessInfo:
    pid: int | None
    app: str | None
    source: str  # xres | net_wm_pid | process_group | none
    exited: bool


def xres_pid(display: Any, xid: int) -> int | None:
    """PID of the client owning resource `xid` (any XID of that client works)."""
    if not display.has_extension("X-Resource"):
        return None
    try:
        reply = display.res_query_client_ids([{"client": xid, "mask": PID_MASK}])
    except Exception:  # BadValue/BadWindow: the client is gone
        return None
    for cid in reply.ids:
        if cid.spec.mask & PID_MASK and cid.value:
            return int(cid.value[0])
    return None


def net_wm_pid(display: Any, window_id: int) -> int | None:
    try:
        window = display.create_resource_object("window", window_id)
        prop = window.get_full_property(display.intern_atom("_NET_WM_PID"), 0)
    except Exception:  # the window is gone
        return None
    if prop is None or not len(prop.value):
        return None
    return int(prop.value[0])


def process_name(pid: int) -> str | None:
    try:
        return str(psutil.Process(pid).name())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_member(pgid: int) -> int | None:
    """A live process in the process group a dead owner led: tools that fork and exit (plain `xclip`)
    leave their child there."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == pgid and int(entry.name) != pgid:
                return int(entry.name)
        except OSError:
            continue
    return None


def identify(display: Any, xid: int) -> ProcessInfo:
    pid = xres_pid(display, xid)
    source = "xres"
    if pid is None or not alive(pid):
        wm = net_wm_pid(display, xid)
        if wm is not None and alive(wm):
            pid, source = wm, "net_wm_pid"
    if pid is not None and not alive(pid):
        child = group_member(pid)
        if child is not None:
            return ProcessInfo(child, process_name(child), "process_group", exited=True)
        return ProcessInfo(pid, None, source, exited=True)
    if pid is None:
        return ProcessInfo(None, None, "none", exited=True)
    return ProcessInfo(pid, process_name(pid), source, exited=False)


def identify_client(display: Any, client_xid: int, window_id: int) -> ProcessInfo:
    """A requesting client (RECORD): XRes on its resource base, else the window's `_NET_WM_PID`. The name is
    read even from a process that has just exited and is not reaped yet; a one-shot tool already reaped
    (or disconnected) by the time of the lookup has no name (and maybe no pid)."""
    pid, source = xres_pid(display, client_xid), "xres"
    if pid is None:
        pid, source = net_wm_pid(display, window_id), "net_wm_pid"
    if pid is None:
        return ProcessInfo(None, None, "none", exited=True)
    return ProcessInfo(pid, process_name(pid), source, exited=not alive(pid))

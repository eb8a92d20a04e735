"""D-Bus: logind on the system bus (away/lock), a notification service on the session bus."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from boothguard.install.doctor.model import Check, Probe

SYSTEM_BUS_DEFAULT = "unix:path=/run/dbus/system_bus_socket"
LOGIND = "org.freedesktop.login1"
NOTIFICATIONS = "org.freedesktop.Notifications"


def system_bus_address(probe: Probe) -> str:
    return probe.config.lock.bus_address or probe.env.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS_DEFAULT


def session_bus_address(probe: Probe) -> str | None:
    if address := probe.env.get("DBUS_SESSION_BUS_ADDRESS"):
        return address
    runtime = probe.env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.exists(os.path.join(runtime, "bus")):
        return f"unix:path={runtime}/bus"
    return None


class _Bus:
    """A few blocking calls on one connection, each bounded by the probe's timeout."""

    def __init__(self, address: str, timeout: float) -> None:
        from jeepney.io.blocking import open_dbus_connection

        self.timeout = timeout
        self.conn = open_dbus_connection(bus=address, auth_timeout=timeout)

    def call(self, dest: str, path: str, iface: str, method: str, sig: str = "", *args: Any) -> Any:
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import unwrap_msg

        msg = new_method_call(DBusAddress(path, bus_name=dest, interface=iface), method, sig, args)
        return unwrap_msg(self.conn.send_and_get_reply(msg, timeout=self.timeout))

    def has_name(self, name: str) -> tuple[bool, bool]:
        """(owned now, activatable)."""
        dbus = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
        owned = bool(self.call(*dbus, "NameHasOwner", "s", name)[0])
        activatable = name in self.call(*dbus, "ListActivatableNames")[0]
        return owned, activatable

    def close(self) -> None:
        self.conn.close()


def _open(address: str, timeout: float) -> _Bus | str:
    try:
        return _Bus(address, timeout)
    except Exception as exc:  # jeepney raises OSError, ValueError or its own errors by transport
        return f"{type(exc).__name__}: {exc}"


def logind_check(probe: Probe) -> Iterator[Check]:
    address = system_bus_address(probe)
    bus = _open(address, probe.timeout)
    if isinstance(bus, str):
        yield Check(
            "logind",
            "fail",
            f"system bus not reachable at {address} ({bus}): away/lock cannot lock sessions",
            "install and start dbus (apt install dbus); on a booth PC systemd-logind comes with systemd",
        )
        return
    try:
        owned, activatable = bus.has_name(LOGIND)
        if not owned and not activatable:
            yield Check(
                "logind",
                "fail",
                f"{LOGIND} not on the system bus: away/lock cannot lock sessions",
                "boot with systemd (systemd-logind) — the agent locks sessions through it",
            )
            return
        sessions = bus.call(
            LOGIND, "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "ListSessions"
        )[0]
    except Exception as exc:  # a bus that answers oddly is reported, not raised
        yield Check("logind", "fail", f"{LOGIND} did not answer: {type(exc).__name__}: {exc}", "")
        return
    finally:
        bus.close()
    users = sorted({str(s[2]) for s in sessions})
    yield Check(
        "logind",
        "ok",
        f"{LOGIND} reachable; {len(sessions)} session(s)" + (f" ({', '.join(users)})" if users else ""),
        "",
        {"sessions": len(sessions), "users": users},
    )


def notification_check(probe: Probe) -> Iterator[Check]:
    address = session_bus_address(probe)
    if address is None:
        yield Check(
            "notifications",
            "warn",
            "no session bus here: cannot tell whether operators see notices",
            "run `boothguard doctor` inside an operator's desktop session",
        )
        return
    bus = _open(address, probe.timeout)
    if isinstance(bus, str):
        yield Check("notifications", "warn", f"session bus not reachable at {address} ({bus})", "")
        return
    try:
        owned, activatable = bus.has_name(NOTIFICATIONS)
    finally:
        bus.close()
    if owned or activatable:
        how = "running" if owned else "activatable"
        yield Check("notifications", "ok", f"{NOTIFICATIONS} {how}: operators see notices")
    else:
        yield Check(
            "notifications",
            "warn",
            f"no {NOTIFICATIONS} service: operators will not see why a copy was cleared or a session locked",
            "install a notification daemon (the desktop's own, or dunst / xfce4-notifyd)",
        )

"""The desktop's notification service (org.freedesktop.Notifications on the session bus), over jeepney.

We carry our own copy of the interface (the Desktop Notifications Specification 1.2), so nothing depends on
the server's introspection. One short-lived connection per notification: notifications are rare once
grouped, and a restarted session bus or notification daemon is picked up without reconnect logic.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boothguard.notify.catalog import Message

BUS_NAME = "org.freedesktop.Notifications"
OBJECT_PATH = "/org/freedesktop/Notifications"
INTERFACE = "org.freedesktop.Notifications"
APP_NAME = "boothguard"
# Our copy of the interface (methods we call; signals we do not need).
INTROSPECTION = """
<node>
  <interface name="org.freedesktop.Notifications">
    <method name="GetCapabilities"><arg direction="out" type="as"/></method>
    <method name="Notify">
      <arg direction="in" type="s" name="app_name"/>
      <arg direction="in" type="u" name="replaces_id"/>
      <arg direction="in" type="s" name="app_icon"/>
      <arg direction="in" type="s" name="summary"/>
      <arg direction="in" type="s" name="body"/>
      <arg direction="in" type="as" name="actions"/>
      <arg direction="in" type="a{sv}" name="hints"/>
      <arg direction="in" type="i" name="expire_timeout"/>
      <arg direction="out" type="u" name="id"/>
    </method>
    <method name="CloseNotification"><arg direction="in" type="u" name="id"/></method>
    <method name="GetServerInformation">
      <arg direction="out" type="s" name="name"/><arg direction="out" type="s" name="vendor"/>
      <arg direction="out" type="s" name="version"/><arg direction="out" type="s" name="spec_version"/>
    </method>
    <signal name="NotificationClosed"><arg type="u"/><arg type="u"/></signal>
    <signal name="ActionInvoked"><arg type="u"/><arg type="s"/></signal>
  </interface>
</node>
"""


class NotifyError(Exception):
    """Not shown; `reason` is one of no_session_bus, bus_unreachable, no_service, error, timeout."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Shown:
    id: int
    server: str | None = None


def session_bus_address(env: Mapping[str, str]) -> str | None:
    """DBUS_SESSION_BUS_ADDRESS, else the systemd user bus at $XDG_RUNTIME_DIR/bus."""
    if address := env.get("DBUS_SESSION_BUS_ADDRESS"):
        return address
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.exists(os.path.join(runtime, "bus")):
        return f"unix:path={runtime}/bus"
    return None


def _notify_call(msg: Message, replaces_id: int) -> Any:
    from jeepney import DBusAddress, new_method_call

    hints = {
        "urgency": ("y", msg.urgency),
        "desktop-entry": ("s", APP_NAME),
        "category": ("s", "device" if msg.kind == "usb_blocked" else "presence"),
    }
    address = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=INTERFACE)
    args: tuple[Any, ...] = (
        APP_NAME,
        replaces_id,
        "dialog-warning",
        msg.summary,
        msg.body,
        [],
        hints,
        msg.timeout_ms,
    )
    return new_method_call(address, "Notify", "susssasa{sv}i", args)


class DesktopNotifier:
    def __init__(self, address: str | None, timeout: float = 3.0) -> None:
        self.address = address
        self.timeout = timeout

    async def notify(self, msg: Message, replaces_id: int = 0) -> Shown:
        if self.address is None:
            raise NotifyError("no_session_bus", "no DBUS_SESSION_BUS_ADDRESS and no $XDG_RUNTIME_DIR/bus")
        try:
            return await asyncio.wait_for(self._notify(msg, replaces_id), self.timeout)
        except TimeoutError:
            raise NotifyError("timeout", f"no answer within {self.timeout}s") from None

    async def _notify(self, msg: Message, replaces_id: int) -> Shown:
        from jeepney import DBusErrorResponse
        from jeepney.io.asyncio import open_dbus_router
        from jeepney.wrappers import unwrap_msg

        assert self.address is not None
        try:
            router_cm = open_dbus_router(bus=self.address)
            router = await router_cm.__aenter__()
        except (OSError, ValueError, KeyError) as exc:
            raise NotifyError("bus_unreachable", f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # jeepney's auth failures have their own types
            raise NotifyError("bus_unreachable", f"{type(exc).__name__}: {exc}") from None
        try:
            reply = await router.send_and_get_reply(_notify_call(msg, replaces_id))
            try:
                (nid,) = unwrap_msg(reply)
            except DBusErrorResponse as exc:
                reason = "no_service" if exc.name in _NO_SERVICE else "error"
                raise NotifyError(reason, f"{exc.name}: {exc.data}") from None
            return Shown(int(nid))
        finally:
            await router_cm.__aexit__(None, None, None)


_NO_SERVICE = frozenset(
    {
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.Spawn.ServiceNotFound",
        "org.freedesktop.DBus.Error.Spawn.ExecFailed",
        "org.freedesktop.DBus.Error.Spawn.ChildExited",
        "org.freedesktop.DBus.Error.Spawn.Failed",
    }
)

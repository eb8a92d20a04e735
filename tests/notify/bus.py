"""A private session bus (dbus-daemon --session with its own config) and python-dbusmock's
notification_daemon template on it, or no notification service at all."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import dbus
from dbusmock.testcase import BusType, PrivateDBus, SpawnedMock

MOCK_IFACE = "org.freedesktop.DBus.Mock"


class SessionBus:
    def __init__(self, with_service: bool = True) -> None:
        saved = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
        self.bus = PrivateDBus(BusType.SESSION)
        self.bus.start()
        self.address: str = self.bus.address
        self.mock: SpawnedMock | None = None
        try:
            if with_service:
                self.mock = SpawnedMock.spawn_with_template(
                    "notification_daemon", {}, stdout=subprocess.DEVNULL
                )
        finally:
            # The test decides who sees the bus (env passed to watchers); don't leak it to others.
            if saved is None:
                os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
            else:
                os.environ["DBUS_SESSION_BUS_ADDRESS"] = saved

    def notify_calls(self) -> list[dict[str, Any]]:
        """Every Notify the service received: app, replaces_id, icon, summary, body, hints, timeout."""
        assert self.mock is not None
        calls = self.mock.obj.GetMethodCalls("Notify", dbus_interface=MOCK_IFACE)
        out = []
        for _stamp, args in calls:
            out.append(
                {
                    "app": str(args[0]),
                    "replaces_id": int(args[1]),
                    "icon": str(args[2]),
                    "summary": str(args[3]),
                    "body": str(args[4]),
                    "hints": {str(k): _plain(v) for k, v in args[6].items()},
                    "timeout": int(args[7]),
                }
            )
        return out

    def close(self) -> None:
        if self.mock is not None:
            self.mock.terminate()
            self.mock = None
        self.bus.stop()


def _plain(value: Any) -> Any:
    if isinstance(value, dbus.String):
        return str(value)
    if isinstance(value, dbus.Byte | dbus.Int32 | dbus.UInt32 | dbus.Int64 | dbus.UInt64):
        return int(value)
    return value

"""A private system bus with python-dbusmock's logind template, playing the screen locker too.

LockSession is overridden to do what a desktop does: emit the session's `Lock` signal and, if the
session's locker is "good", set `LockedHint` (a "never" locker leaves it false, like swaylock#382).
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import dbus
from dbusmock.testcase import BusType, PrivateDBus, SpawnedMock

TEST_IFACE = "net.boothguard.Test"
SESSION_IFACE = "org.freedesktop.login1.Session"
MANAGER_IFACE = "org.freedesktop.login1.Manager"
MOCK_IFACE = "org.freedesktop.DBus.Mock"

LOCK_CODE = f"""
s = objects["/org/freedesktop/login1/session/" + args[0]]
s.EmitSignal("{SESSION_IFACE}", "Lock", "", [])
if s.Get("{TEST_IFACE}", "Locker") == "good":
    s.UpdateProperties("{SESSION_IFACE}", {{"LockedHint": dbus.Boolean(True)}})
"""

BY_PID_CODE = f"""
pid = int(args[0])
found = None
for path, obj in objects.items():
    if "/session/" in path and int(pid) in [int(p) for p in obj.Get("{TEST_IFACE}", "Pids")]:
        found = path
if found is None:
    raise dbus.exceptions.DBusException("no session for pid", name="org.freedesktop.login1.NoSessionForPID")
ret = dbus.ObjectPath(found)
"""


class MockLogind:
    def __init__(self) -> None:
        self.bus = PrivateDBus(BusType.SYSTEM)
        self._saved_env = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
        self.bus.start()
        self.address = self.bus.address
        self.mock: SpawnedMock | None = None
        self.start_logind()

    def start_logind(self) -> None:
        self.mock = SpawnedMock.spawn_with_template("logind", {}, stdout=subprocess.DEVNULL)
        obj = self.mock.obj
        obj.AddMethod(MANAGER_IFACE, "LockSession", "s", "", LOCK_CODE, dbus_interface=MOCK_IFACE)
        obj.AddMethod(MANAGER_IFACE, "GetSessionByPID", "u", "o", BY_PID_CODE, dbus_interface=MOCK_IFACE)

    def stop_logind(self) -> None:
        if self.mock is not None:
            self.mock.terminate()
            self.mock = None

    def close(self) -> None:
        self.stop_logind()
        self.bus.stop()
        if self._saved_env is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self._saved_env

    @property
    def manager(self) -> Any:
        assert self.mock is not None
        return self.mock.obj

    def session(self, sid: str) -> Any:
        conn = dbus.bus.BusConnection(self.address)
        return conn.get_object("org.freedesktop.login1", f"/org/freedesktop/login1/session/{sid}")

    def add_session(
        self,
        sid: str,
        uid: int = 1000,
        user: str = "alice",
        *,
        type: str = "x11",
        locker: str = "good",
        active: bool = True,
        pids: tuple[int, ...] = (),
    ) -> Any:
        self.manager.AddSession(sid, "seat0", dbus.UInt32(uid), user, active, dbus_interface=MOCK_IFACE)
        s = self.session(sid)
        s.UpdateProperties(SESSION_IFACE, {"Type": type}, dbus_interface=MOCK_IFACE)
        s.AddProperties(
            TEST_IFACE,
            dbus.Dictionary(
                {"Locker": locker, "Pids": dbus.Array([dbus.UInt32(p) for p in pids], signature="u")},
                signature="sv",
            ),
            dbus_interface=MOCK_IFACE,
        )
        return s

    def set_locked(self, sid: str, locked: bool) -> None:
        self.session(sid).UpdateProperties(
            SESSION_IFACE, {"LockedHint": dbus.Boolean(locked)}, dbus_interface=MOCK_IFACE
        )

    def set_pids(self, sid: str, pids: tuple[int, ...]) -> None:
        self.session(sid).Set(
            TEST_IFACE,
            "Pids",
            dbus.Array([dbus.UInt32(p) for p in pids], signature="u"),
            dbus_interface="org.freedesktop.DBus.Properties",
        )

    def locked(self, sid: str) -> bool:
        return bool(
            self.session(sid).Get(
                SESSION_IFACE, "LockedHint", dbus_interface="org.freedesktop.DBus.Properties"
            )
        )

    def calls(self, method: str) -> list[list[Any]]:
        return [list(args) for _t, args in self.manager.GetMethodCalls(method, dbus_interface=MOCK_IFACE)]

    def clear_calls(self) -> None:
        self.manager.ClearCalls(dbus_interface=MOCK_IFACE)

    def wait_locked(self, sid: str, value: bool = True, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.locked(sid) == value:
                return True
            time.sleep(0.02)
        return False

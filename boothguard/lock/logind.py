"""A small systemd-logind client over D-Bus (jeepney, asyncio) with our own copy of the interface.

We carry the names and signatures we use instead of trusting introspection: logind's mock lists no
signals, and a booth must not depend on what a bus peer claims about itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from jeepney import DBusAddress, MatchRule, Message, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.asyncio import DBusConnection, DBusRouter, open_dbus_connection
from jeepney.low_level import HeaderFields

from boothguard import log
from boothguard.errors import BoothguardError

BUS_NAME = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
MANAGER_IFACE = "org.freedesktop.login1.Manager"
SESSION_IFACE = "org.freedesktop.login1.Session"
SESSION_PREFIX = "/org/freedesktop/login1/session"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
PEER_IFACE = "org.freedesktop.DBus.Peer"
DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
GRAPHICAL_TYPES = frozenset({"x11", "wayland", "mir"})
# Signals waiting for the consumer; beyond this they are dropped and counted (the periodic refresh heals).
SIGNAL_QUEUE_MAX = 1024
_log = log.get("lock.logind")


class LogindError(BoothguardError):
    """logind is absent, the bus is gone, or a call failed."""


@dataclass(frozen=True)
class SessionInfo:
    id: str
    path: str
    uid: int
    user: str
    type: str
    klass: str
    active: bool
    remote: bool
    display: str
    locked_hint: bool
    state: str

    @property
    def graphical(self) -> bool:
        return self.type in GRAPHICAL_TYPES and self.klass == "user" and self.state != "closing"

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "uid": self.uid,
            "type": self.type,
            "class": self.klass,
            "active": self.active,
            "remote": self.remote,
            "display": self.display,
            "locked": self.locked_hint,
            "state": self.state,
        }


def _variant(value: Any) -> Any:
    # jeepney gives variants as (signature, value).
    return value[1] if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) else value


def session_from_props(path: str, props: Mapping[str, Any]) -> SessionInfo:
    p = {k: _variant(v) for k, v in props.items()}
    user = p.get("User", (0, ""))
    return SessionInfo(
        id=str(p.get("Id", path.rsplit("/", 1)[-1])),
        path=path,
        uid=int(user[0]) if isinstance(user, tuple | list) else int(user),
        user=str(p.get("Name", "")),
        type=str(p.get("Type", "")),
        klass=str(p.get("Class", "")),
        active=bool(p.get("Active", False)),
        remote=bool(p.get("Remote", False)),
        display=str(p.get("Display", "")),
        locked_hint=bool(p.get("LockedHint", False)),
        state=str(p.get("State", "")),
    )


@dataclass(frozen=True)
class SessionSignal:
    """What logind told us about a session. kind: "changed" (changed: property → value), "lock", "unlock",
    "new", "removed". `at` is the monotonic time the agent received it."""

    kind: str
    session_id: str
    path: str
    changed: Mapping[str, Any]
    at: float


SignalListener = Callable[[SessionSignal], None]


def system_bus_address(configured: str, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return configured or env.get("DBUS_SYSTEM_BUS_ADDRESS", "") or DEFAULT_SYSTEM_BUS


class Logind:
    """One connection to the system bus; method calls plus a signal feed into a listener."""

    def __init__(self, address: str, clock: Callable[[], float]) -> None:
        self.address = address
        self.clock = clock
        self._conn: DBusConnection | None = None
        self._router: DBusRouter | None = None
        self._queue: asyncio.Queue[Message] = asyncio.Queue(SIGNAL_QUEUE_MAX)
        self._filter: Any = None
        self._consumer: asyncio.Task[None] | None = None
        self._listeners: list[SignalListener] = []
        self._path_ids: dict[str, str] = {}
        self.manager = DBusAddress(MANAGER_PATH, bus_name=BUS_NAME, interface=MANAGER_IFACE)
        self.lost = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._router is not None and not self.lost.is_set()

    def add_listener(self, listener: SignalListener) -> None:
        self._listeners.append(listener)

    async def connect(self, timeout: float = 5.0) -> None:
        """Connect and subscribe; raises LogindError when the bus or logind is not there."""
        try:
            async with asyncio.timeout(timeout):
                self._conn = await open_dbus_connection(self.address)
                self._router = DBusRouter(self._conn)
                self.lost.clear()
                owner = await self._call(
                    new_method_call(message_bus, "NameHasOwner", "s", (BUS_NAME,)), timeout
                )
                if not owner[0]:
                    raise LogindError(f"{BUS_NAME} is not on the bus at {self.address}")
                await self._subscribe(timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            await self.close()
            raise LogindError(f"system bus not reachable at {self.address}: {exc}") from None
        except LogindError:
            await self.close()
            raise
        self._consumer = asyncio.create_task(self._consume(), name="logind-signals")

    async def _subscribe(self, timeout: float) -> None:
        assert self._router is not None
        for member, iface in (
            ("PropertiesChanged", PROPS_IFACE),
            ("Lock", SESSION_IFACE),
            ("Unlock", SESSION_IFACE),
        ):
            # The bus only routes signals whose sender owns org.freedesktop.login1: nobody can fake them.
            bus_rule = MatchRule(
                type="signal", sender=BUS_NAME, interface=iface, member=member, path_namespace=SESSION_PREFIX
            )
            await self._call(message_bus.AddMatch(bus_rule), timeout)
        owner_rule = MatchRule(
            type="signal",
            sender="org.freedesktop.DBus",
            interface="org.freedesktop.DBus",
            member="NameOwnerChanged",
        )
        owner_rule.add_arg_condition(0, BUS_NAME)
        await self._call(message_bus.AddMatch(owner_rule), timeout)
        for member in ("SessionNew", "SessionRemoved"):
            bus_rule = MatchRule(type="signal", sender=BUS_NAME, interface=MANAGER_IFACE, member=member)
            await self._call(message_bus.AddMatch(bus_rule), timeout)
        # Locally the sender is logind's unique name, so match on everything but the sender.
        self._filter = self._router.filter(MatchRule(type="signal"), queue=self._queue)

    async def close(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._consumer
            self._consumer = None
        if self._filter is not None:
            self._filter.close()
            self._filter = None
        if self._router is not None:
            with contextlib.suppress(Exception):
                await self._router.__aexit__(None, None, None)
            self._router = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        self.lost.set()

    async def _consume(self) -> None:
        assert self._router is not None
        router = self._router
        while True:
            get = asyncio.ensure_future(self._queue.get())
            rcv = router._rcv_task  # the router's receiver ends when the bus connection drops
            done, _ = await asyncio.wait({get, rcv}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                _log.warning("logind_connection_lost", address=self.address)
                self.lost.set()
                return
            self._dispatch(get.result())

    def _dispatch(self, msg: Message) -> None:
        fields = msg.header.fields
        iface, member = fields.get(HeaderFields.interface), fields.get(HeaderFields.member)
        path = str(fields.get(HeaderFields.path, ""))
        at = self.clock()
        sig: SessionSignal | None = None
        if member == "NameOwnerChanged" and len(msg.body) == 3 and msg.body[0] == BUS_NAME:
            if not msg.body[2]:
                _log.warning("logind_left_the_bus", address=self.address)
                self.lost.set()
            return
        if iface == PROPS_IFACE and member == "PropertiesChanged" and path.startswith(SESSION_PREFIX + "/"):
            if msg.body and msg.body[0] == SESSION_IFACE:
                changed = {k: _variant(v) for k, v in msg.body[1].items()}
                sig = SessionSignal("changed", self._id_of(path), path, changed, at)
        elif iface == SESSION_IFACE and member in ("Lock", "Unlock"):
            sig = SessionSignal(member.lower(), self._id_of(path), path, {}, at)
        elif iface == MANAGER_IFACE and member in ("SessionNew", "SessionRemoved") and len(msg.body) == 2:
            sid, spath = str(msg.body[0]), str(msg.body[1])
            self._path_ids[spath] = sid
            sig = SessionSignal("new" if member == "SessionNew" else "removed", sid, spath, {}, at)
        if sig is None:
            return
        for listener in self._listeners:
            try:
                listener(sig)
            except Exception:
                _log.exception("logind_listener_failed", kind=sig.kind)

    def _id_of(self, path: str) -> str:
        return self._path_ids.get(path) or path.rsplit("/", 1)[-1]

    async def _call(self, msg: Message, timeout: float = 5.0) -> tuple[Any, ...]:
        router = self._router
        if router is None or self.lost.is_set():
            raise LogindError("not connected to the system bus")
        try:
            async with asyncio.timeout(timeout):
                reply = await router.send_and_get_reply(msg)
        except TimeoutError:
            raise LogindError(
                f"{msg.header.fields.get(HeaderFields.member)}: no reply in {timeout}s"
            ) from None
        except (OSError, ConnectionError, EOFError) as exc:
            self.lost.set()
            raise LogindError(f"system bus connection lost: {exc}") from None
        except Exception as exc:  # jeepney's RouterClosed and friends
            if type(exc).__name__ == "RouterClosed":
                self.lost.set()
                raise LogindError("system bus connection lost") from None
            raise
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name, "error")
            detail = reply.body[0] if reply.body else ""
            raise LogindError(f"{name}: {detail}")
        return tuple(reply.body)

    # -- Manager ---------------------------------------------------------------------------------

    async def ping(self, timeout: float = 5.0) -> None:
        """A bare round trip to logind (Peer.Ping): the floor the benchmark compares against."""
        addr = DBusAddress(MANAGER_PATH, bus_name=BUS_NAME, interface=PEER_IFACE)
        await self._call(new_method_call(addr, "Ping"), timeout)

    async def list_sessions(self, timeout: float = 5.0) -> list[SessionInfo]:
        (rows,) = await self._call(new_method_call(self.manager, "ListSessions"), timeout)
        sessions = []
        for sid, _uid, _user, _seat, path in rows:
            self._path_ids[str(path)] = str(sid)
            with contextlib.suppress(LogindError):  # a session may end between the two calls
                sessions.append(await self.session_at(str(path), timeout))
        return sessions

    async def session_at(self, path: str, timeout: float = 5.0) -> SessionInfo:
        addr = DBusAddress(path, bus_name=BUS_NAME, interface=PROPS_IFACE)
        (props,) = await self._call(new_method_call(addr, "GetAll", "s", (SESSION_IFACE,)), timeout)
        info = session_from_props(path, props)
        self._path_ids[path] = info.id
        return info

    async def get_session(self, session_id: str, timeout: float = 5.0) -> SessionInfo:
        (path,) = await self._call(new_method_call(self.manager, "GetSession", "s", (session_id,)), timeout)
        return await self.session_at(str(path), timeout)

    async def session_by_pid(self, pid: int, timeout: float = 5.0) -> SessionInfo | None:
        try:
            (path,) = await self._call(new_method_call(self.manager, "GetSessionByPID", "u", (pid,)), timeout)
        except LogindError:
            return None
        return await self.session_at(str(path), timeout)

    async def lock_session(self, session_id: str, timeout: float = 5.0) -> None:
        await self._call(new_method_call(self.manager, "LockSession", "s", (session_id,)), timeout)

    async def terminate_session(self, session_id: str, timeout: float = 5.0) -> None:
        await self._call(new_method_call(self.manager, "TerminateSession", "s", (session_id,)), timeout)

    async def locked_hint(self, info: SessionInfo, timeout: float = 5.0) -> bool:
        addr = DBusAddress(info.path, bus_name=BUS_NAME, interface=PROPS_IFACE)
        (value,) = await self._call(
            new_method_call(addr, "Get", "ss", (SESSION_IFACE, "LockedHint")), timeout
        )
        return bool(_variant(value))


def with_changes(info: SessionInfo, changed: Mapping[str, Any]) -> SessionInfo:
    """Apply a PropertiesChanged payload to a cached session."""
    updates: dict[str, Any] = {}
    names = {
        "LockedHint": "locked_hint",
        "Active": "active",
        "State": "state",
        "Type": "type",
        "Class": "klass",
        "Display": "display",
        "Remote": "remote",
    }
    for key, attr in names.items():
        if key in changed:
            value = changed[key]
            updates[attr] = bool(value) if attr in ("locked_hint", "active", "remote") else str(value)
    return replace(info, **updates) if updates else info

"""The agent's half of the session watcher: registrations, liveness, events, pushes. Beside it: a watcher's
record (`watcher_record.py`), what a watcher may report (`watcher_events.py`), the flood budget on its
connection (`flood.py`) and the quarantine door that follows the policy (`quarantine_switch.py`).

Offered to other plugins as `ctx.services["sessions"]` (the SessionsService protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from boothguard import log
from boothguard.agent import access as trust
from boothguard.agent.control import Connection, Peer
from boothguard.agent.plugin import AgentContext, Handler, SessionListener
from boothguard.config import AgentConfig
from boothguard.errors import EXIT_PERMISSION, EXIT_USAGE
from boothguard.events import Draft
from boothguard.session import protocol as p
from boothguard.session import watcher_events
from boothguard.session.binding import SessionBinder
from boothguard.session.fingerprint import load_or_create_key
from boothguard.session.flood import FloodGuard
from boothguard.session.quarantine_switch import QuarantineSwitch
from boothguard.session.watcher_record import WatcherRecord

_log = log.get("sessions")


def _bad(message: str, code: int = EXIT_USAGE) -> dict[str, Any]:
    return {"ok": False, "error": message, "code": code}


class SessionsPlugin:
    name = "sessions"

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._records: dict[str, WatcherRecord] = {}
        self._by_conn: dict[int, str] = {}
        self._pending: dict[str, tuple[asyncio.Future[dict[str, Any]], str]] = {}
        self._listeners: list[SessionListener] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ctx: AgentContext | None = None
        self._key = b""
        self._binder = SessionBinder(lambda: self.config.lock.bus_address, self._now)
        self._flood = FloodGuard(
            monotonic=self._now,
            emit=self._emit,
            spawn=self._spawn,
            session_of=lambda conn: self._by_conn.get(id(conn)),
        )
        self._quarantine = QuarantineSwitch(
            config=lambda: self.config, bound_watcher=self._bound_watcher, wall_clock=self._wall
        )

    # -- Plugin ---------------------------------------------------------------------------------------

    async def start(self, ctx: AgentContext) -> None:
        self._ctx = ctx
        self._key = await asyncio.to_thread(load_or_create_key, self.key_file)
        handlers: dict[str, Handler] = {
            p.OP_REGISTER: self._op_register,
            p.OP_HEARTBEAT: self._op_heartbeat,
            p.OP_EVENT: self._op_event,
            p.OP_REPLY: self._op_reply,
            p.OP_GOODBYE: self._op_goodbye,
        }
        for op, handler in handlers.items():  # who may call each, and its budget: boothguard/agent/access.py
            ctx.control.register(op, self._flood.guard(op, handler), trust.WATCHER_OPS[op].access)
        ctx.services["sessions"] = self
        await self._quarantine.sync()
        self._spawn(self._monitor())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for fut, _ in self._pending.values():
            fut.cancel()
        await self._binder.close()
        await self._quarantine.stop()

    def status(self) -> dict[str, Any]:
        now = self._now()
        return {
            "watchers": [r.summary(now) for r in self._records.values()],
            "quarantined": self._quarantine.quarantined,
            "shed": self._flood.shed,
        }

    async def handle_command(self, command: Mapping[str, Any]) -> bool | None:
        return None

    def reload(self, config: AgentConfig) -> None:
        self.config = config
        # Before the pushes: a watcher told "quarantine" must find the door open (tasks start in order, and
        # the door binds before its first await).
        self._spawn(self._quarantine.sync())
        for record in self._records.values():
            if record.state == "alive" and record.conn is not None:
                self._spawn(self._push_config(record.conn))

    # -- SessionsService ------------------------------------------------------------------------------

    def watcher_alive(self, session_id: str) -> bool:
        record = self._records.get(session_id)
        return record is not None and record.state == "alive"

    def idle_seconds(self, session_id: str) -> float | None:
        record = self._records.get(session_id)
        return None if record is None else record.idle_seconds

    async def request(
        self, session_id: str, push: str, timeout: float, **fields: Any
    ) -> dict[str, Any] | None:
        record = self._records.get(session_id)
        if record is None or record.state != "alive" or record.conn is None:
            return None
        rid = secrets.token_hex(8)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = (fut, session_id)
        try:
            await record.conn.send({"push": push, "rid": rid, **fields})
            return await asyncio.wait_for(fut, timeout)
        except (TimeoutError, ConnectionError, OSError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and not fut.cancelled():
                raise
            _log.warning(
                "watcher_request_unanswered", session=session_id, push=push, error=type(exc).__name__
            )
            return None
        finally:
            self._pending.pop(rid, None)

    def add_listener(self, listener: SessionListener) -> None:
        self._listeners.append(listener)

    # -- internals ------------------------------------------------------------------------------------

    @property
    def key_file(self) -> Path:
        return self.config.agent.state_dir / "clipboard.key"

    def _now(self) -> float:
        assert self._ctx is not None
        return self._ctx.monotonic()

    def _wall(self) -> float:
        assert self._ctx is not None
        return self._ctx.wall_clock()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _notify(self, session_id: str, kind: str, info: Mapping[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(session_id, kind, info)
            except Exception:  # a listener's bug must not break the watcher link
                _log.exception("session_listener_failed", kind=kind)

    async def _emit(self, draft: Draft) -> None:
        assert self._ctx is not None
        await self._ctx.events.emit(draft)

    def _record_of(self, conn: Connection) -> WatcherRecord | None:
        sid = self._by_conn.get(id(conn))
        record = self._records.get(sid) if sid is not None else None
        return record if record is not None and record.conn is conn else None

    async def _push_config(self, conn: Connection) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await conn.send({"push": p.PUSH_CONFIG, "rid": secrets.token_hex(8), **self._policy()})

    def _policy(self) -> dict[str, Any]:
        return {
            "clipboard": self.config.clipboard.model_dump(mode="json"),
            "screenshot": self.config.screenshot.model_dump(mode="json"),
        }

    async def _op_register(self, peer: Peer, req: Mapping[str, Any], conn: Connection) -> dict[str, Any]:
        sid = req.get("session_id")
        if not isinstance(sid, str) or not p.SESSION_ID.match(sid):
            return _bad("session_id must be 1-64 characters of [A-Za-z0-9_.-]")
        caps = [str(c) for c in req.get("capabilities", []) if isinstance(c, str)][:32]
        missing_raw = req.get("missing", {})
        missing = (
            {str(k): str(v)[:200] for k, v in missing_raw.items()} if isinstance(missing_raw, dict) else {}
        )
        old = self._records.get(sid)
        if old is not None and old.uid != peer.uid and not peer.is_root and old.state != "ended":
            return await self._deny(peer, sid, "session belongs to another user")
        if old is not None and old.watched_elsewhere(conn):
            return await self._deny(peer, sid, "the session already has a watcher")
        bound = False
        if not peer.is_root:
            refusal = await self._binder.why_not(peer, sid)
            if refusal is not None:
                return await self._deny(peer, sid, refusal)
            bound = True
        now = self._now()
        record = WatcherRecord(
            session_id=sid,
            uid=peer.uid,
            user=peer.user,
            pid=peer.pid,
            display=str(req.get("display", ""))[:64],
            capabilities=caps,
            missing=missing,
            conn=conn,
            last_heartbeat=now,
            registered_at=now,
            extra={"bound": bound},
        )
        if old is not None and old.conn is not None and old.conn is not conn:
            self._by_conn.pop(id(old.conn), None)
        self._records[sid] = record
        self._by_conn[id(conn)] = sid
        self._spawn(self._watch_connection(record, conn))
        came_back = old is not None and old.state == "missing"
        info = {"user": record.user, "display": record.display, "capabilities": caps, "missing": missing}
        if old is None or old.state != "alive":
            data = {
                "session_id": sid,
                "display": record.display,
                "watcher_pid": peer.pid,
                "capabilities": caps,
                "missing_capabilities": missing,
                "reconnect": bool(req.get("reconnect", False)),
                "watcher_back": came_back,
            }
            await self._emit(
                Draft("session.started", "low" if came_back or missing else "info", data, peer.user)
            )
        _log.info("watcher_registered", session=sid, user=record.user, pid=peer.pid, back=came_back)
        self._notify(sid, "registered", info)
        if came_back:
            self._notify(sid, "watcher_back", info)
        clip = self.config.clipboard
        return {
            "session_id": sid,
            "heartbeat_seconds": clip.watcher_heartbeat_seconds,
            "timeout_seconds": clip.watcher_timeout_seconds,
            "fingerprint_key": self._key.hex(),
            **self._policy(),
        }

    async def _deny(self, peer: Peer, sid: str, reason: str) -> dict[str, Any]:
        _log.warning("watcher_register_denied", session=sid, uid=peer.uid, pid=peer.pid, reason=reason)
        if self._binder.report_due(peer, sid, reason):
            await self._emit(
                Draft(
                    "session.register_denied",
                    "high",
                    {"uid": peer.uid, "pid": peer.pid, "claimed_session": sid, "reason": reason},
                    peer.user,
                )
            )
        return _bad(f"registration refused: {reason}", EXIT_PERMISSION)

    async def _watch_connection(self, record: WatcherRecord, conn: Connection) -> None:
        await conn.closed.wait()
        self._by_conn.pop(id(conn), None)
        current = self._records.get(record.session_id) is record
        if current and record.conn is conn and not record.said_goodbye and record.state == "alive":
            await self._set_missing(record, "disconnected")

    async def _op_heartbeat(self, peer: Peer, req: Mapping[str, Any], conn: Connection) -> dict[str, Any]:
        record = self._record_of(conn)
        if record is None:
            return _bad("not registered")
        record.last_heartbeat = self._now()
        idle = req.get("idle_seconds")
        record.idle_seconds = float(idle) if isinstance(idle, int | float) else None
        saver = req.get("screensaver_active")
        record.screensaver_active = saver if isinstance(saver, bool) else None
        dropped = req.get("dropped")
        if isinstance(dropped, int):
            record.dropped = dropped
        if record.state == "missing":
            record.state = "alive"
            record.missing_since = None
            await self._emit(
                Draft(
                    "session.started",
                    "low",
                    {
                        "session_id": record.session_id,
                        "watcher_back": True,
                        "display": record.display,
                        "watcher_pid": record.pid,
                        "capabilities": record.capabilities,
                        "missing_capabilities": record.missing,
                        "reconnect": False,
                    },
                    record.user,
                )
            )
            self._notify(record.session_id, "watcher_back", {"user": record.user})
        if record.idle_seconds is not None:
            self._notify(record.session_id, "idle", {"seconds": record.idle_seconds})
        return {}

    async def _op_event(self, peer: Peer, req: Mapping[str, Any], conn: Connection) -> dict[str, Any]:
        record = self._record_of(conn)
        if record is None:
            return _bad("not registered")
        draft = watcher_events.event_draft(peer, record.session_id, req)
        if isinstance(draft, watcher_events.Refusal):
            return _bad(draft.error, draft.code)
        await self._emit(draft)
        record.events += 1
        return {}

    async def _op_reply(self, peer: Peer, req: Mapping[str, Any], conn: Connection) -> dict[str, Any]:
        record = self._record_of(conn)
        rid = req.get("rid")
        entry = self._pending.get(rid) if isinstance(rid, str) else None
        if record is None or entry is None:
            return {}  # late or unsolicited (config pushes): nothing waits for it
        fut, sid = entry
        if sid == record.session_id and not fut.done():
            fut.set_result({k: v for k, v in req.items() if k not in ("op", "id", "rid")})
        return {}

    async def _op_goodbye(self, peer: Peer, req: Mapping[str, Any], conn: Connection) -> dict[str, Any]:
        record = self._record_of(conn)
        if record is None:
            return _bad("not registered")
        reason = str(req.get("reason", ""))[:64]
        record.said_goodbye = True
        if reason in p.CLEAN_GOODBYES:
            record.state = "ended"
            await self._emit(
                Draft(
                    "session.ended", "info", {"session_id": record.session_id, "reason": reason}, record.user
                )
            )
            _log.info("watcher_goodbye", session=record.session_id, reason=reason)
        else:
            await self._set_missing(record, f"stopped:{reason or 'unknown'}")
        return {}

    async def _set_missing(self, record: WatcherRecord, reason: str) -> None:
        if record.state != "alive":
            return
        record.state = "missing"
        record.missing_since = self._now()
        age = round(record.missing_since - record.last_heartbeat, 1)
        _log.warning("watcher_missing", session=record.session_id, reason=reason, pid=record.pid)
        await self._emit(
            Draft(
                "session.watcher_missing",
                "high",
                {
                    "session_id": record.session_id,
                    "reason": reason,
                    "watcher_pid": record.pid,
                    "last_heartbeat_age_s": age,
                },
                record.user,
            )
        )
        self._notify(record.session_id, "watcher_missing", {"reason": reason, "user": record.user})

    async def _monitor(self) -> None:
        while True:
            timeout = self.config.clipboard.watcher_timeout_seconds
            await asyncio.sleep(min(1.0, timeout / 4))
            now = self._now()
            for record in list(self._records.values()):
                if record.state == "alive" and now - record.last_heartbeat > timeout:
                    await self._set_missing(record, "heartbeat_timeout")

    def _bound_watcher(self, session_id: str) -> tuple[int, int] | None:
        record = self._records.get(session_id)
        if record is None or record.state != "alive" or record.conn is None:
            return None
        return record.uid, record.pid

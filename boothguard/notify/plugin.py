"""The agent plugin: events worth telling the operator → grouped notifications → the session watchers.

It observes every committed event (`ctx.events.subscribe`): a `usb.device.blocked`, `clipboard.cleared`,
`screenshot.blocked` (a tool killed) or a remote `away.started` becomes a notification; idle reports from
the sessions service become the "locking in N seconds" countdown. Each batch is pushed to the watcher(s)
as `{"push": "notify", "kind", "params"}`, and `operator.notified` records what happened (kind, count,
language, shown) — never the texts or device names.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from boothguard import log
from boothguard.agent.plugin import sessions_now, sessions_service
from boothguard.events import Draft
from boothguard.notify.grouping import Batch, Grouper

if TYPE_CHECKING:
    from boothguard.agent.plugin import AgentContext, SessionsService
    from boothguard.config import AgentConfig

_log = log.get("notify")
PUSH_TIMEOUT = 5.0
MAX_INFLIGHT = 16
IDLE_WARNING_SECONDS = 30.0
MAX_KNOWN_SESSIONS = 256


def notification_for(draft: Draft) -> tuple[str, str | None, dict[str, Any]] | None:
    """(kind, session or None for all, params) for an event worth telling the operator."""
    d = draft.data
    if draft.type == "usb.device.blocked" and d.get("outcome") == "blocked" and d.get("origin") == "inserted":
        device = d.get("product") or d.get("manufacturer") or f"{d.get('vendor_id')}:{d.get('product_id')}"
        return "usb_blocked", None, {"device": device, "rule": d.get("rule")}
    session = d.get("session_id")
    session = session if isinstance(session, str) else None
    if draft.type == "clipboard.cleared" and d.get("ok"):
        return "clipboard_cleared", session, {}
    if draft.type == "screenshot.blocked" and d.get("ok") and d.get("action") == "kill":
        return "capture_stopped", session, {"app": d.get("app")}
    if draft.type == "away.started" and d.get("source") == "collector":
        target = d.get("session")
        return "remote_lock", target if isinstance(target, str) else None, {"reason": d.get("reason")}
    return None


class NotifyPlugin:
    name = "notify"

    def __init__(self, config: AgentConfig, grouper: Grouper | None = None) -> None:
        self.config = config
        self.grouper = grouper or Grouper()
        self.ctx: AgentContext | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inflight = 0
        self._known: dict[str, None] = {}
        self._warned: set[str] = set()
        self.counters = {"batches": 0, "shown": 0, "not_shown": 0, "lost": 0}

    # -- Plugin -----------------------------------------------------------------------------------

    async def start(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        ctx.events.subscribe(self.observe)
        ctx.services["notify"] = self
        self._spawn(self._run())
        self._spawn(self._attach_sessions())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        return {
            **self.counters,
            "pending": self.grouper.pending,
            "lost": self.counters["lost"] + self.grouper.lost,
        }

    async def handle_command(self, command: Mapping[str, Any]) -> bool | None:
        return None

    def reload(self, config: AgentConfig) -> None:
        self.config = config

    # -- inputs -----------------------------------------------------------------------------------

    def observe(self, draft: Draft) -> None:
        found = notification_for(draft)
        if found is not None:
            self.tell(*found)

    def tell(self, kind: str, session: str | None, params: Mapping[str, Any]) -> None:
        assert self.ctx is not None
        self.grouper.add(kind, session, params, self.ctx.monotonic())
        self._wake.set()

    def on_session(self, session_id: str, kind: str, info: Mapping[str, Any]) -> None:
        if kind in ("registered", "watcher_back", "idle"):
            self._known[session_id] = None
            while len(self._known) > MAX_KNOWN_SESSIONS:
                self._known.pop(next(iter(self._known)))
        if kind == "idle":
            self._idle(session_id, info.get("seconds"))

    def _idle(self, sid: str, seconds: Any) -> None:
        """Warn once per idle period, `IDLE_WARNING_SECONDS` (at most half the threshold) before the lock."""
        assert self.ctx is not None
        lock = self.config.lock
        threshold = lock.idle_seconds
        if not lock.enabled or not threshold or not isinstance(seconds, int | float):
            return
        lead = min(IDLE_WARNING_SECONDS, threshold / 2)
        if seconds < threshold - lead:
            self._warned.discard(sid)
            return
        controller = self.ctx.services.get("lock")
        away = sid in getattr(controller, "records", {})
        if seconds >= threshold or sid in self._warned or away:
            return
        self._warned.add(sid)
        self.tell("idle_lock_warning", sid, {"seconds": math.ceil(threshold - seconds)})

    # -- delivery ---------------------------------------------------------------------------------

    def _sessions(self) -> SessionsService | None:
        return sessions_now(self.ctx)

    async def _attach_sessions(self) -> None:
        assert self.ctx is not None
        service = await sessions_service(self.ctx)
        service.add_listener(self.on_session)

    def _all_sessions(self, service: Any) -> list[str]:
        """Sessions heard of through the listener, plus the ones the sessions plugin lists (a watcher may
        have registered before our listener was attached)."""
        found = dict(self._known)
        try:
            for watcher in service.status().get("watchers", []):
                if isinstance(watcher.get("session_id"), str):
                    found[watcher["session_id"]] = None
        except Exception:  # status() is not part of SessionsService: optional
            _log.debug("sessions_status_unavailable")
        return list(found)

    async def _run(self) -> None:
        assert self.ctx is not None
        while True:
            due = self.grouper.next_due()
            timeout = None if due is None else max(0.0, due - self.ctx.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            for batch in self.grouper.due(self.ctx.monotonic()):
                if self._inflight >= MAX_INFLIGHT:
                    self.counters["lost"] += 1
                    _log.warning("notification_dropped", kind=batch.kind, count=batch.count)
                    continue
                self._inflight += 1
                self._spawn(self._deliver(batch))

    async def _deliver(self, batch: Batch) -> None:
        try:
            self.counters["batches"] += 1
            service = self._sessions()
            targets = [batch.session] if batch.session is not None else self._all_sessions(service)
            alive = [s for s in targets if service is not None and service.watcher_alive(s)]
            if service is None or not alive:
                await self._record(batch, batch.session, None, "no_watcher")
                return
            for sid in alive:
                reply = await service.request(
                    sid, "notify", PUSH_TIMEOUT, kind=batch.kind, params=batch.params
                )
                await self._record(batch, sid, reply, None if reply is not None else "no_answer")
        finally:
            self._inflight -= 1

    async def _record(
        self, batch: Batch, session: str | None, reply: Mapping[str, Any] | None, why: str | None
    ) -> None:
        assert self.ctx is not None
        shown = bool(reply and reply.get("shown") is True)
        language = reply.get("language") if reply else None
        reason = why
        if reason is None and not shown:
            reason = str((reply or {}).get("reason") or "not_shown")[:64]
        self.counters["shown" if shown else "not_shown"] += 1
        data = {
            "kind": batch.kind,
            "count": batch.count,
            "session": session,
            "language": language if isinstance(language, str) else None,
            "shown": shown,
            "reason": reason,
        }
        _log.info("operator_notified", **data)
        await self.ctx.events.emit(Draft("operator.notified", "info", data))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

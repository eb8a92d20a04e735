"""The watcher's connection to the agent: register, heartbeat, send events, answer pushes, reconnect.

Events wait in a bounded queue while the agent is away (restart); when it is full the oldest is dropped
and counted, and the count travels with the next heartbeat and a `session.events_dropped` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boothguard import log
from boothguard.agent.control import MAX_LINE
from boothguard.session import protocol as p

_log = log.get("watcher.link")
# How long a stopping link keeps its connection for goodbye() (which itself gives up after 2 s).
GOODBYE_GRACE = 5.0

PushHandler = Callable[[str, Mapping[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Outgoing:
    type: str
    severity: str
    data: Mapping[str, Any]
    on_committed: Callable[[], None] | None = None


class LinkDown(Exception):
    pass


class AgentLink:
    def __init__(
        self,
        socket_path: Path,
        *,
        registration: Callable[[], dict[str, Any]],
        on_registered: Callable[[dict[str, Any]], None],
        on_push: PushHandler,
        heartbeat: Callable[[], Awaitable[dict[str, Any]]],
        queue_max: int = 1000,
        request_timeout: float = 10.0,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self.socket_path = socket_path
        self._registration = registration
        self._on_registered = on_registered
        self._on_push = on_push
        self._heartbeat = heartbeat
        self.queue: deque[Outgoing] = deque()
        self.queue_max = queue_max
        self.request_timeout = request_timeout
        self.backoff = backoff
        self.heartbeat_seconds = 5.0
        self.dropped = 0
        self._dropped_reported = 0
        self.connected = asyncio.Event()
        self._said_goodbye = asyncio.Event()
        self.registrations = 0
        self._queued = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- public ---------------------------------------------------------------------------------------

    def send_event(self, out: Outgoing) -> None:
        if len(self.queue) >= self.queue_max:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(out)
        self._queued.set()

    async def run(self, stop: asyncio.Event) -> None:
        delay = self.backoff[0]
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.socket_path), limit=MAX_LINE)
            except OSError as exc:
                _log.info(
                    "agent_unreachable",
                    socket=str(self.socket_path),
                    error=exc.strerror or str(exc),
                    retry_s=delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            try:
                await self._session(reader, writer, stop)
                delay = self.backoff[0]
            except (LinkDown, ConnectionError, OSError, TimeoutError) as exc:
                _log.warning("agent_link_lost", error=repr(exc))
            finally:
                self.connected.clear()
                self._writer = None
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(LinkDown("connection closed"))
                self._pending.clear()
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def goodbye(self, reason: str, timeout: float = 2.0) -> bool:
        """Flush queued events, then say goodbye; False if the agent could not be told."""
        try:
            if not self.connected.is_set():
                return False
            async with asyncio.timeout(timeout):
                while self.queue and self.connected.is_set():  # noqa: ASYNC110 -- two conditions, bounded
                    await asyncio.sleep(0.01)
                await self.request(p.OP_GOODBYE, reason=reason)
        except (TimeoutError, LinkDown, ConnectionError, OSError):
            return False
        finally:
            self._said_goodbye.set()
        return True

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        if self._writer is None:
            raise LinkDown("not connected")
        self._next_id += 1
        rid = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self._write({"op": op, "id": rid, **fields})
            reply = await asyncio.wait_for(fut, self.request_timeout)
        finally:
            self._pending.pop(rid, None)
        return reply

    # -- internals ------------------------------------------------------------------------------------

    async def _write(self, message: Mapping[str, Any]) -> None:
        if self._writer is None:
            raise LinkDown("not connected")
        async with self._write_lock:
            self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            await self._writer.drain()

    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event
    ) -> None:
        self._writer = writer
        read_task = asyncio.create_task(self._read(reader))
        try:
            reg = self._registration()
            reg["reconnect"] = self.registrations > 0
            reply = await self.request(p.OP_REGISTER, **reg)
            if not reply.get("ok"):
                raise LinkDown(f"registration refused: {reply.get('error')}")
            self.registrations += 1
            self.heartbeat_seconds = float(reply.get("heartbeat_seconds", self.heartbeat_seconds))
            self._on_registered(reply)
            self.connected.set()
            _log.info("agent_registered", session=reply.get("session_id"), reconnect=reg["reconnect"])
            tasks = [
                read_task,
                asyncio.create_task(self._heartbeats()),
                asyncio.create_task(self._sender()),
                asyncio.create_task(stop.wait()),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task is not read_task:  # the reader is cancelled below unless goodbye needs it
                    task.cancel()
            for task in done:
                if not task.cancelled() and (exc := task.exception()) is not None:
                    raise exc
            if not stop.is_set():
                raise LinkDown("agent closed the connection")
            # Stopping: keep the connection and its reader until goodbye() has its reply (bounded: the
            # owner may never say goodbye); tearing down at `stop` raced the goodbye under load.
            self._tasks.add(read_task)
            read_task.add_done_callback(self._tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._said_goodbye.wait(), GOODBYE_GRACE)
        finally:
            if not stop.is_set():
                read_task.cancel()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            if "push" in message:
                task = asyncio.create_task(self._answer(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif (
                isinstance(message.get("id"), int)
                and (fut := self._pending.get(message["id"])) is not None
                and not fut.done()
            ):
                fut.set_result(message)

    async def _answer(self, message: Mapping[str, Any]) -> None:
        push = str(message.get("push"))
        try:
            answer = await self._on_push(push, message)
        except Exception as exc:  # a failing push handler still answers
            _log.exception("push_failed", push=push)
            answer = {"error": repr(exc)[:200]}
        with contextlib.suppress(LinkDown, ConnectionError, OSError, TimeoutError):
            await self.request(p.OP_REPLY, rid=message.get("rid"), **answer)

    async def _heartbeats(self) -> None:
        while True:
            fields = await self._heartbeat()
            reply = await self.request(p.OP_HEARTBEAT, dropped=self.dropped, **fields)
            if not reply.get("ok"):
                raise LinkDown(f"heartbeat refused: {reply.get('error')}")
            await asyncio.sleep(self.heartbeat_seconds)

    async def _sender(self) -> None:
        while True:
            if self.dropped > self._dropped_reported:
                lost = self.dropped - self._dropped_reported
                reply = await self.request(
                    p.OP_EVENT,
                    type="session.events_dropped",
                    severity="medium",
                    data={"dropped": lost, "total": self.dropped},
                )
                if reply.get("ok"):
                    self._dropped_reported += lost
            if not self.queue:
                self._queued.clear()
                await self._queued.wait()
                continue
            out = self.queue[0]
            reply = await self.request(p.OP_EVENT, type=out.type, severity=out.severity, data=dict(out.data))
            # Sent (or refused for good): either way it leaves the queue; a lost link re-sends it.
            if self.queue and self.queue[0] is out:
                self.queue.popleft()
            if not reply.get("ok"):
                _log.error("event_refused", type=out.type, error=reply.get("error"))
            elif out.on_committed is not None:
                out.on_committed()

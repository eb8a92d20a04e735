"""The seams between the agent's composition root and its sources (USB, lock, session, network)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from boothguard.agent.supervisor import unsupervised

if TYPE_CHECKING:
    # Types only: the control socket (and the session watcher through it) must not load pydantic.
    from boothguard.agent.control import Connection, Peer
    from boothguard.config import AgentConfig
    from boothguard.events import Draft

Access = Literal["any", "emitter", "root"]
Reply = dict[str, Any]
Handler = Callable[["Peer", Mapping[str, Any], "Connection"], Awaitable[Reply]]


class EventEmitter(Protocol):
    async def emit(self, draft: Draft) -> None:
        """Return once the event is committed to the spool (durable)."""

    def try_emit(self, draft: Draft) -> bool:
        """Queue without waiting (for sync callbacks); False when full — the loss is counted and reported."""

    def subscribe(self, observer: Callable[[Draft], None]) -> None:
        """Show every committed event, from any source, to observer (quick, on the event loop)."""


class ControlRegistry(Protocol):
    def register(self, op: str, handler: Handler, access: Access) -> None: ...


class Services(dict[str, Any]):
    """Cross-plugin services by name; `wait` for one that a later plugin registers."""

    def __init__(self) -> None:
        super().__init__()
        self._added: dict[str, asyncio.Event] = {}

    def __setitem__(self, name: str, service: Any) -> None:
        super().__setitem__(name, service)
        self._added.setdefault(name, asyncio.Event()).set()

    async def wait(self, name: str) -> Any:
        await self._added.setdefault(name, asyncio.Event()).wait()
        return self[name]


@dataclass
class AgentContext:
    config: AgentConfig
    events: EventEmitter
    control: ControlRegistry
    wall_clock: Callable[[], float]
    monotonic: Callable[[], float]
    # Cross-plugin services by name (e.g. "sessions" for watcher liveness, "lock" for the away state).
    services: Services = field(default_factory=Services)
    # Hand a task that must not die (an event drain) to the agent's supervisor: its death stops the agent.
    watch: Callable[[asyncio.Task[Any], str | None], asyncio.Task[Any]] = field(default=unsupervised)


async def sessions_service(ctx: AgentContext) -> SessionsService:
    """The sessions service, once its plugin has started (plugins start in order; one may come later)."""
    service: SessionsService = await ctx.services.wait("sessions")
    return service


def sessions_now(ctx: AgentContext | None) -> SessionsService | None:
    """The sessions service if its plugin is up now (None before start or without one)."""
    if ctx is None:
        return None
    service: SessionsService | None = ctx.services.get("sessions")
    return service


class Plugin(Protocol):
    name: str

    async def start(self, ctx: AgentContext) -> None:
        """Set up and spawn background tasks; return promptly."""

    async def stop(self) -> None:
        """Stop tasks. Must never loosen a control (e.g. never re-authorize USB devices)."""

    def status(self) -> dict[str, Any]:
        """A JSON-safe summary for `boothguard status`."""

    async def handle_command(self, command: Mapping[str, Any]) -> bool | None:
        """A collector command (SPEC §5); True done, False failed, None not mine."""

    def reload(self, config: AgentConfig) -> None:
        """Apply a validated new config (SIGHUP)."""


SessionListener = Callable[[str, str, Mapping[str, Any]], None]


class SessionsService(Protocol):
    """Offered by the session plugin as `services["sessions"]`; the lock plugin (and notifications) use it.

    Session ids are logind session ids (e.g. "c1", "3").
    """

    def watcher_alive(self, session_id: str) -> bool:
        """Whether a registered watcher for this session heartbeats in time."""

    def idle_seconds(self, session_id: str) -> float | None:
        """Last reported idle time, None when unknown."""

    async def request(
        self, session_id: str, push: str, timeout: float, **fields: Any
    ) -> dict[str, Any] | None:
        """Ask the session's watcher something and await its answer; None if no watcher or no answer.

        Pushes: "screensaver_state" → {"active": bool}; "lock_fallback" (fields: commands) → {"ok": bool,
        "method": str}; "notify" (fields: kind, params) → {"shown": bool}.
        """

    def add_listener(self, listener: SessionListener) -> None:
        """Called with (session_id, kind, info); kinds: "idle" (info: seconds), "watcher_missing",
        "watcher_back", "registered"."""

"""The lock plugin: wires the away sources (control socket, CTI HTTP, collector command, idle, watcher
liveness, VPN) to the away state machine."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from boothguard import log
from boothguard.agent.plugin import AgentContext, Reply, SessionsService, sessions_now, sessions_service
from boothguard.errors import EXIT_FAILURE, EXIT_PERMISSION, EXIT_USAGE
from boothguard.events import Draft
from boothguard.lock.away import AwayController, clean_reason
from boothguard.lock.logind import Logind, LogindError, SessionInfo, system_bus_address
from boothguard.lock.state import StateStore

# The CTI endpoint and the VPN watcher are imported when configured (what the idle agent imports stays
# resident); here for their types only.
if TYPE_CHECKING:
    from boothguard.agent.control import Connection, Peer
    from boothguard.config import AgentConfig
    from boothguard.lock.http import AwayHttpServer
    from boothguard.net.vpn import VpnWatcher

SESSION_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_log = log.get("lock.plugin")


class LockPlugin:
    name = "lock"

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.settings = config.lock
        self.ctx: AgentContext | None = None
        self.controller: AwayController | None = None
        self.http: AwayHttpServer | None = None
        self.vpn: VpnWatcher | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listening = False

    # -- Plugin ----------------------------------------------------------------------------------

    async def start(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        logind = Logind(system_bus_address(self.settings.bus_address), ctx.monotonic)
        store = StateStore(self.config.agent.state_dir / "lock-state.json")
        self.controller = AwayController(
            settings=self.settings,
            logind=logind,
            events=ctx.events,
            store=store,
            sessions=self._sessions,
            monotonic=ctx.monotonic,
            wall_clock=ctx.wall_clock,
        )
        ctx.control.register("away", self._op_away, "any")
        ctx.control.register("back", self._op_back, "any")
        ctx.services["lock"] = self.controller
        await self.controller.start()
        self._spawn(self._attach_sessions())
        if self.settings.vpn_interfaces:
            from boothguard.net.vpn import VpnWatcher

            self.vpn = VpnWatcher(self.settings.vpn_interfaces, self.settings.vpn_poll_seconds, self._on_vpn)
            self.vpn.start()
        if self.settings.http_port:
            await self._start_http(ctx)

    async def _start_http(self, ctx: AgentContext) -> None:
        from boothguard.lock.http import AwayHttpServer, TokenBucket, load_or_create_token

        token_file = self.settings.http_token_file or self.config.agent.state_dir / "cti.token"
        token = await asyncio.to_thread(load_or_create_token, token_file, self.settings.http_token_group)
        self.http = AwayHttpServer(
            port=self.settings.http_port,
            token=token,
            allowed_origins=self.settings.http_allowed_origins,
            max_body=self.settings.http_max_body_bytes,
            bucket=TokenBucket(
                self.settings.http_rate_per_second, self.settings.http_rate_burst, ctx.monotonic
            ),
            # Its own budget: a flood without the token never spends the CTI client's.
            unauth_bucket=TokenBucket(
                self.settings.http_rate_per_second, self.settings.http_rate_burst, ctx.monotonic
            ),
            max_connections=self.settings.http_max_connections,
            on_away=self._http_away,
            on_back=self._http_back,
            state=self.status,
        )
        await self.http.start()
        _log.info("cti_endpoint_listening", port=self.http.bound_port, token_file=str(token_file))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.http is not None:
            await self.http.stop()
        if self.vpn is not None:
            await self.vpn.stop()
        if self.controller is not None:
            await self.controller.stop()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enabled": self.settings.enabled}
        if self.controller is not None:
            out.update(self.controller.status())
        if self.vpn is not None:
            out["vpn"] = self.vpn.status()
        if self.http is not None:
            out["http"] = {"port": self.http.bound_port, **vars(self.http.stats)}
        return out

    async def handle_command(self, command: Mapping[str, Any]) -> bool | None:
        if command.get("type") != "lock" or self.controller is None:
            return None
        session = command.get("session")
        sessions = [session] if isinstance(session, str) and SESSION_ID.match(session) else None
        reason = clean_reason(command.get("reason")) or "remote lock by security"
        results = await self.controller.away("collector", reason, sessions)
        return bool(results) and all(results.values())

    def reload(self, config: AgentConfig) -> None:
        self.config, self.settings = config, config.lock
        if self.controller is not None:
            self.controller.reconfigure(config.lock)
        # The HTTP endpoint, VPN patterns and bus address are applied at the next start.

    # -- sources ---------------------------------------------------------------------------------

    def _sessions(self) -> SessionsService | None:
        return sessions_now(self.ctx)

    async def _attach_sessions(self) -> None:
        assert self.ctx is not None
        service = await sessions_service(self.ctx)
        assert self.controller is not None
        service.add_listener(self.controller.on_session_watcher)
        self._listening = True

    async def _on_vpn(self, up: bool, interfaces: list[str]) -> None:
        assert self.ctx is not None
        assert self.controller is not None
        data = {"interfaces": interfaces, "patterns": self.settings.vpn_interfaces}
        draft = Draft("network.vpn_up", "info", data) if up else Draft("network.vpn_down", "medium", data)
        await self.ctx.events.emit(draft)
        if not up and self.settings.lock_on_vpn_down:
            self._spawn(self.controller.away("vpn", "VPN down: " + ",".join(interfaces)))

    async def _http_away(self, reason: str, session: str | None) -> None:
        assert self.controller is not None
        at = self.controller.mono()
        self._spawn(self.controller.away("http", reason, [session] if session else None, at))

    async def _http_back(self, session: str | None) -> list[str]:
        assert self.controller is not None
        targets = [session] if session else list(self.controller.records)
        return await self.controller.back("http", targets)

    # -- control socket ----------------------------------------------------------------------------

    async def _op_away(self, peer: Peer, request: Mapping[str, Any], conn: Connection) -> Reply:
        assert self.controller is not None
        at = self.controller.mono()
        targets, refusal = await self._targets(peer, request, "away")
        if refusal is not None:
            return refusal
        results = await self.controller.away("cli", clean_reason(request.get("reason")), targets, at)
        failed = sorted(sid for sid, ok in results.items() if not ok)
        if not results or failed:
            why = f"lock not verified for session(s) {', '.join(failed)}" if failed else "no session to lock"
            return {"ok": False, "error": why, "code": EXIT_FAILURE, "sessions": results}
        return {"sessions": results}

    async def _op_back(self, peer: Peer, request: Mapping[str, Any], conn: Connection) -> Reply:
        assert self.controller is not None
        targets, refusal = await self._targets(peer, request, "back")
        if refusal is not None:
            return refusal
        if targets is None:
            targets = list(self.controller.records)
        return {"ended": await self.controller.back("cli", targets)}

    async def _targets(  # noqa: PLR0911 -- one early answer per refusal reads better than a table
        self, peer: Peer, request: Mapping[str, Any], op: str
    ) -> tuple[list[str] | None, Reply | None]:
        """The sessions a caller may signal: root names any (or all); others only their own."""
        assert self.controller is not None
        requested = request.get("session")
        if requested is not None:
            if not isinstance(requested, str) or not SESSION_ID.match(requested):
                return None, {"ok": False, "error": "bad session id", "code": EXIT_USAGE}
            if peer.is_root:
                return [requested], None
            info = await self._session(requested)
            if info is None:
                return None, {"ok": False, "error": f"no session {requested}", "code": EXIT_FAILURE}
            if info.uid != peer.uid:
                await self._denied(peer, op, requested, info)
                why = f"session {requested} is not yours"
                return None, {"ok": False, "error": why, "code": EXIT_PERMISSION}
            return [requested], None
        own = await self._caller_sessions(peer)
        if own:
            return own, None
        if peer.is_root:
            return None, None  # root without a session of its own: every graphical session
        return None, {"ok": False, "error": "you have no graphical session here", "code": EXIT_FAILURE}

    async def _session(self, sid: str) -> SessionInfo | None:
        assert self.controller is not None
        cached = self.controller.session(sid)
        if cached is not None:
            return cached
        with contextlib.suppress(LogindError):
            return await self.controller.logind.get_session(sid)
        return None

    async def _caller_sessions(self, peer: Peer) -> list[str]:
        assert self.controller is not None
        logind = self.controller.logind
        if logind.connected:
            with contextlib.suppress(LogindError):
                info = await logind.session_by_pid(peer.pid)
                if info is not None and info.uid == peer.uid and info.graphical:
                    return [info.id]
        if peer.is_root:
            return []
        return [s.id for s in self.controller.graphical_sessions() if s.uid == peer.uid]

    async def _denied(self, peer: Peer, op: str, sid: str, info: SessionInfo) -> None:
        assert self.ctx is not None
        _log.warning("away_denied", op=op, session=sid, uid=peer.uid, pid=peer.pid)
        data = {"op": op, "session": sid, "session_user": info.user, "uid": peer.uid, "pid": peer.pid}
        await self.ctx.events.emit(Draft("away.denied", "medium", data, user=peer.user))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

"""The agent's composition root: spool writer, shipper, control socket, plugins, heartbeats, systemd."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from boothguard import __version__, config, log
from boothguard.agent.control import Connection, ControlServer, Peer
from boothguard.agent.identity import boot_id, host_ref
from boothguard.agent.memory import release_freed_memory
from boothguard.agent.notify import sd_notify, watchdog_interval
from boothguard.agent.plugin import AgentContext, Plugin
from boothguard.agent.plugins import build_plugins
from boothguard.agent.policy_apply import OverrideReporter, PolicyApplier
from boothguard.agent.remote import CommandRunner
from boothguard.agent.supervisor import Supervisor
from boothguard.errors import EXIT_USAGE, ConfigError, PersistenceError
from boothguard.events import SEVERITY_RANK, AgentRef, Draft
from boothguard.ship.http import HttpSink
from boothguard.ship.shipper import Shipper
from boothguard.spool.refusal import draft_problem
from boothguard.spool.spool import Spool
from boothguard.spool.writer import SpoolWriter

_log = log.get("agent")
SHUTDOWN_MARKERS = (Path("/run/systemd/shutdown/scheduled"), Path("/run/nologin"))


class _Emitter:
    def __init__(self, writer: SpoolWriter) -> None:
        self._writer = writer

    async def emit(self, draft: Draft) -> None:
        await self._writer.emit(draft)

    def try_emit(self, draft: Draft) -> bool:
        return self._writer.try_emit(draft)

    def subscribe(self, observer: Callable[[Draft], None]) -> None:
        self._writer.observers.append(observer)


class Agent:
    def __init__(
        self, cfg: config.AgentConfig, config_path: Path | None, plugins: list[Plugin] | None = None
    ) -> None:
        self.config = cfg
        self.config_path = config_path
        self.plugins = build_plugins(cfg) if plugins is None else plugins
        self.started_plugins: list[Plugin] = []
        self.failed_plugins: list[str] = []  # names of plugins whose start raised (reported, not retried)
        state = cfg.agent.state_dir
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.host = host_ref(cfg.agent.machine_id_file, state, cfg.agent.host_name)
        spool = Spool(
            state / "spool.db",
            host=self.host,
            agent=AgentRef(version=__version__),
            max_bytes=cfg.agent.spool_max_mib * 1024 * 1024,
        )
        self.writer = SpoolWriter(spool, queue_max=cfg.agent.queue_max_events)
        self.control = ControlServer(cfg.socket_path, cfg.agent.control_group)
        self.shipper: Shipper | None = None
        self.started_at = time.monotonic()
        self._stop = asyncio.Event()
        self._stop_reason = "stop"
        self._tasks: list[asyncio.Task[Any]] = []
        self.overrides = OverrideReporter(self.writer.emit)
        self.commands = CommandRunner(lambda: self.started_plugins, self.writer.emit)
        self.supervisor = Supervisor()
        self.ctx = AgentContext(
            config=cfg,
            events=_Emitter(self.writer),
            control=self.control,
            wall_clock=time.time,
            monotonic=time.monotonic,
            watch=self.supervisor.watch,
        )

    # -- lifecycle ------------------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            await self.writer.start()
        except PersistenceError as exc:
            _log.critical("spool_open_failed", error=str(exc))
            return 1
        assert self.writer.task is not None
        self.supervisor.watch(self.writer.task)
        loop = asyncio.get_running_loop()
        for sig, reason in ((signal.SIGTERM, "sigterm"), (signal.SIGINT, "sigint")):
            loop.add_signal_handler(sig, self.request_stop, reason)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        try:
            await self.writer.emit(Draft("agent.started", "info", self._started_data()))
            await self.overrides.report(self.config)
            self._register_ops()
            await self.control.start()
            await self._start_plugins()
            self._start_shipper()
            self._spawn_core(self._heartbeats(), "heartbeats")
            self._spawn(self._watchdog())
            sd_notify("READY=1")
            if self.failed_plugins:  # running, but not all of it: say so where `systemctl status` looks
                sd_notify(f"STATUS=degraded: plugin failed to start: {', '.join(self.failed_plugins)}")
            release_freed_memory()
            _log.info("agent_ready", host=self.host.id, socket=str(self.config.socket_path))
            waits = [
                asyncio.create_task(e.wait()) for e in (self.writer.failed, self._stop, self.supervisor.dead)
            ]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            self.supervisor.stopping()
            if self.writer.failure is not None:
                return 1
            if not self.supervisor.alive:
                return await self._core_task_died()
            sd_notify("STOPPING=1")
            with contextlib.suppress(PersistenceError):
                await self.writer.emit(Draft("agent.stopping", "info", {"reason": self._stop_reason}))
            await self.commands.stop()
            await self._shutdown_plugins()
            await self._flush_shipper()
            return 0
        except PersistenceError as exc:
            _log.critical("agent_persistence_failed", error=str(exc))
            return 1
        finally:
            await self.commands.stop()
            self.supervisor.stopping()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.control.stop()
            if self.shipper is not None:
                await self.shipper.sink.close()
            await self.writer.stop()

    def request_stop(self, reason: str) -> None:
        if any(m.exists() for m in SHUTDOWN_MARKERS):
            reason = "shutdown"
        self._stop_reason = reason
        self._stop.set()

    async def _core_task_died(self) -> int:
        """Exit 1 so systemd restarts us; say why first, if the spool still takes it (bounded)."""
        sd_notify(f"STATUS=core task died: {self.supervisor.verdict}")
        with contextlib.suppress(PersistenceError, TimeoutError):
            draft = Draft("agent.core_task_failed", "critical", {"verdict": self.supervisor.verdict})
            await asyncio.wait_for(self.writer.emit(draft), timeout=5)
        await self._shutdown_plugins()
        return 1

    def _spawn_core(self, coro: Any, name: str) -> None:
        """A task that must live as long as the agent: supervised, its death ends the agent."""
        self._spawn(coro, name)
        self.supervisor.watch(self._tasks[-1])

    def _spawn(self, coro: Any, name: str | None = None) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            if isinstance(exc, PersistenceError):
                _log.critical("agent_task_persistence_failed", error=str(exc))
                self.writer.failure = exc
                self.writer.failed.set()
            else:
                _log.error("agent_task_failed", task=task.get_name(), error=repr(exc))

    def _started_data(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "pid": os.getpid(),
            "boot_id": boot_id(),
            "config": str(self.config_path) if self.config_path else None,
            "usb_mode": self.config.usb.mode,
            "collector_url": self.config.ship.collector_url or None,
        }

    async def _start_plugins(self) -> None:
        for plugin in self.plugins:
            try:
                await plugin.start(self.ctx)
            except Exception as exc:  # a broken source is reported, the others keep running
                _log.exception("plugin_start_failed", plugin=plugin.name)
                self.failed_plugins.append(plugin.name)
                await self.writer.emit(
                    Draft("agent.plugin_failed", "high", {"plugin": plugin.name, "error": repr(exc)[:500]})
                )
            else:
                self.started_plugins.append(plugin)

    async def _shutdown_plugins(self) -> None:
        for plugin in reversed(self.started_plugins):
            try:
                await asyncio.wait_for(plugin.stop(), timeout=5)
            except Exception:
                _log.exception("plugin_stop_failed", plugin=plugin.name)

    def _start_shipper(self) -> None:
        ship = self.config.ship
        if not ship.collector_url:
            _log.info("ship_disabled", reason="ship.collector_url is empty; events stay in the spool")
            return
        sink = HttpSink(ship, self.config.token_file)
        applier = PolicyApplier(self.config_path, self.writer.emit, self.reload)
        self.shipper = Shipper(
            self.writer, sink, ship, on_commands=self.commands.submit, on_policy=applier.handle
        )
        self._spawn_core(self.shipper.run(), "shipper")

    async def _flush_shipper(self, grace: float = 2.0) -> None:
        """Give the shipper a moment to send the last events (agent.stopping); the spool keeps the rest."""
        if self.shipper is None:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            stats = await self.writer.call(self.writer.spool.stats)
            if stats.depth == 0 or self.shipper.stats.failures:
                return
            await asyncio.sleep(0.05)

    # -- periodic work --------------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.config.agent.heartbeat_seconds)
            await self.writer.emit(Draft("agent.heartbeat", "info", await self.heartbeat_data()))

    async def heartbeat_data(self) -> dict[str, Any]:
        stats = await self.writer.call(self.writer.spool.stats)
        now = time.time()
        return {
            "interval_seconds": self.config.agent.heartbeat_seconds,
            "last_seq": stats.head_seq,
            "spool_depth": stats.depth,
            "spool_bytes": stats.bytes,
            "oldest_unsent_age_s": round(now - stats.oldest_created, 3) if stats.oldest_created else 0,
            "dropped": {"queue_full": 0, **self.writer.lost, "spool_full": stats.dropped_full},
            "dead_letters": stats.dead_letters,
            "disk_full": stats.disk_full,
            "plugins_failed": list(self.failed_plugins),
            "boot_id": boot_id(),
            "uptime_s": round(time.monotonic() - self.started_at, 1),
        }

    async def _watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(self.writer.ping(), timeout=interval)
            except TimeoutError:
                _log.error("watchdog_withheld", reason="spool writer unresponsive")
                continue
            if not self.supervisor.alive:
                _log.error("watchdog_withheld", reason=self.supervisor.verdict)
                continue
            if self.writer.failure is not None or (self.shipper is not None and self.shipper.stuck):
                _log.error("watchdog_withheld", reason="spool writer failed or shipper stuck")
                continue
            sd_notify("WATCHDOG=1")

    # -- reload and commands --------------------------------------------------------------------------

    async def reload(self) -> None:
        try:
            new = config.load_agent(self.config_path)
        except ConfigError as exc:
            _log.error("config_rejected", problems=[str(p) for p in exc.problems])
            await self.writer.emit(
                Draft("agent.config_rejected", "high", {"problems": [str(p) for p in exc.problems][:50]})
            )
            return
        self.config = new
        self.ctx.config = new
        await self.overrides.report(new)
        for plugin in self.started_plugins:
            try:
                plugin.reload(new)
            except Exception:
                _log.exception("plugin_reload_failed", plugin=plugin.name)
        _log.info("config_reloaded")

    # -- control socket -------------------------------------------------------------------------------

    def _register_ops(self) -> None:
        self.control.register("status", self._op_status, "any")
        self.control.register("emit", self._op_emit, "emitter")

    async def _op_status(self, peer: Peer, request: Mapping[str, Any], conn: Connection) -> dict[str, Any]:
        stats = await self.writer.call(self.writer.spool.stats)
        out: dict[str, Any] = {
            "agent": {
                "version": __version__,
                "pid": os.getpid(),
                "host": self.host.model_dump(),
                "usb_mode": self.config.usb.mode,
                "uptime_s": round(time.monotonic() - self.started_at, 1),
                "supervisor": self.supervisor.status(),
                "plugins_failed": list(self.failed_plugins),
            },
            "spool": {
                "last_seq": stats.head_seq,
                "depth": stats.depth,
                "bytes": stats.bytes,
                "oldest_unsent_age_s": round(time.time() - stats.oldest_created, 3)
                if stats.oldest_created
                else 0,
                "dropped_spool_full": stats.dropped_full,
                "dropped_queue_full": self.writer.lost_queue_full,
                "dropped": {"queue_full": 0, **self.writer.lost, "spool_full": stats.dropped_full},
                "dead_letters": stats.dead_letters,
                "disk_full": stats.disk_full,
            },
            "ship": self.shipper.status() if self.shipper else {"collector_url": None},
        }
        for plugin in self.started_plugins:
            try:
                out[plugin.name] = plugin.status()
            except Exception as exc:
                out[plugin.name] = {"error": repr(exc)}
        return out

    async def _op_emit(self, peer: Peer, request: Mapping[str, Any], conn: Connection) -> dict[str, Any]:
        etype, severity, data = request.get("type"), request.get("severity", "info"), request.get("data", {})
        if not isinstance(etype, str) or not etype.startswith("custom."):
            return {"ok": False, "error": "type must start with 'custom.'", "code": EXIT_USAGE}
        if severity not in SEVERITY_RANK or not isinstance(data, dict):
            return {"ok": False, "error": "bad severity or data", "code": EXIT_USAGE}
        try:
            draft = Draft(etype, severity, data, user=peer.user)
        except ValueError as exc:
            return {"ok": False, "error": str(exc), "code": EXIT_USAGE}
        # What the collector would refuse is refused here, before it takes a seq (else: a dead letter).
        problem = draft_problem(draft, self.writer.spool.host, self.writer.spool.agent)
        if problem is not None:
            _log.warning("emit_refused", type=etype, problem=problem, user=peer.user)
            return {"ok": False, "error": f"event refused: {problem}", "code": EXIT_USAGE}
        body = await self.writer.emit(draft)
        return {"seq": body["seq"], "event_id": body["id"]}


def run(cfg: config.AgentConfig, config_path: Path | None) -> int:
    return asyncio.run(Agent(cfg, config_path).run())

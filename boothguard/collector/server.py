"""Composition root of `boothguard collector`: config → database (migrated) → alerting → app → uvicorn."""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from pathlib import Path
from types import FrameType

import uvicorn

from boothguard import config, log
from boothguard.collector import db, migrations, partitions
from boothguard.collector.alerting import AlertBook
from boothguard.collector.alerts.dispatch import Dispatcher
from boothguard.collector.alerts.rules import AlertRules
from boothguard.collector.alerts.throttle import should_notify
from boothguard.collector.app import Services, create_app
from boothguard.collector.store import Store
from boothguard.config import CollectorConfig
from boothguard.errors import BoothguardError, ConfigError

_log = log.get("collector.server")


class ListenError(BoothguardError):
    pass


class _Server(uvicorn.Server):
    """SIGTERM is the normal way to stop a service: finish gracefully and exit 0 (uvicorn re-raises it)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in self._captured_signals:
            self._captured_signals.remove(sig)


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    number = int(port)
    if not host or not 0 < number < 65536:
        raise ListenError(f"collector.listen: bad address {listen!r}")
    return host, number


def build_services(cfg: CollectorConfig) -> Services:
    engine = db.create(cfg.collector.database_url, pool_size=cfg.collector.db_pool_size)
    migrations.migrate(engine)
    partitions.ensure(engine, time.time())
    book = AlertBook(AlertRules(cfg.alerts), should_notify, cfg.alerts)
    store = Store(engine, cfg.collector, book, clock=time.time)
    return Services(store=store, settings=cfg.collector, dispatcher=Dispatcher(cfg.alerts))


async def _reload(svc: Services, path: Path | None) -> None:
    """SIGHUP: new limits, thresholds, rules and channels; listen address and database stay."""
    try:
        cfg = config.load_collector(path)
    except ConfigError as exc:
        _log.error("config_rejected", problems=[str(p) for p in exc.problems])
        return
    old = svc.dispatcher
    dispatcher = Dispatcher(cfg.alerts)
    await dispatcher.start()
    svc.dispatcher = dispatcher
    svc.settings = cfg.collector
    svc.store.settings = cfg.collector
    svc.store.alert_book = AlertBook(AlertRules(cfg.alerts), should_notify, cfg.alerts)
    if old is not None:
        await old.stop()
    _log.info("config_reloaded")


def settle_heap() -> None:
    """Exempt what startup built (modules, app, config) from garbage collection.

    None of it is garbage, yet every full collection would walk all of it: under ingest, which
    allocates a few objects per event, that is a pause of tens of milliseconds every few thousand
    events. Freezing moves it out of the collector's sight; what is allocated later is collected as usual.
    """
    gc.collect()
    gc.freeze()


def run(cfg: CollectorConfig, path: Path | None) -> int:
    host, port = parse_listen(cfg.collector.listen)
    svc = build_services(cfg)
    app = create_app(svc)
    settle_heap()
    tls = cfg.collector.tls_cert is not None and cfg.collector.tls_key is not None
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            ssl_certfile=str(cfg.collector.tls_cert) if tls else None,
            ssl_keyfile=str(cfg.collector.tls_key) if tls else None,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()

        def on_hup() -> None:
            task = loop.create_task(_reload(svc, path))
            pending.add(task)
            task.add_done_callback(pending.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        loop_name = type(loop).__module__.split(".")[0]
        _log.info(
            "collector_listening", host=host, port=port, tls=tls, database=engine_name(svc), loop=loop_name
        )
        await server.serve()

    # uvicorn's "auto": uvloop and httptools when installed (dependencies of the package), asyncio and h11
    # otherwise. The loop is ours (SIGHUP is handled on it), so its factory is asked for here.
    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(serve())
    svc.store.engine.dispose()
    return 0


def engine_name(svc: Services) -> str:
    return svc.store.engine.dialect.name

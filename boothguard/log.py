"""Logging: structlog, JSON lines for journald, a readable console on a TTY. Event names, not sentences.

`get(name)` returns structlog's lazy proxy, so a module-level `_log = log.get(__name__)` logs with the
configuration `setup()` chooses later. `setup()` configures structlog for speed: a filtering bound logger
(a filtered-out level is a no-op method), and each logger is assembled once, on its first use, and cached.
Because a cached proxy keeps the configuration it first saw, `setup()` forgets the loggers it has handed
out (a second `setup()` — tests, a reload — takes effect on them too).
"""

from __future__ import annotations

import sys
import weakref
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger, Processor

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

# Proxies handed out by get(); weak, as some are per-connection.
_handed_out: weakref.WeakSet[Any] = weakref.WeakSet()


def setup(level: str = "info", json_output: bool | None = None) -> None:
    as_json = not sys.stdout.isatty() if json_output is None else json_output
    renderer: Processor = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # an `exception` string field, as journald readers expect
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level.lower()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    for proxy in list(_handed_out):
        # A used proxy stores its assembled `bind` on the instance (structlog's caching); dropping it
        # makes the next call assemble a logger from this configuration.
        vars(proxy).pop("bind", None)


def get(name: str) -> FilteringBoundLogger:
    proxy = structlog.get_logger(name)
    _handed_out.add(proxy)
    logger: FilteringBoundLogger = proxy
    return logger

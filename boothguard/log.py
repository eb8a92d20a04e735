"""structlog setup: JSON lines for journald, a readable console on a TTY. Event names, not sentences."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def setup(level: str = "info", json_output: bool | None = None) -> None:
    as_json = not sys.stdout.isatty() if json_output is None else json_output
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )


def get(name: str) -> Any:
    return structlog.get_logger(name)

"""Logging: JSON lines for journald, a readable console on a TTY. Event names, not sentences.

`get(name)` returns a small logger whose calls go, after `setup()` chose JSON output, straight to a JSON
writer that prints exactly what structlog's JSONRenderer printed (fields, `event`, `level`, `timestamp`,
`exception`), without importing structlog: the agent and the watcher are long-lived and every module
they load stays resident. On a TTY, and before any `setup()` (library use, tests, benchmarks that
configure structlog themselves), calls go to structlog as before.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
# Method name → the level name written (structlog's add_log_level).
_METHODS = {
    "debug": "debug",
    "info": "info",
    "msg": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
}
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class _JsonSink:
    """One JSON object per line on stdout (looked up per call, as structlog's PrintLogger does)."""

    def __init__(self, min_level: int) -> None:
        self.min_level = min_level
        self._lock = threading.Lock()

    def write(self, level: str, event: Any, context: dict[str, Any]) -> None:
        ctx = _contextvars()
        record = {**ctx, **context} if ctx else context
        record["event"] = event
        record["level"] = level
        record["timestamp"] = datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")
        if "exc_info" in record:
            exc_info = _exc_info(record.pop("exc_info"))
            if exc_info is not None:
                record["exception"] = _format_exception(exc_info)
        line = json.dumps(record, default=_fallback) + "\n"
        with self._lock:
            out = sys.stdout
            out.write(line)
            out.flush()


class _Output:
    """Where calls go: a JSON sink after setup(json), else structlog."""

    sink: _JsonSink | None = None


_output = _Output()


def setup(level: str = "info", json_output: bool | None = None) -> None:
    as_json = not sys.stdout.isatty() if json_output is None else json_output
    min_level = LEVELS[level.lower()]
    if as_json:
        _output.sink = _JsonSink(min_level)
        return
    _output.sink = None
    import logging

    import structlog

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )


class Logger:
    """`log.get(name)`: debug/info/warning/error/critical/exception(event, **fields), bind(**fields)."""

    __slots__ = ("_context", "_name")

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context = context or {}

    def bind(self, **fields: Any) -> Logger:
        return Logger(self._name, {**self._context, **fields})

    def new(self, **fields: Any) -> Logger:
        return Logger(self._name, dict(fields))

    def unbind(self, *keys: str) -> Logger:
        for key in keys:
            if key not in self._context:
                raise KeyError(key)
        return Logger(self._name, {k: v for k, v in self._context.items() if k not in keys})

    def try_unbind(self, *keys: str) -> Logger:
        return Logger(self._name, {k: v for k, v in self._context.items() if k not in keys})

    def debug(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._emit("debug", event, args, fields)

    def info(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._emit("info", event, args, fields)

    def msg(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._emit("msg", event, args, fields)

    def warning(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._emit("warning", event, args, fields)

    def warn(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._emit("warn", event, args, fields)

    def error(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._emit("error", event, args, fields)

    def critical(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._emit("critical", event, args, fields)

    def fatal(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._emit("fatal", event, args, fields)

    def exception(self, event: Any = None, *args: Any, **fields: Any) -> None:
        fields.setdefault("exc_info", True)
        self._emit("exception", event, args, fields)

    def log(self, level: int, event: Any = None, *args: Any, **fields: Any) -> None:
        name = next((n for n, v in LEVELS.items() if v == level), None)
        if name is not None:
            self._emit(name, event, args, fields)

    def _emit(self, method: str, event: Any, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        sink = _output.sink
        if sink is None:
            import structlog

            logger = structlog.get_logger(self._name)
            if self._context:
                logger = logger.bind(**self._context)
            getattr(logger, method)(event, *args, **fields)
            return
        level = _METHODS[method]
        if LEVELS[level] < sink.min_level:
            return
        if args:
            event = event % (args[0] if len(args) == 1 and isinstance(args[0], Mapping) and args[0] else args)
        sink.write(level, event, {**self._context, **fields} if self._context else fields)


def get(name: str) -> Logger:
    return Logger(name)


def _contextvars() -> dict[str, Any]:
    # Values bound with structlog.contextvars (if anyone did, structlog is loaded) come first.
    module = sys.modules.get("structlog.contextvars")
    if module is None:
        return {}
    found: dict[str, Any] = module.get_contextvars()
    return found


def _exc_info(value: Any) -> ExcInfo | None:
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if (
        isinstance(value, tuple)
        and len(value) == 3
        and isinstance(value[0], type)
        and issubclass(value[0], BaseException)
        and isinstance(value[1], BaseException)
        and (value[2] is None or isinstance(value[2], TracebackType))
    ):
        return (value[0], value[1], value[2])
    if value:
        kind, exc, tb = sys.exc_info()
        return None if kind is None or exc is None else (kind, exc, tb)
    return None


def _format_exception(exc_info: ExcInfo) -> str:
    text = "".join(traceback.format_exception(*exc_info))
    return text[:-1] if text.endswith("\n") else text


def _fallback(obj: Any) -> Any:
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)

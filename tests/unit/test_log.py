"""The JSON writer prints what structlog's JSONRenderer printed, line for line (timestamps aside).

Run in a subprocess each: setup() is process-wide, and the point is also what the process imports.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

CALLS = textwrap.dedent(
    """
    import pathlib, sys
    from boothguard import log
    lg = log.get("t")
    lg.debug("hidden_debug", a=1)
    lg.info("started", path=pathlib.Path("/x"), n=3, items=[1, "two"], nested={"k": None})
    lg.warning("careful", who="öperator")
    lg.warn("warned")
    lg.msg("plain")
    lg.error("broken %s and %d", "x", 4, code=7)
    lg.error("named %(a)s", {"a": "b"})
    lg.critical("down")
    lg.fatal("down_hard")
    lg.bind(session="c1").info("bound", more=True)
    lg.bind(session="c1").try_unbind("session").info("unbound")
    lg.info("not_json", obj=object.__new__(type("Thing", (), {"__repr__": lambda self: "<thing>"})))
    lg.log(30, "by_level")
    try:
        raise ValueError("boom")
    except ValueError as exc:
        lg.exception("failed", step=1)
        lg.error("with_exc", exc_info=exc)
        lg.error("with_tuple", exc_info=(type(exc), exc, exc.__traceback__))
    lg.error("no_current", exc_info=True)
    lg.info("flag_false", exc_info=False)
    """
)

LOADED = "\nprint(sorted(m for m in sys.modules if m == 'structlog'))"

STRUCTLOG = textwrap.dedent(
    """
    import logging, sys, structlog
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )
    """
)


def _run(prelude: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            prelude + CALLS + LOADED,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    records = [json.loads(line) for line in out[:-1]]
    for record in records:
        assert str(record.pop("timestamp")).endswith("Z")
        if "exception" in record:  # the preludes differ in length
            record["exception"] = re.sub(r"line \d+", "line N", str(record["exception"]))
    records.append({"loaded": out[-1]})
    return records


def test_json_lines_match_structlog_and_structlog_is_not_loaded() -> None:
    ours = _run("from boothguard import log\nlog.setup('info', json_output=True)\n")
    theirs = _run(STRUCTLOG)
    assert ours[-1] == {"loaded": "[]"}
    assert theirs[-1] == {"loaded": "['structlog']"}
    assert [list(r) for r in ours[:-1]] == [list(r) for r in theirs[:-1]]  # same keys, same order
    assert ours[:-1] == theirs[:-1]
    events = [r["event"] for r in ours[:-1]]
    assert "hidden_debug" not in events
    assert ours[events.index("broken x and 4")]["level"] == "error"
    assert "ValueError: boom" in str(ours[events.index("failed")]["exception"])


def test_before_setup_and_on_a_console_calls_go_to_structlog() -> None:
    code = (
        "import structlog, logging, sys\n"
        "structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))\n"
        "from boothguard import log\n"
        "log.get('t').info('quiet')\n"
        "log.get('t').warning('loud', k=1)\n"
        "log.setup('info', json_output=False)\n"
        "log.get('t').info('console_line')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "quiet" not in out.stdout
    assert "loud" in out.stdout
    assert "console_line" in out.stdout
    assert not out.stdout.lstrip().startswith("{")

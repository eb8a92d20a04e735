"""The log line format journald readers, the README and the tests parse; setup() timing and repetition.

Run in a subprocess each: setup() configures structlog process-wide.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def _run(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.splitlines()


def test_json_lines_carry_event_level_timestamp_and_exception() -> None:
    lines = _run(
        """
        import pathlib
        from boothguard import log
        lg = log.get("t")
        log.setup("info", json_output=True)
        lg.debug("hidden_debug", a=1)
        lg.info("started", path=pathlib.Path("/x"), n=3, items=[1, "two"], nested={"k": None})
        lg.warning("careful", who="öperator")
        lg.error("broken %s and %d", "x", 4)
        lg.bind(session="c1").info("bound", more=True)
        try:
            raise ValueError("boom")
        except ValueError:
            lg.exception("failed", step=1)
        """
    )
    records = [json.loads(line) for line in lines]
    assert [r["event"] for r in records] == ["started", "careful", "broken x and 4", "bound", "failed"]
    for record in records:
        tail = ["event", "level", "timestamp"] + (["exception"] if "exception" in record else [])
        assert list(record)[-len(tail) :] == tail
        assert str(record["timestamp"]).endswith("Z")
    started = records[0]
    assert started == {
        **started,
        "path": "PosixPath('/x')",
        "n": 3,
        "items": [1, "two"],
        "nested": {"k": None},
        "level": "info",
    }
    assert records[1]["who"] == "öperator"
    assert records[1]["level"] == "warning"
    assert records[2]["level"] == "error"
    assert records[3]["session"] == "c1"
    assert records[3]["more"] is True
    failed = records[4]
    assert failed["level"] == "error"
    assert failed["step"] == 1
    assert "ValueError: boom" in str(failed["exception"])
    assert "Traceback" in str(failed["exception"])


def test_a_module_level_logger_follows_the_latest_setup() -> None:
    # Used once under the first setup (so structlog cached it), then setup() again with another level
    # and renderer: the same proxy must follow the second configuration.
    lines = _run(
        """
        from boothguard import log
        lg = log.get("t")
        log.setup("warning", json_output=True)
        lg.info("quiet_first")
        lg.warning("loud_first")
        log.setup("debug", json_output=False)
        lg.debug("console_debug")
        log.setup("info", json_output=True)
        lg.debug("quiet_again")
        lg.info("json_again")
        """
    )
    text = "\n".join(lines)
    assert "quiet_first" not in text
    assert "quiet_again" not in text
    assert json.loads(lines[0])["event"] == "loud_first"
    assert "console_debug" in lines[1]
    assert not lines[1].lstrip().startswith("{")
    assert json.loads(lines[2])["event"] == "json_again"
    assert len(lines) == 3

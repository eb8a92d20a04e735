import math

import pytest

from boothguard.envelope_limits import INT_MAX, INT_MIN, envelope_problem


@pytest.mark.parametrize(
    "value",
    [
        {"v": math.nan},
        {"v": math.inf},
        {"v": -math.inf},
        {"v": INT_MAX + 1},
        {"v": INT_MIN - 1},
        {"u": "a\x00b"},
        {"a\x00": 1},
        {"l": [1, {"x": math.nan}]},
    ],
)
def test_refused(value: object) -> None:
    assert envelope_problem(value)


@pytest.mark.parametrize("value", [{"v": 1.5, "n": INT_MAX, "m": INT_MIN, "s": "日本", "l": [None, True]}])
def test_allowed(value: object) -> None:
    assert envelope_problem(value) is None


def test_names_where() -> None:
    assert envelope_problem({"data": {"v": math.nan}}) == "event.data.v: non-finite number"

"""`boothguard --version`: the installed console script prints the package metadata's version, exits 0."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import boothguard

SCRIPT = Path(sys.executable).parent / "boothguard"


def test_metadata_and_source_agree() -> None:
    # pyproject.toml's version (in the metadata) and boothguard.__version__ (the .deb's default) are one.
    assert metadata.version("boothguard") == boothguard.__version__


@pytest.mark.parametrize("argv", [[str(SCRIPT)], [sys.executable, "-m", "boothguard"]])
def test_version_from_the_real_entry_point(argv: list[str]) -> None:
    assert SCRIPT.exists(), "the console script pip installed into this venv"
    run = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60, check=False)
    expected = f"boothguard {metadata.version('boothguard')}\n"
    assert (run.returncode, run.stdout, run.stderr) == (0, expected, "")


def test_version_wins_over_a_missing_command() -> None:
    argv = [str(SCRIPT), "--version", "agent"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0
    assert run.stdout.startswith("boothguard ")

"""`boothguard enroll` must leave a token that survives a power cut: the collector rotates the old one
at once, so a rename only in the page cache would leave the booth a dead token (or none) after a cut."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.collector.proc import CollectorProcess
from tests.helpers.agent import write_config


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (tests/apt-packages.txt)")
def test_enroll_fsyncs_the_token_then_its_directory_after_the_rename(
    tmp_path: Path, secret_file: Path
) -> None:
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    state = tmp_path / "state"
    cfg = write_config(
        tmp_path / "agent.toml",
        {"agent": {"state_dir": str(state), "machine_id_file": str(machine_id), "host_name": "b1"}},
    )
    trace = tmp_path / "strace.log"
    with CollectorProcess(
        tmp_path, f"sqlite:///{tmp_path / 'c.db'}", secret_file, log_level="warning"
    ) as coll:
        done = subprocess.run(
            [
                *("strace", "-f", "-y", "-o", str(trace), "-e", "trace=fsync,rename,renameat,renameat2"),
                *(sys.executable, "-m", "boothguard", "enroll", "--collector", coll.url),
                *("--secret-file", str(secret_file), "--config", str(cfg)),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert (state / "host.token").read_text().strip()
    lines = trace.read_text().splitlines()
    token = str(state / "host.token")
    renamed = [i for i, line in enumerate(lines) if "rename" in line and f'"{token}"' in line]
    assert len(renamed) == 1, lines
    before, after = lines[: renamed[0]], lines[renamed[0] + 1 :]
    assert any("fsync(" in line and ".host.token." in line for line in before), "token data not fsynced"
    assert any("fsync(" in line and f"<{state}>" in line for line in after), (
        "the directory holding the rename was not fsynced:\n" + "\n".join(lines[renamed[0] :])
    )

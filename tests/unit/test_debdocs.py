"""The .deb's copyright and changelog, without building a package."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from boothguard.install import debdocs

WHEN = dt.datetime(2026, 12, 4, 1, 2, 3, tzinfo=dt.UTC)


def dist_info(site: Path, name: str, version: str, *headers: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}", *headers]
    (info / "METADATA").write_text("\n".join(lines) + "\n\nlong description\n")


def test_licenses_from_metadata(tmp_path: Path) -> None:
    dist_info(tmp_path, "a", "1", "License-Expression: MIT OR Apache-2.0", "License: ignored")
    dist_info(tmp_path, "b", "2", "License: BSD-3-Clause")
    dist_info(tmp_path, "c", "3", "Classifier: License :: OSI Approved :: MIT License")
    dist_info(tmp_path, "d", "4", "License: UNKNOWN")
    dist_info(tmp_path, "e", "5", "License: " + "x" * 80)  # a whole license text, not a name
    got = {d.name: d.license for d in debdocs.read_dists(tmp_path)}
    assert got == {
        "a": "MIT OR Apache-2.0",
        "b": "BSD-3-Clause",
        "c": "MIT License",
        "d": debdocs.NOT_DECLARED,
        "e": debdocs.NOT_DECLARED,
    }


def test_copyright_paragraphs() -> None:
    own = debdocs.Dist("boothguard", "0.1.0", debdocs.NOT_DECLARED)
    text = debdocs.copyright_text(own, [own, debdocs.Dist("six", "1.17.0", "MIT")], "opt/x/site", 2026)
    paragraphs = text.strip().split("\n\n")
    assert paragraphs[0].startswith(f"Format: {debdocs.FORMAT}\n")
    assert paragraphs[1] == "Files: *\nCopyright: 2026 boothguard maintainers\nLicense: not-declared"
    assert " six 1.17.0: MIT" in text
    assert " boothguard 0.1.0" not in text  # ours is not a bundled distribution
    assert paragraphs[-1].startswith("License: not-declared\n ")
    assert all(line == "" or line[0] != "\t" for line in text.splitlines())


def test_changelog_is_gzip_9n_and_parses(tmp_path: Path) -> None:
    raw = debdocs.changelog_gz("boothguard", "0.1.0-1", "0.1.0", "A B <a@b.example>", WHEN)
    assert raw == debdocs.changelog_gz("boothguard", "0.1.0-1", "0.1.0", "A B <a@b.example>", WHEN)
    text = gzip.decompress(raw).decode()
    assert text.startswith("boothguard (0.1.0-1) unstable; urgency=medium\n\n  * ")
    assert text.endswith(" -- A B <a@b.example>  Fri, 04 Dec 2026 01:02:03 +0000\n")
    if shutil.which("dpkg-parsechangelog") is None:
        pytest.skip("dpkg-parsechangelog not installed (dpkg-dev)")
    (tmp_path / "changelog").write_text(text)
    fields = subprocess.run(
        ["dpkg-parsechangelog", "-l", str(tmp_path / "changelog"), "-S", "Version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert fields.stdout == "0.1.0-1\n"


def test_build_time_honours_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(WHEN.timestamp())))
    assert debdocs.build_time() == WHEN

"""What the .deb carries: DEP-5 copyright, changelog.Debian.gz, a venv bin/ without activate scripts or
tools, the dependencies the runtime needs; and lintian finds no error beyond the intended /opt layout."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from boothguard.install import deb as debmod
from boothguard.install import debdocs, debtidy

pytestmark = [pytest.mark.slow]
VERSION = "0.1.0-1"  # a Debian revision: not a native package, so changelog.Debian.gz is the right name
DOC = "usr/share/doc/boothguard"
VENV_BIN = "opt/boothguard/bin"
# Intended: the application is one virtualenv under /opt (every path in it is dir-or-file-in-opt), and its
# bytecode is shipped and tracked by dpkg (package-installs-python-pycache-dir) so the read-only service
# never compiles and purge leaves nothing behind.
ALLOWED_ERRORS = frozenset({"dir-or-file-in-opt", "package-installs-python-pycache-dir"})
NOT_SHIPPED = ("activate", "activate.csh", "activate.fish", "Activate.ps1", "pip", "pip3", "pip3.11", "wheel")
NOT_SHIPPED += ("ruff", "mypy", "pytest", "py.test", "uvicorn", "fastapi", "httpx", "dotenv", "watchmedo")


@pytest.fixture(scope="module")
def built(staged: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return debmod.pack(staged, VERSION, tmp_path_factory.mktemp("out"), "gzip")


@pytest.fixture(scope="module")
def unpacked(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("x")
    subprocess.run(["dpkg-deb", "-x", str(built), str(tree)], check=True, timeout=120)
    return tree


def field(deb: Path, name: str) -> str:
    run = subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True)
    return run.stdout.strip()


def test_copyright_is_dep5_with_the_project_license(unpacked: Path) -> None:
    text = (unpacked / DOC / "copyright").read_text()
    paragraphs = [dict(re.findall(r"^(\S+): ?(.*)$", p, re.M)) for p in text.strip().split("\n\n")]
    assert paragraphs[0]["Format"] == debdocs.FORMAT
    assert paragraphs[0]["Upstream-Name"] == "boothguard"
    files = [p for p in paragraphs if "Files" in p]
    assert files[0]["Files"] == "*"
    meta = metadata.metadata("boothguard")
    declared = meta.get("License-Expression") or meta.get("License") or debdocs.NOT_DECLARED
    assert files[0]["License"] == declared
    assert all(re.match(r"\d{4} ", p["Copyright"]) or "authors" in p["Copyright"] for p in files)
    # Every license named in a Files paragraph without its text has a stand-alone License paragraph.
    standalone = {p["License"] for p in paragraphs if "Files" not in p and "License" in p}
    assert {p["License"] for p in files} <= standalone | {declared}
    if declared == debdocs.NOT_DECLARED:
        assert debdocs.NOT_DECLARED in standalone
    assert "pydantic " in text  # bundled distributions are listed with their licenses


def test_changelog_is_a_gzip_9n_debian_entry(unpacked: Path, tmp_path: Path) -> None:
    raw = (unpacked / DOC / "changelog.Debian.gz").read_bytes()
    flags, mtime, xfl = raw[3], raw[4:8], raw[8]
    assert (flags & 0x08, mtime, xfl) == (0, b"\0\0\0\0", 2)  # no name, no timestamp, best compression
    plain = tmp_path / "changelog"
    plain.write_bytes(gzip.decompress(raw))
    parsed = subprocess.run(
        ["dpkg-parsechangelog", "-l", str(plain)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert f"Version: {VERSION}\n" in parsed
    assert "Source: boothguard\n" in parsed
    assert "localhost" not in parsed


def test_venv_bin_holds_only_our_entry_points(unpacked: Path) -> None:
    shipped = {p.name for p in (unpacked / VENV_BIN).iterdir()}
    assert "boothguard" in shipped
    assert shipped <= debtidy.KEEP_BIN
    assert not set(NOT_SHIPPED) & shipped
    assert not list(unpacked.rglob("activate*")) + list(unpacked.rglob("Activate.ps1"))


def test_control_fields(built: Path) -> None:
    depends = [d.strip() for d in field(built, "Depends").split(",")]
    assert "libudev1" in depends  # pyudev loads libudev.so.1 with ctypes
    assert "python3 (>= 3.11~)" in depends
    assert "python3 (<< 3.12)" in depends
    assert any(d.startswith("libc6 (>= 2.") for d in depends)  # dpkg-shlibdeps on the wheels' objects
    assert "@localhost>" not in field(built, "Maintainer")
    description = field(built, "Description").splitlines()
    assert len(description) > 1  # a synopsis and an extended description


def test_shared_objects_are_stripped(unpacked: Path) -> None:
    objects = debtidy.elf_objects(unpacked / "opt/boothguard/lib")
    assert objects
    for path in objects:
        sections = subprocess.run(
            ["objdump", "-h", str(path)], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        assert ".symtab" not in sections, path
        assert ".debug_info" not in sections, path


def lintian_tags(deb: Path) -> list[tuple[str, str, str]]:
    run = subprocess.run(
        ["lintian", "--tag-display-limit", "0", str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode in (0, 1, 2), run.stderr  # 2: tags of severity error were emitted
    return re.findall(r"^([EW]): boothguard: (\S+) ?(.*)$", run.stdout, re.M)


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian not installed (tests/apt-packages.txt)")
def test_lintian_reports_no_errors_beyond_the_opt_layout(built: Path) -> None:
    tags = lintian_tags(built)
    errors = sorted(
        {f"{tag} {info}" for kind, tag, info in tags if kind == "E" and tag not in ALLOWED_ERRORS}
    )
    assert errors == []
    assert {tag for kind, tag, _ in tags if kind == "E"} <= ALLOWED_ERRORS

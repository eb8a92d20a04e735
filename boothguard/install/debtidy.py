"""Make the staged virtualenv fit for a Debian package: only our entry points, stripped objects, the
shared-library dependencies dpkg-shlibdeps finds (what dh_strip and dh_shlibdeps would do)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

# What the units, the udev rule and /usr/bin/boothguard run; everything else pip put in bin/ goes (activate
# scripts, and the console scripts of dependencies: uvicorn, fastapi, httpx, dotenv, watchmedo, …).
KEEP_BIN = frozenset({"boothguard", "python", "python3", "python3.11"})
_ELF = b"\x7fELF"


def prune_bin(venv: Path) -> list[str]:
    """Remove everything from the venv's bin/ but KEEP_BIN; returns the removed names."""
    removed = []
    for path in sorted((venv / "bin").iterdir()):
        if path.name not in KEEP_BIN:
            path.unlink()
            removed.append(path.name)
    return removed


def elf_objects(tree: Path) -> list[Path]:
    found = []
    for path in sorted(tree.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as f:
                if f.read(4) == _ELF:
                    found.append(path)
    return found


def tidy_site(site: Path) -> list[Path]:
    """Strip the wheels' shared objects (debug symbols out, dynamic symbols kept) and drop the executable
    bit from files nothing executes (e.g. certifi's tests); returns the shared objects."""
    objects = elf_objects(site)
    if objects:
        subprocess.run(
            [
                "strip",
                "--strip-unneeded",
                "--remove-section=.comment",
                "--remove-section=.note",
                *map(str, objects),
            ],
            check=True,
            timeout=300,
        )
    for path in site.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o644)
    return objects


def shlib_depends(objects: list[Path]) -> list[str]:
    """`dpkg-shlibdeps` over the shipped shared objects: e.g. ['libc6 (>= 2.34)', 'libgcc-s1 (>= 4.2)']."""
    if not objects:
        return []
    with tempfile.TemporaryDirectory(prefix="boothguard-shlibs-") as tmp:
        (Path(tmp) / "debian").mkdir()
        (Path(tmp) / "debian/control").write_text(
            "Source: boothguard\n\nPackage: boothguard\nArchitecture: any\n"
        )
        run = subprocess.run(
            ["dpkg-shlibdeps", "-O", "--warnings=0", *map(str, objects)],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
    for line in run.stdout.splitlines():
        if line.startswith("shlibs:Depends="):
            return [d.strip() for d in line.split("=", 1)[1].split(",") if d.strip()]
    return []

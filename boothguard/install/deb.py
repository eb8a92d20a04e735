"""Build the boothguard .deb: `python -m boothguard.install.deb [--out DIR] [--version V]`.

The application lives in its own virtualenv under /opt/boothguard (the project wheel and its dependencies,
installed from PyPI at build time with the target's /usr/bin/python3); units, udev rule, tmpfiles/sysusers
entries and example configs come from the same layout `boothguard install` uses; configs are conffiles.
The venv keeps only our entry points (debtidy), /usr/share/doc/boothguard has the DEP-5 copyright and
changelog.Debian.gz (debdocs), and Depends: holds what dpkg-shlibdeps finds plus what Python loads itself.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from boothguard import __version__
from boothguard.install import debdocs, debtidy, layout, maintscripts
from boothguard.install.installer import Options, example_configs, install

PREFIX = "/opt/boothguard"
PACKAGE = "boothguard"
# A placeholder until the project has a real address; a release build sets DEBFULLNAME and DEBEMAIL.
MAINTAINER = "boothguard maintainers <boothguard@example.com>"
# The venv is built for Debian's Python 3.11 (site-packages/python3.11, cpython-311 extensions); pyudev loads
# libudev.so.1 with ctypes; deb-systemd-helper and groupadd/useradd run in the maintainer scripts.
DEPENDS = ("python3 (>= 3.11~)", "python3 (<< 3.12)", "libudev1", "init-system-helpers (>= 1.54)", "passwd")
REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str], **kw: object) -> None:
    subprocess.run(argv, check=True, timeout=900, **kw)  # type: ignore[call-overload]


# Never copied into the wheel's build: setuptools reuses build/ in place, and stale files there (data files
# since deleted from the checkout) would otherwise end up in the wheel.
_NOT_SOURCE = (".git", ".venv", "build", "dist", "tests", "*.egg-info", "__pycache__", ".*_cache")


def build_wheel(source: Path, out: Path) -> Path:
    """Build the project wheel from a clean copy of `source` (symlinked data directories resolved)."""
    with tempfile.TemporaryDirectory(prefix="boothguard-src-") as tmp:
        clean = Path(tmp) / "src"
        shutil.copytree(source, clean, ignore=shutil.ignore_patterns(*_NOT_SOURCE), symlinks=True)
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(clean)])
    wheels = sorted(out.glob("boothguard-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {out}, found {wheels}")
    return wheels[0]


def stage(work: Path, wheel: Path, python: str = "/usr/bin/python3") -> Path:
    """A root tree with everything the package ships (no DEBIAN/ yet)."""
    root = work / "root"
    venv = root / PREFIX.lstrip("/")
    venv.parent.mkdir(parents=True)
    run([python, "-m", "venv", "--without-pip", str(venv)])
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-compile",
            "--disable-pip-version-check",
            str(wheel),
        ]
    )
    _relocate(venv, root)
    debtidy.prune_bin(venv)
    site = site_packages(root)
    debtidy.tidy_site(site)
    # Bytecode with the installed paths, shipped and tracked by dpkg (the service cannot write /opt).
    run([python, "-m", "compileall", "-q", "-j", "0", "-s", str(root), "-p", "/", str(site)])
    install(
        Options(
            root=root,
            bin=f"{PREFIX}/bin/boothguard",
            python=f"{PREFIX}/bin/python",
            accounts=False,
            enable=False,
            activate=False,
        )
    )
    # State directories are made (and purged) by the maintainer scripts, with the accounts they need.
    shutil.rmtree(root / "var")
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (root / "usr/bin/boothguard").symlink_to(f"{PREFIX}/bin/boothguard")
    return root


def site_packages(root: Path) -> Path:
    return next((root / PREFIX.lstrip("/") / "lib").glob("python3*/site-packages"))


def maintainer() -> str:
    """`DEBFULLNAME <DEBEMAIL>` when both are set (as dch does), else MAINTAINER."""
    name, mail = os.environ.get("DEBFULLNAME"), os.environ.get("DEBEMAIL")
    return f"{name} <{mail}>" if name and mail else MAINTAINER


def _relocate(venv: Path, root: Path) -> None:
    """Scripts pip wrote carry the staging path in their #! line; point them at /opt/boothguard."""
    staged = str(venv).encode()
    for path in (venv / "bin").iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if staged in data:
            path.write_bytes(data.replace(staged, PREFIX.encode()))
    cfg = venv / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(root), ""))


def control(version: str, installed_kib: int, arch: str, depends: list[str], maintainer: str) -> str:
    return f"""Package: {PACKAGE}
Version: {version}
Architecture: {arch}
Maintainer: {maintainer}
Installed-Size: {installed_kib}
Depends: {", ".join(depends)}
Recommends: systemd, dbus, udev
Section: admin
Priority: optional
Description: endpoint agent for call-center booth PCs
 USB control before any driver binds, clipboard and screen-capture watching,
 verified away-lock through systemd-logind, and a tamper-evident event spool
 shipped to a central collector. Also contains the collector (not enabled).
"""


def pack(root: Path, version: str, out: Path, compression: str = "xz", maint: str | None = None) -> Path:
    """Add DEBIAN/ and the docs to a staged root and build the .deb with dpkg-deb."""
    if not re.match(r"^[0-9][A-Za-z0-9.+~-]*$", version):
        raise ValueError(f"not a Debian version: {version!r}")
    maint = maint or maintainer()
    site = site_packages(root)
    debdocs.write(root, PACKAGE, version, maint, site)
    depends = [*debtidy.shlib_depends(debtidy.elf_objects(site)), *DEPENDS]
    debian = root / "DEBIAN"
    if debian.exists():
        shutil.rmtree(debian)
    debian.mkdir(mode=0o755)
    size = sum(p.lstat().st_size for p in root.rglob("*") if not p.is_dir()) // 1024 + 1
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    (debian / "control").write_text(control(version, size, arch, depends, maint))
    conffiles = [p for p in layout.conffiles(example_configs()) if (root / p.lstrip("/")).exists()]
    (debian / "conffiles").write_text("".join(f"{p}\n" for p in conffiles))
    for name, text in (
        ("postinst", maintscripts.POSTINST),
        ("prerm", maintscripts.PRERM),
        ("postrm", maintscripts.POSTRM),
    ):
        (debian / name).write_text(text)
        (debian / name).chmod(0o755)
    out.mkdir(parents=True, exist_ok=True)
    deb = out / f"{PACKAGE}_{version}_{arch}.deb"
    level = "-z6" if compression == "xz" else "-z1"
    run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compression}", level, "--build", str(root), str(deb)],
        stdout=subprocess.DEVNULL,
    )
    return deb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boothguard.install.deb", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("dist"))
    parser.add_argument("--version", default=f"{__version__}-1", help="Debian package version")
    parser.add_argument("--source", type=Path, default=REPO, help="project checkout to build the wheel from")
    parser.add_argument("--wheel", type=Path, default=None, help="use this wheel instead of building one")
    parser.add_argument("--python", default="/usr/bin/python3", help="the target system's Python")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(
            "note: not root; file owners in the package are set by dpkg-deb --root-owner-group",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="boothguard-deb-") as tmp:
        work = Path(tmp)
        wheel = args.wheel or build_wheel(args.source, work / "wheel")
        root = stage(work, wheel, args.python)
        deb = pack(root, args.version, args.out)
    print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())

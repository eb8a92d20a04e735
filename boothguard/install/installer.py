"""`boothguard install`: units, udev rule, autostart entry, example configs and directories under a root.

Idempotent: files are rewritten only when their content differs, owners and modes are enforced every run,
and the administrator's configs are never overwritten.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from boothguard import log
from boothguard.install import accounts, layout
from boothguard.install.layout import Entry

_log = log.get("install")


@dataclass(frozen=True)
class Options:
    root: Path = Path("/")
    bin: str = layout.BIN_PLACEHOLDER
    python: str = layout.PYTHON_PLACEHOLDER
    accounts: bool = True  # run systemd-sysusers for the group and the collector user
    enable: bool = False  # enable the agent and the session watcher (systemctl [--root] enable)
    activate: bool = True  # on the live system (root "/"): tmpfiles, daemon-reload, udev reload


@dataclass
class Report:
    actions: list[tuple[str, str]] = field(default_factory=list)  # (what, path)
    problems: list[str] = field(default_factory=list)

    def add(self, what: str, path: str) -> None:
        self.actions.append((what, path))


def data_dir() -> Traversable:
    return resources.files("boothguard.install") / "data"


def example_configs() -> list[str]:
    config = data_dir() / "config"
    if not config.is_dir():
        return []
    return sorted(p.name for p in config.iterdir() if p.is_file() and not p.name.startswith("."))


def default_bin() -> str:
    """The `boothguard` script of the running installation, else `python -m boothguard`."""
    script = Path(sys.executable).parent / "boothguard"
    if script.is_file() and os.access(script, os.X_OK):
        return str(script)
    return f"{sys.executable} -m boothguard"


def render(entry: Entry, opts: Options) -> bytes:
    assert entry.source is not None
    data = (data_dir() / entry.source).read_bytes()
    if entry.template:
        text = data.decode("utf-8")
        text = text.replace(layout.PYTHON_PLACEHOLDER, opts.python).replace(layout.BIN_PLACEHOLDER, opts.bin)
        data = text.encode("utf-8")
    return data


def install(opts: Options) -> Report:
    report = Report()
    root = opts.root
    root.mkdir(parents=True, exist_ok=True)
    items = layout.entries(example_configs())
    if not any(e.path == "/etc/boothguard/agent.toml" for e in items):
        report.problems.append("no example agent.toml in this build: /etc/boothguard/agent.toml not placed")
    # sysusers first needs its own file and /etc in the root.
    sysusers = next(e for e in items if e.path == layout.SYSUSERS_CONF)
    _place_file(root, sysusers, opts, report, ids=None)
    if opts.accounts:
        (root / "etc").mkdir(mode=0o755, exist_ok=True)
        if problem := accounts.ensure(root, _inside(root, layout.SYSUSERS_CONF)):
            report.problems.append(problem)
    ids = accounts.Ids.read(root)
    for entry in items:
        if entry.kind == "dir":
            _place_dir(root, entry, report, ids)
        else:
            _place_file(root, entry, opts, report, ids)
    if opts.enable:
        _enable(root, report)
    if root == Path("/") and opts.activate:
        _activate(report)
    return report


def _inside(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _owner(entry: Entry, ids: accounts.Ids | None, report: Report) -> tuple[int, int]:
    if ids is None:
        return 0, 0
    uid = ids.users.get(entry.owner, 0 if entry.owner == "root" else -1)
    gid = ids.groups.get(entry.group, 0 if entry.group == "root" else -1)
    if uid < 0 or gid < 0:
        report.problems.append(
            f"{entry.path}: {entry.owner}:{entry.group} unknown in this root; left to root"
        )
        return max(uid, 0), max(gid, 0)
    return uid, gid


def _parents(root: Path, path: Path) -> None:
    missing = []
    parent = path.parent
    while not parent.exists() and parent != root:
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o755)
        directory.chmod(0o755)


def _apply_meta(path: Path, mode: int, uid: int, gid: int) -> bool:
    st = path.lstat()
    changed = False
    if (st.st_uid, st.st_gid) != (uid, gid) and os.geteuid() == 0:
        os.chown(path, uid, gid, follow_symlinks=False)
        changed = True
    if st.st_mode & 0o7777 != mode:
        path.chmod(mode)
        changed = True
    return changed


def _place_dir(root: Path, entry: Entry, report: Report, ids: accounts.Ids) -> None:
    path = _inside(root, entry.path)
    uid, gid = _owner(entry, ids, report)
    created = not path.is_dir()
    if created:
        _parents(root, path)
        path.mkdir(mode=entry.mode)
    changed = _apply_meta(path, entry.mode, uid, gid)
    report.add("created" if created else "updated" if changed else "unchanged", entry.path)


def _place_file(root: Path, entry: Entry, opts: Options, report: Report, ids: accounts.Ids | None) -> None:
    path = _inside(root, entry.path)
    uid, gid = _owner(entry, ids, report)
    if entry.kind == "config" and path.exists():
        report.add("kept", entry.path)  # the administrator's file: never touched
        return
    content = render(entry, opts)
    try:
        current: bytes | None = path.read_bytes()
    except FileNotFoundError:
        current = None
    if current != content:
        _parents(root, path)
        tmp = path.with_name(f".{path.name}.boothguard-new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, entry.mode)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        _apply_meta(tmp, entry.mode, uid, gid)
        os.replace(tmp, path)
        report.add("created" if current is None else "updated", entry.path)
        return
    changed = _apply_meta(path, entry.mode, uid, gid)
    report.add("updated" if changed else "unchanged", entry.path)


def _run(argv: list[str], report: Report) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        report.problems.append(f"{' '.join(argv)}: {exc}")
        return
    if proc.returncode != 0:
        report.problems.append(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
    else:
        report.add("ran", " ".join(argv))


def _enable(root: Path, report: Report) -> None:
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        report.problems.append("systemctl not found: enable boothguard.service by hand")
        return
    base = [systemctl] if root == Path("/") else [systemctl, f"--root={root}"]
    _run([*base, "enable", layout.AGENT_UNIT], report)
    _run([*base, "--global", "enable", layout.SESSION_UNIT], report)


def _activate(report: Report) -> None:
    """Make the live system see the new files; each step only where its service runs."""
    if tmpfiles := shutil.which("systemd-tmpfiles"):
        _run([tmpfiles, "--create", layout.TMPFILES_CONF], report)
    else:
        Path(layout.RUNTIME_DIR).mkdir(mode=0o755, exist_ok=True)
    if Path("/run/systemd/system").is_dir() and (systemctl := shutil.which("systemctl")):
        _run([systemctl, "daemon-reload"], report)
    if Path("/run/udev/control").exists() and (udevadm := shutil.which("udevadm")):
        _run([udevadm, "control", "--reload"], report)

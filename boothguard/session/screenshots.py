"""New image and video files in the screenshot directories (watchdog/inotify)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer


def xdg_dir(home: Path, name: str, default: str) -> Path:
    """`XDG_<NAME>_DIR` from ~/.config/user-dirs.dirs, else ~/<default>."""
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "user-dirs.dirs"
    try:
        for line in config.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == f"XDG_{name}_DIR":
                return Path(value.strip().strip('"').replace("$HOME", str(home)))
    except OSError:
        pass
    return home / default


def default_dirs(home: Path) -> list[Path]:
    pictures = xdg_dir(home, "PICTURES", "Pictures")
    return [
        pictures,
        pictures / "Screenshots",
        xdg_dir(home, "DESKTOP", "Desktop"),
        xdg_dir(home, "VIDEOS", "Videos"),
    ]


def resolve_dirs(configured: Iterable[str], home: Path) -> list[Path]:
    dirs = [
        Path(os.path.expanduser(d.replace("~", str(home), 1)) if d.startswith("~") else d) for d in configured
    ]
    return dirs or default_dirs(home)


class _Handler(FileSystemEventHandler):
    def __init__(self, extensions: set[str], on_file: Callable[[Path], None]) -> None:
        self.extensions = extensions
        self.on_file = on_file

    def _path(self, raw: Any) -> Path:
        return Path(raw.decode() if isinstance(raw, bytes) else raw)

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._maybe(self._path(event.src_path))

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._maybe(self._path(event.dest_path))

    def _maybe(self, path: Path) -> None:
        if path.suffix.lower() in self.extensions and not path.name.startswith("."):
            self.on_file(path)


class ScreenshotDirs:
    def __init__(self, dirs: list[Path], extensions: Iterable[str], on_file: Callable[[Path], None]) -> None:
        self.dirs = dirs
        self.watched: list[Path] = []
        self._observer: Any = Observer()
        self._handler = _Handler({e.lower() for e in extensions}, on_file)

    def start(self) -> list[Path]:
        for d in self.dirs:
            if d.is_dir():
                self._observer.schedule(self._handler, str(d), recursive=False)
                self.watched.append(d)
        self._observer.daemon = True
        self._observer.start()
        return self.watched

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=3)

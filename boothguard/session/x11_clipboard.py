"""X11 clipboard watching: XFixes selection-owner notifications, owner process, formats, bounded text read.

Runs in its own thread with its own X connection. The copied text never leaves `_inspect`: only its size,
personal-data counts and keyed fingerprint do. With the `clear` policy the watcher takes the selection
over at once (from this thread, before the event is even sent) and serves empty content.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from Xlib import X, Xatom
from Xlib.ext import xfixes

from boothguard import log
from boothguard.session import owner as owner_mod
from boothguard.session import pii
from boothguard.session.fingerprint import fingerprint, fingerprint_bytes
from boothguard.session.xconnect import open_display

_log = log.get("clipboard")
TEXT_TARGETS = ("UTF8_STRING", "text/plain;charset=utf-8", "STRING", "TEXT")
_IMAGE_PREFIX = "image/"
_CHUNK_WORDS = 64 * 1024  # 256 KiB per GetProperty


@dataclass(frozen=True)
class ClipboardCopy:
    """What a copy looked like — never its content."""

    selection: str
    app: str | None
    pid: int | None
    pid_source: str
    owner_exited: bool
    formats: list[str]
    kind: str  # text | image | other | none
    size: int | None
    truncated: bool
    pii: dict[str, int]
    fingerprint: str | None
    observed_at: float  # monotonic, when the notification arrived
    read_ms: float
    cleared: bool = False
    clear_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    owner_window: int = 0  # the X window that owned the selection (ties pastes to this copy); 0 unknown


ClearDecision = Callable[[ClipboardCopy], bool]


class ClipboardWatcher:
    def __init__(
        self,
        display_name: str,
        selections: list[str],
        *,
        key: Callable[[], bytes],
        on_copy: Callable[[ClipboardCopy], None],
        should_clear: ClearDecision,
        max_read_bytes: int = 4 * 1024 * 1024,
        convert_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.display_name = display_name
        self.selections = selections
        self._key = key
        self._on_copy = on_copy
        self.should_clear = should_clear
        self.max_read_bytes = max_read_bytes
        self.convert_timeout = convert_timeout
        self._clock = clock
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.copies = 0
        self._owned: set[int] = set()  # selections we own (cleared), by atom
        self._atom_names: dict[int, str] = {}

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="x11-clipboard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            self.d = open_display(self.display_name)
            self.d.xfixes_query_version()
            root = self.d.screen().root
            self.win = root.create_window(0, 0, 1, 1, 0, X.CopyFromParent, event_mask=X.PropertyChangeMask)
            self.prop = self.d.intern_atom("_BOOTHGUARD_SEL")
            self.targets_atom = self.d.intern_atom("TARGETS")
            self.incr_atom = self.d.intern_atom("INCR")
            self.sel_atoms = {self.d.intern_atom(s): s for s in self.selections}
            for atom in self.sel_atoms:
                self.d.xfixes_select_selection_input(self.win, atom, xfixes.XFixesSetSelectionOwnerNotifyMask)
            self.owner_event = self.d.extension_event.SetSelectionOwnerNotify[0]
            self.d.sync()
            self.ready.set()
            self._loop()
        except Exception as exc:  # display gone or extension missing: the watcher reports it
            self.error = exc
            if not self._stop.is_set():
                _log.error("clipboard_thread_failed", error=repr(exc))
        finally:
            self.ready.set()

    def _loop(self) -> None:
        fd = self.d.fileno()
        while not self._stop.is_set():
            if not self.d.pending_events():
                readable, _, _ = select.select([fd, self._wake_r], [], [], 5.0)
                if self._wake_r in readable:
                    os.read(self._wake_r, 64)
                if fd not in readable and not self.d.pending_events():
                    continue
            self._handle(self.d.next_event())

    # -- events ---------------------------------------------------------------------------------------

    def _handle(self, ev: Any) -> None:
        if ev.type == self.owner_event and ev.selection in self.sel_atoms:
            owner_id = ev.owner.id if hasattr(ev.owner, "id") else int(ev.owner)
            if owner_id == self.win.id:
                return  # our own clear
            self._owned.discard(ev.selection)
            if owner_id == 0:
                return  # the owner went away; not a copy
            self._on_owner(ev, owner_id)
        elif ev.type == X.SelectionRequest:
            self._serve_empty(ev)
        elif ev.type == X.SelectionClear:
            self._owned.discard(ev.atom)

    def _on_owner(self, ev: Any, owner_id: int) -> None:
        observed = self._clock()
        start = time.perf_counter()
        proc = owner_mod.identify(self.d, owner_id)
        formats = self._formats(ev.selection, ev.selection_timestamp)
        copy = self._inspect(ev.selection, ev.selection_timestamp, formats, proc, observed, start)
        copy = _replace(copy, owner_window=owner_id)
        if self.should_clear(copy):
            copy = self._clear(ev.selection, copy)
        self.copies += 1
        self._on_copy(copy)

    def _atom_name(self, atom: int) -> str:
        if atom not in self._atom_names:
            try:
                self._atom_names[atom] = self.d.get_atom_name(atom)
            except Exception:
                self._atom_names[atom] = f"atom:{atom}"
        return self._atom_names[atom]

    def _convert(self, selection: int, target: int, timestamp: int) -> Any | None:
        """ConvertSelection into our window and wait for the SelectionNotify; other events are handled."""
        self.win.delete_property(self.prop)
        self.win.convert_selection(selection, target, self.prop, timestamp or X.CurrentTime)
        self.d.flush()
        deadline = time.monotonic() + self.convert_timeout
        deferred: list[Any] = []
        try:
            while True:
                ev = self._next_event(deadline)
                if ev is None:
                    return None
                if ev.type == X.SelectionNotify and ev.requestor.id == self.win.id:
                    return ev if ev.property != X.NONE else None
                deferred.append(ev)
        finally:
            for other in deferred:
                if other.type != X.PropertyNotify:
                    self._handle(other)

    def _next_event(self, deadline: float) -> Any | None:
        fd = self.d.fileno()
        while not self.d.pending_events():  # pending_events() reads what the socket has, without blocking
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set():
                return None
            select.select([fd], [], [], min(left, 0.5))
        return self.d.next_event()

    def _formats(self, selection: int, timestamp: int) -> list[str]:
        ev = self._convert(selection, self.targets_atom, timestamp)
        if ev is None:
            return []
        prop = self.win.get_full_property(self.prop, X.AnyPropertyType)
        self.win.delete_property(self.prop)
        if prop is None or prop.format != 32:
            return []
        names = [self._atom_name(int(a)) for a in prop.value]
        skip = {"TARGETS", "MULTIPLE", "TIMESTAMP", "SAVE_TARGETS", "DELETE", "INSERT_PROPERTY"}
        return [n for n in names if n not in skip]

    def _read(self, selection: int, target: str, timestamp: int) -> tuple[bytes, int, bool] | None:
        """(data up to the bound, total size or lower bound, truncated)."""
        ev = self._convert(selection, self.d.intern_atom(target), timestamp)
        if ev is None:
            return None
        limit_words = (self.max_read_bytes + 3) // 4
        r = self.win.get_property(self.prop, X.AnyPropertyType, 0, min(limit_words, _CHUNK_WORDS))
        if r is None:
            return None
        if r.property_type == self.incr_atom:
            self.win.delete_property(self.prop)
            self.d.flush()
            return self._read_incr()
        data = _as_bytes(r.value, r.format)
        total = len(data) + r.bytes_after
        while r.bytes_after and len(data) < self.max_read_bytes:
            offset = len(data) // 4
            r = self.win.get_property(
                self.prop, X.AnyPropertyType, offset, min(limit_words - offset, _CHUNK_WORDS)
            )
            if r is None:
                break
            data += _as_bytes(r.value, r.format)
        self.win.delete_property(self.prop)
        truncated = total > self.max_read_bytes
        return data[: self.max_read_bytes], total, truncated

    def _read_incr(self) -> tuple[bytes, int, bool] | None:
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.convert_timeout * 5
        while True:
            ev = self._next_event(deadline)
            if ev is None:
                return (b"".join(chunks), size, True) if chunks else None
            if not (ev.type == X.PropertyNotify and ev.atom == self.prop and ev.state == X.PropertyNewValue):
                if ev.type != X.PropertyNotify:
                    self._handle(ev)
                continue
            r = self.win.get_full_property(self.prop, X.AnyPropertyType)
            self.win.delete_property(self.prop)
            self.d.flush()
            chunk = _as_bytes(r.value, r.format) if r is not None else b""
            if not chunk:
                return b"".join(chunks), size, False
            size += len(chunk)
            if size <= self.max_read_bytes:
                chunks.append(chunk)
            elif size - len(chunk) < self.max_read_bytes:
                chunks.append(chunk[: self.max_read_bytes - (size - len(chunk))])
            deadline = time.monotonic() + self.convert_timeout

    def _inspect(  # noqa: PLR0917 -- internal, one call site
        self,
        selection: int,
        timestamp: int,
        formats: list[str],
        proc: owner_mod.ProcessInfo,
        observed: float,
        start: float,
    ) -> ClipboardCopy:
        kind, size, truncated, counts, fp = "none", None, False, {}, None
        text_target = next((t for t in TEXT_TARGETS if t in formats), None)
        image_target = next((f for f in formats if f.startswith(_IMAGE_PREFIX)), None)
        if text_target is not None:
            got = self._read(selection, text_target, timestamp)
            if got is not None:
                data, size, truncated = got
                text = data.decode("utf-8" if text_target != "STRING" else "latin-1", errors="replace")
                counts = pii.scan(text)
                fp = fingerprint(self._key(), text)
                kind = "text"
                del text, data
        elif image_target is not None:
            got = self._read(selection, image_target, timestamp)
            if got is not None:
                data, size, truncated = got
                fp = fingerprint_bytes(self._key(), data)
                kind = "image"
                del data
        elif formats:
            kind = "other"
        return ClipboardCopy(
            selection=self.sel_atoms.get(selection, self._atom_name(selection)),
            app=proc.app,
            pid=proc.pid,
            pid_source=proc.source,
            owner_exited=proc.exited,
            formats=formats[:32],
            kind=kind,
            size=size,
            truncated=truncated,
            pii=counts,
            fingerprint=fp,
            observed_at=observed,
            read_ms=round((time.perf_counter() - start) * 1000, 3),
        )

    # -- clear policy ---------------------------------------------------------------------------------

    def _clear(self, selection: int, copy: ClipboardCopy) -> ClipboardCopy:
        try:
            self.win.set_selection_owner(selection, X.CurrentTime)
            self.d.sync()
            owner = self.d.get_selection_owner(selection)
            ok = getattr(owner, "id", owner) == self.win.id
        except Exception as exc:
            return _replace(copy, cleared=False, clear_error=repr(exc))
        if ok:
            self._owned.add(selection)
        return _replace(copy, cleared=ok, clear_error=None if ok else "ownership not taken")

    def _serve_empty(self, ev: Any) -> None:
        """Answer paste requests for a selection we cleared: TARGETS, or empty text."""
        prop = ev.property if ev.property != X.NONE else ev.target
        target_name = self._atom_name(ev.target)
        requestor = ev.requestor
        try:
            if ev.selection not in self._owned:
                prop = X.NONE
            elif target_name == "TARGETS":
                atoms = [self.targets_atom, self.d.intern_atom("UTF8_STRING"), Xatom.STRING]
                requestor.change_property(prop, Xatom.ATOM, 32, atoms)
            elif target_name in TEXT_TARGETS:
                requestor.change_property(prop, ev.target, 8, b"")
            else:
                prop = X.NONE
            from Xlib.protocol import event as xevent

            notify = xevent.SelectionNotify(
                time=ev.time, requestor=requestor, selection=ev.selection, target=ev.target, property=prop
            )
            requestor.send_event(notify)
            self.d.flush()
        except Exception as exc:  # the requestor vanished
            _log.debug("clipboard_serve_failed", error=repr(exc))


def _as_bytes(value: Any, fmt: int) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("latin-1", errors="replace")
    if fmt == 32:
        return b"".join(int(v).to_bytes(4, "little") for v in value)
    if fmt == 16:
        return b"".join(int(v).to_bytes(2, "little") for v in value)
    return bytes(value)


def _replace(copy: ClipboardCopy, **changes: Any) -> ClipboardCopy:
    from dataclasses import replace

    return replace(copy, **changes)

"""Requests seen through the X RECORD extension: screen captures (core GetImage, MIT-SHM ShmGetImage) and
pastes (core ConvertSelection on the watched selections).

One RECORD context, two connections: the data connection blocks inside RecordEnableContext (its own
thread) and receives every matching request of every client; the control connection creates the context
and asks XRes which process each client is when RECORD reports it connecting (ClientStarted), so a
one-shot tool that exits right after its request is still named; ClientDied drops it (bases are reused).
A paste also records the selection's owner at that moment, so the watcher can tie it to the copy it reads.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from Xlib.ext import record

from boothguard import log
from boothguard.session import owner as owner_mod
from boothguard.session.capture_tally import CaptureTally
from boothguard.session.xconnect import open_display

_log = log.get("capture")
GET_IMAGE = 73
CONVERT_SELECTION = 24
SHM_GET_IMAGE = 4  # MIT-SHM minor opcode
CLIENT_ID_MASK = 0x1FFFFF  # low bits of an XID: the resource within its client


@dataclass(frozen=True)
class CaptureRequest:
    request: str  # GetImage | ShmGetImage
    drawable: int
    root: bool
    width: int
    height: int
    client_base: int
    pid: int | None
    app: str | None
    pid_source: str
    observed_at: float
    pixels: int = 0  # what this client read within the tally window (tiles add up)
    requests: int = 1


# Conversions that move no content: a client asking what is offered, or since when.
PROBE_TARGETS = frozenset({"TARGETS", "TIMESTAMP", "SAVE_TARGETS", "DELETE"})


@dataclass(frozen=True)
class PasteRequest:
    """A client asked the owner of a watched selection for its content (ConvertSelection)."""

    selection: str  # CLIPBOARD | PRIMARY
    target: str  # the format asked for, e.g. UTF8_STRING
    requestor: int  # the window the content goes to
    owner: int  # the selection's owner window when the request was seen (0: none)
    client_base: int
    client_serial: int  # the connection (a base is reused by the next client after a disconnect)
    pid: int | None
    app: str | None
    pid_source: str
    observed_at: float


class RecordCapture:
    def __init__(  # noqa: PLR0917 -- the one constructor of the RECORD source
        self,
        display_name: str,
        on_capture: Callable[[CaptureRequest], None] | None,
        min_pixels: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        on_paste: Callable[[PasteRequest], None] | None = None,
        paste_selections: tuple[str, ...] = ("CLIPBOARD",),
    ) -> None:
        """on_capture None: no capture requests recorded; on_paste None: no ConvertSelection recorded."""
        self.display_name = display_name
        self._on_capture = on_capture
        self._on_paste = on_paste
        self.paste_selections = paste_selections
        self._paste_atoms: dict[int, str] = {}
        self._atom_names: dict[int, str] = {}
        self.min_pixels = min_pixels
        self._tally = CaptureTally(min_pixels)
        self._clock = clock
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._ctx: int | None = None
        self._ctl: Any = None
        self._data: Any = None
        self._lookup_lock = threading.Lock()
        self._ignored_base: int | None = None
        self.seen = 0
        self.pastes_seen = 0
        self.ignored_windows: set[int] = set()  # requestors never reported (the watcher's own window)
        # Live connections by resource base: (serial, process), from ClientStarted, dropped on ClientDied.
        self._clients: dict[int, tuple[int, owner_mod.ProcessInfo]] = {}
        self._serial = 0

    def start(self) -> None:
        self._ctl = open_display(self.display_name)
        if not self._ctl.has_extension("RECORD"):
            self._ctl.close()
            raise RuntimeError('RECORD extension missing (Xorg: Load "record")')
        self._data = open_display(self.display_name)
        self.root_id = self._ctl.screen().root.id
        shm = self._ctl.query_extension("MIT-SHM")
        self.shm_major = shm.major_opcode if shm is not None and shm.present else None
        ranges: list[dict[str, Any]] = []
        if self._on_capture is not None:
            ranges.append(_range(core=(GET_IMAGE, GET_IMAGE)))
            if self.shm_major is not None:
                ranges.append(_range(ext=(self.shm_major, self.shm_major, SHM_GET_IMAGE, SHM_GET_IMAGE)))
        if self._on_paste is not None:
            self._paste_atoms = {self._ctl.intern_atom(name): name for name in self.paste_selections}
            ranges.append(_range(core=(CONVERT_SELECTION, CONVERT_SELECTION)))
        if not ranges:
            self._ctl.close()
            raise ValueError("nothing to record: neither captures nor pastes asked for")
        ranges[0].update(client_started=True, client_died=True)  # for the whole context
        self._ctx = self._ctl.record_create_context(0, [record.AllClients], ranges)
        self._ctl.sync()  # the context must exist before the data connection enables it
        self._ignored_base = self._ctl.resource_id_base if hasattr(self._ctl, "resource_id_base") else None
        self._thread = threading.Thread(target=self._run, name="x11-record", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.ready.set()
            self._data.record_enable_context(self._ctx, self._callback)
        except Exception as exc:
            self.error = exc
            _log.error("record_thread_failed", error=repr(exc))
        finally:
            self.ready.set()

    def stop(self) -> None:
        if self._ctl is None:
            return
        try:
            self._ctl.record_disable_context(self._ctx)
            self._ctl.flush()
            if self._thread is not None:
                self._thread.join(timeout=3)
            self._ctl.record_free_context(self._ctx)
            self._ctl.close()
        except Exception as exc:
            _log.debug("record_stop_failed", error=repr(exc))

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _callback(self, reply: Any) -> None:
        if reply.category == record.ClientStarted:
            self._client_started(reply.id_base)
        elif reply.category == record.ClientDied:
            self._client_died(reply.id_base)
        elif reply.category == record.FromClient and not reply.client_swapped:
            data = reply.data
            if isinstance(data, str):
                data = data.encode("latin-1")
            observed = self._clock()
            for request in _requests(data):  # one reply may carry several requests of its client
                if request[0] == CONVERT_SELECTION:
                    self._paste(request, reply.id_base, observed)
                else:
                    self._capture(request, reply.id_base, observed)

    def _client_started(self, base: int) -> None:
        """Who a client is, asked when it connects: a one-shot paster (`xclip -o`) may be gone by the time
        its ConvertSelection reaches us, and its resource base then names the next client. Each connection
        gets a serial, so two clients the server gave the same base one after the other stay apart."""
        with self._lookup_lock:
            proc = owner_mod.identify_client(self._ctl, base, 0)
            if len(self._clients) > 4096:  # bases are at most 256 live clients: only leaks could get here
                self._clients.clear()
            self._serial += 1
            self._clients[base] = (self._serial, proc)

    def _client_died(self, base: int) -> None:
        with self._lookup_lock:
            self._tally.forget(base)
            self._clients.pop(base, None)  # the server hands this base to the next client that connects

    def _client(self, base: int, requestor: int) -> tuple[int, owner_mod.ProcessInfo]:
        """The connection behind `base` (call with the lookup lock held). A client that connected before
        RECORD started has no ClientStarted: it is asked now, while it is still the holder of its base."""
        known = self._clients.get(base)
        if known is None:
            self._serial += 1
            known = (self._serial, owner_mod.identify_client(self._ctl, base, requestor))
            self._clients[base] = known
        return known

    def _capture(self, data: bytes, client_base: int, observed: float) -> None:
        if self._on_capture is None:
            return
        parsed = self._parse(data)
        if parsed is None:
            return
        name, drawable, width, height = parsed
        tally = self._tally.add(client_base, width * height, observed)
        if tally is None:
            return
        self.seen += 1
        with self._lookup_lock:  # who it was when it connected; a one-shot capture tool may be gone by now
            known = self._clients.get(client_base)
            proc = known[1] if known is not None and known[1].pid is not None else None
            if proc is None:
                proc = owner_mod.identify(self._ctl, client_base)
        self._on_capture(
            CaptureRequest(
                request=name,
                drawable=drawable,
                root=drawable == self.root_id,
                width=width,
                height=height,
                client_base=client_base,
                pid=proc.pid,
                app=proc.app,
                pid_source=proc.source,
                observed_at=observed,
                pixels=tally.pixels,
                requests=tally.requests,
            )
        )

    def _paste(self, data: bytes, client_base: int, observed: float) -> None:
        if len(data) < 24 or self._on_paste is None:
            return
        # opcode, unused, length, requestor, selection, target, property, time
        requestor, selection, target = struct.unpack_from("<III", data, 4)
        name = self._paste_atoms.get(selection)
        if name is None or requestor in self.ignored_windows:
            return
        with self._lookup_lock:
            target_name = self._atom_name(target)
            if target_name in PROBE_TARGETS:
                return
            self.pastes_seen += 1
            serial, proc = self._client(client_base, requestor)
            try:
                owner = self._ctl.get_selection_owner(selection)
                owner_id = int(getattr(owner, "id", owner) or 0)
            except Exception:  # display going away: the clipboard thread reports that
                owner_id = 0
        self._on_paste(
            PasteRequest(
                selection=name,
                target=target_name,
                requestor=requestor,
                owner=owner_id,
                client_base=client_base,
                client_serial=serial,
                pid=proc.pid,
                app=proc.app,
                pid_source=proc.source,
                observed_at=observed,
            )
        )

    def _atom_name(self, atom: int) -> str:
        if atom not in self._atom_names:
            try:
                self._atom_names[atom] = str(self._ctl.get_atom_name(atom))
            except Exception:
                self._atom_names[atom] = f"atom:{atom}"
            if len(self._atom_names) > 4096:  # atoms are few, but bound it anyway
                self._atom_names.clear()
        return self._atom_names[atom]

    def _parse(self, data: bytes) -> tuple[str, int, int, int] | None:
        if len(data) >= 20 and data[0] == GET_IMAGE:
            # opcode, format, length, drawable, x, y, width, height, plane-mask
            drawable, _x, _y, width, height = struct.unpack_from("<IhhHH", data, 4)
            return "GetImage", drawable, width, height
        if (
            self.shm_major is not None
            and len(data) >= 16
            and data[0] == self.shm_major
            and data[1] == SHM_GET_IMAGE
        ):
            # major, minor, length, drawable, x, y, width, height, plane-mask, format, shmseg, offset
            drawable, _x, _y, width, height = struct.unpack_from("<IhhHH", data, 4)
            return "ShmGetImage", drawable, width, height
        return None


def _requests(data: bytes) -> Iterator[bytes]:
    """The requests in a RECORD FromClient reply (unswapped: little-endian lengths, in 4-byte units)."""
    offset = 0
    while offset + 4 <= len(data):
        units = struct.unpack_from("<H", data, offset + 2)[0]
        head = 4
        if units == 0:  # BIG-REQUESTS: the length follows in 32 bits
            if offset + 8 > len(data):
                return
            units, head = struct.unpack_from("<I", data, offset + 4)[0], 8
        size = max(units * 4, head)
        yield data[offset : offset + size]
        offset += size


def _range(core: tuple[int, int] = (0, 0), ext: tuple[int, int, int, int] = (0, 0, 0, 0)) -> dict[str, Any]:
    return {
        "core_requests": core,
        "core_replies": (0, 0),
        "ext_requests": ext,
        "ext_replies": (0, 0, 0, 0),
        "delivered_events": (0, 0),
        "device_events": (0, 0),
        "errors": (0, 0),
        "client_started": False,
        "client_died": False,
    }

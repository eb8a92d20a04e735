"""Screen-capture requests seen through the X RECORD extension: core GetImage and MIT-SHM ShmGetImage.

Two connections: the data connection blocks inside RecordEnableContext (its own thread) and receives
every matching request of every client; the control connection creates the context and asks XRes which
process each capturing client is — while the client still exists, straight from the callback.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from Xlib import display as xdisplay
from Xlib.ext import record

from boothguard import log
from boothguard.session import owner as owner_mod

_log = log.get("capture")
GET_IMAGE = 73
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


class RecordCapture:
    def __init__(
        self,
        display_name: str,
        on_capture: Callable[[CaptureRequest], None],
        min_pixels: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.display_name = display_name
        self._on_capture = on_capture
        self.min_pixels = min_pixels
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

    def start(self) -> None:
        self._ctl = xdisplay.Display(self.display_name)
        if not self._ctl.has_extension("RECORD"):
            self._ctl.close()
            raise RuntimeError('RECORD extension missing (Xorg: Load "record")')
        self._data = xdisplay.Display(self.display_name)
        self.root_id = self._ctl.screen().root.id
        shm = self._ctl.query_extension("MIT-SHM")
        self.shm_major = shm.major_opcode if shm is not None and shm.present else None
        ranges: list[dict[str, Any]] = [_range(core=(GET_IMAGE, GET_IMAGE))]
        if self.shm_major is not None:
            ranges.append(_range(ext=(self.shm_major, self.shm_major, SHM_GET_IMAGE, SHM_GET_IMAGE)))
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
        if reply.category != record.FromClient or reply.client_swapped:
            return
        data = reply.data
        if isinstance(data, str):
            data = data.encode("latin-1")
        observed = self._clock()
        parsed = self._parse(data)
        if parsed is None:
            return
        name, drawable, width, height = parsed
        if width * height < self.min_pixels:
            return
        self.seen += 1
        with self._lookup_lock:
            proc = owner_mod.identify(self._ctl, reply.id_base)
        self._on_capture(
            CaptureRequest(
                request=name,
                drawable=drawable,
                root=drawable == self.root_id,
                width=width,
                height=height,
                client_base=reply.id_base,
                pid=proc.pid,
                app=proc.app,
                pid_source=proc.source,
                observed_at=observed,
            )
        )

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

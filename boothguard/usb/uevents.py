"""USB and block uevents from pyudev, driven by the asyncio loop through the monitor's file descriptor.

The source is configurable: "udev" (processed by udevd) or "kernel" (raw netlink, for machines without
udevd). pyudev's Context and Monitor come from factories passed in, so tests and the QEMU guest choose.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from boothguard import log
from boothguard.usb.guard import Uevent

_log = log.get("usb.uevents")
RCVBUF = 4 * 1024 * 1024
MAX_PER_WAKEUP = 256


def default_context() -> Any:
    import pyudev

    return pyudev.Context()


def default_monitor(context: Any, source: str) -> Any:
    import pyudev

    monitor = pyudev.Monitor.from_netlink(context, source=source)
    try:
        monitor.set_receive_buffer_size(RCVBUF)
    except PermissionError:
        # libudev forces the size (SO_RCVBUFFORCE, needs CAP_NET_ADMIN), which the shipped unit does not
        # grant: ask for it plainly instead, capped by net.core.rmem_max. Found on the real booth.
        sock = socket.socket(fileno=os.dup(monitor.fileno()))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        finally:
            sock.close()
        _log.warning("uevent_rcvbuf_capped", wanted=RCVBUF, got=got)
    return monitor


class UeventSource:
    def __init__(
        self,
        source: str = "udev",
        context_factory: Callable[[], Any] = default_context,
        monitor_factory: Callable[[Any, str], Any] = default_monitor,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._context_factory = context_factory
        self._monitor_factory = monitor_factory
        self._clock = clock
        self._monitor: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handler: Callable[[Uevent], None] | None = None
        self.received = 0

    def start(self, loop: asyncio.AbstractEventLoop, handler: Callable[[Uevent], None]) -> None:
        monitor = self._monitor_factory(self._context_factory(), self.source)
        if self.source == "udev":
            # Kernel-source messages carry no libudev header, so only udev messages can be filtered here.
            monitor.filter_by("usb")
            monitor.filter_by("block")
        monitor.start()
        self._monitor, self._loop, self._handler = monitor, loop, handler
        loop.add_reader(monitor.fileno(), self._ready)
        _log.info("usb_uevents_listening", source=self.source)

    def _ready(self) -> None:
        assert self._monitor is not None
        assert self._handler is not None
        for _ in range(MAX_PER_WAKEUP):
            device = self._monitor.poll(timeout=0)
            if device is None:
                return
            now = self._clock()
            self.received += 1
            subsystem = device.subsystem or ""
            if subsystem not in ("usb", "block"):
                continue
            self._handler(
                Uevent(
                    action=device.action or "",
                    subsystem=subsystem,
                    devtype=device.device_type,
                    name=device.sys_name,
                    devpath=device.device_path,
                    received=now,
                )
            )

    def stop(self) -> None:
        if self._loop is not None and self._monitor is not None:
            self._loop.remove_reader(self._monitor.fileno())
        self._monitor = None

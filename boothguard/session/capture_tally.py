"""Capture requests added up per X client over a short window: a full screen read as 64x63 tiles, each
under `min_pixels`, is one capture (issue 14)."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

MAX_CLIENTS = 256  # bounded: the least recently seen client is forgotten first


@dataclass(frozen=True)
class Tally:
    pixels: int  # read by this client within the window, this request included
    requests: int


class CaptureTally:
    def __init__(self, min_pixels: int, window_seconds: float = 2.0) -> None:
        self.min_pixels = min_pixels
        self.window = window_seconds
        self._clients: OrderedDict[int, deque[tuple[float, int]]] = OrderedDict()

    def add(self, client: int, pixels: int, now: float) -> Tally | None:
        """Count one request; a Tally when the client's window reaches `min_pixels` (then it starts over,
        so a tiling client is reported once per window's worth, not once per tile)."""
        if pixels >= self.min_pixels:
            self._clients.pop(client, None)
            return Tally(pixels, 1)
        recent = self._clients.pop(client, None) or deque()
        self._clients[client] = recent
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        while recent and now - recent[0][0] > self.window:
            recent.popleft()
        recent.append((now, pixels))
        total = sum(p for _, p in recent)
        if total < self.min_pixels:
            return None
        del self._clients[client]
        return Tally(total, len(recent))

    def forget(self, client: int) -> None:
        self._clients.pop(client, None)

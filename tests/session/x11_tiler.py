"""A capture client that reads the root window as 64x63 tiles (each under min_pixels), then waits on stdin."""

from __future__ import annotations

import sys

from Xlib import X, display


def main() -> None:
    d = display.Display()
    root = d.screen().root
    geo = root.get_geometry()
    tiles = 0
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 10**9
    for y in range(0, geo.height, 63):
        for x in range(0, geo.width, 64):
            if tiles >= limit:
                break
            root.get_image(x, y, min(64, geo.width - x), min(63, geo.height - y), X.ZPixmap, 0xFFFFFFFF)
            tiles += 1
    print(f"tiles {tiles}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()

"""A long-lived X application that pastes once: `python x11_paster.py NAME [SELECTION]`.

Sets its process name to NAME (prctl PR_SET_NAME) before connecting, asks the selection's owner for
UTF8_STRING into its own window (ConvertSelection), waits for SelectionNotify, prints the content as hex
on one line, then `done`, and stays connected until stdin closes, so identifying it does not race its exit.
"""

from __future__ import annotations

import ctypes
import select
import sys
import time

from Xlib import X, display

PR_SET_NAME = 15


def main() -> int:
    name = sys.argv[1]
    selection_name = sys.argv[2] if len(sys.argv) > 2 else "CLIPBOARD"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0) != 0:
        print("prctl failed", file=sys.stderr)
        return 2
    d = display.Display()
    win = d.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
    selection = d.intern_atom(selection_name)
    target = d.intern_atom("UTF8_STRING")
    prop = d.intern_atom("BOOTHGUARD_PASTE")
    win.convert_selection(selection, target, prop, X.CurrentTime)
    d.flush()
    deadline = time.monotonic() + 10
    content = None
    while time.monotonic() < deadline:
        if not d.pending_events():
            select.select([d.fileno()], [], [], 0.1)
            continue
        ev = d.next_event()
        if ev.type == X.SelectionNotify:  # the only window this client has
            if ev.property != X.NONE:
                got = win.get_full_property(prop, X.AnyPropertyType)
                content = bytes(got.value) if got is not None else b""
            break
    if content is None:
        print("no content", flush=True)
    else:
        sys.stdout.write(content.hex() + "\n")
    print("done", flush=True)
    sys.stdin.read()  # until the test closes it
    d.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

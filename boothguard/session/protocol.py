"""The watcher ↔ agent protocol over the control socket (newline-delimited JSON).

Watcher → agent (requests; each answered `{"id": …, "ok": …}`):
- `watcher.register` {session_id, display, capabilities, missing, pid, reconnect} → {heartbeat_seconds,
  timeout_seconds, fingerprint_key, clipboard, screenshot}
- `watcher.heartbeat` {idle_seconds, screensaver_active, dropped}
- `watcher.event` {type, severity, data} → {seq}; the agent stamps `user` from the peer and `session_id`
- `watcher.reply` {rid, …answer}
- `watcher.goodbye` {reason}: `display_closed` / `session_ended` end the session cleanly; anything else
  (a SIGTERM while the display is still up) is reported as the watcher going missing

Quarantine (only when the screenshot policy is `quarantine`) is not on this socket: the watcher opens the
capture file itself and hands the fd over SCM_RIGHTS to `quarantine.sock` next to it (quarantine_door.py).

Agent → watcher (pushes on the registered connection): `{"push": NAME, "rid": …, …}` with NAME one of
`screensaver_state`, `lock_fallback` {commands}, `notify` {kind, params}, `config` {clipboard, screenshot}.
"""

from __future__ import annotations

import re

OP_REGISTER = "watcher.register"
OP_HEARTBEAT = "watcher.heartbeat"
OP_EVENT = "watcher.event"
OP_REPLY = "watcher.reply"
OP_GOODBYE = "watcher.goodbye"

PUSH_SCREENSAVER = "screensaver_state"
PUSH_LOCK_FALLBACK = "lock_fallback"
PUSH_NOTIFY = "notify"
PUSH_CONFIG = "config"

CLEAN_GOODBYES = frozenset({"display_closed", "session_ended"})
# Event types a non-root watcher may send.
WATCHER_TYPE_PREFIXES = ("clipboard.", "screenshot.", "session.")
SESSION_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_EVENT_DATA_BYTES = 64 * 1024

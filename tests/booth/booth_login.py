"""Runs inside the booth as root: the part of a display manager the session scenarios need, and a way to run
commands in the operator's session. Standard library only (the booth's own python3).

`login USER`: start Xvfb as root with a root-only `-auth` file (as a DM starts Xorg), open a PAM session
through the booth's real `login` stack (pam_systemd → logind CreateSession with PAM_XDISPLAY, type x11),
write the cookie to the operator's ~/.Xauthority and start the session as the operator: every XDG autostart
entry (the .deb's boothguard-session.desktop) and xss-lock with i3lock. Stays until SIGTERM, then closes the
PAM session. It is libpam through ctypes because Debian's DMs need a greeter and a real seat to start.

`run [--bg LOG] CMD...`: run CMD as the operator inside the session: same environment, moved into the
session's scope first (so logind's GetSessionByPID finds the session, as for anything the operator starts).
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import secrets
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

RUN = Path("/run/boothdm")
STATE = RUN / "session.json"
AUTH = RUN / "auth"
PAM_TTY, PAM_XDISPLAY = 3, 11
PAM_ESTABLISH_CRED, PAM_DELETE_CRED = 0x2, 0x4

SESSION = """
mkdir -p "$HOME/Pictures/Screenshots"
for f in /etc/xdg/autostart/*.desktop; do
  grep -q '^Hidden=true' "$f" && continue
  cmd=$(sed -n 's/^Exec=//p' "$f" | head -n 1)
  [ -n "$cmd" ] && $cmd >>"$HOME/autostart.log" 2>&1 &
done
xss-lock -- i3lock -n >>"$HOME/xss-lock.log" 2>&1 &
while :; do wait; sleep 1; done
"""


class PamMessage(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class PamResponse(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_char_p), ("resp_retcode", ctypes.c_int)]


CONV = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(ctypes.POINTER(PamMessage)),
    ctypes.POINTER(ctypes.POINTER(PamResponse)),
    ctypes.c_void_p,
)


class PamConv(ctypes.Structure):
    _fields_ = [("conv", CONV), ("appdata_ptr", ctypes.c_void_p)]


libc = ctypes.CDLL("libc.so.6")
libc.calloc.restype = ctypes.c_void_p
libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]


def _conv(n: int, msgs: object, resp: object, _data: object) -> int:
    # Session modules only print (motd, mail): answer every message with no text. PAM frees the array.
    arr = libc.calloc(n, ctypes.sizeof(PamResponse))
    resp[0] = ctypes.cast(arr, ctypes.POINTER(PamResponse))  # type: ignore[index]
    return 0


class Pam:
    def __init__(self, service: str, user: str) -> None:
        self.lib = ctypes.CDLL("libpam.so.0")
        self.lib.pam_getenvlist.restype = ctypes.POINTER(ctypes.c_char_p)
        self.conv = PamConv(CONV(_conv), None)
        self.h = ctypes.c_void_p()
        self.check(
            "pam_start", service.encode(), user.encode(), ctypes.byref(self.conv), ctypes.byref(self.h)
        )

    def check(self, name: str, *args: object) -> None:
        rc = getattr(self.lib, name)(*args)
        if rc != 0:
            self.lib.pam_strerror.restype = ctypes.c_char_p
            raise RuntimeError(f"{name}: {self.lib.pam_strerror(self.h, rc)!r}")

    def call(self, name: str, *args: object) -> None:
        self.check(name, self.h, *args)

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        lst = self.lib.pam_getenvlist(self.h)
        i = 0
        while lst[i]:
            k, _, v = lst[i].decode().partition("=")
            out[k] = v
            i += 1
        return out


def _xauth(cookie: bytes, display: str = "") -> bytes:
    """FamilyWild (any address, any display) for the server; the operator's file also gets the FamilyLocal
    entry DMs write (hostname, display number), the only one python-xlib matches."""
    out = b""
    entries = [(0xFFFF, b"", b"")]
    if display:
        entries.insert(0, (256, socket.gethostname().encode(), display.lstrip(":").encode()))
    for family, address, number in entries:
        out += struct.pack(">H", family)
        for field in (address, number, b"MIT-MAGIC-COOKIE-1", cookie):
            out += struct.pack(">H", len(field)) + field
    return out


def _xvfb() -> tuple[subprocess.Popen[bytes], str]:
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-auth", str(AUTH), "-nolisten", "tcp", "-screen", "0", "1024x768x24"],
        pass_fds=(w,),
        stdout=open(RUN / "xvfb.log", "wb"),  # noqa: SIM115 - the server's for its whole life
        stderr=subprocess.STDOUT,
    )
    os.close(w)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(r, 16)
        if not chunk:
            raise RuntimeError(f"Xvfb exited: {(RUN / 'xvfb.log').read_text()}")
        number += chunk
    os.close(r)
    return proc, ":" + number.decode().strip()


def login(user: str) -> int:
    pw = pwd.getpwnam(user)
    RUN.mkdir(mode=0o700, exist_ok=True)
    cookie = secrets.token_bytes(16)
    AUTH.write_bytes(_xauth(cookie))
    AUTH.chmod(0o600)
    xvfb, display = _xvfb()
    pam = Pam("login", user)
    pam.call("pam_set_item", PAM_TTY, display.encode())
    pam.call("pam_set_item", PAM_XDISPLAY, display.encode())
    for kv in ("XDG_SESSION_TYPE=x11", "XDG_SESSION_CLASS=user"):
        pam.call("pam_putenv", kv.encode())
    pam.call("pam_open_session", 0)
    pam.call("pam_setcred", PAM_ESTABLISH_CRED)
    xauthority = Path(pw.pw_dir) / ".Xauthority"
    xauthority.write_bytes(_xauth(cookie, display))
    os.chown(xauthority, pw.pw_uid, pw.pw_gid)
    xauthority.chmod(0o600)
    env = {
        **pam.env(),
        "HOME": pw.pw_dir,
        "USER": user,
        "LOGNAME": user,
        "SHELL": pw.pw_shell,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "DISPLAY": display,
        "XAUTHORITY": str(xauthority),
    }
    child = os.fork()
    if child == 0:
        os.setsid()
        os.initgroups(user, pw.pw_gid)
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
        os.chdir(pw.pw_dir)
        os.execve("/bin/sh", ["sh", "-c", SESSION], env)
    partial = STATE.with_suffix(".partial")  # renamed into place: whoever sees the file reads it whole
    partial.write_text(
        json.dumps(
            {
                "leader": os.getpid(),
                "child": child,
                "uid": pw.pw_uid,
                "gid": pw.pw_gid,
                "user": user,
                "env": env,
            }
        )
    )
    partial.rename(STATE)

    def stop(_sig: int, _frame: object) -> None:
        os.killpg(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    os.waitpid(child, 0)
    pam.call("pam_setcred", PAM_DELETE_CRED)
    pam.call("pam_close_session", 0)
    xvfb.terminate()
    xvfb.wait(timeout=30)
    STATE.unlink()
    return 0


def run(argv: list[str]) -> int:
    log = None
    if argv[:1] == ["--bg"]:
        log, argv = argv[1], argv[2:]
    state = json.loads(STATE.read_text())
    cgroup = Path(f"/proc/{state['leader']}/cgroup").read_text().strip().split("::", 1)[1]
    (Path("/sys/fs/cgroup" + cgroup) / "cgroup.procs").write_text(str(os.getpid()))
    if log is not None:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if os.fork() != 0:
            return 0
        os.setsid()
        for fd in (1, 2):
            os.dup2(out, fd)
        os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
    os.initgroups(state["user"], state["gid"])
    os.setgid(state["gid"])
    os.setuid(state["uid"])
    os.chdir(state["env"]["HOME"])
    os.execvpe(argv[0], argv, state["env"])
    return 127


if __name__ == "__main__":
    if sys.argv[1] == "login":
        raise SystemExit(login(sys.argv[2]))
    if sys.argv[1] == "run":
        raise SystemExit(run(sys.argv[2:]))
    raise SystemExit(f"usage: {sys.argv[0]} login USER | run [--bg LOG] CMD...")

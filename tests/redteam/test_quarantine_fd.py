"""Quarantine by file descriptor, attacked by a real unprivileged operator (useradd + setpriv).

The operator's own process registers as the session's watcher and hands fds to the agent's quarantine door;
the agent runs in-test as root with a real ControlServer.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from boothguard.agent.control import ControlServer
from boothguard.agent.plugin import AgentContext
from boothguard.agent.settings import AgentSection
from boothguard.config import AgentConfig
from boothguard.lock.settings import LockSection
from boothguard.session.agent_side import SessionsPlugin
from boothguard.session.settings import ClipboardSection, ScreenshotSection
from tests.helpers.emitter import ListEmitter
from tests.lock.mocklogind import MockLogind

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create and become a real user")
USER = "bgq_op"
MAX_BYTES = 4096

# Runs as the operator: register as watcher q1, then hand over each path in argv[3:] (and race if asked).
OPERATOR = r"""
import array, ctypes, json, os, socket, sys, threading
agent, door, mode = sys.argv[1], sys.argv[2], sys.argv[3]
sys.stdin.readline()  # the test puts this pid in logind's session q1 first: the agent binds watchers to it
s = socket.socket(socket.AF_UNIX); s.connect(agent); f = s.makefile("rwb")
f.write(json.dumps({"op": "watcher.register", "id": 1, "session_id": "q1"}).encode() + b"\n"); f.flush()
assert json.loads(f.readline())["ok"]
def hand(fd, name):
    d = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); d.connect(door)
    d.sendmsg([json.dumps({"session_id": "q1", "name": name}).encode()],
              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    return json.loads(d.recv(4096))
out = []
if mode == "files":
    for path in sys.argv[4:]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            out.append({"ok": False, "error": "open: " + e.strerror}); continue
        out.append(hand(fd, os.path.basename(path))); os.close(fd)
else:  # race: flip shots <-> link (a symlink to the root dir) with renameat2(RENAME_EXCHANGE)
    shots, link = sys.argv[4], sys.argv[5]
    libc = ctypes.CDLL(None, use_errno=True)
    stop = threading.Event()
    def flip():
        while not stop.is_set():
            libc.renameat2(-100, shots.encode(), -100, link.encode(), 2)
    t = threading.Thread(target=flip); t.start()
    for i in range(40):
        try:
            fd = os.open(shots + "/cap.png", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        st = os.fstat(fd)
        out.append(hand(fd, "cap.png")); os.close(fd)
        try:  # the watcher's unlink runs as the operator: it can only hit what they may delete
            if os.lstat(shots + "/cap.png").st_ino == st.st_ino:
                os.unlink(shots + "/cap.png")
        except OSError:
            pass
        try:
            with open(os.path.realpath(shots) + "/cap.png", "xb") as fh:
                fh.write(b"png")
        except OSError:
            pass
    stop.set(); t.join()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def operator() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        return pwd.getpwnam(USER)


class Agent:
    def __init__(self, base: Path, bus_address: str) -> None:
        self.config = AgentConfig(
            agent=AgentSection(state_dir=base / "state", runtime_dir=base / "run"),
            lock=LockSection(bus_address=bus_address),
            clipboard=ClipboardSection(watcher_heartbeat_seconds=5, watcher_timeout_seconds=30),
            screenshot=ScreenshotSection(policy="quarantine", quarantine_max_bytes=MAX_BYTES),
        )
        self.server = ControlServer(self.config.socket_path, "boothguard")
        self.ctx = AgentContext(self.config, ListEmitter(), self.server, time.time, time.monotonic)
        self.plugin = SessionsPlugin(self.config)

    @property
    def qdir(self) -> Path:
        return self.config.agent.state_dir / "quarantine"


def _run(base: Path, logind: MockLogind, user: pwd.struct_passwd, *args: str) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        agent = Agent(base, logind.address)
        await agent.server.start()
        await agent.plugin.start(agent.ctx)
        os.chmod(agent.config.socket_path, 0o666)
        door = agent.config.socket_path.with_name("quarantine.sock")
        try:
            proc = await asyncio.create_subprocess_exec(
                "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
                "/usr/bin/python3", "-c", OPERATOR, str(agent.config.socket_path), str(door), *args,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )  # fmt: skip
            logind.add_session("q1", user.pw_uid, user.pw_name, pids=(proc.pid,))
            stdout, _ = await asyncio.wait_for(proc.communicate(b"go\n"), 60)
            assert proc.returncode == 0
            result: list[dict[str, Any]] = json.loads(stdout)
            return result
        finally:
            await agent.plugin.stop()
            await agent.server.stop()

    return asyncio.run(main())


@pytest.fixture
def base() -> Any:
    path = Path(tempfile.mkdtemp(prefix="bg-quar-"))  # pytest's tmp is 0700: the operator could not enter
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _own_dir(base: Path, user: pwd.struct_passwd) -> Path:
    d = base / "home"
    d.mkdir()
    os.chown(d, user.pw_uid, user.pw_gid)
    return d


def test_own_file_is_copied_and_foreign_fds_are_refused(
    base: Path, logind: MockLogind, operator: pwd.struct_passwd
) -> None:
    home = _own_dir(base, operator)
    shot, big, fifo = home / "shot.png", home / "big.png", home / "fifo.png"
    shot.write_bytes(b"\x89PNG capture")
    big.write_bytes(b"x" * (MAX_BYTES + 1))
    os.mkfifo(fifo)
    for p in (shot, big, fifo):
        os.chown(p, operator.pw_uid, operator.pw_gid)
    root_file = base / "root-owned.png"  # readable by the operator, owned by root
    root_file.write_bytes(b"secret")
    root_file.chmod(0o644)
    args = [str(shot), str(root_file), str(fifo), "/proc/self/environ", str(big)]
    own, foreign, pipe, proc, oversized = _run(base, logind, operator, "files", *args)

    assert own["ok"] is True, own
    assert (Path(base / "state" / "quarantine") / own["quarantined"]).read_bytes() == b"\x89PNG capture"
    assert foreign == {"ok": False, "error": "file not owned by the requesting user"}
    assert pipe == {"ok": False, "error": "not a regular file"}
    assert proc == {"ok": False, "error": "file on a pseudo filesystem"}
    assert oversized == {"ok": False, "error": f"file larger than {MAX_BYTES} bytes"}
    assert root_file.read_bytes() == b"secret"  # never unlinked: the agent does not unlink at all
    assert sorted(os.listdir(base / "state" / "quarantine")) == [own["quarantined"]]


def test_renameat2_exchange_race_never_reaches_a_root_file(
    base: Path, logind: MockLogind, operator: pwd.struct_passwd
) -> None:
    home = _own_dir(base, operator)
    shots = home / "shots"
    shots.mkdir()
    (shots / "cap.png").write_bytes(b"png")
    for p in (shots, shots / "cap.png"):
        os.chown(p, operator.pw_uid, operator.pw_gid)
    rootdir = base / "rootdir"  # what the agent's state dir is to a path-based op: root-owned
    rootdir.mkdir()
    canary = rootdir / "cap.png"
    canary.write_bytes(b"spool.db stand-in")
    link = home / "link"
    link.symlink_to(rootdir)
    os.lchown(link, operator.pw_uid, operator.pw_gid)

    results = _run(base, logind, operator, "race", str(shots), str(link))

    assert canary.read_bytes() == b"spool.db stand-in"
    assert any(r["ok"] for r in results)
    # Whenever the operator's open landed on the root's file, the agent refused it by owner.
    assert {r.get("error") for r in results if not r["ok"]} <= {"file not owned by the requesting user"}


FLIPPER = r"""
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, end = sys.argv[1].encode(), sys.argv[2].encode(), time.time() + float(sys.argv[3])
while time.time() < end:
    libc.renameat2(-100, a, -100, b, 2)
"""


def test_race_control_a_path_based_root_unlink_is_steered(
    base: Path, logind: MockLogind, operator: pwd.struct_passwd
) -> None:
    """The control for the test above: what the old path-based op did (check the operator's file by lstat,
    then unlink the path as root) loses the race here, so the fd test's surviving canary means something.
    Measured with the old quarantine(): the root-owned canary was gone after 3 attempts (< 0.01 s)."""
    home = _own_dir(base, operator)
    shots = home / "shots"
    shots.mkdir()
    (shots / "cap.png").write_bytes(b"png")
    for p in (shots, shots / "cap.png"):
        os.chown(p, operator.pw_uid, operator.pw_gid)
    rootdir = base / "rootdir"
    rootdir.mkdir()
    canary = rootdir / "cap.png"
    canary.write_bytes(b"spool.db stand-in")
    link = home / "link"
    link.symlink_to(rootdir)
    os.lchown(link, operator.pw_uid, operator.pw_gid)
    flipper = subprocess.Popen(
        ["setpriv", f"--reuid={operator.pw_uid}", f"--regid={operator.pw_gid}", "--clear-groups",
         "/usr/bin/python3", "-c", FLIPPER, str(shots), str(link), "20"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while canary.exists() and time.monotonic() < deadline:
            path = shots / "cap.png"
            try:
                st = os.lstat(path)
                if st.st_uid == operator.pw_uid:  # the old op's owner check ...
                    os.unlink(path)  # ... then root resolves the path again
            except OSError:
                pass
            for d in (shots, link):  # put the operator's file back wherever the flip left their dir
                try:  # the flip runs under our feet: any of these may meet a half-swapped path
                    target = Path(os.path.realpath(d)) / "cap.png"
                    if target.parent != rootdir and not target.exists():
                        target.write_bytes(b"png")
                        os.chown(target, operator.pw_uid, operator.pw_gid)
                except OSError:
                    pass
    finally:
        flipper.kill()
        flipper.wait(timeout=10)
    assert not canary.exists(), "the race never reached the root file: the fd test above proves nothing"

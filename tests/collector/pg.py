"""A throwaway PostgreSQL cluster on a free loopback port, run as the postgres user in a temp dir."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    return str(BIN / name)


def available() -> str | None:
    """None if a cluster can be started here, else why not."""
    if os.geteuid() != 0:
        return "needs root to run initdb as the postgres user"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user (apt install postgresql)"
    if not Path(_bin("initdb")).exists():
        return "initdb not found (apt install postgresql)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bg-pg-"))
        self.port = free_port()
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self._n = 0

    def _as_postgres(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> PgCluster:
        pw = pwd.getpwnam("postgres")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.sock.mkdir()
        os.chown(self.sock, pw.pw_uid, pw.pw_gid)
        self._as_postgres(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        opts = (
            f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        self._as_postgres(
            _bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "-l",
            str(self.dir / "log"),
            "start",
        )
        return self

    def stop(self) -> None:
        try:
            self._as_postgres(
                _bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60
            )
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh, empty database for one test; its URL."""
        import psycopg

        self._n += 1
        name = f"t{os.getpid()}_{self._n}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

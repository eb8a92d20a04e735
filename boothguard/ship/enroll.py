"""The agent's side of enrollment: trade the shared secret for this host's token and keep it 0600."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import httpx

from boothguard.config import AgentConfig
from boothguard.errors import BoothguardError, PermissionDenied


class EnrollError(BoothguardError):
    pass


def host_identity(cfg: AgentConfig) -> tuple[str, str]:
    """(id, name): the machine id file's contents, and agent.host_name or the hostname."""
    try:
        host_id = cfg.agent.machine_id_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise EnrollError(f"cannot read the machine id from {cfg.agent.machine_id_file}: {exc}") from None
    if not host_id:
        raise EnrollError(f"{cfg.agent.machine_id_file} is empty")
    return host_id, cfg.agent.host_name or socket.gethostname()


def read_secret(path: Path) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except PermissionError as exc:
        raise PermissionDenied(f"cannot read {path}: {exc}") from None
    except OSError as exc:
        raise EnrollError(f"cannot read {path}: {exc}") from None
    if not secret:
        raise EnrollError(f"{path} is empty")
    return secret


def write_token(path: Path, token: str) -> None:
    """Atomically and durably replace `path`; the file is 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    # The rename lives in the directory: without this a power cut soon after enrolling can bring the old
    # token back (or none), which the collector has already rotated away: the booth would stop shipping.
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _verify(cfg: AgentConfig, url: str) -> Any:
    if not url.startswith("https:"):
        return True
    from boothguard.ship.http import ssl_context

    return ssl_context(cfg.ship.ca_file, cfg.ship.client_cert, cfg.ship.client_key)


def enroll(cfg: AgentConfig, collector_url: str, secret_file: Path, *, timeout: float = 30.0) -> Path:
    """POST /v1/enroll and store the token at `ship.token_file` (default `<state_dir>/host.token`)."""
    host_id, name = host_identity(cfg)
    secret = read_secret(secret_file)
    url = collector_url.rstrip("/") + "/v1/enroll"
    try:
        with httpx.Client(verify=_verify(cfg, url), timeout=timeout) as client:
            resp = client.post(
                url,
                json={"host": {"id": host_id, "name": name}, "labels": list(cfg.ship.labels)},
                headers={"Authorization": f"Bearer {secret}"},
            )
    except httpx.HTTPError as exc:
        raise EnrollError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
    if resp.status_code != 200:
        raise EnrollError(f"{url} answered {resp.status_code}: {resp.text[:200]}")
    try:
        answer = resp.json()
        token = answer["token"]
        if answer["host_id"] != host_id or not isinstance(token, str) or not token:
            raise ValueError("answer for another host, or no token")
    except (ValueError, KeyError, TypeError) as exc:
        raise EnrollError(f"{url} sent no usable token: {exc}") from None
    path = cfg.token_file
    write_token(path, token)
    return path

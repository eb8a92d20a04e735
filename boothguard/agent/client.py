"""Talking to the local agent's control socket from the CLI and the session watcher."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from boothguard.errors import EXIT_PERMISSION, AgentUnreachable, BoothguardError, PermissionDenied


class AgentError(BoothguardError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


def request(socket_path: Path, op: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
    """One request, one reply. Raises AgentUnreachable (69), PermissionDenied (77) or AgentError."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise AgentUnreachable(f"agent not reachable at {socket_path}: {exc.strerror}") from None
    except OSError as exc:
        raise AgentUnreachable(f"agent not reachable at {socket_path}: {exc}") from None
    if not data:
        raise AgentUnreachable(f"agent closed the connection at {socket_path}")
    reply: dict[str, Any] = json.loads(data)
    if not reply.get("ok"):
        code = int(reply.get("code", 1))
        if code == EXIT_PERMISSION:
            raise PermissionDenied(str(reply.get("error", "permission denied")))
        raise AgentError(str(reply.get("error", "failed")), code)
    return reply

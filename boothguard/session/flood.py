"""The flood budget on watcher connections: every op from a non-root peer passes its connection's token
buckets (`agent/access.py`); what they shed is answered `EXIT_RATE`, counted, and reported as `watcher.flood`
(at most once per report window, and once more when the connection closes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from boothguard import log
from boothguard.agent import access as trust
from boothguard.agent.control import Connection, Peer
from boothguard.agent.plugin import Handler
from boothguard.events import Draft

EXIT_RATE = 75  # EX_TEMPFAIL: shed by the connection's budget, try later

_log = log.get("sessions")


class FloodGuard:
    def __init__(
        self,
        *,
        monotonic: Callable[[], float],
        emit: Callable[[Draft], Awaitable[None]],
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
        session_of: Callable[[Connection], str | None],
    ) -> None:
        self._now = monotonic
        self._emit = emit
        self._spawn = spawn
        self._session_of = session_of  # the session a connection registered for, if any
        self._budgets: dict[int, trust.ConnectionBudget] = {}
        self.shed = 0

    def guard(self, op: str, handler: Handler) -> Handler:
        """The handler behind the connection's budget for op (root peers are not budgeted)."""

        async def guarded(peer: Peer, req: Mapping[str, Any], conn: Connection) -> dict[str, Any]:
            if peer.is_root:
                return await handler(peer, req, conn)
            budget = self._budgets.get(id(conn))
            if budget is None:
                budget = self._budgets[id(conn)] = trust.ConnectionBudget(self._now)
                self._spawn(self._forget(peer, conn, budget))
            if not budget.admit(op):
                self.shed += 1
                await self._report(peer, conn, budget, force=False)
                return {
                    "ok": False,
                    "error": f"{op}: rate limit exceeded for this connection",
                    "code": EXIT_RATE,
                }
            return await handler(peer, req, conn)

        return guarded

    async def _forget(self, peer: Peer, conn: Connection, budget: trust.ConnectionBudget) -> None:
        await conn.closed.wait()
        self._budgets.pop(id(conn), None)
        await self._report(peer, conn, budget, force=True)

    async def _report(
        self, peer: Peer, conn: Connection, budget: trust.ConnectionBudget, *, force: bool
    ) -> None:
        counts = budget.due_report(force)
        if counts is None:
            return
        sid = self._session_of(conn)
        _log.warning("watcher_flood", session=sid, uid=peer.uid, pid=peer.pid, shed=counts)
        await self._emit(
            Draft(
                "watcher.flood",
                "medium",
                {
                    "session_id": sid,
                    "uid": peer.uid,
                    "pid": peer.pid,
                    "shed": counts,
                    "shed_total": budget.shed_total,
                },
                peer.user,
            )
        )

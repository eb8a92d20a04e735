"""How many ingests run at once in one collector process, and how briefly the next few may wait for a slot.

A fleet's requests arrive at random: at 10,000 booths (333 requests/s) a stall of 100 ms (a GC pass, a slow
fsync, a busy neighbour on the machine) brings 33 of them at once. Answering each one past the limit 503 at
once turned such blips into resends that came back together (issue 17); a short, bounded wait absorbs them.
The wait is bounded in waiters and in time, so a real overload is still answered 503 + Retry-After soon.
Touched only on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

WAIT_SECONDS = 0.5  # under the fleet's p99 target: a request that would wait longer is better resent
WAITERS_PER_SLOT = 4


class IngestGate:
    def __init__(self) -> None:
        self.active = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def enter(self, limit: int, *, wait: float = WAIT_SECONDS, waiters: int | None = None) -> bool:
        """Take a slot, waiting at most `wait` s behind at most `waiters` others; False: answer 503."""
        if self.active < limit and not self._waiting:
            self.active += 1
            return True
        if len(self._waiting) >= (limit * WAITERS_PER_SLOT if waiters is None else waiters) or wait <= 0:
            return False
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(slot)
        got = False
        try:
            await asyncio.wait_for(slot, wait)
            got = True  # leave() moved its slot to us: `active` already counts it
        except TimeoutError:
            pass
        finally:
            if not got:  # timed out, or the client went away (CancelledError goes on up)
                if slot.done() and not slot.cancelled():
                    self.leave()  # handed a slot just as the wait ended: pass it on
                else:
                    slot.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiting.remove(slot)
        return got

    def leave(self) -> None:
        """Give the slot to the longest waiter still waiting, or free it."""
        while self._waiting:
            slot = self._waiting.popleft()
            if not slot.done():
                slot.set_result(None)
                return  # `active` unchanged: the slot moves to the waiter
        self.active -= 1

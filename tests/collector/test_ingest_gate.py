"""The ingest gate: a slot at once under the limit, a short FIFO wait past it, 503 when the wait is full or
runs out; a slot handed to a waiter that gave up is passed on, never lost."""

from __future__ import annotations

import asyncio

from boothguard.collector.ingest_gate import IngestGate


async def test_waiters_get_freed_slots_in_order_and_the_wait_is_bounded() -> None:
    gate = IngestGate()
    assert await gate.enter(2)
    assert await gate.enter(2)
    order: list[int] = []

    async def wait(i: int) -> None:
        if await gate.enter(2, wait=5.0, waiters=2):
            order.append(i)

    first, second = asyncio.create_task(wait(1)), asyncio.create_task(wait(2))
    while gate.waiting < 2:
        await asyncio.sleep(0)
    assert not await gate.enter(2, wait=5.0, waiters=2)  # the wait is full: 503 at once
    gate.leave()
    gate.leave()
    await asyncio.gather(first, second)
    assert order == [1, 2]
    assert (gate.active, gate.waiting) == (2, 0)  # the two slots moved to the waiters


async def test_a_wait_that_runs_out_is_refused_and_leaves_no_trace() -> None:
    gate = IngestGate()
    assert await gate.enter(1)
    assert not await gate.enter(1, wait=0.05)
    assert (gate.active, gate.waiting) == (1, 0)
    gate.leave()
    assert gate.active == 0
    assert await gate.enter(1)


async def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    gate = IngestGate()
    assert await gate.enter(1)
    gone = asyncio.create_task(gate.enter(1, wait=5.0))
    after = asyncio.create_task(gate.enter(1, wait=5.0))
    while gate.waiting < 2:
        await asyncio.sleep(0)
    gate.leave()  # the slot goes to `gone`...
    gone.cancel()  # ...whose client hangs up before it runs
    try:
        owned = await gone  # Python 3.11's wait_for keeps a result that came before the cancel
    except asyncio.CancelledError:
        owned = False
    if owned:
        gate.leave()  # its request ran on with the slot and gives it back as usual
    assert await after  # either way the slot reached the next waiter
    assert (gate.active, gate.waiting) == (1, 0)

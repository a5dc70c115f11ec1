"""The agent's sync slots (node/sync_slots.py): few at a time, in the order
asked, and a slot held past its lease is handed on."""

from __future__ import annotations

import asyncio

from kybern.node.sync_slots import SyncSlots


async def test_at_most_n_in_order() -> None:
    slots = SyncSlots(slots=2, lease=10.0)
    running = 0
    peak = 0
    order: list[int] = []

    async def sync(i: int) -> None:
        nonlocal running, peak
        async with slots.slot():
            order.append(i)
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(sync(i) for i in range(10)))
    assert peak == 2
    assert order == list(range(10))


async def test_a_long_sync_gives_its_slot_back_after_the_lease() -> None:
    slots = SyncSlots(slots=1, lease=0.05)
    hook_done = asyncio.Event()
    quick_done = asyncio.Event()

    async def long_sync() -> None:  # e.g. a postStart hook that runs for a while
        async with slots.slot():
            await hook_done.wait()

    async def quick_sync() -> None:
        async with slots.slot():
            quick_done.set()

    t1 = asyncio.create_task(long_sync())
    await asyncio.sleep(0)
    t2 = asyncio.create_task(quick_sync())
    await asyncio.wait_for(quick_done.wait(), 2.0)  # not blocked behind the long one
    hook_done.set()
    await asyncio.gather(t1, t2)
    # the slot is free again (given back once, not twice): exactly one sync at a time
    inside = 0
    peak = 0

    async def count() -> None:
        nonlocal inside, peak
        async with slots.slot():
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(count() for _ in range(4)))
    assert peak == 1


async def test_a_cancelled_waiter_does_not_lose_the_slot() -> None:
    slots = SyncSlots(slots=1, lease=10.0)
    release = asyncio.Event()

    async def holder() -> None:
        async with slots.slot():
            await release.wait()

    h = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    await h
    await asyncio.gather(waiter, return_exceptions=True)
    got = asyncio.Event()

    async def after() -> None:
        async with slots.slot():
            got.set()

    await asyncio.wait_for(after(), 1.0)
    assert got.is_set()


async def test_backlog_is_syncs_waiting_for_a_slot() -> None:
    slots = SyncSlots(slots=1, lease=10)
    assert not slots.backlog()
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with slots.slot():
            entered.set()
            await release.wait()

    first = asyncio.create_task(hold())
    await entered.wait()
    assert not slots.backlog()  # one sync running, none waiting
    second = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert slots.backlog()
    release.set()
    await asyncio.gather(first, second)
    assert not slots.backlog()

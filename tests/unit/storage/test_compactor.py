"""The periodic compactor on every backend: it keeps one interval of history
and compacts what is older, through the Store protocol only."""

from __future__ import annotations

import asyncio

import pytest

from kybern.storage import interface as st
from kybern.storage.compactor import compact_once, run_compactor


async def test_compacts_to_the_revision_seen_a_tick_before(store):
    r0 = await store.create("/cmp/0", b"0")
    r1 = await store.create("/cmp/a", b"1")
    last = await compact_once(store, 0)  # first tick only remembers
    assert last == r1
    assert (await store.list("/cmp/", revision=r1)).kvs  # nothing compacted yet
    r2 = await store.update("/cmp/a", b"2", r1)
    last = await compact_once(store, last)  # compacts to r1
    assert last >= r2
    with pytest.raises(st.Compacted):
        await store.list("/cmp/", revision=r0)
    assert [kv.value for kv in (await store.list("/cmp/", revision=r1)).kvs] == [b"0", b"1"]
    assert (await store.get("/cmp/a"))[0].value == b"2"


async def test_runs_periodically(store):
    r1 = await store.create("/cmp/b", b"1")
    await store.update("/cmp/b", b"2", r1)
    task = asyncio.create_task(run_compactor(store, interval=0.05))
    try:
        async def compacted() -> bool:
            try:
                await store.list("/cmp/", revision=r1)
                return False
            except st.Compacted:
                return True

        for _ in range(100):
            if await compacted():
                break
            await store.create(f"/cmp/tick-{_}", b"x")  # keep the revision moving
            await asyncio.sleep(0.05)
        assert await compacted()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

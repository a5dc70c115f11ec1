"""The storage contract on the SQLite backend: revisions, guarded writes,
prefix lists at a revision, watch from a revision, compaction."""

from __future__ import annotations

import asyncio

import pytest

from kybern.storage import interface as st
from kybern.storage.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path):
    s = SQLiteStore(str(tmp_path / "state.db"))
    yield s
    await s.close()


async def test_create_get_and_revisions_increase(store):
    r1 = await store.create("/a/1", b"one")
    r2 = await store.create("/a/2", b"two")
    assert r2 == r1 + 1
    kv, rev = await store.get("/a/1")
    assert kv is not None and kv.value == b"one" and kv.create_revision == r1 == kv.mod_revision
    assert rev == r2


async def test_create_twice_is_key_exists(store):
    await store.create("/a/1", b"x")
    with pytest.raises(st.KeyExists):
        await store.create("/a/1", b"y")


async def test_guarded_update_conflicts_on_stale_revision(store):
    r1 = await store.create("/k", b"v1")
    r2 = await store.update("/k", b"v2", r1)
    with pytest.raises(st.Conflict) as e:
        await store.update("/k", b"v3", r1)
    assert e.value.current is not None and e.value.current.mod_revision == r2
    kv, _ = await store.get("/k")
    assert kv.value == b"v2" and kv.create_revision == r1


async def test_delete_then_recreate(store):
    r1 = await store.create("/k", b"v1")
    rev, prev = await store.delete("/k", r1)
    assert prev.value == b"v1" and rev > r1
    assert (await store.get("/k"))[0] is None
    with pytest.raises(st.KeyNotFound):
        await store.delete("/k")
    await store.create("/k", b"again")
    assert (await store.get("/k"))[0].value == b"again"


async def test_list_prefix_limit_and_at_revision(store):
    for i in range(5):
        await store.create(f"/p/{i}", str(i).encode())
    await store.create("/q/0", b"other")
    at = await store.current_revision()
    await store.update("/p/0", b"changed", 0)
    res = await store.list("/p/")
    assert [kv.key for kv in res.kvs] == [f"/p/{i}" for i in range(5)]
    assert res.kvs[0].value == b"changed"
    old = await store.list("/p/", revision=at)
    assert old.kvs[0].value == b"0"
    page = await store.list("/p/", limit=2)
    assert len(page.kvs) == 2 and page.more
    rest = await store.list("/p/", start=page.kvs[-1].key + "\x00", revision=page.revision)
    assert [kv.key for kv in rest.kvs] == ["/p/2", "/p/3", "/p/4"] and not rest.more


async def test_watch_replays_history_then_follows(store):
    r1 = await store.create("/w/a", b"1")
    await store.update("/w/a", b"2", r1)
    await store.create("/x/other", b"no")
    seen = []

    async def consume():
        async for ev in store.watch("/w/", r1 - 1):
            seen.append((ev.type, ev.kv.key, ev.kv.value, ev.kv.mod_revision))
            if len(seen) == 4:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    await store.create("/w/b", b"3")
    await store.delete("/w/a")
    await asyncio.wait_for(task, 2)
    assert [s[:3] for s in seen] == [("PUT", "/w/a", b"1"), ("PUT", "/w/a", b"2"), ("PUT", "/w/b", b"3"),
                                     ("DELETE", "/w/a", b"2")]
    revs = [s[3] for s in seen]
    assert revs == sorted(revs)


async def test_compacted_revision_is_refused(store):
    r1 = await store.create("/c", b"1")
    r2 = await store.update("/c", b"2", r1)
    await store.update("/c", b"3", r2)
    await store.compact(r2)
    with pytest.raises(st.Compacted):
        async for _ in store.watch("/c", r1 - 1):
            break
    with pytest.raises(st.Compacted):
        await store.list("/c", revision=r1)
    assert (await store.get("/c"))[0].value == b"3"


async def test_state_survives_reopen(tmp_path):
    path = str(tmp_path / "s.db")
    s = SQLiteStore(path)
    await s.create("/k", b"v")
    rev = await s.current_revision()
    await s.close()
    s2 = SQLiteStore(path)
    assert (await s2.get("/k"))[0].value == b"v"
    assert await s2.create("/k2", b"w") == rev + 1
    await s2.close()

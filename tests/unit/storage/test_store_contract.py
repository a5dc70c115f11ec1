"""The storage contract (kybern/storage/interface.py), run on every backend:
revisions, guarded writes, prefix lists at a revision, watch from a revision,
compaction, restarts, and racing writers."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from kybern.storage import interface as st


async def collect(store: st.Store, prefix: str, revision: int, n: int, timeout: float = 5) -> list[st.Event]:
    """The first n events of a watch."""
    seen: list[st.Event] = []

    async def run() -> None:
        async with contextlib.aclosing(store.watch(prefix, revision)) as events:  # type: ignore[type-var]
            async for ev in events:
                seen.append(ev)
                if len(seen) == n:
                    return

    await asyncio.wait_for(run(), timeout)
    return seen


async def test_create_get_and_revisions_increase(store):
    r1 = await store.create("/a/1", b"one")
    r2 = await store.create("/a/2", b"two")
    assert r2 == r1 + 1
    kv, rev = await store.get("/a/1")
    assert kv is not None and kv.key == "/a/1" and kv.value == b"one"
    assert kv.create_revision == r1 == kv.mod_revision
    assert rev == r2 == await store.current_revision()
    assert (await store.get("/a/missing"))[0] is None


async def test_create_twice_is_key_exists(store):
    await store.create("/a/1", b"x")
    with pytest.raises(st.KeyExists):
        await store.create("/a/1", b"y")
    assert (await store.get("/a/1"))[0].value == b"x"


async def test_guarded_update_conflicts_on_stale_revision(store):
    r1 = await store.create("/k", b"v1")
    r2 = await store.update("/k", b"v2", r1)
    assert r2 > r1
    with pytest.raises(st.Conflict) as e:
        await store.update("/k", b"v3", r1)
    assert e.value.current is not None and e.value.current.mod_revision == r2 and e.value.current.value == b"v2"
    kv, _ = await store.get("/k")
    assert kv.value == b"v2" and kv.create_revision == r1 and kv.mod_revision == r2
    r3 = await store.update("/k", b"v4", 0)  # unguarded
    assert (await store.get("/k"))[0].mod_revision == r3
    with pytest.raises(st.KeyNotFound):
        await store.update("/nope", b"x", 0)
    with pytest.raises(st.KeyNotFound):
        await store.update("/nope", b"x", r1)


async def test_delete_then_recreate(store):
    r1 = await store.create("/k", b"v1")
    with pytest.raises(st.Conflict) as e:
        await store.delete("/k", r1 + 100)
    assert e.value.current.mod_revision == r1
    rev, prev = await store.delete("/k", r1)
    assert prev.key == "/k" and prev.value == b"v1" and prev.mod_revision == r1 and rev > r1
    assert (await store.get("/k"))[0] is None
    with pytest.raises(st.KeyNotFound):
        await store.delete("/k")
    r3 = await store.create("/k", b"again")
    kv = (await store.get("/k"))[0]
    assert kv.value == b"again" and kv.create_revision == r3  # a new incarnation


async def test_mod_revision_matches_only_the_current_put(store):
    assert await store.mod_revision("/m/k") == 0  # never written
    r1 = await store.create("/m/k", b"v1")
    assert await store.mod_revision("/m/k") == r1
    r2 = await store.update("/m/k", b"v2", r1)
    await store.create("/m/other", b"x")
    assert await store.mod_revision("/m/k") == r2
    rd, _ = await store.delete("/m/k")
    assert await store.mod_revision("/m/k") not in (r1, r2)  # 0 or the deletion's revision
    assert (await store.mod_revision("/m/k")) in (0, rd)
    r3 = await store.create("/m/k", b"v3")
    assert await store.mod_revision("/m/k") == r3
    await store.delete("/m/k")
    await store.compact(await store.current_revision())
    assert await store.mod_revision("/m/k") == 0


async def test_list_prefix_limit_and_at_revision(store):
    for i in range(5):
        await store.create(f"/p/{i}", str(i).encode())
    await store.create("/q/0", b"other")
    await store.create("/p", b"not under /p/")
    at = await store.current_revision()
    await store.update("/p/0", b"changed", 0)
    await store.delete("/p/4")
    res = await store.list("/p/")
    assert [kv.key for kv in res.kvs] == [f"/p/{i}" for i in range(4)]
    assert res.kvs[0].value == b"changed" and not res.more
    assert res.revision == await store.current_revision()
    assert await store.count("/p/") == 4
    old = await store.list("/p/", revision=at)
    assert old.revision == at
    assert [kv.value for kv in old.kvs] == [b"0", b"1", b"2", b"3", b"4"]
    page = await store.list("/p/", limit=2, revision=at)
    assert [kv.key for kv in page.kvs] == ["/p/0", "/p/1"] and page.more
    rest = await store.list("/p/", start=page.kvs[-1].key + "\x00", revision=page.revision, limit=3)
    assert [kv.key for kv in rest.kvs] == ["/p/2", "/p/3", "/p/4"] and not rest.more
    assert rest.kvs[0].value == b"2"


async def test_watch_replays_history_then_follows_in_order(store):
    r1 = await store.create("/w/a", b"1")
    await store.update("/w/a", b"2", r1)
    await store.create("/x/other", b"no")
    task = asyncio.create_task(collect(store, "/w/", r1 - 1, 5))
    await asyncio.sleep(0.1)
    await store.create("/w/b", b"3")
    await store.create("/x/other2", b"no")
    await store.delete("/w/a")
    await store.update("/w/b", b"4", 0)
    seen = await task
    assert [(e.type, e.kv.key, e.kv.value) for e in seen] == [
        ("PUT", "/w/a", b"1"), ("PUT", "/w/a", b"2"), ("PUT", "/w/b", b"3"), ("DELETE", "/w/a", b"2"),
        ("PUT", "/w/b", b"4")]
    revs = [e.kv.mod_revision for e in seen]
    assert revs == sorted(revs) and len(set(revs)) == 5
    assert [e.created for e in seen] == [True, False, True, False, False]
    assert seen[0].prev is None and seen[1].prev is not None and seen[1].prev.value == b"1"
    assert seen[4].prev.value == b"3"


async def test_watch_delete_carries_the_deleted_value(store):
    r1 = await store.create("/d/x", b"payload")
    r2 = await store.update("/d/x", b"payload-2", r1)
    rev, _ = await store.delete("/d/x", r2)
    (ev,) = await collect(store, "/d/", r2, 1)
    assert ev.type == "DELETE" and ev.kv.key == "/d/x" and ev.kv.value == b"payload-2"
    assert ev.kv.mod_revision == rev and ev.kv.create_revision == r1
    assert ev.prev is not None and ev.prev.mod_revision == r2


async def test_compacted_revision_is_refused(store):
    r1 = await store.create("/c", b"1")
    r2 = await store.update("/c", b"2", r1)
    await store.update("/c", b"3", r2)
    await store.compact(r2)
    await store.compact(r2)  # compacting again is a no-op
    with pytest.raises(st.Compacted) as e:
        await collect(store, "/c", r1 - 1, 1)
    assert e.value.compact_revision == r2
    with pytest.raises(st.Compacted) as e:
        await store.list("/c", revision=r1)
    assert e.value.requested == r1 and e.value.compact_revision == r2
    assert (await store.get("/c"))[0].value == b"3"
    assert [kv.value for kv in (await store.list("/c", revision=r2)).kvs] == [b"2"]
    (ev,) = await collect(store, "/c", r2, 1)  # history after the compact revision is kept
    assert ev.kv.value == b"3"


async def test_state_survives_restart(backend):
    s = backend.open()
    r1 = await s.create("/k", b"v")
    rev = await s.current_revision()
    await s.close()
    backend.restart()
    s2 = backend.open()
    kv, _ = await s2.get("/k")
    assert kv.value == b"v" and kv.mod_revision == r1
    assert await s2.create("/k2", b"w") == rev + 1


async def test_racing_guarded_updates_one_wins(backend):
    a, b = backend.open(), backend.open()
    r1 = await a.create("/race", b"0")
    results = await asyncio.gather(a.update("/race", b"a", r1), b.update("/race", b"b", r1),
                                   return_exceptions=True)
    wins = [r for r in results if isinstance(r, int)]
    losses = [r for r in results if isinstance(r, st.Conflict)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert losses[0].current is not None and losses[0].current.mod_revision == wins[0]
    kv, _ = await b.get("/race")
    assert kv.mod_revision == wins[0] and kv.value in (b"a", b"b")


async def test_writes_from_another_store_reach_a_watcher(backend):
    a, b = backend.open(), backend.open()
    start = await a.current_revision()
    task = asyncio.create_task(collect(a, "/o/", start, 1))
    await asyncio.sleep(0.1)
    await b.create("/o/1", b"from b")
    (ev,) = await task
    assert ev.kv.value == b"from b" and ev.created
